"""The phase diagram of a sweep: a heatmap over two grid axes, the measured boundary,
the mean-field critical line, and the current setting marked.

:class:`PhaseView` shows one quantity of a ``sweep.zarr`` (median over the seeds,
:mod:`core.sweep.phase`): log10 of the gradient ratio on a diverging map centred
on 0 (ratio 1), losses and the spectral radius on a sequential map.  A contour
(pyqtgraph's IsocurveItem) marks the measured boundary, ratio = 1; for a tanh RNN
with ``init.scales.recurrent`` on an axis a dashed line marks the mean-field
critical scale (Chen, Pennington & Schoenholz, ICML 2018; :mod:`core.meanfield`).
The "you are here" marker follows the Lab's ``experiment_changed`` events; a click
on a cell loads that grid point's setting into the Lab
(:meth:`core.lab.Lab.set_paths`, one undoable edit).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from core.errors import UserError
from core.lab import Lab
from core.paths import format_value, get_path
from core.sweep.phase import (
    QUANTITIES,
    PhaseMap,
    changes_at,
    critical_line,
    grid_axes,
    measured_edge,
    open_sweep,
    phase_map,
    position,
)

from .. import colormaps
from .base import MARKER_COLOR, color_bar, set_color_map, set_levels

BOUNDARY_COLOR = "#FFFFFF"
CRITICAL_COLOR = "#F0E442"  # yellow: apart from the diverging map's ends and the marker
NONE = "(one row)"
MAX_DECADES = 12.0  # the colour scale of log10 ratios ends here, so the edge keeps its shades


class PhaseView(QWidget):
    """A sweep's phase diagram for ``lab``; :meth:`load` opens a ``sweep.zarr``."""

    loaded = Signal(str)  # the store's path
    point_loaded = Signal(object)  # the (path, value) changes a click loaded

    title = "Phase diagram"
    tooltip = ("A sweep's map: median over the seeds of the chosen quantity over two grid "
               "axes; white contour: measured gradient ratio 1; dashed yellow: mean-field "
               "critical line (tanh RNN); magenta: the current setting.  Click a cell to "
               "load its setting.")

    def __init__(self, lab: Lab, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab = lab
        self.ds: Any = None
        self.map: PhaseMap | None = None
        self.line_note = ""
        self.critical_scales: list[float] = []  # the mean-field line's scales, as drawn
        self.setToolTip(self.tooltip)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.quantity = QComboBox()
        self.x_axis = QComboBox()
        self.y_axis = QComboBox()
        for label, w in (("Show", self.quantity), ("x", self.x_axis), ("y", self.y_axis)):
            w.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            w.setMinimumContentsLength(4)  # the dock may be narrow: the text is elided
            row.addWidget(QLabel(label))
            row.addWidget(w, 1)
        col.addLayout(row)
        self.status = QLabel("Open a sweep (File → Open sweep…) to see its phase diagram.")
        self.status.setWordWrap(False)  # one line, so the map keeps the height; more in the tooltip
        self.status.setMinimumWidth(10)
        col.addWidget(self.status)
        self.glw = pg.GraphicsLayoutWidget()
        col.addWidget(self.glw, 1)
        self.plot = self.glw.addPlot(row=0, col=0)
        self.plot.setMenuEnabled(False)
        self.plot.vb.setDefaultPadding(0.0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setZValue(-10)
        self.plot.addItem(self.image)
        self.bar = color_bar(colormaps.diverging(), "")
        self.bar.setImageItem(self.image)
        self.glw.addItem(self.bar, row=0, col=1)
        self.boundary = pg.IsocurveItem(level=0.0, pen=pg.mkPen(BOUNDARY_COLOR, width=2),
                                        axisOrder="row-major")
        self.boundary.setParentItem(self.image)
        self.critical = pg.PlotDataItem(pen=pg.mkPen(CRITICAL_COLOR, width=2,
                                                     style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.critical)
        self.marker = pg.ScatterPlotItem(size=16, symbol="star", pen=pg.mkPen("#000000"),
                                         brush=pg.mkBrush(MARKER_COLOR))
        self.marker.setZValue(10)
        self._marker_at: tuple[float, float] | None = None  # where it is drawn
        self.plot.addItem(self.marker)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self.quantity.currentIndexChanged.connect(self._redraw)
        self.x_axis.currentIndexChanged.connect(self._redraw)
        self.y_axis.currentIndexChanged.connect(self._redraw)
        lab.experiment_changed.connect(self._follow)  # where the lab is: its settings only
        self.destroyed.connect(lambda *_: self._disconnect(lab))

    def _disconnect(self, lab: Lab) -> None:
        try:
            lab.experiment_changed.disconnect(self._follow)
        except (ValueError, RuntimeError):
            pass

    # ------------------------------------------------------------------ data

    def load(self, path: str) -> bool:
        """Open the sweep at ``path``; False (the reason in :attr:`status`) when it is
        not one."""
        try:
            ds = open_sweep(path)
        except UserError as exc:
            self.status.setText(str(exc))
            return False
        self.set_dataset(ds)
        self.loaded.emit(str(path))
        return True

    def set_dataset(self, ds: Any) -> None:
        self.ds = ds
        axes = grid_axes(ds)
        for combo, items in ((self.quantity, [(QUANTITIES[q], q) for q in QUANTITIES
                                              if q in ds.data_vars]),
                             (self.x_axis, [(a, a) for a in axes]),
                             (self.y_axis, [(a, a) for a in axes] + [(NONE, None)])):
            combo.blockSignals(True)
            combo.clear()
            for text, data in items:
                combo.addItem(text, data)
            combo.blockSignals(False)
        self.x_axis.setCurrentIndex(0)
        self.y_axis.setCurrentIndex(1 if len(axes) > 1 else len(axes))
        self._redraw()

    def set_quantity(self, name: str) -> None:
        self.quantity.setCurrentIndex(self.quantity.findData(name))

    def set_axes(self, x: str, y: str | None) -> None:
        self.x_axis.blockSignals(True)
        self.x_axis.setCurrentIndex(self.x_axis.findData(x))
        self.x_axis.blockSignals(False)
        self.y_axis.setCurrentIndex(self.y_axis.findData(y))
        self._redraw()

    # ------------------------------------------------------------------ drawing

    def _redraw(self, *_: Any) -> None:
        if self.ds is None or self.quantity.currentIndex() < 0:
            return
        x, y = self.x_axis.currentData(), self.y_axis.currentData()
        if y == x:
            y = None
        pm = phase_map(self.ds, self.quantity.currentData(), x, y, self._held(x, y))
        self.map = pm
        for combo in (self.quantity, self.x_axis, self.y_axis):
            combo.setToolTip(combo.currentText())  # the whole name, where it is elided
        ny, nx = pm.values.shape
        finite = pm.values[np.isfinite(pm.values)]
        if pm.quantity == "grad_ratio":
            set_color_map(self.bar, colormaps.diverging())
            m = min(float(np.max(np.abs(finite))) if finite.size else 1.0, MAX_DECADES)
            levels = (-max(m, 1e-3), max(m, 1e-3))  # centred on ratio 1; beyond: saturated
        else:
            set_color_map(self.bar, colormaps.sequential())
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            levels = (lo, hi if hi > lo else lo + 1.0)
        self.image.setImage(pm.values, autoLevels=False)
        self.image.setRect(-0.5, -0.5, nx, ny)
        set_levels(self.bar, levels)
        self.bar.getAxis("right").setLabel(pm.label)
        self.plot.setXRange(-0.5, nx - 0.5, padding=0)
        self.plot.setYRange(-0.5, ny - 0.5, padding=0)
        self._ticks("bottom", pm.x_values)
        self._ticks("left", pm.y_values if y is not None else [""])
        self.plot.setLabel("bottom", x)
        self.plot.setLabel("left", y or "")
        self._draw_boundary(pm)
        self._draw_critical(pm)
        held = ", ".join(f"{a} = {format_value(self._coord(a, k))}" for a, k in pm.fixed.items())
        seeds = self.ds.sizes["seed"]
        self.plot.setTitle(f"median of {seeds} seed{'s' if seeds != 1 else ''}", size="9pt")
        self.status.setText((f"At {held}. " if held else "") + self._legend())
        self._follow()

    def _coord(self, axis: str, k: int) -> Any:
        return np.asarray(self.ds[axis].values)[k]

    def _held(self, x: str, y: str | None) -> dict[str, int]:
        """Other axes held at the lab's current value when it is on the grid, else 0."""
        out = {}
        for a in grid_axes(self.ds):
            if a in (x, y):
                continue
            p = self._lab_position(a, [v.item() if hasattr(v, "item") else v
                                       for v in np.asarray(self.ds[a].values)])
            out[a] = round(p) if p is not None else 0
        return out

    def _ticks(self, side: str, values: list[Any]) -> None:
        n = len(values)
        step = max(1, -(-n // 7))  # at most 7 labels: they must not overlap
        ticks = [(float(i), format_value(v) if v is not None else "")
                 for i, v in enumerate(values) if i % step == 0]
        self.plot.getAxis(side).setTicks([ticks])

    def _draw_boundary(self, pm: PhaseMap) -> None:
        v = pm.values
        if pm.quantity == "grad_ratio" and min(v.shape) >= 2 and not np.isnan(v).any():
            finite = v[np.isfinite(v)]  # a ratio of 0 or inf (log10 ±inf): past the ends
            span = (float(finite.min()) - 1.0, float(finite.max()) + 1.0) if finite.size else (-1, 1)
            self.boundary.setData(np.clip(v, *span))
            self.boundary.setVisible(True)
        else:
            self.boundary.setData(None)
            self.boundary.setVisible(False)

    def _draw_critical(self, pm: PhaseMap) -> None:
        points, self.critical_scales, self.line_note = critical_line(self.ds, pm)
        if not points:
            self.critical.setData([], [])
            return
        along_x = pm.x == "init.scales.recurrent"
        xs: list[float] = []
        ys: list[float] = []
        for p, q in points:  # a segment across each cell of the other axis
            if along_x:
                xs += [p, p]
                ys += [q - 0.5, q + 0.5]
            else:
                xs += [p - 0.5, p + 0.5]
                ys += [q, q]
        self.critical.setData(xs, ys, connect="pairs")

    def _legend(self) -> str:
        """One short line; the long form is the tooltip."""
        parts = ["white: ratio 1 (measured)"] if self.boundary.isVisible() else []
        if self.critical.xData is not None and len(self.critical.xData):
            parts.append("yellow: mean field χ = 1")
        parts.append("★ current setting; click a cell to load it")
        long = ["white contour: measured gradient ratio = 1",
                "dashed yellow: mean-field critical line χ = σ_w² E[tanh′(h)²] = 1 "
                "(Chen, Pennington & Schoenholz 2018)"]
        if self.line_note:
            long.append(f"mean-field line: {self.line_note}")
        if self.map is not None:
            edges = [f"{e:.3g}" for e in measured_edge(self.map) if e is not None]
            if edges:
                long.append("measured edge (ratio 1) at scale " + ", ".join(edges))
            if self.critical_scales:
                long.append("mean-field critical scale " + ", ".join(
                    f"{c:.3g}" for c in self.critical_scales))
        self.status.setToolTip("\n".join(long))
        return " · ".join(parts)

    # ------------------------------------------------------------------ the lab

    def _lab_position(self, axis: str, values: list[Any]) -> float | None:
        try:
            value = get_path(self.lab.experiment, axis)
        except UserError:
            return None
        return position(values, value)

    def marker_position(self) -> tuple[float, float] | None:
        """Where the current setting sits on the map (cell units), None when off it."""
        pm = self.map
        if pm is None:
            return None
        px = self._lab_position(pm.x, pm.x_values)
        py = self._lab_position(pm.y, pm.y_values) if pm.y is not None else 0.0
        if px is None or py is None:
            return None
        return px, py

    def _follow(self, *_: Any) -> None:
        pm = self.map
        if pm is not None and pm.fixed and self._held(pm.x, pm.y) != pm.fixed:
            self._redraw()  # the other axes follow the lab to its slice; that redraw follows
            return
        pos = self.marker_position()
        if pos == self._marker_at:
            return  # a knob off the map's axes moved: the marker stays
        self._marker_at = pos
        if pos is None:
            self.marker.setData([], [])
        else:
            self.marker.setData([pos[0]], [pos[1]])

    def cell_at(self, scene_pos: Any) -> tuple[int, int] | None:
        """The (x, y) cell under a scene position, None outside the map."""
        if self.map is None:
            return None
        p = self.plot.vb.mapSceneToView(scene_pos)
        ny, nx = self.map.values.shape
        i, j = round(p.x()), round(p.y())
        return (i, j) if 0 <= i < nx and 0 <= j < ny else None

    def load_cell(self, i: int, j: int = 0) -> bool:
        """Load cell ``(i, j)``'s setting into the Lab as one undoable edit."""
        if self.map is None:
            return False
        changes = changes_at(self.map, i, j, self.ds)
        ok = self.lab.set_paths(changes, "Load sweep point " + ", ".join(
            f"{p}={format_value(v)}" for p, v in changes))
        if ok:
            self.point_loaded.emit(changes)
        return ok

    def _on_click(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            event.accept()
            self.load_cell(*cell)
