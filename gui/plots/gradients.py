"""(e) Gradient magnitude per timestep, ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖ for LSTM), on a log axis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg

from .. import colormaps
from .base import (
    PlotPanel,
    batch_norm,
    fmt_sci,
    let_label_shrink,
    mkpen,
    model_layers,
    positive,
    short_layer_label,
)

VANISH = 1e-3  # below this fraction of a curve's peak the gradient has vanished
EXPLODE = 1e3  # beyond this multiple of the last processed step it has exploded
VANISH_COLOR = (80, 140, 255, 90)
EXPLODE_COLOR = (255, 70, 40, 110)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(start, stop)`` index ranges where ``mask`` is true."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def describe_runs(mask: np.ndarray) -> str:
    parts = [f"t {a}" if a == b else f"t {a}–{b}" for a, b in runs(mask)]
    return ", ".join(parts[:2]) + (", …" if len(parts) > 2 else "")


def linear_rnn_theory(result: Any) -> float | None:
    """ρ of ``weight_hh_l0`` when the model is a single-layer linear RNN, else None."""
    model = result.experiment.model
    if (len(model.layers) != 1 or model.layers[0].cell != "rnn"
            or model.layers[0].activation != "linear" or model.pattern == "output_recurrence"):
        return None
    rho = (getattr(result, "spectral_radius", None) or {}).get("weight_hh_l0")
    if rho is None:
        eig = (getattr(result, "spectra", None) or {}).get("weight_hh_l0", {}).get("all")
        rho = float(np.max(np.abs(eig))) if eig is not None and len(eig) else None
    return None if rho is None or not np.isfinite(rho) else float(rho)


class GradientsPanel(PlotPanel):
    name = "gradients"
    title = "Gradient flow over time"
    tooltip = ("How much gradient reaches each timestep during backpropagation through time: "
               "‖∂L/∂h_t‖ per layer and direction (dashed: ‖∂L/∂c_t‖ of LSTM cells), log "
               "scale. A blue glow marks vanished gradients (below 10⁻³ of the peak, further "
               "back in time), a red glow exploding ones (over 10³× the last step).")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.plot = self._add_plot(0, 0, "Gradient per timestep", "timestep", "gradient norm",
                                   log_y=True)
        self._legend = self._add_legend(self.plot, columns=2)
        self.note = let_label_shrink(pg.LabelItem("", justify="left", size="8.5pt"))
        self.glw.addItem(self.note, row=1, col=0)
        self.theory = pg.PlotDataItem(pen=mkpen(pg.getConfigOption("foreground"), 1.5, "dot"))
        # legend sample for the dashed cell-gradient curves (never drawn itself)
        self.dc_sample = pg.PlotDataItem(pen=mkpen(pg.getConfigOption("foreground"), 1.5, "dash"))
        self.plot.addItem(self.theory)
        self.curves: dict[str, pg.PlotDataItem] = {}  # "h.L" / "c.L" → curve
        self.glows: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._structure: tuple | None = None

    def _build(self, layers: list[tuple[str, str]], theory: bool) -> None:
        structure = (tuple(layers), theory)
        if structure == self._structure:
            return
        self._structure = structure
        for item in [*self.curves.values(), *(g for pair in self.glows.values() for g in pair)]:
            self.plot.removeItem(item)
        self.curves.clear()
        self.glows.clear()
        self._legend.clear()
        for i, (key, cell) in enumerate(layers):
            color = colormaps.line_color(i)
            glows = (pg.PlotDataItem(pen=pg.mkPen(VANISH_COLOR, width=9)),
                     pg.PlotDataItem(pen=pg.mkPen(EXPLODE_COLOR, width=9)))
            for g in glows:
                g.setZValue(-5)
                self.plot.addItem(g)
            self.glows[key] = glows
            h = pg.PlotDataItem(pen=mkpen(color, 2))
            self.plot.addItem(h)
            self.curves[f"h.{key}"] = h
            self._legend.addItem(h, short_layer_label(key))
            if cell == "lstm":
                c = pg.PlotDataItem(pen=mkpen(color, 1.5, "dash"))
                self.plot.addItem(c)
                self.curves[f"c.{key}"] = c
        if any(cell == "lstm" for _key, cell in layers):
            self._legend.addItem(self.dc_sample, "‖∂L/∂c<sub>t</sub>‖ (dashed)")
        self.theory.setVisible(theory)
        if theory:
            self._legend.addItem(self.theory, "theory ρ<sup>T−1−t</sup>")

    def _draw(self) -> None:
        r = self._result
        layers = model_layers(r)
        rho = linear_rnn_theory(r)
        self._build(layers, rho is not None)
        T = int(np.shape(r.x)[0])
        self._n_steps = T
        steps = np.arange(T, dtype=np.float64)
        table: dict[str, np.ndarray] = {"timestep": steps}
        notes: list[str] = []
        first_g: np.ndarray | None = None
        for key, cell in layers:
            g = r.arrays.get(f"gradnorm.{key}")
            if g is None and f"dh.{key}" in r.arrays:
                g = batch_norm(r.arrays[f"dh.{key}"])
            if g is None:
                g = np.full(T, np.nan)
            g = np.asarray(g, dtype=np.float64).ravel()
            self.curves[f"h.{key}"].setData(steps, positive(g))
            table[f"gradnorm.{key}"] = g
            if cell == "lstm":
                dc = r.arrays.get(f"dc.{key}")
                c = batch_norm(dc) if dc is not None else np.full(T, np.nan)
                self.curves[f"c.{key}"].setData(steps, positive(c))
                table[f"dcnorm.{key}"] = c
            if first_g is None:
                first_g = g
            notes.append(self._flag(key, g))
        if rho is not None and first_g is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                theory = first_g[-1] * rho ** (T - 1 - steps)
            self.theory.setData(steps, positive(theory))
            table["theory"] = theory
            self.plot.setTitle(f"‖∂L/∂h<sub>t</sub>‖ per timestep — linear RNN, ρ = {rho:.3g}",
                               size="10pt")
        else:
            self.plot.setTitle("Gradient per timestep ‖∂L/∂h<sub>t</sub>‖ (batch mean)",
                               size="10pt")
        self._set_time_range(self.plot, T)
        self.plot.enableAutoRange(axis="y")
        if getattr(r, "nonfinite", None):
            notes.insert(0, f'<span style="color:#ff6060">Non-finite values: {r.nonfinite}</span>')
        self.note.setText("<br>".join(n for n in notes if n) or "")
        self._table = table

    def _flag(self, key: str, g: np.ndarray) -> str:
        """Update the vanishing/exploding glows of one curve and describe them in words."""
        vanish_glow, explode_glow = self.glows[key]
        finite = np.isfinite(g) & (g > 0)
        name = short_layer_label(key)
        if not finite.any():
            vanish_glow.setData([], [])
            explode_glow.setData([], [])
            return f"{name}: no finite gradient"
        steps = np.arange(g.size, dtype=np.float64)
        peak = np.nanmax(np.where(finite, g, np.nan))
        ref = g[0] if key.endswith("_reverse") else g[-1]  # last step the direction processed
        far = g[-1] if key.endswith("_reverse") else g[0]  # the farthest step back in time
        # Vanished: far below the peak, on the side of it the gradient travels towards.
        top = int(np.nanargmax(np.where(finite, g, np.nan)))
        behind = steps > top if key.endswith("_reverse") else steps < top
        vanish = finite & behind & (g < VANISH * peak)
        explode = finite & (g > EXPLODE * ref) if np.isfinite(ref) and ref > 0 else finite & False
        vanish_glow.setData(steps, positive(np.where(vanish, g, np.nan)))
        explode_glow.setData(steps, positive(np.where(explode, g, np.nan)))
        ratio = far / ref if np.isfinite(ref) and ref > 0 else np.nan
        text = f"{name}: farthest/last step = {fmt_sci(float(ratio))}"
        if vanish.any():
            text += f'; <span style="color:#6fa0ff">vanished at {describe_runs(vanish)}</span>'
        if explode.any():
            text += f'; <span style="color:#ff7050">exploding at {describe_runs(explode)}</span>'
        return text
