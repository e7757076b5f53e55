"""(h) Training curves: loss and validation loss, gradient norm before and after clipping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg

from .. import colormaps
from .base import (
    Overlay,
    PlotPanel,
    fit_title,
    grow_range,
    legend_html,
    log_range,
    mkpen,
    positive,
    set_y_range,
)
from .pins import PinAware, PinnedCurves

if TYPE_CHECKING:
    from core.probe import ProbeResult

COLUMNS = ("step", "loss", "val_loss", "grad_norm_before", "grad_norm_after")
EMPTY = "No training yet.<br>Press Train to see the loss fall."


class TrainingPanel(PinAware, PlotPanel):
    name = "training"
    title = "Training"
    tooltip = ("Training progress, log scale. Top: training loss and validation loss "
               "(dots where it was evaluated). Bottom: the gradient norm before and after "
               "clipping; the dashed line is the clipping threshold.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.loss_plot = self._add_plot(0, 0, "Loss", "", "loss", time_axis=False, log_y=True)
        self.grad_plot = self._add_plot(1, 0, "Gradient norm", "training step", "gradient norm",
                                        time_axis=False, log_y=True)
        self.grad_plot.setXLink(self.loss_plot)
        fg = pg.getConfigOption("foreground")
        c_loss, c_val, c_before, c_after = (colormaps.line_color(i) for i in (0, 1, 6, 2))
        self.loss = pg.PlotDataItem(pen=mkpen(c_loss, 2))
        self.val = pg.PlotDataItem(pen=mkpen(c_val, 1.5), symbol="o", symbolSize=5,
                                   symbolBrush=c_val, symbolPen=None)
        self.before = pg.PlotDataItem(pen=mkpen(c_before, 1.5))
        self.after = pg.PlotDataItem(pen=mkpen(c_after, 2))
        self.clip_line = pg.InfiniteLine(angle=0, movable=False, pen=mkpen(fg, 1, "dash"))
        for curve in (self.loss, self.before, self.after):  # long runs: ~one point per pixel
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self.loss_plot.addItem(self.loss)
        self.loss_plot.addItem(self.val)
        self.grad_plot.addItem(self.before)
        self.grad_plot.addItem(self.after)
        self.grad_plot.addItem(self.clip_line, ignoreBounds=True)
        self.clip_line.hide()
        self._clip: float | None = None
        # The titles are the legends: a legend box would cover the curves in a small panel.
        legend = legend_html([(c_loss, "training"), (c_val, "validation", "marker")])
        fit_title(self.loss_plot, f"Loss: {legend}", legend, "Loss")
        legend = legend_html([(c_before, "before"), (c_after, "after clipping"),
                              (fg, "threshold", "dash")])
        short = legend_html([(c_before, "before"), (c_after, "after clipping")])
        fit_title(self.grad_plot, f"Gradient norm: {legend}", legend, short, "Gradient norm")
        self.overlay = Overlay(self.loss_plot)
        self.grad_overlay = Overlay(self.grad_plot, size="9pt")
        self._history: dict[str, np.ndarray] = {}
        self._pending: dict | None = None  # a history not drawn yet
        self._x_start, self._x_end = 0.0, 0.0
        self.pinned = PinnedCurves(self.loss_plot)
        self._show_empty()

    def _pins_changed(self) -> None:
        """Pinned runs' loss curves (dashed, behind), drawn at once."""
        self._draw_history(self._history if self._history else {}, force=True)

    def _show_empty(self) -> None:
        self.overlay.set(EMPTY)
        self.grad_overlay.set("Gradient norms appear here while training.")
        self.clip_line.hide()

    def show_result(self, result: ProbeResult) -> None:
        """Only the clipping threshold comes from a probe result."""
        self._result = result
        clip = result.experiment.training.clip
        self._clip = None
        if clip.mode == "norm" and clip.max_norm > 0:
            self._clip = float(clip.max_norm)
            self.clip_line.setPos(np.log10(clip.max_norm))
        self.clip_line.setVisible(self._clip is not None and bool(self._history))

    def set_history(self, history: dict) -> None:
        """Draw a training history (later, when shown, if hidden behind a dock tab)."""
        self._pending = history
        if not self._hidden_in_window():
            self._catch_up()

    def _catch_up(self) -> None:
        super()._catch_up()
        history, self._pending = self._pending, None
        if history is not None:
            self._draw_history(history)
            self._settle()

    def _relabel(self) -> None:
        if self.pins:
            self.pinned.show_legends(self.pin_legends)

    def _draw_pinned(self) -> list[np.ndarray]:
        """The pinned runs' training losses; the values drawn."""
        series = []
        for i, pin in enumerate(self.pins):
            step, loss = pin.history.get("step"), pin.history.get("loss")
            if step is not None and loss is not None and len(step):
                series.append((i, 0, f"{pin.label}.loss", step, loss))
        self.pinned.show(series, self.pin_legends)
        return self.pinned.values()

    def _draw_history(self, history: dict, force: bool = False) -> None:
        cols = {k: np.asarray(history.get(k, []), dtype=np.float64).ravel() for k in COLUMNS}
        n = len(cols["step"]) if len(cols["step"]) else len(cols["loss"])
        pinned = self._draw_pinned()
        if n == 0 and pinned:  # only pinned runs trained: their curves, and the reason
            for item in (self.loss, self.val, self.before, self.after):
                item.setData([], [])
            self._history = {}
            self.overlay.set(None)
            self.grad_overlay.set("This run is not trained yet: the dashed loss curves "
                                  "above are the pinned runs'.")
            steps = np.concatenate([np.asarray(i.xData, np.float64)
                                    for i in self.pinned.curves.values()])
            self.loss_plot.setXRange(0.0, max(float(np.nanmax(steps)), 10.0), padding=0.02)
            set_y_range(self.loss_plot, log_range(*pinned))
            self._table = {}
            return
        if n == 0:
            if not self._history and not force:
                return  # empty already: nothing to redraw (or repaint)
            for item in (self.loss, self.val, self.before, self.after):
                item.setData([], [])
            self._table = {}
            self._history = {}
            self._x_start, self._x_end = 0.0, 0.0
            self._show_empty()
            return
        self.overlay.set(None)
        self.grad_overlay.set(None)
        self.clip_line.setVisible(self._clip is not None)
        if len(cols["step"]) != n:
            cols["step"] = np.arange(n, dtype=np.float64)
        for k in COLUMNS:
            if len(cols[k]) != n:  # a missing or short column reads as "not recorded"
                pad = np.full(n, np.nan)
                pad[: min(n, len(cols[k]))] = cols[k][:n]
                cols[k] = pad
        step = cols["step"]
        self.loss.setData(step, positive(cols["loss"]), connect="finite")
        seen = np.isfinite(cols["val_loss"]) & (cols["val_loss"] > 0)
        self.val.setData(step[seen], cols["val_loss"][seen])
        self.before.setData(step, positive(cols["grad_norm_before"]), connect="finite")
        self.after.setData(step, positive(cols["grad_norm_after"]), connect="finite")
        # Explicit ranges, snapped so they change rarely while training adds steps: the
        # axes are then redrawn only now and then, and each update paints once.
        finite = step[np.isfinite(step)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            for item in self.pinned.curves.values():  # the pinned runs' steps fit in too
                hi = max(hi, float(np.nanmax(item.xData)))
            end = lo + grow_range(self._x_end - lo, max(hi - lo, 10.0) * 1.02)
            if end != self._x_end or lo != self._x_start:
                self._x_start, self._x_end = lo, end
                self.loss_plot.setXRange(lo, end, padding=0)
        set_y_range(self.loss_plot, log_range(cols["loss"], cols["val_loss"], *pinned))
        grads = [cols["grad_norm_before"], cols["grad_norm_after"]]
        if self._clip is not None:
            grads.append(np.array([self._clip]))
        set_y_range(self.grad_plot, log_range(*grads))
        self._history = cols
        self._table = dict(cols)
