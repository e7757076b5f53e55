"""(j) The computational graph, folded (left) and unrolled over time (right).

Every layer and direction has a row: the input x at the bottom, then layer 0 (its
forward cell, then its reverse cell), layer 1, …, and the output o above the top
layer.  A reverse cell's nodes sit a little to the right of the forward cell's and
its recurrent edges point right to left, the order in which it reads the sequence.

The gradient is drawn on the graph: each recurrent edge is thicker and warmer where
more gradient flows back through it and carries the value ‖∂L/∂h_t‖ (mean over the
batch) of the state it points into; the rim of every hidden node has the colour of
its own ‖∂L/∂h_t‖.  One log scale (the colour bar) serves the whole graph, so layers
and directions compare.  A selector shows one layer or one direction alone when the
whole stack is too dense to read.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QComboBox

from core.layout import INPUT_ONLY

from .. import colormaps
from .base import (
    MARKER_COLOR,
    PlotPanel,
    batch_norm,
    color_bar,
    fit_label,
    fmt_sci,
    let_label_shrink,
    set_levels,
    short_layer_label,
)

if TYPE_CHECKING:
    from core.experiment import ModelConfig

MAX_COLUMNS = 12
MIN_COLUMNS = 3
PX_PER_COLUMN = 50  # keep columns at least this far apart so edge labels fit
NODE_PX = 26  # node diameter when there is room; smaller in a dense stack
MIN_NODE_PX = 11
LABEL_ROW_PX = 46  # rows closer than this leave the numbers on the edges out
TIME_LABEL_PX = 18  # room below the x row for the "t=…" labels
ABOVE_L = 0.35  # rows of room above the folded graph's L node
FOLD_X = 0.35  # folded graph column
LOOP_X = 1.05  # right end of the folded graph's loops
LOOP_W = 0.6  # how far a folded self-loop reaches right of its node
FIRST_COL = 2.6  # the first unrolled column
STAGGER = 0.2  # a bidirectional layer: forward nodes this far left, reverse right
NODE_COLORS = {"x": "#7FD4B3", "h": "#8CC8F0", "o": "#F2C166", "L": "#F08A6C"}
NEUTRAL = (150, 150, 150)
HEAT_LOW, HEAT_SPAN = 0.35, 0.53  # the part of the hot map used: visible on the dark ground
HEAT_STEPS = 32  # levels of the gradient scale that edges and rims distinguish
GRAD = "‖∂L/∂h<sub>t</sub>‖"
ALL = "all"


@dataclass(frozen=True)
class Link:
    """An edge of the drawing, for reading it back: from one row to another, between
    unrolled columns (-1 in the folded graph); dashed where layers are left out between."""

    src: str  # "x", "o" or a trace key
    dst: str
    src_col: int
    dst_col: int
    dashed: bool = False


@dataclass(frozen=True)
class Row:
    """One row of nodes: the input, a hidden cell (layer and direction), or the output."""

    kind: str  # "x", "h" or "o"
    y: float
    key: str = ""  # trace key of a hidden row: "l1_reverse"
    layer: int = -1
    reverse: bool = False
    dx: float = 0.0  # horizontal offset of its nodes within a column

    @property
    def name(self) -> str:
        return self.key or self.kind


class Edge:
    """A straight (or bent) edge with an arrowhead that stops at the target node's rim."""

    def __init__(self, vb: pg.ViewBox, z: float = 0) -> None:
        self.line = pg.PlotCurveItem()
        self.arrow = pg.ArrowItem(pen=None, headLen=9, tipAngle=36, brush=NEUTRAL)
        self.line.setZValue(z)
        self.arrow.setZValue(z + 1)
        vb.addItem(self.line)
        vb.addItem(self.arrow)
        self.points: list[tuple[float, float]] = []
        self.width = 1.5
        self.dashed = False
        self.visible = True
        self.end_gap: float | None = None  # pixels short of the end; None: a node's rim
        self._style: tuple | None = None
        self._placed: list[tuple[float, float]] | None = None  # the points last placed

    def set(self, points: list[tuple[float, float]], color: Any = NEUTRAL, width: float = 1.5,
            dashed: bool = False) -> bool:
        """Style the edge and show it; True if it needs placing (new style, new points, or
        shown again)."""
        moved = not self.visible or points != self._placed
        self.points = points
        self.width = width
        self.dashed = dashed
        style_key = (str(pg.mkColor(color).name()), round(width, 2), dashed)
        if style_key != self._style:  # restyling is the slow part; skip it when unchanged
            self._style = style_key
            style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
            pen = pg.mkPen(color, width=width, style=style)
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)
            self.line.setPen(pen)
            self.arrow.setStyle(brush=pg.mkBrush(color), headLen=8 + 1.6 * width,
                                tipAngle=36 if width < 4 else 44)
            self.show(True)
            return True
        self.show(True)
        return moved

    def show(self, visible: bool) -> None:
        self.visible = visible
        self.line.setVisible(visible)
        self.arrow.setVisible(visible)

    def place(self, px: float, py: float, end_gap_px: float) -> None:
        """Stop the arrow ``end_gap_px`` short of the last point (``px``, ``py``: data/pixel)."""
        if not self.visible or len(self.points) < 2:
            return
        self._placed = self.points
        (ax, ay), (bx, by) = self.points[-2], self.points[-1]
        dx, dy = (bx - ax) / px, -(by - ay) / py  # screen pixels, y down
        length = math.hypot(dx, dy) or 1.0
        ux, uy = dx / length, dy / length
        tip = (bx - ux * end_gap_px * px, by + uy * end_gap_px * py)
        head = 8 + 1.6 * self.width
        stop = (tip[0] - ux * head * 0.7 * px, tip[1] + uy * head * 0.7 * py)
        xs = [p[0] for p in self.points[:-1]] + [stop[0]]
        ys = [p[1] for p in self.points[:-1]] + [stop[1]]
        self.line.setData(xs, ys)
        self.arrow.setPos(*tip)
        angle = round(math.degrees(math.atan2(dy, dx)) + 180, 1)
        if angle != self.arrow.opts["angle"]:
            self.arrow.setStyle(angle=angle)


class Pool:
    """Items made on demand and reused; the ones a layout does not take are hidden
    (items are never removed from the scene)."""

    def __init__(self, make: Any, hide: Any) -> None:
        self._make = make
        self._hide = hide
        self.items: list[Any] = []
        self.used = 0

    def start(self) -> None:
        self.used = 0

    def take(self) -> Any:
        if self.used == len(self.items):
            self.items.append(self._make())
        item = self.items[self.used]
        self.used += 1
        return item

    def finish(self) -> None:
        for item in self.items[self.used:]:
            self._hide(item)

    def taken(self) -> list[Any]:
        return self.items[:self.used]


def _text(vb: pg.ViewBox, html: str = "", anchor: tuple[float, float] = (0.5, 0.5),
          color: Any = None, z: float = 20) -> pg.TextItem:
    item = pg.TextItem(anchor=anchor, color=color or pg.getConfigOption("foreground"))
    if html:
        item.setHtml(html)
    item.setZValue(z)
    vb.addItem(item)
    return item


def _set_html(item: pg.TextItem, html: str) -> None:
    """Set a TextItem's HTML only when it changed (setHtml re-lays out the text)."""
    if getattr(item, "_html", None) != html:
        item._html = html
        item.setHtml(html)


def _node_label(letter: str, size: str = "10pt") -> str:
    return f'<span style="color:#111; font-size:{size}; font-weight:bold">{letter}</span>'


@functools.cache
def heat_color(s: float) -> QColor:
    """The colour of level ``s`` (0…1) of the gradient scale."""
    return colormaps.hot().map(HEAT_LOW + HEAT_SPAN * s, mode="qcolor")


@functools.cache
def rim_pen(s: float | None, width: float) -> QPen:
    """The pen of a hidden node's rim at level ``s`` (None: no gradient value)."""
    return pg.mkPen(NEUTRAL if s is None else heat_color(s), width=width)


def heat_colormap() -> pg.ColorMap:
    """The part of the hot map the edges use, as a map of its own (for the colour bar)."""
    pos = np.linspace(0.0, 1.0, 17)
    return pg.ColorMap(pos, colormaps.hot().map(HEAT_LOW + HEAT_SPAN * pos, mode="byte"))


def view_choices(model: ModelConfig) -> list[tuple[str, str]]:
    """The selector's ``(label, choice)``: the whole stack, each layer, each direction."""
    items = [("all layers", ALL)] if len(model.layers) > 1 else []
    for k, layer in enumerate(model.layers):
        if layer.bidirectional:
            items += [(f"layer {k} ⇄", f"layer:{k}"), (f"layer {k} →", f"l{k}"),
                      (f"layer {k} ←", f"l{k}_reverse")]
        elif len(model.layers) > 1:
            items.append((f"layer {k}", f"l{k}"))
    return items


def shown_layers(model: ModelConfig, choice: str) -> list[tuple[int, list[str]]]:
    """``(layer, trace keys)`` of the layers ``choice`` shows, bottom first."""
    out = []
    for k, layer in enumerate(model.layers):
        keys = [f"l{k}"] + ([f"l{k}_reverse"] if layer.bidirectional else [])
        if choice in (ALL, f"layer:{k}"):
            out.append((k, keys))
        elif choice in keys:
            out.append((k, [choice]))
    return out or [(0, ["l0"] + (["l0_reverse"] if model.layers[0].bidirectional else []))]


class GraphPanel(PlotPanel):
    name = "graph"
    title = "Computational graph"
    tooltip = ("The network as a graph: folded with its one-step delay loops (left), and "
               "unrolled over a window of timesteps (right), one row per layer and direction "
               "(→ forward, ← reverse), the output on the top layer. Recurrent edges are "
               "thicker and warmer where more gradient flows back through them; the number on "
               "each, and the colour of each hidden node's rim, is ‖∂L/∂h_t‖ of that state. "
               "Click a column to pick that timestep.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.view_selector = QComboBox(self._bar)
        self.view_selector.setToolTip("Show every layer, one layer, or one direction")
        self.view_selector.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.view_selector.currentIndexChanged.connect(self._redraw)
        self._add_control("", self.view_selector)
        self.heading = let_label_shrink(
            self.glw.addLabel("Computational graph", row=0, col=0, colspan=2, size="10pt"))
        self.vb = self.glw.addViewBox(row=1, col=0, enableMouse=False, enableMenu=False)
        self._views.append(self.vb)
        self.vb.setDefaultPadding(0.0)
        self.bar = color_bar(heat_colormap(), f"log<sub>10</sub> {GRAD}", width=10)
        self.glw.addItem(self.bar, row=1, col=1)
        self.note = let_label_shrink(self.glw.addLabel(
            f"edges h→h: {GRAD} flowing back (warm, thick = more)",
            row=2, col=0, colspan=2, size="8.5pt"))
        self.glw.ci.layout.setRowStretchFactor(1, 10)
        vb = self.vb
        pen = pg.mkPen((30, 30, 30), width=1)
        self.fold_nodes = pg.ScatterPlotItem(size=NODE_PX, pxMode=True)
        self.nodes = {k: pg.ScatterPlotItem(size=NODE_PX, pxMode=True, brush=NODE_COLORS[k],
                                            pen=pen) for k in ("x", "h", "o")}
        for item in (self.fold_nodes, *self.nodes.values()):
            item.setZValue(10)
            vb.addItem(item)
        self.ring = pg.ScatterPlotItem(size=NODE_PX + 10, pxMode=True, brush=None,
                                       pen=pg.mkPen(MARKER_COLOR, width=2.5))
        self.ring.setZValue(9)
        vb.addItem(self.ring)
        self.unfold = _text(vb, '<span style="font-size:9pt">unfold →</span>')
        self.separator = pg.PlotCurveItem(pen=pg.mkPen(NEUTRAL, width=1,
                                                       style=Qt.PenStyle.DotLine))
        vb.addItem(self.separator)

        def hide_text(item: pg.TextItem) -> None:
            item.setVisible(False)

        self._edges = Pool(lambda: Edge(vb), lambda e: e.show(False))
        self._rec_edges = Pool(lambda: Edge(vb, z=2), lambda e: e.show(False))
        self._letters = Pool(lambda: _text(vb), hide_text)
        self._texts = Pool(lambda: _text(vb), hide_text)  # row, loop, time and gap labels
        self._rec_labels = Pool(lambda: _text(vb, z=21), hide_text)

        self.rows: list[Row] = []
        self.links: list[Link] = []  # every edge drawn, recurrent ones included
        self.recurrent: dict[str, list[Edge | None]] = {}  # row → edge into each column
        self._rec: list[tuple[Edge, pg.TextItem, Row, int, int, bool]] = []
        self._hspots: list[tuple[float, float, Row, int]] = []  # (x, y, row, t)
        self._fold_spots: list[dict[str, Any]] = []
        self._grads: dict[str, np.ndarray] = {}
        self._teacher: np.ndarray | None = None
        self._rims: tuple | None = None  # the rim levels drawn
        self._time_labels: list[tuple[pg.TextItem, float]] = []
        self._steps: np.ndarray = np.zeros(0, dtype=int)
        self._structure: tuple | None = None
        self._xrange = (-0.15, FIRST_COL + 1.0)
        self._yrange = (-0.75, 3.35)
        self._node_px = NODE_PX
        self._letter_size = "10pt"
        self._labels_fit = True
        vb.sigResized.connect(self._on_resize)
        self.glw.scene().sigMouseMoved.connect(self._on_move)

    # ------------------------------------------------------------------ layout

    def _n_columns(self, T: int) -> int:
        width = max(self.vb.width(), self.glw.width() - 40, 200)
        fit = int(width / PX_PER_COLUMN - (FIRST_COL - self._xrange[0]) - 0.6) + 1
        return max(1, min(T, MAX_COLUMNS, max(MIN_COLUMNS, fit)))

    def _on_resize(self, *_: Any) -> None:
        if self._result is not None and self._n_columns(self._n_steps) != len(self._steps):
            self._draw()  # a new column count gives a new structure key
        else:
            self._place()

    def _fit_rows(self) -> tuple[float, float] | None:
        """Set the vertical range so the time labels below the x row and the L node on top
        keep their size in pixels however close the rows are; ``(px, py)``, the data units
        per pixel, or None before the view has a size."""
        w, h = self.vb.width(), self.vb.height()
        if not (w > 1 and h > 1):
            return None
        top = self._yrange[1] - ABOVE_L
        row_px = 0.0
        node = float(self._node_px)
        for _ in range(2):  # the node size depends on the row height, the margins on it
            below, above = node / 2 + TIME_LABEL_PX, node / 2 + 4
            row_px = max((h - below - above) / top, 1.0)
            col_px = w / (self._xrange[1] - self._xrange[0])
            node = max(MIN_NODE_PX, min(NODE_PX, 0.62 * row_px, 0.5 * col_px))
        yrange = (-below / row_px, top + above / row_px)
        if self.vb.viewRange()[1] != list(yrange):
            self.vb.setRange(xRange=self._xrange, yRange=yrange, padding=0)
        return (self._xrange[1] - self._xrange[0]) / w, (yrange[1] - yrange[0]) / h

    def _place(self) -> None:
        """Size the nodes to the room there is and re-aim arrowheads at their rims."""
        fitted = self._fit_rows()
        if fitted is None:
            return
        px, py = fitted
        row_px, col_px = 1.0 / py, 1.0 / px
        node = int(max(MIN_NODE_PX, min(NODE_PX, 0.62 * row_px, 0.5 * col_px)))
        for item, x in self._time_labels:
            item.setPos(x, -(node / 2 + 2) * py)
        if node != self._node_px:
            self._node_px = node
            for item in self.nodes.values():
                item.setSize(node)
            self.ring.setSize(node + 10)
            self._set_fold_spots()
            if self._grads:
                self._restyle(self._grads, self._teacher)  # widths follow the node size
        letter = "10pt" if node >= 20 else ("8pt" if node >= 15 else "")
        if letter != self._letter_size:
            self._letter_size = letter
            for item in self._letters.taken():
                _set_html(item, _node_label(item._letter, letter) if letter else "")
        fits = row_px >= LABEL_ROW_PX
        if fits != self._labels_fit:
            self._labels_fit = fits
            for _edge, label, _row, _j, _t, _dashed in self._rec:
                label.setVisible(fits)
                if fits and hasattr(label, "_text"):
                    _set_html(label, f'<span style="font-size:8pt">{label._text}</span>')
        for edge in [*self._edges.taken(), *self._rec_edges.taken()]:
            edge.place(px, py, node / 2 + 1 if edge.end_gap is None else edge.end_gap)

    def _set_fold_spots(self) -> None:
        node = self._node_px
        spots = [dict(s, size=node if s["symbol"] == "o" else max(7, round(node / 2)))
                 for s in self._fold_spots]
        self.fold_nodes.setData(spots)

    def _letter(self, x: float, y: float, letter: str) -> None:
        item = self._letters.take()
        item._letter = letter
        _set_html(item, _node_label(letter, self._letter_size) if self._letter_size else "")
        item.setPos(x, y)
        item.setVisible(True)

    def _label(self, x: float, y: float, html: str, anchor: tuple[float, float]) -> None:
        item = self._texts.take()
        _set_html(item, html)
        item.setAnchor(anchor)
        item.setPos(x, y)
        item.setVisible(True)

    def _edge(self, points: list[tuple[float, float]], src: str, dst: str,
              columns: tuple[int, int] = (-1, -1), dashed: bool = False, width: float = 1.5,
              end_gap: float | None = None) -> Edge:
        edge = self._edges.take()
        edge.end_gap = end_gap
        edge.set(points, width=width, dashed=dashed)
        self.links.append(Link(src, dst, *columns, dashed))
        return edge

    # ------------------------------------------------------------------ drawing

    def _sync_selectors(self, result: Any) -> None:
        super()._sync_selectors(result)
        items = view_choices(result.experiment.model)
        self._fill_combo(self.view_selector, items)
        self.view_selector.setVisible(bool(items))

    def _choice(self) -> str:
        return self.view_selector.currentData() or ALL

    def _draw(self) -> None:
        r = self._result
        model = r.experiment.model
        T = int(np.shape(r.x)[0])
        self._n_steps = T
        choice = self._choice()
        layers = shown_layers(model, choice)
        self._xrange = (-0.15 if self._single_row(layers) else -0.8, self._xrange[1])
        n = self._n_columns(T)
        steps = np.unique(np.round(np.linspace(0, T - 1, n)).astype(int))
        cells = tuple((lay.cell, lay.bidirectional) for lay in model.layers)
        structure = (T, tuple(steps), model.pattern, cells, choice)
        if structure != self._structure:  # positions change only with the model or size
            self._structure = structure
            self._layout(T, steps, model, layers)
        grads: dict[str, np.ndarray] = {}
        for row in self.rows:
            if row.kind != "h":
                continue
            g = r.arrays.get(f"gradnorm.{row.key}")
            if g is None and f"dh.{row.key}" in r.arrays:
                g = batch_norm(r.arrays[f"dh.{row.key}"])
            grads[row.key] = (np.full(T, np.nan) if g is None
                              else np.asarray(g, dtype=np.float64).ravel())
        self._grads = grads
        mask = r.teacher_mask if model.pattern == "output_recurrence" else None
        self._teacher = None if mask is None else np.asarray(mask, dtype=bool).ravel()
        self._restyle(grads, self._teacher)
        self._table = {"timestep": steps.astype(np.float64),
                       **{f"gradnorm.{key}": g[steps] for key, g in grads.items()}}
        self._update_ring()

    @staticmethod
    def _single_row(layers: list[tuple[int, list[str]]]) -> bool:
        return len(layers) == 1 and len(layers[0][1]) == 1 and layers[0][0] == 0

    def _layout(self, T: int, steps: np.ndarray, model: ModelConfig,
                layers: list[tuple[int, list[str]]]) -> None:
        """Place nodes, edges and labels for ``layers`` at ``steps`` (the shown timesteps)."""
        feedback = model.pattern == "output_recurrence"
        final_only = model.pattern == "many_to_one"
        top = len(model.layers) - 1
        for pool in (self._edges, self._rec_edges, self._letters, self._texts,
                     self._rec_labels):
            pool.start()
        self.links = []
        self._grads = {}  # of the rows before; _draw restyles the new ones
        self._time_labels = []
        self._rec = []
        self._hspots = []
        self.recurrent = {}
        self._steps = steps
        n = len(steps)
        cols = FIRST_COL + np.arange(n, dtype=np.float64)

        # rows, bottom up: x, each shown cell, o; and the groups edges run between
        rows = [Row("x", 0.0)]
        groups: list[tuple[int, list[Row]]] = [(-1, rows[:1])]
        for k, keys in layers:
            group = []
            for key in keys:
                reverse = key.endswith("_reverse")
                dx = (STAGGER if reverse else -STAGGER) if len(keys) > 1 else 0.0
                group.append(Row("h", float(len(rows)), key, k, reverse, dx))
                rows.append(group[-1])
            groups.append((k, group))
        out = Row("o", float(len(rows)))
        rows.append(out)
        groups.append((top + 1, [out]))
        self.rows = rows
        y_loss = out.y + 1.0
        hidden = [row for row in rows if row.kind == "h"]
        recurrent = {row.key for row in hidden if not feedback}

        # folded graph: the same rows in one column, each cell with its delay loop
        spots: list[dict[str, Any]] = []
        for row in rows:
            spots.append({"pos": (FOLD_X + row.dx, row.y), "brush": NODE_COLORS[row.kind],
                          "symbol": "o", "pen": pg.mkPen((30, 30, 30), width=1)})
            self._letter(FOLD_X + row.dx, row.y, row.kind)
        spots.append({"pos": (FOLD_X, y_loss), "brush": NODE_COLORS["L"], "symbol": "o",
                      "pen": pg.mkPen((30, 30, 30), width=1)})
        self._letter(FOLD_X, y_loss, "L")
        if not self._single_row(layers):
            for row in hidden:
                self._label(FOLD_X - STAGGER - 0.22, row.y,
                            f'<span style="font-size:8pt">{short_layer_label(row.key)}</span>',
                            (1, 0.5))
        for (k, lower), (k_up, upper) in pairwise(groups):
            skip = k_up != k + 1
            for a in lower:
                for b in upper:
                    self._edge([(FOLD_X + a.dx, a.y), (FOLD_X + b.dx, b.y)], a.name, b.name,
                               dashed=skip)
        self._edge([(FOLD_X, out.y), (FOLD_X, y_loss)], "o", "L")
        square = {"brush": "#202020", "symbol": "s", "pen": pg.mkPen("w", width=1)}
        small = '<span style="font-size:8pt">{}</span>'
        for row in hidden:
            if row.key not in recurrent:
                continue
            fx = FOLD_X + row.dx
            lx = fx + LOOP_W
            self._edge([(fx, row.y + 0.2), (lx, row.y + 0.2), (lx, row.y - 0.2),
                        (fx, row.y - 0.2)], row.key, row.key, width=2 if len(hidden) == 1 else 1.3,
                       end_gap=4)
            spots.append({**square, "pos": (lx, row.y)})
            word = "t+1" if row.reverse else ("delay" if len(hidden) == 1 else "t−1")
            self._label(lx + 0.12, row.y, small.format(word), (0, 0.5))
        first = hidden[0]
        if feedback and first.layer == 0:  # the loop runs from o back into layer 0
            mid = (out.y + first.y) / 2 + 0.1
            lx = FOLD_X + LOOP_W
            self._edge([(FOLD_X, out.y), (lx, out.y), (lx, first.y + 0.2),
                        (FOLD_X, first.y + 0.2)], "o", first.key, width=2, end_gap=4)
            spots.append({**square, "pos": (lx, mid)})
            self._label(lx + 0.12, mid, small.format("delay"), (0, 0.5))
        self._fold_spots = spots
        self._set_fold_spots()
        mid = (LOOP_X + FIRST_COL) / 2 + 0.15
        self.unfold.setPos(mid, y_loss)
        self.separator.setData([mid, mid], [-0.5, out.y + 0.6])

        # unrolled columns
        has_out = np.array([not final_only or int(t) == T - 1 for t in steps])
        self.nodes["x"].setData(cols, np.zeros(n))
        self.nodes["o"].setData(cols[has_out], np.full(int(has_out.sum()), out.y))
        hx, hy = [], []
        for row in hidden:
            for j in range(n):
                hx.append(cols[j] + row.dx)
                hy.append(row.y)
                self._hspots.append((cols[j] + row.dx, row.y, row, int(steps[j])))
        self.nodes["h"].setData(hx, hy)
        self._rims = None
        time_html = '<span style="font-size:8.5pt">t={}</span>'
        for j in range(n):
            x = float(cols[j])
            self._letter(x, 0.0, "x")
            self._label(x, -0.28, time_html.format(int(steps[j])), (0.5, 0))
            self._time_labels.append((self._texts.items[self._texts.used - 1], x))
            if has_out[j]:
                self._letter(x, out.y, "o")
            for row in hidden:
                self._letter(x + row.dx, row.y, "h")
            if j and int(steps[j]) - int(steps[j - 1]) > 1:
                self._label(x - 0.5, 0.1, '<span style="font-size:9pt">⋯</span>', (0.5, 1))
            for (k, lower), (k_up, upper) in pairwise(groups):
                skip = k_up != k + 1
                thin = 1.0 if len(lower) * len(upper) > 1 else 1.5  # crossing pairs: lighter
                for b in upper:
                    if b.kind == "o" and not has_out[j]:
                        continue
                    for a in lower:
                        # PyTorch's h_n: a bidirectional top layer's reverse cell ends at t = 0
                        src = 0 if (b.kind == "o" and final_only and a.reverse and not skip) else j
                        self._edge([(cols[src] + a.dx, a.y), (x + b.dx, b.y)], a.name, b.name,
                                   (src, j), dashed=skip, width=thin)

        # recurrent edges: into column j from column j−1 (forward) or j−1 from j (reverse)
        for row in hidden:
            into: list[Edge | None] = [None] * n
            fed = feedback and row.layer == 0
            if row.key in recurrent or fed:
                for j in range(1, n):
                    x0, x1 = float(cols[j - 1]) + row.dx, float(cols[j]) + row.dx
                    gap = int(steps[j]) - int(steps[j - 1]) > 1
                    if fed:
                        points, t = [(float(cols[j - 1]), out.y), (x1, row.y)], int(steps[j])
                    elif row.reverse:
                        points, t = [(x1, row.y), (x0, row.y)], int(steps[j - 1])
                    else:
                        points, t = [(x0, row.y), (x1, row.y)], int(steps[j])
                    edge = self._rec_edges.take()
                    edge.end_gap = None
                    edge.points = points
                    label = self._rec_labels.take()
                    label.setVisible(self._labels_fit)
                    side = 0.3 if j % 2 else -0.3
                    if fed:
                        label.setPos((x0 + x1) / 2 + 0.1, (out.y + row.y) / 2)
                    else:
                        label.setPos((x0 + x1) / 2, row.y + side)
                    self._rec.append((edge, label, row, j, t, gap))
                    back = row.reverse and not fed
                    into[j - 1 if back else j] = edge
                    self.links.append(Link("o" if fed else row.key, row.key,
                                           j if back else j - 1, j - 1 if back else j, gap))
            self.recurrent[row.key] = into
        for pool in (self._edges, self._rec_edges, self._letters, self._texts,
                     self._rec_labels):
            pool.finish()

        right = float(cols[-1]) + (STAGGER if any(r.dx for r in hidden) else 0.0) + 0.6
        self._xrange = (self._xrange[0], right)
        self._yrange = (-0.75, y_loss + ABOVE_L)
        self.vb.setRange(xRange=self._xrange, yRange=self._yrange, padding=0)
        self._set_titles(T, n, model, layers, feedback)
        self._place()

    def _set_titles(self, T: int, n: int, model: ModelConfig,
                    layers: list[tuple[int, list[str]]], feedback: bool) -> None:
        shown = f"{n} of {T} steps" if n < T else f"{T} steps"
        depth = len(model.layers)
        both = any(lay.bidirectional for lay in model.layers)
        if depth > 1 and self._choice() == ALL:
            where = f"{depth} layers" + (", both directions" if both else "")
        elif depth == 1 and len(layers[0][1]) > 1:
            where = "layer 0 (both directions)"
        else:
            k, keys = layers[0]
            where = (f"layer {k}" + (" (forward)" if keys == [f"l{k}"] and both else "")
                     + (" (reverse)" if keys[0].endswith("_reverse") else "")
                     + (" (both directions)" if len(keys) > 1 else "")
                     + (f" of {depth}" if depth > 1 else ""))
        if feedback:
            notes = (f"edges o→h: {GRAD} flowing back; grey “target”: teacher forced, no "
                     "gradient; node rims: the same scale",
                     f"edges o→h: {GRAD} flowing back; “target”: teacher forced",
                     f"edges o→h: {GRAD}")
        elif any(model.layers[k].cell in INPUT_ONLY for k, _keys in layers):
            # minGRU/minLSTM: no W_hh, h_{t-1} reaches h_t unit by unit through the gates
            notes = (f"edges h→h (elementwise, (1−z)⊙ or f′⊙: no W_hh) and node rims: {GRAD} "
                     "flowing back", f"edges h→h (elementwise): {GRAD} flowing back",
                     f"edges: {GRAD}")
        else:
            notes = (f"edges h→h and node rims: {GRAD} flowing back (warm, thick = more)",
                     f"edges h→h: {GRAD} flowing back", f"edges: {GRAD}")
        fit_label(self.note, notes, size="8.5pt")
        fit_label(self.heading, (f"Computational graph — {where}, {shown}",
                                 f"Computational graph · {where}", f"Graph · {shown}"))

    def _restyle(self, grads: dict[str, np.ndarray], teacher: np.ndarray | None = None) -> None:
        """Colour, width and label of each recurrent edge, and the colour of each hidden
        node's rim, from the gradient norms ``grads`` (row key → (T,)).

        ``teacher[t]`` true: step t was fed the target, not the previous output, so no
        gradient crosses that edge; it is drawn thin, grey and dashed.
        """
        values = [g[np.isfinite(g) & (g > 0)] for g in grads.values()]
        values = np.concatenate(values) if values else np.zeros(0)
        lo, hi = ((float(np.log10(values.min())), float(np.log10(values.max())))
                  if values.size else (0.0, 1.0))
        span = hi - lo if hi - lo > 1e-12 else 1.0
        set_levels(self.bar, (lo, lo + span))

        def level(v: float) -> float | None:
            """Where ``v`` sits on the scale, in steps of 1/HEAT_STEPS (few distinct
            styles: an unchanged edge or rim is not restyled, a rim colour is drawn once)."""
            if not (math.isfinite(v) and v > 0):
                return None
            return round((math.log10(v) - lo) / span * HEAT_STEPS) / HEAT_STEPS

        px, py = self.vb.viewPixelSize()
        for edge, label, row, _j, t, gap in self._rec:
            g = grads[row.key]
            v = float(g[t]) if t < g.size else math.nan
            forced = (teacher is not None and row.layer == 0 and t < teacher.size
                      and bool(teacher[t]))
            s = level(v)
            if forced:
                changed = edge.set(edge.points, color=NEUTRAL, width=1.0, dashed=True)
            elif s is None:
                changed = edge.set(edge.points, color=NEUTRAL, width=1.2, dashed=gap)
            else:
                changed = edge.set(edge.points, color=heat_color(s),
                                   width=1.2 + 5.5 * s * self._node_px / NODE_PX, dashed=gap)
            if changed and px > 0 and py > 0:
                edge.place(px, py, self._node_px / 2 + 1)
            label._text = "target" if forced else (fmt_sci(v) if s is not None else "–")
            if self._labels_fit:  # hidden labels are set when they show
                _set_html(label, f'<span style="font-size:8pt">{label._text}</span>')
        width = 3 if self._node_px >= 16 else 2
        rims = tuple(level(float(grads[row.key][t])) for _x, _y, row, t in self._hspots)
        if rims and (rims, width) != self._rims:
            self._rims = (rims, width)
            self.nodes["h"].setPen([rim_pen(s, width) for s in rims])

    # ------------------------------------------------------------------ time marker, hover

    def mark_timestep(self, t: int | None) -> None:
        self._marked = None if t is None else int(t)
        self._update_ring()

    def _update_ring(self) -> None:
        if self._marked is None or not len(self._steps):
            self.ring.setData([])
            return
        t = int(self._steps[int(np.argmin(np.abs(self._steps - self._marked)))])
        spots = [(x, y) for x, y, _row, tt in self._hspots if tt == t]
        self.ring.setData([p[0] for p in spots], [p[1] for p in spots])

    def _on_move(self, pos: Any) -> None:
        text = ""
        if self._hspots and self.vb.sceneBoundingRect().contains(pos):
            p = self.vb.mapSceneToView(pos)
            px, py = self.vb.viewPixelSize()
            if px > 0 and py > 0 and math.isfinite(p.x()) and math.isfinite(p.y()):
                dist, spot = min(((math.hypot((x - p.x()) / px, (y - p.y()) / py), (row, t))
                                  for x, y, row, t in self._hspots), key=lambda d: d[0])
                if dist <= self._node_px / 2 + 2:
                    row, t = spot
                    g = self._grads.get(row.key)
                    v = float(g[t]) if g is not None and t < g.size else math.nan
                    text = f"{short_layer_label(row.key)}, t = {t}: ‖∂L/∂h_t‖ = {fmt_sci(v)}"
        if self.readout.text() != text:
            self.readout.setText(text)

    def _on_scene_click(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not len(self._steps):
            return
        pos = event.scenePos()
        if not self.vb.sceneBoundingRect().contains(pos):
            return
        x = self.vb.mapSceneToView(pos).x()
        j = round(x - FIRST_COL) if math.isfinite(x) else -1
        if 0 <= j < len(self._steps) and abs(x - FIRST_COL - j) < 0.45:
            self.timestep_clicked.emit(int(self._steps[j]))
