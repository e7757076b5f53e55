"""(a) Input, target and prediction over time for one sequence of the batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg

from .. import colormaps
from .base import (
    PlotPanel,
    align_bar,
    color_bar,
    fit_title,
    legend_html,
    linear_range,
    mkpen,
    set_curve,
    set_levels,
    set_y_range,
)

MAX_CHANNELS = 6


def softmax(z: np.ndarray) -> np.ndarray:
    """Class probabilities from logits along the last axis (NaN where logits are not finite)."""
    with np.errstate(all="ignore"):
        z = np.asarray(z, dtype=np.float64)
        z = z - np.max(z, axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


class SignalsPanel(PlotPanel):
    name = "signals"
    title = "Input, target and prediction"
    tooltip = ("The input sequence (top) and the target with the network's prediction "
               "(bottom) for one sample of the batch. Dashed lines are predictions; for "
               "classification the bottom plot shows class probabilities with the target "
               "classes as white squares.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._make_sample_selector()
        self.input_plot = self._add_plot(0, 0, "Input x<sub>t</sub>", "", "input")
        self.output_plot = self._add_plot(1, 0, "Target and prediction", "timestep", "output")
        self.output_plot.setXLink(self.input_plot)
        self._in_legend = ""  # the input plot's title holds its legend
        self._out_legend = self._add_legend(self.output_plot, columns=4)
        self.input_curves = [pg.PlotDataItem(pen=mkpen(colormaps.line_color(i), 1.5))
                             for i in range(MAX_CHANNELS)]
        for c in self.input_curves:
            self.input_plot.addItem(c)
        self.target_curves = [pg.PlotDataItem() for _ in range(MAX_CHANNELS)]
        self.pred_curves = [pg.PlotDataItem() for _ in range(MAX_CHANNELS)]
        for target, pred in zip(self.target_curves, self.pred_curves, strict=True):
            self.output_plot.addItem(target)
            self.output_plot.addItem(pred)
        # classification: probability image with the target classes on top
        self.prob_image = pg.ImageItem(axisOrder="row-major")
        self.prob_image.setZValue(-10)
        self.output_plot.addItem(self.prob_image)
        self.prob_bar = color_bar(colormaps.sequential(), "p(class)")
        self.prob_bar.setImageItem(self.prob_image)
        align_bar(self.prob_bar, self.output_plot)
        self._park_bar()
        self.class_targets = pg.ScatterPlotItem(symbol="s", size=7, pen=pg.mkPen("w", width=1.5),
                                                brush=None)
        self.output_plot.addItem(self.class_targets)
        self._structure: tuple | None = None
        self._bar_shown = False

    def _park_bar(self) -> None:
        """Keep the unused colour bar in the scene, hidden, rather than without a parent."""
        self.prob_bar.setParentItem(self.glw.ci)
        self.prob_bar.hide()

    # ------------------------------------------------------------------ drawing

    def _set_structure(self, kind: str, n_in: int, n_out: int, has_target: bool) -> None:
        """Restyle items and rebuild legends when the kind of data changes (rare).

        ``kind``: ``seq`` (a regression output per step), ``final`` (one output, at the
        last step), ``class_seq`` (class probabilities per step) or ``class_final``.
        """
        key = (kind, n_in, n_out, has_target)
        if key == self._structure:
            return
        self._structure = key
        for i, c in enumerate(self.input_curves):
            c.setVisible(i < n_in)
            c.setData([], [])
        self._in_legend = legend_html([(colormaps.line_color(i), f"x[{i}]")
                                       for i in range(n_in)]) if n_in > 1 else ""
        self._out_legend.clear()
        markers = kind in ("final", "class_final")
        for i in range(MAX_CHANNELS):
            color = colormaps.line_color(i)
            target, pred = self.target_curves[i], self.pred_curves[i]
            if markers:
                target.setPen(None)
                target.setSymbol("o")
                target.setSymbolSize(11)
                target.setSymbolBrush(color)
                target.setSymbolPen(pg.getConfigOption("foreground"))
                pred.setPen(None)
                pred.setSymbol("o")
                pred.setSymbolSize(16)
                pred.setSymbolBrush(None)
                pred.setSymbolPen(mkpen(color, 2.5))
            else:
                target.setPen(mkpen(color, 3.0))
                target.setSymbol(None)
                pred.setPen(mkpen(color, 2.0, "dash"))
                pred.setSymbol(None)
            target.setOpacity(0.55)
            show = kind != "class_seq" and i < n_out
            target.setVisible(show and has_target)
            pred.setVisible(show)
            target.setData([], [])
            pred.setData([], [])
            if show:
                suffix = f" [{i}]" if n_out > 1 else ""
                if has_target:
                    self._out_legend.addItem(target, f"target{suffix}")
                self._out_legend.addItem(pred, f"prediction{suffix}")
        probs = kind == "class_seq"
        self.prob_image.setVisible(probs)
        self.class_targets.setVisible(probs and has_target)
        if probs and not self._bar_shown:
            self.glw.addItem(self.prob_bar, row=1, col=1)
            self.prob_bar.show()
        elif self._bar_shown and not probs:
            self.glw.removeItem(self.prob_bar)
            self._park_bar()
        self._bar_shown = probs
        # one channel needs no legend; the title says which line is which
        self._out_legend.setVisible(n_out > 1 and kind != "class_seq")
        self.output_plot.setLabel("left", "class" if kind.startswith("class") else "output")

    def _draw(self) -> None:
        r = self._result
        model = r.experiment.model
        b = min(self._sample(), np.shape(r.x)[1] - 1)
        x = np.asarray(r.x)[:, b, :]
        T, D = x.shape
        self._n_steps = T
        steps = np.arange(T, dtype=np.float64)
        final = model.pattern == "many_to_one"
        classes = model.loss == "cross_entropy"
        out = np.asarray(r.arrays["output"])
        y = None if r.y is None else np.asarray(r.y)
        has_target = y is not None
        n_in = min(D, MAX_CHANNELS)
        kind = ("class_" if classes else "") + ("final" if final else "seq")
        n_out = 1 if classes else min(out.shape[-1], MAX_CHANNELS)
        self._set_structure(kind, n_in, n_out, has_target)

        table: dict[str, np.ndarray] = {"timestep": steps}
        for i in range(n_in):
            set_curve(self.input_curves[i], steps, x[:, i])  # the same after a knob edit
            table[f"input_{i}"] = x[:, i].astype(np.float64)
        more = f" (first {n_in} of {D} channels)" if D > n_in else ""
        x_t, legend = "Input x<sub>t</sub>", self._in_legend
        if legend:
            fit_title(self.input_plot, f"{x_t} — sample {b}{more}: {legend}",
                      f"Input · sample {b}: {legend}", legend, x_t)
        else:
            fit_title(self.input_plot, f"{x_t} — sample {b}{more}", f"{x_t} · sample {b}", x_t)

        if kind == "class_seq":
            probs = softmax(out[:, b, :])  # (T, O)
            self.prob_image.setImage(probs.T, autoLevels=False)
            self.prob_image.setRect(-0.5, -0.5, T, probs.shape[1])
            set_levels(self.prob_bar, (0.0, 1.0))
            self.output_plot.setYRange(-0.5, probs.shape[1] - 0.5, padding=0.02)
            titles = ["Class probabilities (colour)", "p(class)"]
            if has_target:
                target = y[:, b].astype(np.float64)
                self.class_targets.setData(steps, target)
                table["target_class"] = target
                titles = ["Class probabilities (colour) and target class (□)",
                          "p(class) and target □", "p(class)"]
            table["predicted_class"] = np.argmax(probs, axis=1).astype(np.float64)
            for k in range(probs.shape[1]):
                table[f"p_class_{k}"] = probs[:, k]
        elif final:
            row = out[b]
            at = np.array([T - 1.0])
            if classes:
                probs = softmax(row)
                preds = np.array([float(np.argmax(probs))])
                targets = np.array([float(y.reshape(-1)[b])]) if has_target else None
                c, p = int(preds[0]), f"{probs.max():.2f}"
                t = f", target {int(targets[0])}" if targets is not None else ""
                titles = [f"Final prediction: class {c} (p = {p}){t}",
                          f"Predicted class {c} (p = {p}){t}", f"class {c}{t}"]
                names = ["class"]
            else:
                preds = row[:n_out]
                targets = y.reshape(y.shape[0], -1)[b, :n_out] if has_target else None
                titles = (["Target (●) and prediction (○) at the final step",
                           "Target ● and prediction ○ (final step)", "● target ○ prediction"]
                          if has_target else
                          ["Prediction (○) at the final step", "Prediction ○ (final step)"])
                names = [str(i) for i in range(n_out)]
            for i, name in enumerate(names):
                self.pred_curves[i].setData(at, preds[i:i + 1])
                pad = np.full(T, np.nan)
                pad[-1] = preds[i]
                if targets is not None:
                    set_curve(self.target_curves[i], at, targets[i:i + 1])
                    pad_t = np.full(T, np.nan)
                    pad_t[-1] = targets[i]
                    table[f"target_{name}"] = pad_t
                table[f"prediction_{name}"] = pad
            shown = [preds] if targets is None else [preds, targets]
            set_y_range(self.output_plot, linear_range(*shown, pad=0.15))  # room for markers
        else:
            shown = [out[:, b, :n_out]]
            for i in range(n_out):
                self.pred_curves[i].setData(steps, out[:, b, i])
                table[f"prediction_{i}"] = out[:, b, i].astype(np.float64)
                if has_target:
                    set_curve(self.target_curves[i], steps, y[:, b, i])
                    table[f"target_{i}"] = y[:, b, i].astype(np.float64)
            if has_target:
                shown.append(y[:, b, :n_out])
            titles = (["Target (solid) and prediction (dashed)", "━ target  ╌ prediction"]
                      if has_target else ["Prediction (no target given)", "Prediction"])
            set_y_range(self.output_plot, linear_range(*shown))
        fit_title(self.output_plot, *titles)
        self._set_time_range(self.input_plot, T, padding=0.02 if not final else 0.04)
        set_y_range(self.input_plot, linear_range(x[:, :n_in]))
        self._table = table
