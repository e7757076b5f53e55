"""(j) The computational graph, folded (left) and unrolled over time (right).

Recurrent edges of the unrolled chain are drawn thicker and warmer where more
gradient flows back through them; each carries the value ‖∂L/∂h_t‖ of the state
it points into (the gradient that state sends back along the edge).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from .. import colormaps
from .base import MARKER_COLOR, PlotPanel, batch_norm, fit_label, fmt_sci, let_label_shrink

MAX_COLUMNS = 12
MIN_COLUMNS = 3
PX_PER_COLUMN = 50  # keep columns at least this far apart so edge labels fit
NODE_PX = 26
FOLD_X = 0.35  # folded graph column
LOOP_X = 0.95  # the delay square of the folded self-loop
FIRST_COL = 2.45  # the first unrolled column
ROW = {"x": 0.0, "h": 1.0, "o": 2.0, "L": 3.0}
NODE_COLORS = {"x": "#7FD4B3", "h": "#8CC8F0", "o": "#F2C166", "L": "#F08A6C"}
NEUTRAL = (150, 150, 150)


class Edge:
    """A straight edge with an arrowhead that stops at the target node's rim."""

    def __init__(self, vb: pg.ViewBox, z: float = 0) -> None:
        self.line = pg.PlotCurveItem()
        self.arrow = pg.ArrowItem(pen=None, headLen=9, tipAngle=36, brush=NEUTRAL)
        self.line.setZValue(z)
        self.arrow.setZValue(z + 1)
        vb.addItem(self.line)
        vb.addItem(self.arrow)
        self.points: list[tuple[float, float]] = []
        self.width = 1.5
        self.visible = True
        self._style: tuple | None = None

    def set(self, points: list[tuple[float, float]], color: Any = NEUTRAL, width: float = 1.5,
            dashed: bool = False) -> None:
        self.points = points
        self.width = width
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

    def show(self, visible: bool) -> None:
        self.visible = visible
        self.line.setVisible(visible)
        self.arrow.setVisible(visible)

    def place(self, px: float, py: float, end_gap_px: float) -> None:
        """Stop the arrow ``end_gap_px`` short of the last point (``px``, ``py``: data/pixel)."""
        if not self.visible or len(self.points) < 2:
            return
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


def _node_label(letter: str, sub: str = "") -> str:
    sub = f"<sub>{sub}</sub>" if sub else ""
    return f'<span style="color:#111; font-size:10pt; font-weight:bold">{letter}{sub}</span>'


class GraphPanel(PlotPanel):
    name = "graph"
    title = "Computational graph"
    tooltip = ("The network as a graph: folded with its one-step delay loop (left), and "
               "unrolled over a window of timesteps (right). Recurrent edges are thicker and "
               "warmer where more gradient flows back through them; the number on each is "
               "‖∂L/∂h_t‖ of the state it points into. Click a column to pick that timestep.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.heading = let_label_shrink(
            self.glw.addLabel("Computational graph", row=0, col=0, size="10pt"))
        self.vb = self.glw.addViewBox(row=1, col=0, enableMouse=False, enableMenu=False)
        self._views.append(self.vb)
        self.vb.setDefaultPadding(0.0)
        self.note = let_label_shrink(self.glw.addLabel(
            "edges h→h: ‖∂L/∂h<sub>t</sub>‖ flowing back (warm, thick = more)",
            row=2, col=0, size="8.5pt"))
        self.glw.ci.layout.setRowStretchFactor(1, 10)
        vb = self.vb
        self.fold_nodes = pg.ScatterPlotItem(size=NODE_PX, pxMode=True)
        self.nodes = {k: pg.ScatterPlotItem(size=NODE_PX, pxMode=True, brush=NODE_COLORS[k],
                                            pen=pg.mkPen((30, 30, 30), width=1))
                      for k in ("x", "h", "o")}
        for item in (self.fold_nodes, *self.nodes.values()):
            item.setZValue(10)
            vb.addItem(item)
        self.ring = pg.ScatterPlotItem(size=NODE_PX + 10, pxMode=True, brush=None,
                                       pen=pg.mkPen(MARKER_COLOR, width=2.5))
        self.ring.setZValue(9)
        vb.addItem(self.ring)

        # folded graph: x → h → o → L, and h → delay → h
        self.fold_edges = [Edge(vb) for _ in range(3)]
        self.loop = Edge(vb)
        self.fold_labels = {k: _text(vb, _node_label(k)) for k in ("x", "h", "o", "L")}
        self.delay_label = _text(vb, '<span style="font-size:8pt">delay</span>', anchor=(0, 0.5))
        self.unfold = _text(vb, '<span style="font-size:9pt">unfold →</span>')
        self.separator = pg.PlotCurveItem(pen=pg.mkPen(NEUTRAL, width=1,
                                                       style=Qt.PenStyle.DotLine))
        vb.addItem(self.separator)

        # unrolled columns (a pool; unused columns are hidden)
        self.up_edges = [Edge(vb) for _ in range(MAX_COLUMNS)]
        self.out_edges = [Edge(vb) for _ in range(MAX_COLUMNS)]
        self.rec_edges = [Edge(vb, z=2) for _ in range(MAX_COLUMNS)]
        self.rec_labels = [_text(vb, anchor=(0.5, 0.5), z=21) for _ in range(MAX_COLUMNS)]
        self.time_labels = [_text(vb, anchor=(0.5, 0)) for _ in range(MAX_COLUMNS)]
        self.col_labels = [{k: _text(vb, _node_label(k)) for k in ("x", "h", "o")}
                           for _ in range(MAX_COLUMNS)]
        self.gap_labels = [_text(vb, '<span style="font-size:9pt">⋯</span>', anchor=(0.5, 1))
                           for _ in range(MAX_COLUMNS)]
        self._steps: np.ndarray = np.zeros(0, dtype=int)
        self._structure: tuple | None = None
        self._rec_points = [None] * MAX_COLUMNS
        self._xmax = FIRST_COL + 1
        self._marked_col: int | None = None
        vb.sigResized.connect(self._on_resize)

    # ------------------------------------------------------------------ layout

    def _n_columns(self, T: int) -> int:
        width = max(self.vb.width(), self.glw.width() - 10, 200)
        fit = int(width / PX_PER_COLUMN - FIRST_COL - 0.5) + 1
        return max(1, min(T, MAX_COLUMNS, max(MIN_COLUMNS, fit)))

    def _on_resize(self, *_: Any) -> None:
        if self._result is not None and self._n_columns(self._n_steps) != len(self._steps):
            self._draw()  # a new column count gives a new structure key
        else:
            self._place()

    def _edges(self) -> list[Edge]:
        return [*self.fold_edges, self.loop, *self.up_edges, *self.out_edges, *self.rec_edges]

    def _place(self) -> None:
        """Re-aim arrowheads at node rims; needs the current pixel size of a data unit."""
        px, py = self.vb.viewPixelSize()
        if not (px > 0 and py > 0 and math.isfinite(px) and math.isfinite(py)):
            return
        for edge in self._edges():
            gap = 4 if edge is self.loop else NODE_PX / 2 + 1
            edge.place(px, py, gap)

    # ------------------------------------------------------------------ drawing

    def _draw(self) -> None:
        r = self._result
        model = r.experiment.model
        T = int(np.shape(r.x)[0])
        self._n_steps = T
        g = r.arrays.get("gradnorm.l0")
        if g is None and "dh.l0" in r.arrays:
            g = batch_norm(r.arrays["dh.l0"])
        g = np.full(T, np.nan) if g is None else np.asarray(g, dtype=np.float64).ravel()
        n = self._n_columns(T)
        steps = np.unique(np.round(np.linspace(0, T - 1, n)).astype(int))
        structure = (T, tuple(steps), model.pattern, model.layers[0].bidirectional)
        if structure != self._structure:  # positions change only with the model or size
            self._structure = structure
            self._layout(T, steps, model.pattern, model.layers[0].bidirectional)
        mask = r.teacher_mask if model.pattern == "output_recurrence" else None
        self._restyle(g, None if mask is None else np.asarray(mask, dtype=bool).ravel())
        self._table = {"timestep": steps.astype(np.float64), "gradnorm": g[steps]}
        self._update_ring()

    def _layout(self, T: int, steps: np.ndarray, pattern: str, bidirectional: bool) -> None:
        """Place nodes, edges and labels for ``steps`` (the shown timesteps)."""
        feedback = pattern == "output_recurrence"
        final_only = pattern == "many_to_one"
        n = len(steps)
        self._steps = steps
        cols = FIRST_COL + np.arange(n, dtype=np.float64)
        self._xmax = float(cols[-1]) + 0.6

        spots: list[dict[str, Any]] = []
        for k, y in ROW.items():
            spots.append({"pos": (FOLD_X, y), "brush": NODE_COLORS[k], "symbol": "o"})
            self.fold_labels[k].setPos(FOLD_X, y)
        spots.append({"pos": (LOOP_X, ROW["h"]), "brush": "#202020", "symbol": "s",
                      "size": 13, "pen": pg.mkPen("w", width=1)})
        self.fold_edges[0].set([(FOLD_X, ROW["x"]), (FOLD_X, ROW["h"])])
        self.fold_edges[1].set([(FOLD_X, ROW["h"]), (FOLD_X, ROW["o"])])
        self.fold_edges[2].set([(FOLD_X, ROW["o"]), (FOLD_X, ROW["L"])])
        if feedback:  # the loop runs from o back into h
            self.loop.set([(FOLD_X, ROW["o"]), (LOOP_X, ROW["o"]), (LOOP_X, ROW["h"] + 0.2),
                           (FOLD_X, ROW["h"] + 0.2)], width=2)
            spots[-1]["pos"] = (LOOP_X, 1.6)
            self.delay_label.setPos(LOOP_X + 0.12, 1.6)
        else:
            self.loop.set([(FOLD_X, ROW["h"] + 0.2), (LOOP_X, ROW["h"] + 0.2),
                           (LOOP_X, ROW["h"] - 0.2), (FOLD_X, ROW["h"] - 0.2)], width=2)
            self.delay_label.setPos(LOOP_X + 0.12, ROW["h"])
        mid = (LOOP_X + FIRST_COL) / 2 + 0.15
        self.unfold.setPos(mid, ROW["L"])
        self.separator.setData([mid, mid], [-0.5, 2.6])
        self.fold_nodes.setData(spots)

        has_out = np.array([not final_only or int(t) == T - 1 for t in steps])
        self.nodes["x"].setData(cols, np.full(n, ROW["x"]))
        self.nodes["h"].setData(cols, np.full(n, ROW["h"]))
        self.nodes["o"].setData(cols[has_out], np.full(int(has_out.sum()), ROW["o"]))
        self._rec_points: list[list[tuple[float, float]] | None] = [None] * MAX_COLUMNS
        for j in range(MAX_COLUMNS):
            on = j < n
            self.up_edges[j].show(on)
            self.out_edges[j].show(on and bool(has_out[j]))
            self.rec_edges[j].show(on and j > 0)
            self.rec_labels[j].setVisible(on and j > 0)
            self.time_labels[j].setVisible(on)
            self.gap_labels[j].setVisible(False)
            for k, item in self.col_labels[j].items():
                item.setVisible(on and (k != "o" or bool(has_out[j])))
            if not on:
                continue
            x, t = float(cols[j]), int(steps[j])
            for k, item in self.col_labels[j].items():
                item.setPos(x, ROW[k])
            self.up_edges[j].set([(x, ROW["x"]), (x, ROW["h"])])
            if has_out[j]:
                self.out_edges[j].set([(x, ROW["h"]), (x, ROW["o"])])
            _set_html(self.time_labels[j], f'<span style="font-size:8.5pt">t={t}</span>')
            self.time_labels[j].setPos(x, ROW["x"] - 0.28)
            if j == 0:
                continue
            x0 = float(cols[j - 1])
            self._rec_points[j] = ([(x0, ROW["o"]), (x, ROW["h"])] if feedback
                                   else [(x0, ROW["h"]), (x, ROW["h"])])
            self.rec_labels[j].setPos((x0 + x) / 2, ROW["h"] + (0.32 if j % 2 else -0.32))
            if t - int(steps[j - 1]) > 1:
                self.gap_labels[j].setVisible(True)
                self.gap_labels[j].setPos((x0 + x) / 2, ROW["x"] + 0.1)

        self.vb.setRange(xRange=(-0.15, self._xmax), yRange=(-0.75, ROW["L"] + 0.35),
                         padding=0)
        where = "layer 0" + (" (forward)" if bidirectional else "")
        shown = f"{n} of {T} steps" if n < T else f"{T} steps"
        grad = "‖∂L/∂h<sub>t</sub>‖"
        if feedback:
            notes = (f"edges o→h: {grad} flowing back; grey “target”: teacher forced, no gradient",
                     f"edges o→h: {grad} flowing back; “target”: teacher forced",
                     f"edges o→h: {grad}")
        else:
            notes = (f"edges h→h: {grad} flowing back (warm, thick = more)",
                     f"edges h→h: {grad} flowing back", f"edges: {grad}")
        fit_label(self.note, notes, size="8.5pt")
        fit_label(self.heading, (f"Computational graph — {where}, {shown}",
                                 f"Computational graph · {shown}", f"Graph · {shown}"))
        self._place()

    def _restyle(self, g: np.ndarray, teacher: np.ndarray | None = None) -> None:
        """Colour, width and label of each recurrent edge from the gradient norms ``g``.

        ``teacher[t]`` true: step t was fed the target, not the previous output, so no
        gradient crosses that edge; it is drawn thin, grey and dotted.
        """
        ok = np.isfinite(g) & (g > 0)
        logs = np.log10(np.where(ok, g, 1.0))
        lo, hi = (float(logs[ok].min()), float(logs[ok].max())) if ok.any() else (0.0, 1.0)
        span = hi - lo if hi - lo > 1e-12 else 1.0
        cmap = colormaps.hot()
        px, py = self.vb.viewPixelSize()
        steps = self._steps
        for j in range(1, len(steps)):
            t = int(steps[j])
            forced = teacher is not None and t < teacher.size and bool(teacher[t])
            s = (logs[t] - lo) / span if ok[t] and not forced else 0.0
            color = cmap.map(0.35 + 0.53 * s, mode="qcolor") if ok[t] else NEUTRAL
            edge = self.rec_edges[j]
            if forced:
                edge.set(self._rec_points[j], color=NEUTRAL, width=1.0, dashed=True)
            else:
                edge.set(self._rec_points[j], color=color, width=1.2 + 5.5 * s,
                         dashed=t - int(steps[j - 1]) > 1)
            if px > 0 and py > 0:
                edge.place(px, py, NODE_PX / 2 + 1)
            text = "target" if forced else (fmt_sci(float(g[t])) if ok[t] else "–")
            _set_html(self.rec_labels[j], f'<span style="font-size:8pt">{text}</span>')

    # ------------------------------------------------------------------ time marker

    def mark_timestep(self, t: int | None) -> None:
        self._marked = None if t is None else int(t)
        self._update_ring()

    def _update_ring(self) -> None:
        if self._marked is None or not len(self._steps):
            self.ring.setData([])
            return
        j = int(np.argmin(np.abs(self._steps - self._marked)))
        self.ring.setData([FIRST_COL + j], [ROW["h"]])

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
