"""(c) Gate activations: one gate as a units × time heatmap, and every gate's mean over units."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox

from .. import colormaps
from .base import (
    Overlay,
    PlotPanel,
    compact_title_row,
    fit_title,
    gate_names,
    layer_label,
    legend_html,
    mkpen,
    set_color_map,
    set_levels,
    short_layer_label,
)

if TYPE_CHECKING:
    from core.probe import ProbeResult

GATE_LABELS = {
    "i": "input (learn = i⊙g)",
    "f": "forget (keep = f⊙old c)",
    "g": "candidate (new values)",
    "o": "output (use = o⊙tanh c)",
    "r": "reset",
    "z": "update",
    "n": "candidate",
}
# Where a cell's gate means something else than the LSTM's or GRU's gate of that name.
CELL_GATE_LABELS = {
    "cifg": {"f": "forget (keep = f⊙old c, write 1−f)"},
    "mingru": {"z": "update (keep = (1−z)⊙h, from x only)"},
    "minlstm": {"f": "forget f′ = f/(f+i) (keep = f′⊙h)",
                "i": "input i′ = i/(f+i) (learn = i′⊙h̃)"},
}


def gate_label(cell: str, gate: str) -> str:
    """``"f"`` → ``"forget (keep = f⊙old c)"``, as the gate means in ``cell``."""
    return CELL_GATE_LABELS.get(cell, {}).get(gate, GATE_LABELS[gate])


TANH_GATES = ("g", "n")  # candidates are tanh (signed); the rest are sigmoid gates in 0..1
MAX_GATES = 4


class GatesPanel(PlotPanel):
    name = "gates"
    title = "Gate activations"
    tooltip = ("Top: one gate's activation for every unit over time (sigmoid gates 0..1; the "
               "tanh candidate is signed). Bottom: each gate's mean over units. A forget gate "
               "near 1 keeps the cell state, and lets gradients through.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._make_layer_selector()
        self.gate_selector = QComboBox(self._bar)
        self.gate_selector.setToolTip("Which gate the heatmap shows")
        self.gate_selector.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.gate_selector.currentIndexChanged.connect(self._redraw)
        self._add_control("", self.gate_selector)
        self._make_sample_selector()

        self.plot = self._add_plot(0, 0, "Gate", "", "unit index")
        self.image, self.bar = self._add_heatmap(self.plot, colormaps.sequential(), "activation",
                                                 row=0, col=1)
        self.plot.vb.setDefaultPadding(0.0)
        self.trace_plot = self._add_plot(1, 0, "Mean over units", "timestep", "mean")
        compact_title_row(self.trace_plot, 18)
        self.trace_plot.setXLink(self.plot)
        self.trace_plot.setYRange(-1.05, 1.05, padding=0)
        self.trace_plot.getAxis("left").setTicks([[(v, f"{v:g}") for v in (-1, 0, 1)]])
        self._zero = self.trace_plot.addLine(y=0, pen=pg.mkPen((128, 128, 128), width=1))
        # the time axis below serves both plots: the heatmap keeps its height for the units
        self.plot.getAxis("bottom").setStyle(showValues=False)
        self.plot.getAxis("bottom").setHeight(6)
        self.glw.ci.layout.setRowStretchFactor(0, 3)
        self.glw.ci.layout.setRowStretchFactor(1, 2)
        self.curves = [pg.PlotDataItem(pen=mkpen(colormaps.line_color(i), 2))
                       for i in range(MAX_GATES)]
        for c in self.curves:
            self.trace_plot.addItem(c)
        self.overlay = Overlay(self.plot)
        self.trace_overlay = Overlay(self.trace_plot)
        self._gates: tuple[str, tuple[str, ...]] | None = None  # (cell, gates) shown
        self._legend_html: tuple[str, ...] = ("",)
        self._shown: np.ndarray | None = None
        self._connect_hover(self.plot, self._describe)

    def _sync_selectors(self, result: ProbeResult) -> None:
        super()._sync_selectors(result)
        self._sync_gates()

    def _sync_gates(self) -> None:
        _key, cell = self._layer()
        items = [(f"{g} — {gate_label(cell, g)}", g) for g in gate_names(cell)]
        self.gate_selector.setEnabled(bool(items))
        if not items:
            self.gate_selector.blockSignals(True)
            self.gate_selector.clear()
            self.gate_selector.blockSignals(False)
            return
        keys = [g for _label, g in items]
        keep = self.gate_selector.currentData()
        self._fill_combo(self.gate_selector, items)
        if keep not in keys:  # a new cell type: start on the gate that matters most
            default = "f" if "f" in keys else ("z" if "z" in keys else keys[0])
            self.gate_selector.blockSignals(True)
            self.gate_selector.setCurrentIndex(keys.index(default))
            self.gate_selector.blockSignals(False)

    def _set_gates(self, gates: tuple[str, ...]) -> None:
        cell = self._layer()[1]
        if (cell, gates) == self._gates:  # the labels depend on the cell too
            return
        self._gates = (cell, gates)
        self._zero.setVisible(bool(gates))
        for i, c in enumerate(self.curves):
            c.setVisible(i < len(gates))
            c.setData([], [])
        # The title doubles as the legend (it never covers the curves); shorter when narrow.
        colors = [colormaps.line_color(i) for i in range(len(gates))]
        self._legend_html = (
            legend_html([(c, f"{g} {gate_label(cell, g)}")
                         for c, g in zip(colors, gates, strict=True)]),
            legend_html([(c, f"{g} {gate_label(cell, g).split(' (')[0]}")
                         for c, g in zip(colors, gates, strict=True)]),
            legend_html([(c, g) for c, g in zip(colors, gates, strict=True)]))

    def _draw(self) -> None:
        self._sync_gates()  # the layer may have changed cell type
        r = self._result
        key, cell = self._layer()
        gates = gate_names(cell)
        self._set_gates(gates)
        if not gates:
            self.image.clear()
            self._shown = None
            self._table = {}
            msg = (f"{layer_label(key)} is a plain RNN cell: it has no gates.<br>"
                   "Gates belong to LSTM (i, f, g, o) and GRU (r, z, n) cells.")
            self.overlay.set(msg, hide=(self.bar,))
            self.trace_overlay.set("No gates to average.")
            fit_title(self.trace_plot, "Mean over units", size="8pt")
            fit_title(self.plot, "Gate activations")
            return
        self.overlay.set(None, hide=(self.bar,))
        self.trace_overlay.set(None)
        gate = self.gate_selector.currentData() or gates[0]
        b = self._sample()
        T = np.shape(r.x)[0]
        self._n_steps = T
        table: dict[str, np.ndarray] = {}
        steps = np.arange(T, dtype=np.float64)
        for i, g in enumerate(gates):
            arr = r.arrays.get(f"gate.{g}.{key}")
            if arr is None:
                self.curves[i].setData([], [])
                continue
            sample = np.asarray(arr)[:, min(b, arr.shape[1] - 1), :]
            mean = sample.mean(axis=1).astype(np.float64)
            self.curves[i].setData(steps, mean)
            table[f"mean_{g}"] = mean
            if g == gate:
                self._shown = sample.T
        data = self._shown if gate in gates else None
        if data is not None:
            H = data.shape[0]
            self.image.setImage(data, autoLevels=False)
            self.image.setRect(-0.5, -0.5, T, H)
            if gate in TANH_GATES:
                set_color_map(self.bar, colormaps.diverging())
                set_levels(self.bar, colormaps.symmetric_levels(data, bounded=1.0))
            else:
                set_color_map(self.bar, colormaps.sequential())
                set_levels(self.bar, (0.0, 1.0))
            self.plot.setYRange(-0.5, H - 0.5, padding=0)
            table = {f"gate.{gate}.{key}": data, "timestep": steps, **table}
        self._set_time_range(self.plot, T, padding=0)
        name = gate_label(self._layer()[1], gate).split(" (")[0]
        name, sym = name[0].upper() + name[1:], f"{gate}<sub>t</sub>"
        fit_title(self.plot, f"{name} gate {sym} — {layer_label(key)}, sample {b}",
                  f"{name} gate {sym} · {short_layer_label(key)} · #{b}",
                  f"{sym} · {short_layer_label(key)} · #{b}", sym)
        fit_title(self.trace_plot, *self._legend_html, size="8pt")
        self._table = table

    def _describe(self, x: float, y: float) -> str | None:
        data = self._shown
        if data is None:
            return None
        t, unit = round(x), round(y)
        if 0 <= t < data.shape[1] and 0 <= unit < data.shape[0]:
            gate = self.gate_selector.currentData() or "?"
            return f"t = {t}, unit {unit}: {gate} = {data[unit, t]:.3f}"
        return None
