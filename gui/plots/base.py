"""The common base of every plot panel, and small helpers the panels share.

A panel is a QWidget holding a row of selectors (layer, sample, …) above a
``pg.GraphicsLayoutWidget``.  Panels build their plot items once and only feed
them new data on each :meth:`PlotPanel.show_result`, so redraws stay cheap.

Table convention for :meth:`PlotPanel.to_csv_table`: every 1-D column of one
table has the same length (one CSV file); a 2-D entry is a matrix on its own
(rows as in the heatmap: unit index or output time, columns timesteps).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from core.layout import GATES, layer_keys

from .. import colormaps

MARKER_COLOR = "#FF44FF"  # magenta: distinct from every colour map and line colour


def layer_label(key: str) -> str:
    """A readable name for a trace layer key: ``"l1_reverse"`` → ``"layer 1 (reverse)"``."""
    body = key[1:].removesuffix("_reverse")
    return f"layer {body} (reverse)" if key.endswith("_reverse") else f"layer {body}"


def combo_layer_label(key: str, bidirectional: bool) -> str:
    """Selector text: ``"layer 1"``, or ``"layer 1 →"`` / ``"layer 1 ←"`` in a bidirectional model."""
    body = key[1:].removesuffix("_reverse")
    if not bidirectional:
        return f"layer {body}"
    return f"layer {body} {'←' if key.endswith('_reverse') else '→'}"


def short_layer_label(key: str) -> str:
    """A compact name for legends: ``"l1_reverse"`` → ``"L1 ←"``, ``"l0"`` → ``"L0 →"``."""
    body = key[1:].removesuffix("_reverse")
    return f"L{body} ←" if key.endswith("_reverse") else f"L{body} →"


def model_layers(result: Any) -> list[tuple[str, str]]:
    """``(trace key, cell type)`` of every layer and direction in ``result``'s model."""
    model = result.experiment.model
    return [(key, model.layers[k].cell) for k, _suffix, key in layer_keys(model)]


def gate_names(cell: str) -> tuple[str, ...]:
    return GATES.get(cell, ())


def batch_norm(a: np.ndarray) -> np.ndarray:
    """Mean over the batch of the L2 norm over units: ``(T, B, H)`` → ``(T,)``."""
    a = np.asarray(a, dtype=np.float64)
    return np.sqrt(np.einsum("tbh,tbh->tb", a, a)).mean(axis=1)


def positive(y: np.ndarray) -> np.ndarray:
    """A float copy with non-positive and non-finite values as NaN (safe on a log axis)."""
    y = np.array(y, dtype=np.float64, copy=True).ravel()
    y[~(np.isfinite(y) & (y > 0))] = np.nan
    return y


def fmt_sci(v: float) -> str:
    """Compact scientific notation: ``3.2e-4``, ``0.12``, ``15``."""
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e3:
        return f"{v:.2g}"
    mant, exp = f"{v:.1e}".split("e")
    return f"{mant}e{int(exp)}"


class LogAxis(pg.AxisItem):
    """A log axis that labels 1-2-5 steps first, so a short range is not crowded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setStyle(textFillLimits=[(0, 0.5)])

    def logTickValues(self, minVal: float, maxVal: float, size: float, stdTicks: list) -> list:
        ticks = super().logTickValues(minVal, maxVal, size, stdTicks)
        if ticks and ticks[-1][0] is None:
            minor = np.asarray(ticks.pop()[1], dtype=np.float64)
            mantissa = np.round(10 ** (minor % 1)).astype(int)
            main = np.isin(mantissa, (1, 2, 5))
            ticks += [(None, list(minor[main])), (None, list(minor[~main]))]
        return ticks


class Overlay:
    """A centred message drawn inside a plot's view box (stays centred on resize)."""

    def __init__(self, plot: pg.PlotItem, size: str = "11pt") -> None:
        self._plot = plot
        self._vb = plot.vb
        self._item = pg.TextItem(anchor=(0.5, 0.5), color=pg.getConfigOption("foreground"))
        self._item.setParentItem(self._vb)
        self._item.setZValue(1000)
        self._size = size
        self._item.hide()
        self._vb.sigResized.connect(self._place)

    def _place(self, *_: Any) -> None:
        self._item.setPos(self._vb.rect().center())

    def set(self, text: str | None, hide: tuple[Any, ...] = ()) -> None:
        """Show ``text`` (HTML allowed), or hide the overlay for ``None``/empty.

        While a message shows, the plot's axes and the items in ``hide`` (a colour bar)
        are hidden, since they would describe nothing.
        """
        for axis in ("left", "bottom"):
            self._plot.showAxis(axis, not text)
        for item in hide:
            item.setVisible(not text)
        self._plot._message_shown = bool(text)
        marker = getattr(self._plot, "_time_marker", None)
        if marker is not None:  # a timestep marker over a message would mean nothing
            marker.setVisible(bool(getattr(marker, "_wanted", False)) and not text)
        if not text:
            self._item.hide()
            return
        self._item.setHtml(f'<div style="font-size:{self._size}; text-align:center">{text}</div>')
        self._place()
        self._item.show()

    @property
    def text(self) -> str:
        return self._item.toPlainText() if self._item.isVisible() else ""


class PlotPanel(QWidget):
    """Base of the plot panels: selectors row, a graphics layout, markers and export."""

    name: str = ""
    title: str = ""
    tooltip: str = ""

    timestep_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip(self.tooltip)
        self.setMinimumSize(240, 160)
        self.layer_selector: QComboBox | None = None
        self.sample_selector: QSpinBox | None = None
        self._result: Any = None
        self._table: dict[str, np.ndarray] = {}
        self._time_plots: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []
        self._n_steps = 0
        self._marked: int | None = None

        outer = QVBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        outer.setSpacing(2)
        self._bar = QWidget(self)
        self._bar_layout = QHBoxLayout(self._bar)
        self._bar_layout.setContentsMargins(4, 0, 4, 0)
        self._bar_layout.addStretch(1)
        self.readout = QLabel("", self._bar)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._bar_layout.addWidget(self.readout)
        self._bar.hide()
        outer.addWidget(self._bar)
        self.glw = pg.GraphicsLayoutWidget(self)
        self.glw.ci.setContentsMargins(4, 4, 4, 4)
        outer.addWidget(self.glw, 1)
        self.glw.scene().sigMouseClicked.connect(self._on_scene_click)

    # ------------------------------------------------------------------ public API

    def show_result(self, result: Any) -> None:
        """Redraw from a ProbeResult."""
        self._result = result
        self._sync_selectors(result)
        self._draw()

    def set_history(self, history: dict) -> None:
        """Show a training history (only the training panel uses it)."""

    def mark_timestep(self, t: int | None) -> None:
        """Draw a vertical marker at timestep ``t`` on every time-axis plot; ``None`` hides it."""
        self._marked = None if t is None else int(t)
        for plot, line in self._time_plots:
            line._wanted = self._marked is not None
            if self._marked is not None:
                line.setPos(self._marked)
            line.setVisible(line._wanted and not getattr(plot, "_message_shown", False))

    def export_items(self) -> list:
        """The pyqtgraph items to hand to an exporter (the whole panel scene)."""
        return [self.glw.scene()]

    def to_csv_table(self) -> dict[str, np.ndarray]:
        """The numbers currently plotted: column name → 1-D array, or a 2-D heatmap array."""
        return {k: np.array(v, copy=True) for k, v in self._table.items()}

    # ------------------------------------------------------------------ for subclasses

    def _draw(self) -> None:
        """Redraw the items from ``self._result`` and the selectors (subclasses)."""

    def _sync_selectors(self, result: Any) -> None:
        """Update selector contents to match ``result`` (subclasses may add more)."""
        self._sync_layer_selector(result)
        self._sync_sample_selector(result)

    def _redraw(self, *_: Any) -> None:
        if self._result is not None:
            self._draw()

    def _add_control(self, label: str, widget: QWidget) -> QWidget:
        """Put a labelled selector in the row above the plots."""
        index = self._bar_layout.count() - 2  # before the stretch and the readout
        if label:
            self._bar_layout.insertWidget(index, QLabel(label, self._bar))
            index += 1
        self._bar_layout.insertWidget(index, widget)
        self._bar.show()
        return widget

    def _make_layer_selector(self) -> QComboBox:
        combo = QComboBox(self._bar)
        combo.setToolTip("Which layer and direction to show (→ forward, ← reverse)")
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        combo.currentIndexChanged.connect(self._redraw)
        self.layer_selector = combo
        return self._add_control("Layer", combo)

    def _make_sample_selector(self) -> QSpinBox:
        spin = QSpinBox(self._bar)
        spin.setToolTip("Which sequence of the batch to show")
        spin.setRange(0, 0)
        spin.valueChanged.connect(self._redraw)
        self.sample_selector = spin
        return self._add_control("Sample", spin)

    @staticmethod
    def _fill_combo(combo: QComboBox, items: list[tuple[str, str]]) -> None:
        """Set ``(label, key)`` items; keeps the current key if it is still offered."""
        current = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
        if current == items:
            return
        keep = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for label, key in items:
            combo.addItem(label, key)
        keys = [key for _label, key in items]
        combo.setCurrentIndex(keys.index(keep) if keep in keys else 0)
        combo.blockSignals(False)

    def _sync_layer_selector(self, result: Any) -> None:
        if self.layer_selector is not None:
            layers = model_layers(result)
            both = any(key.endswith("_reverse") for key, _cell in layers)
            items = [(combo_layer_label(key, both), key) for key, _cell in layers]
            self._fill_combo(self.layer_selector, items)

    def _sync_sample_selector(self, result: Any) -> None:
        if self.sample_selector is not None:
            n = int(np.shape(result.x)[1]) if np.ndim(result.x) >= 2 else 1
            spin = self.sample_selector
            spin.blockSignals(True)
            spin.setRange(0, max(n - 1, 0))
            spin.blockSignals(False)

    def _layer(self) -> tuple[str, str]:
        """The selected ``(trace key, cell type)``."""
        layers = model_layers(self._result)
        key = self.layer_selector.currentData() if self.layer_selector is not None else None
        for item in layers:
            if item[0] == key:
                return item
        return layers[0]

    def _sample(self) -> int:
        return self.sample_selector.value() if self.sample_selector is not None else 0

    def _add_plot(self, row: int, col: int, title: str, xlabel: str, ylabel: str,
                  *, time_axis: bool = True, log_y: bool = False, **kwargs: Any) -> pg.PlotItem:
        """A PlotItem with title and axis labels; a time-axis plot gets a timestep marker."""
        if log_y:
            kwargs["axisItems"] = {"left": LogAxis("left")}
        plot = self.glw.addPlot(row=row, col=col, **kwargs)
        if log_y:
            plot.setLogMode(y=True)
            plot.showGrid(y=True, alpha=0.25)
        plot.setTitle(title, size="10pt")
        plot.setLabel("bottom", xlabel)
        plot.setLabel("left", ylabel)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).enableAutoSIPrefix(False)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        _let_title_shrink(plot)
        if time_axis:
            line = pg.InfiniteLine(angle=90, movable=False,
                                   pen=pg.mkPen(MARKER_COLOR, width=1.5,
                                                style=Qt.PenStyle.DashLine))
            line.setZValue(500)
            line.hide()
            plot.addItem(line, ignoreBounds=True)
            plot._time_marker = line
            self._time_plots.append((plot, line))
        return plot

    def _add_heatmap(self, plot: pg.PlotItem, cmap: pg.ColorMap, label: str,
                     row: int, col: int) -> tuple[pg.ImageItem, pg.ColorBarItem]:
        """An ImageItem (rows = y, columns = x) in ``plot`` and its colour bar in the layout."""
        image = pg.ImageItem(axisOrder="row-major")
        image.setZValue(-10)
        plot.addItem(image)
        bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=cmap, label=label,
                              interactive=False, width=14, colorMapMenu=False)
        bar.setImageItem(image)
        self.glw.addItem(bar, row=row, col=col)
        return image, bar

    @staticmethod
    def _add_legend(plot: pg.PlotItem, columns: int = 1,
                    offset: tuple[int, int] = (5, 5)) -> pg.LegendItem:
        """A compact legend on a translucent background (readable over data)."""
        bg = pg.mkColor(pg.getConfigOption("background"))
        bg.setAlpha(170)
        legend = plot.addLegend(offset=offset, labelTextSize="8pt", colCount=columns,
                                brush=pg.mkBrush(bg), verSpacing=-6, horSpacing=12)
        return legend

    def _set_time_range(self, plot: pg.PlotItem, n_steps: int, padding: float = 0.02) -> None:
        plot.setXRange(-0.5, max(n_steps, 1) - 0.5, padding=padding)

    def _on_scene_click(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self._time_plots:
            return
        pos = event.scenePos()
        for plot, _line in self._time_plots:
            if plot.isVisible() and plot.vb.sceneBoundingRect().contains(pos):
                x = plot.vb.mapSceneToView(pos).x()
                if not math.isfinite(x):
                    return
                t = round(x)
                if self._n_steps:
                    t = min(max(t, 0), self._n_steps - 1)
                self.timestep_clicked.emit(t)
                return

    def _connect_hover(self, plot: pg.PlotItem, describe: Any) -> None:
        """Show ``describe(x, y)`` (a string or None) in the readout while the mouse moves."""

        def moved(pos: QPointF) -> None:
            if plot.vb.sceneBoundingRect().contains(pos) and self._result is not None:
                p = plot.vb.mapSceneToView(pos)
                ok = math.isfinite(p.x()) and math.isfinite(p.y())
                self.readout.setText((describe(p.x(), p.y()) if ok else None) or "")
            else:
                self.readout.setText("")

        self.glw.scene().sigMouseMoved.connect(moved)
        self._bar.show()


def _let_title_shrink(plot: pg.PlotItem) -> None:
    """Stop a long title from forcing its column wider (it would squeeze out colour bars)."""
    let_label_shrink(plot.titleLabel)


def let_label_shrink(label: pg.LabelItem) -> pg.LabelItem:
    """Let a LabelItem be narrower than its text, so long text never widens the layout."""
    update_min = label.updateMin

    def patched() -> None:
        update_min()
        label.setMinimumWidth(0)
        for hint in (Qt.SizeHint.MinimumSize, Qt.SizeHint.PreferredSize):
            label._sizeHint[hint] = (0, label._sizeHint[hint][1])
        label.updateGeometry()

    label.updateMin = patched
    patched()
    return label


def placeholder_curve(plot: pg.PlotItem, **kwargs: Any) -> pg.PlotDataItem:
    """An empty PlotDataItem added to ``plot``, ready for ``setData``."""
    item = pg.PlotDataItem([], [], **kwargs)
    plot.addItem(item)
    return item


def mkpen(color: str, width: float = 2.0, style: str = "solid") -> Any:
    styles = {"solid": Qt.PenStyle.SolidLine, "dash": Qt.PenStyle.DashLine,
              "dot": Qt.PenStyle.DotLine}
    return pg.mkPen(color, width=width, style=styles[style])


__all__ = ["Overlay", "PlotPanel", "batch_norm", "colormaps", "fmt_sci", "gate_names",
           "layer_label", "let_label_shrink", "mkpen", "model_layers", "placeholder_curve", "positive",
           "short_layer_label"]
