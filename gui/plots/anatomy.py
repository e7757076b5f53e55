"""(k) Anatomy of an LSTM cell: what each step learns, keeps, remembers and uses.

Top: the four parts of one step (:func:`core.anatomy.lstm_anatomy`) over time for one
sample, averaged over the units or for one unit — signed values, so the remembered
curve is the sum of the learnt and the kept ones.  Bottom: the size of each part,
the batch mean of its norm over the units, so parts that cancel across units in
the average above still show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QSpinBox

from core.anatomy import PARTS, has_anatomy, lstm_anatomy
from core.layout import CELL_NAMES

from .base import (
    Overlay,
    PlotPanel,
    batch_norm,
    compact_title_row,
    fit_title,
    layer_label,
    legend_html,
    linear_range,
    mkpen,
    set_spin_range,
    set_y_range,
    short_layer_label,
)

if TYPE_CHECKING:
    from core.probe import ProbeResult

# part → (colour, line style, legend text, short formula)
STYLE = {
    "learn": ("#009E73", "solid", "learn i⊙g", "i⊙g"),
    "forget": ("#E69F00", "solid", "forget f⊙c<sub>t−1</sub>", "f⊙c<sub>t−1</sub>"),
    "remember": ("#56B4E9", "solid", "remember c<sub>t</sub>", "c<sub>t</sub>"),
    "use": ("#CC79A7", "dash", "use o⊙tanh c<sub>t</sub> = h<sub>t</sub>", "h<sub>t</sub>"),
}
WIDTH = {"remember": 2.6}


class AnatomyPanel(PlotPanel):
    name = "anatomy"
    title = "LSTM anatomy"
    tooltip = ("The four parts of an LSTM step over time. learn = i⊙g: the new content the "
               "input gate lets into the cell; forget = f⊙c_{t−1}: what the forget gate keeps "
               "of the old cell state; remember = c_t = forget + learn: the memory carried on; "
               "use = o⊙tanh(c_t) = h_t: the part of it the output gate reads out. Top: one "
               "sample, the mean over units or one unit; bottom: the batch mean of each "
               "part's norm over the units. A CIFG couples its gates: i = 1 − f.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._make_layer_selector()
        self._make_sample_selector()
        self.unit_selector = QSpinBox(self._bar)
        self.unit_selector.setToolTip("The mean over the units, or one unit")
        self.unit_selector.setRange(-1, 0)
        self.unit_selector.setPrefix("unit ")
        self.unit_selector.setSpecialValueText("mean over units")
        self.unit_selector.setValue(-1)
        self.unit_selector.valueChanged.connect(self._redraw)
        self._add_control("", self.unit_selector)

        self.plot = self._add_plot(0, 0, "LSTM anatomy", "", "value")
        self.norm_plot = self._add_plot(1, 0, "Batch mean of ‖·‖ over units", "timestep",
                                        "batch mean ‖·‖")
        compact_title_row(self.norm_plot, 18)
        self.norm_plot.setXLink(self.plot)
        self.plot.getAxis("bottom").setStyle(showValues=False)
        self.plot.getAxis("bottom").setHeight(6)
        self.glw.ci.layout.setRowStretchFactor(0, 3)
        self.glw.ci.layout.setRowStretchFactor(1, 2)
        self._zero = self.plot.addLine(y=0, pen=pg.mkPen((128, 128, 128), width=1))
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.norm_curves: dict[str, pg.PlotDataItem] = {}
        for part in PARTS:
            colour, style, _text, _short = STYLE[part]
            width = WIDTH.get(part, 1.8)
            self.curves[part] = pg.PlotDataItem(pen=mkpen(colour, width, style))
            self.norm_curves[part] = pg.PlotDataItem(pen=mkpen(colour, width, style))
            self.plot.addItem(self.curves[part])
            self.norm_plot.addItem(self.norm_curves[part])
        self.overlay = Overlay(self.plot)
        self.norm_overlay = Overlay(self.norm_plot)
        self._legend = (legend_html([(STYLE[p][0], STYLE[p][2], STYLE[p][1]) for p in PARTS]),
                        legend_html([(STYLE[p][0], p, STYLE[p][1]) for p in PARTS]),
                        legend_html([(STYLE[p][0], STYLE[p][3], STYLE[p][1]) for p in PARTS]))
        self._cache: tuple[Any, ...] | None = None  # (result, key, parts, norms)
        self._shown: dict[str, np.ndarray] = {}
        self._connect_hover(self.plot, self._describe)
        self._connect_hover(self.norm_plot, self._describe_norm)

    # ------------------------------------------------------------------ selectors

    def _sync_selectors(self, result: ProbeResult) -> None:
        super()._sync_selectors(result)
        self._sync_units()

    def _sync_units(self) -> None:
        """The unit selector offers the units of the selected layer."""
        key, _cell = self._layer()
        h = self._result.arrays.get(f"h.{key}")
        units = int(np.shape(h)[2]) if h is not None and np.ndim(h) == 3 else 1
        set_spin_range(self.unit_selector, -1, max(units - 1, 0))

    # ------------------------------------------------------------------ drawing

    def _parts(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The four parts (T, B, H) and their batch-mean norms (T,), kept per result and layer."""
        r = self._result
        if self._cache is None or self._cache[0] is not r or self._cache[1] != key:
            carry = r.experiment.model.pattern != "output_recurrence"
            with np.errstate(all="ignore"):
                parts = lstm_anatomy(r.arrays, key, carry=carry)
                norms = {p: batch_norm(v) for p, v in parts.items()}
            self._cache = (r, key, parts, norms)
        return self._cache[2], self._cache[3]

    def _clear(self, message: str, short: str) -> None:
        for curve in (*self.curves.values(), *self.norm_curves.values()):
            curve.setData([], [])
        self._zero.setVisible(False)
        self._shown = {}
        self._table = {}
        self.overlay.set(message)
        self.norm_overlay.set(short)
        fit_title(self.plot, "LSTM anatomy")
        fit_title(self.norm_plot, "Batch mean of ‖·‖ over units", size="8pt")

    def _draw(self) -> None:
        r = self._result
        self._sync_units()  # another layer may have another number of units
        key, cell = self._layer()
        if cell not in ("lstm", "cifg"):
            article = "an" if cell == "rnn" else "a"
            self._clear(f"{layer_label(key)} is {article} {CELL_NAMES[cell]} cell.<br>The "
                        "learn, forget, remember and use parts belong to LSTM cells (and the "
                        "CIFG, with i = 1 − f), whose gates write to and read from a cell "
                        "state c.", "Only LSTM and CIFG cells have this anatomy.")
            return
        if not has_anatomy(r.arrays, key):
            self._clear("No gates and cell state for this layer in this result.", "")
            return
        self.overlay.set(None)
        self.norm_overlay.set(None)
        self._zero.setVisible(True)
        with np.errstate(all="ignore"):  # NaN/Inf of a diverged model: drawn as gaps
            parts, norms = self._parts(key)
        T = int(parts["remember"].shape[0])
        self._n_steps = T
        steps = np.arange(T, dtype=np.float64)
        b = min(self._sample(), parts["remember"].shape[1] - 1)
        unit = self.unit_selector.value()
        shown = {}
        for p in PARTS:
            sample = parts[p][:, b, :]
            with np.errstate(all="ignore"):
                shown[p] = (sample.mean(axis=1) if unit < 0
                            else sample[:, min(unit, sample.shape[1] - 1)])
            self.curves[p].setData(steps, shown[p])
            self.norm_curves[p].setData(steps, norms[p])
        self._shown = shown
        self._set_time_range(self.plot, T)
        self._set_time_range(self.norm_plot, T)
        set_y_range(self.plot, linear_range(*shown.values(), [0.0]))
        top = linear_range(*norms.values(), [0.0])
        set_y_range(self.norm_plot, None if top is None else (0.0, top[1]))
        which = "mean over units" if unit < 0 else f"unit {unit}"
        nothing_kept = r.experiment.model.pattern == "output_recurrence"
        note = " (no state crosses time: nothing to forget)" if nothing_kept else ""
        fit_title(self.plot, f"LSTM anatomy — {layer_label(key)}, sample {b}, {which}{note}",
                  f"LSTM anatomy — {layer_label(key)}, sample {b}, {which}",
                  f"Anatomy · {short_layer_label(key)} · #{b} · {which}",
                  f"{short_layer_label(key)} · #{b}")
        fit_title(self.norm_plot, *self._legend, size="8pt")
        self._table = {"timestep": steps, **shown,
                       **{f"batch_norm_{p}": norms[p] for p in PARTS}}

    def _describe(self, x: float, y: float) -> str | None:
        return self._describe_at(x, self._shown, "")

    def _describe_norm(self, x: float, y: float) -> str | None:
        norms = self._cache[3] if self._cache is not None and self._shown else {}
        return self._describe_at(x, norms, "‖·‖ ")

    @staticmethod
    def _describe_at(x: float, values: dict[str, np.ndarray], prefix: str) -> str | None:
        t = round(x)
        if not values or not 0 <= t < len(values["remember"]):
            return None
        return f"t = {t}: " + ", ".join(f"{prefix}{p} {values[p][t]:+.3f}" for p in PARTS)
