"""(i) Connectivity map: how much each output depends on each input, ‖∂o_t/∂x_s‖."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from .. import colormaps
from .base import MARKER_COLOR, Overlay, PlotPanel, fit_title, set_levels
from .pins import PinAware

DECADES = 8  # the colour scale spans at most this many powers of ten below the peak


class ConnectivityPanel(PinAware, PlotPanel):
    name = "connectivity"
    analyses = ("connectivity",)
    title = "Input–output connectivity"
    tooltip = ("How strongly output o_t (rows) depends on input x_s (columns): "
               "log₁₀‖∂o_t/∂x_s‖. The band along the diagonal shows how far back the network "
               "remembers; a causal model leaves the upper triangle empty (s > t).")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.plot = self._add_plot(0, 0, "Connectivity", "input timestep s",
                                   "output timestep t")
        self.image, self.bar = self._add_heatmap(self.plot, colormaps.sequential(),
                                                 "log<sub>10</sub> ‖∂o<sub>t</sub>/∂x<sub>s</sub>‖",
                                                 row=0, col=1)
        self.plot.vb.setDefaultPadding(0.0)
        self.plot.setAspectLocked(False)
        self.hline = pg.InfiniteLine(angle=0, movable=False,
                                     pen=pg.mkPen(MARKER_COLOR, width=1.5,
                                                  style=Qt.PenStyle.DashLine))
        self.hline.hide()
        self.plot.addItem(self.hline, ignoreBounds=True)
        self.overlay = Overlay(self.plot)
        self._shown: np.ndarray | None = None
        self._row0 = 0
        self._connect_hover(self.plot, self._describe)
        # A pinned run's map beside the live one, on the same colour scale (shown while
        # runs are pinned: the latest pin that kept its map).
        self.pin_plot = self._add_plot(1, 0, "Pinned", "input timestep s", "", time_axis=False)
        self.pin_plot.vb.setDefaultPadding(0.0)
        self.pin_image = pg.ImageItem(axisOrder="row-major")
        self.pin_plot.addItem(self.pin_image)
        self.pin_overlay = Overlay(self.pin_plot, size="9pt")
        self.glw.removeItem(self.pin_plot)
        self.bar.setImageItem([self.image, self.pin_image])
        self.pinned_label: str | None = None  # the pin whose map is shown

    def mark_timestep(self, t: int | None) -> None:
        super().mark_timestep(t)
        rows = 0 if self._shown is None else self._shown.shape[0]
        show = t is not None and rows > 1
        self.hline.setVisible(show)
        if show:
            self.hline.setPos(t)

    def _pins_changed(self) -> None:
        shown = self.pin_plot.scene() is not None
        if bool(self.pins) != shown:  # the pinned map goes between the live one and the bar
            self.glw.removeItem(self.bar)
            if self.pins:
                self.glw.addItem(self.pin_plot, row=0, col=1)
                self.glw.addItem(self.bar, row=0, col=2)
            else:
                self.glw.removeItem(self.pin_plot)
                self.glw.addItem(self.bar, row=0, col=1)
        super()._pins_changed()

    def _draw_pinned(self, levels: tuple[float, float]) -> None:
        """The latest pinned run's map that was kept (maps are not saved in files), and
        its table entry."""
        self.pinned_label = None
        if not self.pins:
            return
        pin = next((p for p in reversed(self.pins)
                    if getattr(p.result, "connectivity", None) is not None), None)
        if pin is None:
            self.pin_image.clear()
            label = self.pins[-1].label
            self.pin_overlay.set(f"{label}: no map kept<br>(maps of runs pinned in an earlier "
                                 "session are not saved)")
            fit_title(self.pin_plot, f"Pinned {label}", label)
            return
        self.pin_overlay.set(None)
        logc, row0 = _log_map(pin.result.connectivity)
        rows, cols = logc.shape
        self.pin_image.setImage(logc, autoLevels=False, levels=levels)
        self.pin_image.setRect(-0.5, row0 - 0.5, cols, rows)
        self.pin_plot.setXRange(-0.5, cols - 0.5, padding=0)
        self.pin_plot.setYRange(row0 - 0.5, row0 + rows - 0.5, padding=0)
        self._rows_axis(self.pin_plot, rows, label=False)
        fit_title(self.pin_plot, f"Pinned {pin.label}: same scale", f"Pinned {pin.label}",
                  pin.label)
        self.pinned_label = pin.label
        self._table[f"pinned.{pin.label}.connectivity"] = np.asarray(
            pin.result.connectivity, dtype=np.float64)

    def _draw(self) -> None:
        r = self._result
        conn = r.connectivity
        T = int(np.shape(r.x)[0])
        self._n_steps = T
        if conn is None or np.size(conn) == 0:
            self.image.clear()
            self._shown = None
            self._table = {}
            computing = "connectivity" in getattr(r, "pending", ())
            self.overlay.set("Computing the connectivity map of these weights…" if computing
                             else "No connectivity map in this result.", hide=(self.bar,))
            return
        self.overlay.set(None, hide=(self.bar,))
        conn = np.asarray(conn, dtype=np.float64)
        if conn.ndim == 1:
            conn = conn[None, :]
        rows, cols = conn.shape
        logc, self._row0 = _log_map(conn)
        finite = logc[np.isfinite(logc)]
        lo, hi = self._levels(float(finite.min()) if finite.size else -1.0,
                              float(finite.max()) if finite.size else 0.0)
        self.image.setImage(logc, autoLevels=False)
        self.image.setRect(-0.5, self._row0 - 0.5, cols, rows)
        set_levels(self.bar, (lo, hi))
        self.plot.setXRange(-0.5, cols - 0.5, padding=0)
        self.plot.setYRange(self._row0 - 0.5, self._row0 + rows - 0.5, padding=0)
        final = " (final output)" if rows == 1 else ""
        norm = "‖∂o<sub>t</sub>/∂x<sub>s</sub>‖"
        fit_title(self.plot, f"Connectivity log₁₀ {norm}{final}", f"log₁₀ {norm}{final}",
                  f"log₁₀ {norm}")
        self._rows_axis(self.plot, rows)
        self._shown = logc
        self._table = {"connectivity": conn, "log10_connectivity": logc}
        self._draw_pinned((lo, hi))

    def _levels(self, lo: float, hi: float) -> tuple[float, float]:
        """Colour levels (log10) for data from ``lo`` to ``hi``: the peak rounded up to
        half a decade, at most DECADES below it.  The levels in place are kept while the
        peak lies within a decade under their top, so that a colour keeps its meaning
        over small changes and the bar's axis is not laid out afresh for each."""
        def below(top: float) -> float:
            return max(math.floor(lo * 2) / 2, top - DECADES)

        top = float(self.bar.levels()[1])
        if not (self._shown is not None and hi <= top < hi + 1.0
                and float(self.bar.levels()[0]) == below(top)):
            top = math.ceil(hi * 2) / 2
        bottom = below(top)
        return (bottom if bottom < top else top - 1.0), top

    @staticmethod
    def _rows_axis(plot: pg.PlotItem, rows: int, label: bool = True) -> None:
        """Name the output-time axis, or a single row's "final output"; set only on a
        change (either redraws the axis)."""
        axis = plot.getAxis("left")
        text = "final output" if rows == 1 else "output timestep t"
        if label and axis.labelText != text:
            plot.setLabel("left", text)
        if axis.style["showValues"] != (rows > 1):
            axis.setStyle(showValues=rows > 1)

    def _describe(self, x: float, y: float) -> str | None:
        data = self._shown
        if data is None:
            return None
        s, t = round(x), round(y)
        row = t - self._row0
        if 0 <= s < data.shape[1] and 0 <= row < data.shape[0]:
            v = data[row, s]
            value = f"{10 ** v:.3g} (log₁₀ {v:.2f})" if np.isfinite(v) else "0"
            return f"o at t = {t}, x at s = {s}: {value}"
        return None


def _log_map(conn: Any) -> tuple[np.ndarray, int]:
    """log₁₀ of a connectivity map (T_out, T_in), NaN where 0, and the output timestep
    of its first row (a single row, many_to_one, is the output at the last step)."""
    conn = np.asarray(conn, dtype=np.float64)
    if conn.ndim == 1:
        conn = conn[None, :]
    rows, cols = conn.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        logc = np.where(conn > 0, np.log10(np.abs(conn)), np.nan)
    return logc, (cols - rows if rows < cols else 0)
