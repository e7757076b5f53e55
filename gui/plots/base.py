"""The common base of every plot panel, and small helpers the panels share.

A panel is a QWidget holding a row of selectors (layer, sample, …) above a
``pg.GraphicsLayoutWidget``.  Panels build their plot items once and only feed
them new data on each :meth:`PlotPanel.show_result`, so redraws stay cheap: view
ranges are set explicitly (snapped, so axes are rarely redrawn) and settled before
painting, so a new result costs one paint; a panel behind a dock tab draws when
shown.  Items are never removed from a scene, only hidden (an item left without a
scene is freed at an arbitrary time).  Titles show the fullest of a few variants
that fits (:func:`fit_title`), the full text being the tooltip.

The user can zoom and pan every plot (mouse wheel, drag, right-drag); a new result
keeps that range (the panel's own choice is remembered behind it) until *Auto-range*
in the plot's context menu (right-click), which also exports the plot (PNG, SVG, CSV)
and copies its image.  Hovering a curve or a heatmap cell shows its value, as a
tooltip and, where the panel has a row of selectors, beside them.

Table convention for :meth:`PlotPanel.to_csv_table`: every 1-D column of one
table has the same length (one CSV file); a 2-D entry is a matrix on its own
(rows as in the heatmap: unit index or output time, columns timesteps).
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QCursor, QFontMetricsF, QImage, QPen, QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSpinBox,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from core.fileio import atomic_write_bytes
from core.layout import GATES, layer_keys

from .. import colormaps

if TYPE_CHECKING:
    from core.probe import ProbeResult

MARKER_COLOR = "#FF44FF"  # magenta: distinct from every colour map and line colour
TITLE_SIZE = "10pt"
TITLE_ROW_PX = 22  # pyqtgraph reserves 30 px; a title line needs about 20
HOVER_PX = 12  # a curve's point nearer the mouse than this shows its value
EXPORT_FILTERS = {"png": "PNG image (*.png)", "svg": "SVG image (*.svg)",
                  "csv": "CSV table (*.csv)"}


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


def model_layers(result: ProbeResult) -> list[tuple[str, str]]:
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
        self.setStyle(textFillLimits=[(0, 0.5)], hideOverlappingLabels=True)
        # Room for the widest label from the start ("5·10⁻¹⁰"): a wider label would
        # resize the axis, re-lay out the plot and cost a second paint.
        self.textWidth = QFontMetricsF(self.font()).horizontalAdvance("5·10⁻¹⁰")
        self._updateWidth()

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:
        """pyqtgraph's tick values, the same numbers, in plain Python on a log axis: its
        NumPy version took some 0.2 ms, and the axis and its grid each ask again after
        every new range (the tests compare the two)."""
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        minVal, maxVal = sorted((minVal, maxVal))
        minVal, maxVal = minVal * self.scale, maxVal * self.scale
        ticks: list = []
        seen: list[float] = []
        for spacing, offset in self.tickSpacing(minVal, maxVal, size):
            start = math.ceil((minVal - offset) / spacing) * spacing + offset
            values = [(i * spacing + start) / self.scale
                      for i in range(int((maxVal - start) / spacing) + 1)]
            near = spacing / self.scale * 0.01  # a tick of a higher level already
            values = [v for v in values if not any(abs(s - v) <= near for s in seen)]
            seen += values
            ticks.append((spacing / self.scale, values))
        return self.logTickValues(minVal, maxVal, size, ticks)

    def logTickValues(self, minVal: float, maxVal: float, size: float, stdTicks: list) -> list:
        """Whole decades; within three decades also 1…9 × 10^k, the 1-2-5 ones first.
        Over more, minor ticks (and their grid lines) would only be clutter."""
        ticks = [(spacing, t) for spacing, t in stdTicks if spacing >= 1.0]
        if len(ticks) >= 3 or maxVal - minVal > 3:
            return ticks
        minor = [v + m for v in range(math.floor(minVal), math.ceil(maxVal)) for m in _LOG_DIGITS]
        minor = [x for x in minor if minVal < x < maxVal]
        main = [x for x in minor if round(10 ** (x % 1)) in (1, 2, 5)]
        rest = [x for x in minor if round(10 ** (x % 1)) not in (1, 2, 5)]
        return [*ticks, (None, main), (None, rest)]


_LOG_DIGITS = [float(v) for v in np.log10(np.arange(1, 10))]  # as pyqtgraph computes them


class AxisGrid(pg.GraphicsObject):
    """Grid lines across a plot at the ticks of its left axis, drawn in the view.

    pyqtgraph's own grid (``showGrid``) is drawn by the axis, whose item then covers
    the whole plot: every redraw of a curve replayed the axis's lines and labels, and
    every new range re-rendered a cached picture the size of the plot.  Here the lines
    are one item of the view, laid out again only when the range or the height
    changes, in the axis's colour, as faint as pyqtgraph's (the opacity of each tick
    level fades with its density and rank).
    """

    def __init__(self, plot: pg.PlotItem, alpha: float = 0.25) -> None:
        super().__init__()
        self._plot = plot
        self._alpha = alpha
        self._rect = QRectF()
        self._lines: list[tuple[float, list[QLineF]]] | None = []  # None: lay out again
        self.setZValue(-100)  # behind every curve
        plot.vb.addItem(self, ignoreBounds=True)  # not a data item: no legend, hover or CSV
        plot.vb.sigRangeChanged.connect(self._changed)
        plot.vb.sigResized.connect(self._changed)
        self._changed()

    def _changed(self, *_: Any) -> None:
        (x0, x1), (y0, y1) = self._plot.vb.viewRange()
        self.prepareGeometryChange()
        self._rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        self._lines = None
        self.update()

    def _layout(self) -> list[tuple[float, list[QLineF]]]:
        """(opacity, lines) per tick level, as the axis draws its ticks."""
        axis = self._plot.getAxis("left")
        r = self._rect
        length = axis.geometry().height()
        if length <= 0 or r.height() <= 0:
            return []
        out = []
        for i, (_spacing, values) in enumerate(axis.tickValues(r.top(), r.bottom(), length)):
            fade = min(max(0.05 * length / (len(values) + 1), 0.0), 1.0)
            lines = [QLineF(r.left(), v, r.right(), v) for v in values if r.top() <= v <= r.bottom()]
            out.append((self._alpha * fade / (i + 1), lines))
        return out

    def boundingRect(self) -> QRectF:
        return QRectF(self._rect)

    def paint(self, painter: Any, *_: Any) -> None:
        if self._lines is None:
            self._lines = self._layout()
        fg = self._plot.getAxis("left").pen().color()  # both follow an export theme
        views = self.scene().views() if self.scene() is not None else []
        bg = views[0].backgroundBrush().color() if views else QColor(0, 0, 0, 0)
        for opacity, lines in self._lines:
            if lines:
                painter.setPen(QPen(faint(fg, bg, opacity * fg.alphaF()), 0))  # cosmetic: 1 px
                painter.drawLines(lines)


def faint(fg: QColor, bg: QColor, opacity: float) -> QColor:
    """``fg`` at ``opacity`` over ``bg``: mixed in advance where ``bg`` is opaque.

    Qt's raster engine draws a translucent line some 30 times slower than an opaque
    one (a grid of 20 lines across a plot: milliseconds a paint).
    """
    if bg.alpha() < 255:
        c = QColor(fg)
        c.setAlphaF(opacity)
        return c
    mix = [round(b + (f - b) * opacity) for f, b in zip(fg.getRgb()[:3], bg.getRgb()[:3],
                                                       strict=True)]
    return QColor(*mix)


class Overlay:
    """A centred message drawn inside a plot's view box (stays centred on resize)."""

    def __init__(self, plot: pg.PlotItem, size: str = "11pt") -> None:
        self._plot = plot
        self._vb = plot.vb
        self._item = pg.TextItem(anchor=(0.5, 0.5), color=pg.getConfigOption("foreground"))
        self._item.setParentItem(self._vb)
        self._item.setZValue(1000)
        self._size = size
        self._html = ""
        self._item.hide()
        self._vb.sigResized.connect(self._place)

    def _place(self, *_: Any) -> None:
        rect = self._vb.rect()
        width = max(rect.width() - 16, 80.0)
        if self._item.textItem.textWidth() != width:  # wrap long messages in narrow plots
            self._item.setTextWidth(width)
        self._item.setPos(rect.center())

    def set(self, text: str | None, hide: tuple[Any, ...] = ()) -> None:
        """Show ``text`` (HTML allowed), or hide the overlay for ``None``/empty.

        While a message shows, the plot's axes and the items in ``hide`` (a colour bar,
        a legend) are hidden, since they would describe nothing.  Long text wraps.
        """
        for axis in ("left", "bottom"):
            if self._plot.getAxis(axis).isVisible() != (not text):  # showing redraws the axis
                self._plot.showAxis(axis, not text)
        for item in hide:
            item.setVisible(not text)
        self._plot._message_shown = bool(text)
        grid = getattr(self._plot, "_grid", None)
        if grid is not None:  # grid lines belong with the axis
            grid.setVisible(not text)
        marker = getattr(self._plot, "_time_marker", None)
        if marker is not None:  # a timestep marker over a message would mean nothing
            marker.setVisible(bool(getattr(marker, "_wanted", False)) and not text)
        if not text:
            self._item.hide()
            return
        html = f'<div style="font-size:{self._size}; text-align:center">{text}</div>'
        if html != self._html:  # setHtml lays the text out again
            self._html = html
            self._item.setHtml(html)
        self._place()
        self._item.show()

    @property
    def text(self) -> str:
        return self._item.toPlainText() if self._item.isVisible() else ""


# How long a panel keeps its last drawing while the analyses it shows are computed
# for an early result, before it says that they are (a blink would be noise).
WAIT_NOTE_MS = 300


def completes(result: Any, early: Any) -> bool:
    """Whether ``result`` is the completion of the early result ``early``: the same
    probe's pass (they share their arrays) with the analyses ``early`` lacked."""
    arrays = getattr(early, "arrays", None)
    return (bool(getattr(early, "pending", ())) and not getattr(result, "pending", ())
            and arrays is not None and arrays is getattr(result, "arrays", None))


def set_spin_range(spin: QSpinBox, lo: int, hi: int) -> None:
    """Give a selector the range ``lo``…``hi`` without emitting; nothing when it has it
    already (Qt would lay out and repaint the panel's bar on every probe)."""
    if spin.minimum() == lo and spin.maximum() == hi:
        return
    spin.blockSignals(True)
    spin.setRange(lo, hi)
    spin.blockSignals(False)


class PlotPanel(QWidget):
    """Base of the plot panels: selectors row, a graphics layout, markers and export."""

    name: str = ""
    title: str = ""
    tooltip: str = ""
    # The analyses of a probe this panel draws (ProbeResult fields computed after the
    # pass, which an early result has still pending): it waits for them.
    analyses: tuple[str, ...] = ()

    timestep_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip(self.tooltip)
        self.setMinimumSize(240, 160)
        self.layer_selector: QComboBox | None = None
        self.sample_selector: QSpinBox | None = None
        self._result: ProbeResult | None = None
        self._stale = False  # a result arrived while hidden and is not drawn yet
        self._awaited: ProbeResult | None = None  # an early result lacking our analyses
        self._wait_timer: QTimer | None = None
        self._table: dict[str, np.ndarray] = {}
        self._time_plots: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []
        self._views: list[pg.ViewBox] = []  # settled after each redraw (see _settle)
        self._n_steps = 0
        self._marked: int | None = None
        # plot → describe(x, y) for its hover text; None: the value of the nearest curve
        self._hovers: dict[pg.PlotItem, Callable[[float, float], str | None] | None] = {}
        self._hovered: pg.PlotItem | None = None
        self.hover_text = ""  # what the mouse points at, as plain text ("" for nothing)
        self._menu: QMenu | None = None

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
        # A closure, which the scene holds (a bound method it would hold weakly): the
        # panel's Python side, which its items' painting needs, lives as long as the scene.
        self.glw.scene().sigMouseMoved.connect(lambda pos: self._on_mouse_moved(pos))

    # ------------------------------------------------------------------ public API

    def show_result(self, result: ProbeResult) -> None:
        """Redraw from a ProbeResult (later, when shown, if hidden behind a dock tab).

        An early result that lacks what this panel draws (:attr:`analyses`) leaves the
        panel as it is for :data:`WAIT_NOTE_MS`, then draws what it lacks as being
        computed; the complete result that follows an early one redraws only the
        panels that waited for it."""
        pending = set(getattr(result, "pending", ()))
        if pending & set(self.analyses):
            self._awaited = result
            if self._wait_timer is None:
                self._wait_timer = QTimer(self)
                self._wait_timer.setSingleShot(True)
                self._wait_timer.timeout.connect(self._still_waiting)
            self._wait_timer.start(WAIT_NOTE_MS)
            return
        self._awaited = None
        if self._wait_timer is not None:
            self._wait_timer.stop()
        drawn = self._result
        if (completes(result, drawn) and not self._stale
                and not set(drawn.pending) & set(self.analyses)):
            self._result = result  # nothing drawn here changes
            return
        self._result = result
        self._stale = True
        if not self._hidden_in_window():
            self._catch_up()

    def _still_waiting(self) -> None:
        """An early result's analyses take long: draw it, saying what is computed."""
        result, self._awaited = self._awaited, None
        if result is not None:
            self._result = result
            self._stale = True
            if not self._hidden_in_window():
                self._catch_up()

    def _hidden_in_window(self) -> bool:
        """Behind a tab of a shown window: a redraw now would be seen by nobody."""
        window = self.window()
        return window is not self and window.isVisible() and not self.isVisible()

    def _catch_up(self) -> None:
        """Draw the latest result if it has not been drawn yet."""
        if self._stale and self._result is not None:
            self._stale = False
            self._sync_selectors(self._result)
            self._draw()
            self._settle()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._catch_up()

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
        self._catch_up()
        return [self.glw.scene()]

    def to_csv_table(self) -> dict[str, np.ndarray]:
        """The numbers currently plotted: column name → 1-D array, or a 2-D heatmap array."""
        self._catch_up()
        return {k: np.array(v, copy=True) for k, v in self._table.items()}

    # ------------------------------------------------------------------ context menu

    def context_menu(self) -> QMenu:
        """The menu a right-click on the plots opens: export this plot (PNG, SVG, CSV),
        copy its image, auto-range (enabled after the user zoomed or panned)."""
        if self._menu is None:
            menu = QMenu(self)
            export = QMenu("Export this plot", menu)  # kept: PySide may free a menu it made
            menu.addMenu(export)
            self._export_menu = export
            self._export_actions = {}
            for fmt, text in (("png", "PNG image…"), ("svg", "SVG image…"),
                              ("csv", "CSV data…")):
                action = export.addAction(text)
                action.triggered.connect(lambda _checked=False, f=fmt: self._export_dialog(f))
                self._export_actions[fmt] = action
            copy = menu.addAction("Copy image")
            copy.triggered.connect(lambda _checked=False: self.copy_image())
            menu.addSeparator()
            self._auto_action = menu.addAction("Auto-range")
            self._auto_action.setToolTip("Back to the range the plot chooses for its data")
            self._auto_action.triggered.connect(lambda _checked=False: self.auto_range())
            self._menu = menu
        self._catch_up()
        self._export_actions["csv"].setEnabled(bool(self._table))  # a GRU has no cell state
        self._auto_action.setEnabled(self.zoomed)
        return self._menu

    def export_plot(self, path: str | Path, fmt: str | None = None) -> list[Path]:
        """Write this plot as it is on screen to ``path`` in ``fmt`` (png, svg or csv;
        default: the path's suffix) and return the written files.

        CSV is the files of :func:`gui.export.csv_files`: ``path`` itself when the
        plot's numbers make one table, else those files named after ``path`` beside it
        (``hidden.csv`` → ``hidden.h.l0.csv`` …).  Raises :class:`gui.export.ExportError`.
        """
        from ..export import ExportError, csv_files

        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".")).lower()
        label = f'"{self.title or self.name}" plot'
        if fmt not in EXPORT_FILTERS:
            raise ExportError(f"{path}: export as png, svg or csv")
        self._catch_up()
        if fmt == "csv":
            files = csv_files(path.stem, self.to_csv_table())
            if not files:
                raise ExportError(f"{label}: it shows no numbers to write as CSV")
            if len(files) == 1:
                files = {path.name: next(iter(files.values()))}
        else:
            try:
                files = {path.name: _scene_bytes(self.glw.scene(), fmt)}
            except Exception as exc:
                raise ExportError(f"{label}: {fmt.upper()} export failed "
                                  f"({type(exc).__name__}: {exc})") from None
        written: list[Path] = []
        for name, data in files.items():
            target = path.with_name(name)
            try:
                atomic_write_bytes(target, data)
            except OSError as exc:
                raise ExportError(f"{target}: cannot write ({exc.strerror or exc})",
                                  written) from None
            written.append(target)
        return written

    def copy_image(self) -> QImage:
        """Put this plot's image on the clipboard (and return it)."""
        image = self.glw.grab().toImage()
        QApplication.clipboard().setImage(image)
        self._status(f"Copied the {self.title or self.name} plot as an image")
        return image

    @property
    def zoomed(self) -> bool:
        """Whether the user has zoomed or panned a view, whose range new results keep."""
        return any(getattr(vb, "_user_range", None) is not None for vb in self._views)

    def auto_range(self) -> None:
        """Forget the user's zoom and pan: every view shows the range the panel chooses."""
        for vb in self._views:
            if getattr(vb, "_user_range", None) is None:
                continue
            vb._user_range = None
            panel_range = getattr(vb, "_panel_range", None)
            if panel_range is not None:
                vb.setRange(xRange=panel_range[0], yRange=panel_range[1], padding=0)
            else:  # nothing drawn yet
                vb.enableAutoRange()
        self._settle()

    _export_folder = ""  # where the last "Export this plot" went (for the next one)

    def _export_dialog(self, fmt: str) -> list[Path]:
        """Ask where to export this plot as ``fmt``, export it, and say what was written."""
        from ..export import ExportError

        folder = PlotPanel._export_folder or str(Path.home())
        start = str(Path(folder) / f"{self.name or 'plot'}.{fmt}")
        path, _filter = QFileDialog.getSaveFileName(
            self, f"Export the {self.title or self.name} plot as {fmt.upper()}", start,
            EXPORT_FILTERS[fmt])
        if not path:
            return []
        target = Path(path)
        if target.suffix.lower() != f".{fmt}":
            target = target.with_name(f"{target.name}.{fmt}")
        PlotPanel._export_folder = str(target.parent)
        try:
            written = self.export_plot(target, fmt)
        except ExportError as exc:
            QMessageBox.warning(self, "Export failed", str(exc))
            return []
        self._status("Exported " + ", ".join(p.name for p in written))
        return written

    def _status(self, text: str) -> None:
        """Show ``text`` in the window's status bar, if the panel is in a main window."""
        window = self.window()
        if isinstance(window, QMainWindow):
            window.statusBar().showMessage(text, 4000)

    # ------------------------------------------------------------------ for subclasses

    def _draw(self) -> None:
        """Redraw the items from ``self._result`` and the selectors (subclasses)."""

    def _sync_selectors(self, result: ProbeResult) -> None:
        """Update selector contents to match ``result`` (subclasses may add more)."""
        self._sync_layer_selector(result)
        self._sync_sample_selector(result)

    def _redraw(self, *_: Any) -> None:
        if self._result is not None:
            self._draw()
            self._settle()

    def _settle(self) -> None:
        """Apply new view ranges now rather than while painting (after every redraw).

        pyqtgraph moves a view's contents to a new range in its first paint, and
        that move asks for a second paint; done here, one paint shows the result.
        A view the user zoomed or panned goes back to the user's range; the range
        the panel set instead is remembered for :meth:`auto_range`.
        """
        for vb in self._views:
            user, now = getattr(vb, "_user_range", None), vb.viewRange()
            if user is None:
                vb._panel_range = now
            elif now != user:  # the redraw chose a range on an axis: keep the user's
                vb._panel_range = [new if new != old else mine for new, old, mine
                                   in zip(now, user, vb._panel_range or now, strict=True)]
                vb.setRange(xRange=user[0], yRange=user[1], padding=0)
                vb._user_range = vb.viewRange()
            vb.prepareForPaint()

    def _watch_view(self, vb: pg.ViewBox) -> None:
        """Remember the range of ``vb`` when the user zooms or pans it."""
        vb._user_range = None  # the user's range, kept over redraws
        vb._panel_range = None  # the range the panel chose last

        def moved(*_: Any) -> None:
            vb._user_range = vb.viewRange()

        def resized(*_: Any) -> None:  # an aspect-locked view adapts its range
            if vb._user_range is not None:
                vb._user_range = vb.viewRange()

        vb.sigRangeChangedManually.connect(moved)
        vb.sigResized.connect(resized)

    def _add_control(self, label: str, widget: QWidget) -> QWidget:
        """Put a selector in the row above the plots, after a caption if ``label`` is given.

        The selectors here say what they choose ("layer 0 →", "sample 3"), so they need
        no caption, which leaves room for them in a narrow panel.
        """
        index = self._bar_layout.count() - 2  # before the stretch and the readout
        if isinstance(widget, QComboBox):  # in a narrow panel a selector gives way, not overlaps
            widget.setMinimumWidth(56)
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
        return self._add_control("", combo)

    def _make_sample_selector(self) -> QSpinBox:
        spin = QSpinBox(self._bar)
        spin.setToolTip("Which sequence of the batch to show")
        spin.setRange(0, 0)
        spin.setPrefix("sample ")
        spin.valueChanged.connect(self._redraw)
        self.sample_selector = spin
        return self._add_control("", spin)

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

    def _sync_layer_selector(self, result: ProbeResult) -> None:
        if self.layer_selector is not None:
            layers = model_layers(result)
            both = any(key.endswith("_reverse") for key, _cell in layers)
            items = [(combo_layer_label(key, both), key) for key, _cell in layers]
            self._fill_combo(self.layer_selector, items)

    def _sync_sample_selector(self, result: ProbeResult) -> None:
        if self.sample_selector is not None:
            n = int(np.shape(result.x)[1]) if np.ndim(result.x) >= 2 else 1
            set_spin_range(self.sample_selector, 0, max(n - 1, 0))

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
        self._views.append(plot.vb)
        self._watch_view(plot.vb)
        self._hovers[plot] = None  # the value of the curve under the mouse
        if log_y:
            plot.setLogMode(y=True)
            plot._grid = AxisGrid(plot)
        plot.setLabel("bottom", xlabel)
        plot.setLabel("left", ylabel)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        for axis in ("left", "bottom", "right", "top"):
            # hidden ones too: an SI prefix sets the axis label's HTML at every new range
            plot.getAxis(axis).enableAutoSIPrefix(False)
        # a y axis that only grows with its labels is not re-laid out (and repainted) as
        # they change from one result to the next
        plot.getAxis("left").setStyle(autoReduceTextSpace=False)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        _let_title_shrink(plot)
        fit_title(plot, title)
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
        bar = color_bar(cmap, label)
        bar.setImageItem(image)
        self.glw.addItem(bar, row=row, col=col)
        align_bar(bar, plot)
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
        if event.button() == Qt.MouseButton.RightButton:  # a right-drag zooms instead
            event.accept()
            self.context_menu().popup(event.screenPos().toPoint())
            return
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
        """Show ``describe(x, y)`` (a string or None) in the readout while the mouse moves
        over ``plot``, instead of the value of the nearest curve."""
        self._hovers[plot] = describe
        self._bar.show()

    def _on_mouse_moved(self, pos: QPointF) -> None:
        plot = next((p for p in self._hovers
                     if p.isVisible() and p.vb.sceneBoundingRect().contains(pos)), None)
        if plot is None and self._hovered is None:
            return  # elsewhere, and nothing shown (a panel may use the readout itself)
        text, mark = self._hover_at(plot, pos) if plot is not None else ("", "")
        self.hover_text = text
        rich = f"{mark} {html.escape(text)}" if mark and text else html.escape(text)
        if self.readout.text() != rich:
            self.readout.setText(rich)
        if self._hovered is not None and self._hovered is not plot:
            self._hovered.vb.setToolTip("")
        self._hovered = plot
        if plot is not None:
            tip = f"<nobr>{rich}</nobr>" if rich else ""  # one line
            plot.vb.setToolTip(tip)  # shown when the mouse rests
            if QToolTip.isVisible():  # already showing: follow the mouse
                QToolTip.showText(QCursor.pos(), tip, self.glw)

    def _hover_at(self, plot: pg.PlotItem, pos: QPointF) -> tuple[str, str]:
        """The text for the mouse at scene ``pos`` over ``plot``, and a coloured line mark
        (HTML) naming the curve; ``("", "")`` for nothing."""
        p = plot.vb.mapSceneToView(pos)
        if not (math.isfinite(p.x()) and math.isfinite(p.y())):
            return "", ""
        describe = self._hovers.get(plot)
        if describe is not None:
            return ((describe(p.x(), p.y()) if self._result is not None else None) or ""), ""
        return self._nearest_point(plot, p) or ("", "")

    def _nearest_point(self, plot: pg.PlotItem, p: QPointF) -> tuple[str, str] | None:
        """The value of the curve point nearest ``p`` (view units) within
        :data:`HOVER_PX` pixels: ``("t = 12: gradient norm = 0.0034", mark)``."""
        sx, sy = plot.vb.viewPixelSize()
        if not (sx > 0 and sy > 0):
            return None
        best: tuple[float, Any, float, float] | None = None
        for item in plot.listDataItems():
            if not item.isVisible():
                continue
            if isinstance(item, pg.PlotDataItem):
                x, y, log = item.xData, item.yData, item.opts.get("logMode", (False, False))
            else:
                (x, y), log = item.getData(), (False, False)
            if x is None or y is None or not len(x):
                continue
            x = np.asarray(x, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64)
            with np.errstate(all="ignore"):
                vx = np.log10(x) if log[0] else x
                vy = np.log10(y) if log[1] else y
                d = np.hypot((vx - p.x()) / sx, (vy - p.y()) / sy)
            d[~np.isfinite(d)] = np.inf
            i = int(np.argmin(d))
            if d[i] <= HOVER_PX and (best is None or d[i] <= best[0]):  # the later on top
                best = (float(d[i]), item, float(x[i]), float(y[i]))
        if best is None:
            return None
        _d, item, x, y = best
        name = (item.name() if isinstance(item, pg.PlotDataItem) else None) \
            or self._axis_name(plot, "left") or "value"
        value = f"{y:.4g}"
        if any(plot is time_plot for time_plot, _line in self._time_plots):
            text = f"t = {round(x)}: {name} = {value}" if x == round(x) \
                else f"t = {x:.4g}: {name} = {value}"
        else:
            xname = self._axis_name(plot, "bottom") or "x"
            x_text = str(round(x)) if x == round(x) else f"{x:.4g}"
            text = f"{xname} = {x_text}, {name} = {value}"
        return text, _line_mark(item)

    def _axis_name(self, plot: pg.PlotItem, axis: str) -> str:
        """An axis' label; a bottom axis without one borrows that of a plot x-linked to it."""
        label = plot.getAxis(axis).labelText
        if label or axis != "bottom":
            return label
        for other in self._hovers:
            if other is not plot and (other.vb.linkedView(0) is plot.vb
                                      or plot.vb.linkedView(0) is other.vb):
                return other.getAxis("bottom").labelText
        return ""


def _line_mark(item: Any) -> str:
    """A line mark (━ ╌ ┈ or ●) in the colour and style of ``item``, as HTML."""
    opts = getattr(item, "opts", {})
    pen = opts.get("pen")
    if pen is not None:
        pen = pg.mkPen(pen)
    if pen is not None and pen.style() != Qt.PenStyle.NoPen:
        style = {Qt.PenStyle.DashLine: "dash", Qt.PenStyle.DotLine: "dot"}.get(pen.style(),
                                                                              "solid")
        colour = pen.color().name()
    else:
        brush = opts.get("symbolBrush", opts.get("brush"))
        style, colour = "marker", pg.mkBrush(brush).color().name() if brush is not None \
            else pg.mkColor(pg.getConfigOption("foreground")).name()
    return f'<span style="color:{colour}">{LINE_MARKS[style]}</span>'


def _scene_bytes(scene: Any, fmt: str) -> bytes:
    """A scene as a PNG image at its size on screen, or as SVG."""
    from pyqtgraph.exporters import ImageExporter, SVGExporter
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    if fmt == "svg":
        data = SVGExporter(scene).export(toBytes=True)
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    image = ImageExporter(scene).export(toBytes=True)
    buffer = QByteArray()
    device = QBuffer(buffer)
    device.open(QIODevice.OpenModeFlag.WriteOnly)
    if image.isNull() or not image.save(device, "PNG"):
        raise ValueError("the plot has no size")
    device.close()
    return bytes(buffer.data())


def color_bar(cmap: pg.ColorMap, label: str, width: int = 12) -> pg.ColorBarItem:
    """A slim, fixed colour bar with its label beside the values (not on the far side)."""
    bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=cmap, interactive=False, width=width,
                          colorMapMenu=False)
    axis = bar.getAxis("right")
    axis.setLabel(label)
    axis.setWidth(None)  # fit the values and the label, no fixed 45 px
    axis.setStyle(tickTextOffset=3)
    return bar


def set_levels(bar: pg.ColorBarItem, levels: tuple[float, float]) -> None:
    """Set a colour bar's levels unless they are already set (that redraws its axis)."""
    levels = (float(levels[0]), float(levels[1]))
    if tuple(bar.levels()) != levels:
        bar.setLevels(levels)


def set_color_map(bar: pg.ColorBarItem, cmap: pg.ColorMap) -> None:
    """Set a colour bar's map unless it is already that map."""
    if bar.colorMap() is not cmap:
        bar.setColorMap(cmap)


def align_bar(bar: pg.ColorBarItem, plot: pg.PlotItem) -> None:
    """Keep ``bar``'s gradient level with ``plot``'s view box (not its title and axis)."""

    def align(*_: Any) -> None:
        top = plot.vb.geometry().top()
        bottom = plot.height() - plot.vb.geometry().bottom()
        margins = (0.0, top, 0.0, bottom)
        if tuple(bar.layout.getContentsMargins()) != margins and plot.height() > 0:
            bar.layout.setContentsMargins(*margins)

    plot.vb.sigResized.connect(align)


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


@functools.lru_cache(maxsize=2048)
def text_width(html: str, size: str) -> float:
    """Width in pixels of ``html`` drawn at font ``size`` in the application font."""
    doc = QTextDocument()
    doc.setDocumentMargin(0)
    doc.setHtml(f"<span style='font-size:{size}'>{html}</span>")
    return doc.idealWidth()


def fit_label(label: pg.LabelItem, variants: Sequence[str], size: str = TITLE_SIZE,
              room: Callable[[], float] | None = None) -> None:
    """Show the fullest of ``variants`` (HTML, fullest first) that fits the label's room.

    ``room()`` gives the width available (default: the label's width); the choice is
    made again whenever the label is resized.  The fullest variant is the tooltip, so
    nothing is lost when a shorter one shows.  Unchanged text is not set again.
    """
    label._fit = (tuple(variants), size, room or label.width)
    if not getattr(label, "_fit_hooked", False):
        label._fit_hooked = True
        label.geometryChanged.connect(lambda: _refit(label))
    _refit(label)


def _refit(label: pg.LabelItem) -> None:
    if not shiboken6.isValid(label):  # a resize while the scene is torn down
        return
    variants, size, room = label._fit
    width = room()
    choice = variants[0]
    if width > 1:  # not laid out yet: show everything (a resize chooses again)
        choice = next((v for v in variants if text_width(v, size) <= width), variants[-1])
    if getattr(label, "_fit_shown", None) != (choice, size):
        label._fit_shown = (choice, size)
        label.setText(choice, size=size)
    tip = variants[0] if choice != variants[0] else ""
    if label.toolTip() != tip:
        label.setToolTip(tip)


def fit_title(plot: pg.PlotItem, *variants: str, size: str = TITLE_SIZE) -> None:
    """Give ``plot`` the fullest title of ``variants`` that fits above it (see :func:`fit_label`)."""
    label = plot.titleLabel

    def room() -> float:
        # the title is centred over the view box; it may spill over the axis, not the plot
        centre = label.geometry().center().x()
        return 2 * min(centre, plot.width() - centre) - 8

    if not label.isVisible():
        plot.setTitle("", size=size)
        compact_title_row(plot)
    fit_label(label, variants, size, room)


def compact_title_row(plot: pg.PlotItem, height: int = TITLE_ROW_PX) -> None:
    """A title row of ``height`` pixels (pyqtgraph gives every title 30)."""
    plot.titleLabel.setMaximumHeight(height)
    plot.layout.setRowFixedHeight(0, height)


def nice_step(span: float) -> float:
    """A 1-2-5 step of about a tenth of ``span``."""
    raw = span / 10 if span > 0 and math.isfinite(span) else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def linear_range(*arrays: Any, pad: float = 0.04) -> tuple[float, float] | None:
    """A view range covering the finite values, padded and snapped outward to a 1-2-5 step.

    Snapping keeps the range (and the axis, which pyqtgraph redraws on every range
    change) the same while the data moves a little.
    """
    values = [np.asarray(a, dtype=np.float64).ravel() for a in arrays if np.size(a)]
    values = [v[np.isfinite(v)] for v in values]
    values = [v for v in values if v.size]
    if not values:
        return None
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    lo, hi = lo - pad * span, hi + pad * span
    step = nice_step(hi - lo)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def log_range(*arrays: Any, pad: float = 0.03) -> tuple[float, float] | None:
    """A log-axis view range (log10 units) covering the finite positive values.

    The ends snap outward to whole decades over a wide range, finer over a narrow
    one, so the range stays put while the data moves a little.
    """
    values = [np.asarray(a, dtype=np.float64).ravel() for a in arrays if np.size(a)]
    values = [v[np.isfinite(v) & (v > 0)] for v in values]
    values = [v for v in values if v.size]
    if not values:
        return None
    lo = math.log10(min(float(v.min()) for v in values))
    hi = math.log10(max(float(v.max()) for v in values))
    span = max(hi - lo, 0.1)
    lo, hi = lo - pad * span, hi + pad * span
    if span < 1:
        a, b = math.floor(lo / 0.05) * 0.05, math.ceil(hi / 0.05) * 0.05
        ticks = [k + math.log10(m) for k in range(math.floor(a), math.floor(b) + 1)
                 for m in range(1, 10)]
        inside = sum(a + 0.005 < t < b - 0.005 for t in ticks)  # a tick on an end: no label
        if inside >= 2:
            return a, b
        # Reach the next tick (1…9 × 10^k) beyond an end, so the axis has two labels:
        # beyond both ends if none is inside, else beyond the nearer one.
        below, above = _log_tick(lo, up=False) - 0.01, _log_tick(hi, up=True) + 0.01
        if inside == 0:
            return min(a, below), max(b, above)
        return (min(a, below), b) if a - below <= above - b else (a, max(b, above))
    step = 1.0 if span >= 2 else 0.25
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    return lo, max(hi, lo + step)


def _log_tick(v: float, up: bool) -> float:
    """log10 of the tick m × 10^k (m = 1…10) next below (or above) ``10**v``."""
    k = math.floor(v)
    m = 10 ** (v - k)
    m = math.ceil(m - 1e-9) if up else math.floor(m + 1e-9)
    return k + math.log10(min(max(m, 1), 10))


def set_y_range(plot: pg.PlotItem, span: tuple[float, float] | None, keep: float = 0.6) -> None:
    """Set the y range (view units: log10 on a log axis); ``None`` leaves it as it is.

    An explicit range, unlike auto-range, is final before painting, so the plot
    paints once instead of painting, re-ranging and painting again.  The range in
    place is kept while ``span`` lies inside it and fills at least ``keep`` of it:
    every new range makes pyqtgraph lay out and draw the axis afresh.
    """
    if span is None:
        return
    vb = plot.vb
    zoomed = getattr(vb, "_user_range", None) is not None and vb._panel_range is not None
    lo, hi = (vb._panel_range if zoomed else vb.viewRange())[1]  # the user's zoom aside
    inside = lo <= span[0] and span[1] <= hi
    if inside and span[1] - span[0] >= keep * (hi - lo) and getattr(plot, "_ranged", False):
        return
    plot._ranged = True
    plot.setYRange(*span, padding=0)


def grow_range(current: float, needed: float) -> float:
    """An axis end at or above ``needed`` from 1, 1.5, 2, 3, 4, 5, 6, 8 × 10^k, kept while
    ``needed`` stays below ``current`` and above half of it (so it changes rarely)."""
    if needed <= 0 or not math.isfinite(needed):
        return current if current > 0 else 1.0
    if needed <= current <= 2 * needed:
        return current
    magnitude = 10 ** math.floor(math.log10(needed))
    return next(m * magnitude for m in (1, 1.5, 2, 3, 4, 5, 6, 8, 10) if m * magnitude >= needed)


def set_curve(item: pg.PlotDataItem, x: Any, y: Any) -> bool:
    """``item.setData(x, y)`` unless it shows exactly these values already (the input
    and target of a probe after a knob edit): setting them again would make the plot
    lay out and repaint for nothing.  Returns whether it set them."""
    old_x, old_y = item.xData, item.yData
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if (old_x is not None and old_y is not None and old_x.shape == x.shape
            and old_y.shape == y.shape and np.array_equal(old_x, x, equal_nan=True)
            and np.array_equal(old_y, y, equal_nan=True)):
        return False
    item.setData(x, y)
    return True


def clear_curve(item: pg.PlotDataItem) -> None:
    """Empty ``item`` unless it is empty already (:func:`set_curve`): a band, a glow or
    a floor marker shows in few results."""
    set_curve(item, (), ())


def placeholder_curve(plot: pg.PlotItem, **kwargs: Any) -> pg.PlotDataItem:
    """An empty PlotDataItem added to ``plot``, ready for ``setData``."""
    item = pg.PlotDataItem([], [], **kwargs)
    plot.addItem(item)
    return item


def mkpen(color: str, width: float = 2.0, style: str = "solid") -> Any:
    styles = {"solid": Qt.PenStyle.SolidLine, "dash": Qt.PenStyle.DashLine,
              "dot": Qt.PenStyle.DotLine}
    return pg.mkPen(color, width=width, style=styles[style])


LINE_MARKS = {"solid": "━", "dash": "╌", "dot": "┈", "marker": "●"}


def legend_html(entries: Sequence[tuple[str, str] | tuple[str, str, str]]) -> str:
    """A one-line legend for a title (it never covers data, unlike a legend box).

    ``entries``: ``(colour, text)`` or ``(colour, text, style)``, style one of
    :data:`LINE_MARKS` (default solid): a coloured line mark before each text.
    """
    parts = []
    for colour, text, *style in entries:
        mark = LINE_MARKS[style[0] if style else "solid"]
        parts.append(f'<span style="color:{colour}">{mark} {text}</span>')
    return "&nbsp; ".join(parts)


__all__ = ["LINE_MARKS", "AxisGrid", "LogAxis", "Overlay", "PlotPanel", "align_bar", "batch_norm",
           "clear_curve", "color_bar", "colormaps", "compact_title_row", "faint", "fit_label",
           "fit_title", "fmt_sci", "gate_names", "grow_range", "layer_label", "legend_html",
           "let_label_shrink", "linear_range", "log_range", "mkpen", "model_layers", "nice_step",
           "placeholder_curve", "positive", "set_color_map", "set_curve", "set_levels",
           "set_y_range", "short_layer_label", "text_width"]
