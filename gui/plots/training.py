"""(h) Training curves: loss and validation loss, gradient norm before and after clipping."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg

from .. import colormaps
from .base import Overlay, PlotPanel, mkpen, positive

COLUMNS = ("step", "loss", "val_loss", "grad_norm_before", "grad_norm_after")


class TrainingPanel(PlotPanel):
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
        loss_legend = self._add_legend(self.loss_plot, columns=2, offset=(-5, 5))
        grad_legend = self._add_legend(self.grad_plot, columns=3, offset=(-5, 5))
        self.loss = pg.PlotDataItem(pen=mkpen(colormaps.line_color(0), 2))
        self.val = pg.PlotDataItem(pen=mkpen(colormaps.line_color(1), 1.5), symbol="o",
                                   symbolSize=5, symbolBrush=colormaps.line_color(1),
                                   symbolPen=None)
        self.before = pg.PlotDataItem(pen=mkpen(colormaps.line_color(6), 1.5))
        self.after = pg.PlotDataItem(pen=mkpen(colormaps.line_color(2), 2))
        self.clip_line = pg.InfiniteLine(angle=0, movable=False,
                                         pen=mkpen(pg.getConfigOption("foreground"), 1, "dash"))
        self.loss_plot.addItem(self.loss)
        self.loss_plot.addItem(self.val)
        self.grad_plot.addItem(self.before)
        self.grad_plot.addItem(self.after)
        self.grad_plot.addItem(self.clip_line, ignoreBounds=True)
        self.clip_line.hide()
        loss_legend.addItem(self.loss, "loss")
        loss_legend.addItem(self.val, "validation")
        grad_legend.addItem(self.before, "before clipping")
        grad_legend.addItem(self.after, "after clipping")
        self.overlay = Overlay(self.loss_plot)
        self.overlay.set("No training yet: press Train to see the loss fall.")
        self._history: dict[str, np.ndarray] = {}

    def show_result(self, result: Any) -> None:
        """Only the clipping threshold comes from a probe result."""
        self._result = result
        clip = getattr(getattr(result.experiment, "training", None), "clip", None)
        if clip is not None and clip.mode == "norm" and clip.max_norm > 0:
            self.clip_line.setPos(np.log10(clip.max_norm))
            self.clip_line.show()
        else:
            self.clip_line.hide()

    def set_history(self, history: dict) -> None:
        cols = {k: np.asarray(history.get(k, []), dtype=np.float64).ravel() for k in COLUMNS}
        n = len(cols["step"]) if len(cols["step"]) else len(cols["loss"])
        if n == 0:
            for item in (self.loss, self.val, self.before, self.after):
                item.setData([], [])
            self._table = {}
            self.overlay.set("No training yet: press Train to see the loss fall.")
            return
        self.overlay.set(None)
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
        self._history = cols
        self._table = dict(cols)
