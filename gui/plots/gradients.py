"""(e) Gradient magnitude per timestep, ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖ for LSTM), on a log axis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg

from .. import colormaps
from .base import (
    PlotPanel,
    batch_norm,
    fit_label,
    fit_title,
    fmt_sci,
    legend_html,
    let_label_shrink,
    log_range,
    mkpen,
    model_layers,
    positive,
    set_y_range,
    short_layer_label,
)

if TYPE_CHECKING:
    from core.probe import ProbeResult

VANISH = 1e-3  # below this fraction of a curve's peak the gradient has vanished
EXPLODE = 1e3  # beyond this multiple of the last processed step it has exploded
GRAD = "‖∂L/∂h<sub>t</sub>‖"
DC = "‖∂L/∂c<sub>t</sub>‖"
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


def linear_rnn_theory(result: ProbeResult) -> float | None:
    """ρ of ``weight_hh_l0`` when the model is a single-layer linear RNN, else None."""
    model = result.experiment.model
    if (len(model.layers) != 1 or model.layers[0].cell != "rnn"
            or model.layers[0].activation != "linear" or model.pattern == "output_recurrence"):
        return None
    rho = result.spectral_radius.get("weight_hh_l0")
    if rho is None:
        eig = result.spectra.get("weight_hh_l0", {}).get("all")
        rho = float(np.max(np.abs(eig))) if eig is not None and len(eig) else None
    return None if rho is None or not np.isfinite(rho) else float(rho)


class GradientsPanel(PlotPanel):
    name = "gradients"
    title = "Gradient flow over time"
    tooltip = ("How much gradient reaches each timestep during backpropagation through time: "
               "‖∂L/∂h_t‖ per layer and direction, the mean over the batch of the norm over "
               "units (dashed: ‖∂L/∂c_t‖ of LSTM cells), log scale. A blue glow marks vanished "
               "gradients (below 10⁻³ of the peak, further back in time), a red glow exploding "
               "ones (over 10³× the last step). The note below gives, per layer, the gradient "
               "at the farthest step back over the one at the last step processed.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.plot = self._add_plot(0, 0, "Gradient per timestep", "timestep", "gradient norm",
                                   log_y=True)
        self._legend = self._add_legend(self.plot, columns=2)
        self.note = let_label_shrink(pg.LabelItem("", justify="left", size="8.5pt"))
        self.glw.addItem(self.note, row=1, col=0)
        fg = pg.getConfigOption("foreground")
        self.theory = pg.PlotDataItem(pen=mkpen(fg, 1.5, "dot"))
        self.plot.addItem(self.theory)
        # the legend's sample for the dashed cell-gradient curves: in the plot, never any data
        self.dc_sample = pg.PlotDataItem(pen=mkpen(fg, 1.5, "dash"))
        self.plot.addItem(self.dc_sample)
        # Pools, one entry per layer and direction, only ever grown: items stay in the plot
        # (hidden when unused) rather than being removed and left without a scene.
        self._h_pool: list[pg.PlotDataItem] = []
        self._c_pool: list[pg.PlotDataItem] = []
        self._glow_pool: list[tuple[pg.PlotDataItem, pg.PlotDataItem]] = []
        self.curves: dict[str, pg.PlotDataItem] = {}  # "h.L" / "c.L" → curve
        self.glows: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._structure: tuple | None = None
        self._title_legend = ""

    def _grow(self, n: int) -> None:
        while len(self._h_pool) < n:
            color = colormaps.line_color(len(self._h_pool))
            glows = (pg.PlotDataItem(pen=pg.mkPen(VANISH_COLOR, width=9)),
                     pg.PlotDataItem(pen=pg.mkPen(EXPLODE_COLOR, width=9)))
            for g in glows:
                g.setZValue(-5)
                self.plot.addItem(g)
            self._glow_pool.append(glows)
            self._h_pool.append(pg.PlotDataItem(pen=mkpen(color, 2)))
            self._c_pool.append(pg.PlotDataItem(pen=mkpen(color, 1.5, "dash")))
            self.plot.addItem(self._h_pool[-1])
            self.plot.addItem(self._c_pool[-1])

    def _build(self, layers: list[tuple[str, str]], theory: bool) -> None:
        structure = (tuple(layers), theory)
        if structure == self._structure:
            return
        self._structure = structure
        self._grow(len(layers))
        self.curves.clear()
        self.glows.clear()
        self._legend.clear()
        for item in [*self._h_pool, *self._c_pool, *(g for pair in self._glow_pool
                                                         for g in pair)]:
            item.setData([], [])
            item.setVisible(False)
        for i, (key, cell) in enumerate(layers):
            h, c, glows = self._h_pool[i], self._c_pool[i], self._glow_pool[i]
            self.curves[f"h.{key}"] = h
            self.glows[key] = glows
            for item in (h, *glows):
                item.setVisible(True)
            self._legend.addItem(h, short_layer_label(key))
            if cell == "lstm":
                c.setVisible(True)
                self.curves[f"c.{key}"] = c
        lstm = any(cell == "lstm" for _key, cell in layers)
        if lstm:
            self._legend.addItem(self.dc_sample, "‖∂L/∂c<sub>t</sub>‖ (dashed)")
        self.theory.setVisible(theory)
        if theory:
            self._legend.addItem(self.theory, "theory ρ<sup>T−1−t</sup>")
        # A few entries go into the title, where they never cover a curve; many need the box.
        fg = pg.getConfigOption("foreground")
        one = len(layers) == 1
        entries = [(colormaps.line_color(i), GRAD if one else short_layer_label(key))
                   for i, (key, _cell) in enumerate(layers)]
        if lstm:
            entries.append((colormaps.line_color(0) if one else fg, DC, "dash"))
        if theory:
            entries.append((fg, "theory ρ<sup>T−1−t</sup>", "dot"))
        small = len(entries) <= 3
        self._title_legend = legend_html(entries) if small and len(entries) > 1 else ""
        self._legend.setVisible(not small)

    def _draw(self) -> None:
        r = self._result
        layers = model_layers(r)
        rho = linear_rnn_theory(r)
        self._build(layers, rho is not None)
        T = int(np.shape(r.x)[0])
        self._n_steps = T
        steps = np.arange(T, dtype=np.float64)
        table: dict[str, np.ndarray] = {"timestep": steps}
        notes: list[tuple[str, str, str]] = []
        shown: list[np.ndarray] = []
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
            shown.append(g)
            if cell == "lstm":
                dc = r.arrays.get(f"dc.{key}")
                c = batch_norm(dc) if dc is not None else np.full(T, np.nan)
                self.curves[f"c.{key}"].setData(steps, positive(c))
                table[f"dcnorm.{key}"] = c
                shown.append(c)
            if first_g is None:
                first_g = g
            notes.append(self._flag(key, g))
        legend = self._title_legend
        if rho is not None and first_g is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                theory = first_g[-1] * rho ** (T - 1 - steps)
            self.theory.setData(steps, positive(theory))
            table["theory"] = theory
            shown.append(theory)
            what = legend or f"{GRAD} per timestep"
            fit_title(self.plot, f"Linear RNN, ρ = {rho:.3g}: {what}", f"{what}, ρ = {rho:.3g}",
                      f"{GRAD}, ρ = {rho:.3g}")
        elif legend:
            fit_title(self.plot, f"Gradient per timestep (batch mean): {legend}",
                      f"Per timestep: {legend}", legend, f"{GRAD} per timestep")
        else:
            fit_title(self.plot, f"Gradient per timestep {GRAD} (batch mean)",
                      f"{GRAD} per timestep (batch mean)", f"{GRAD} per timestep", GRAD)
        self._set_time_range(self.plot, T)
        set_y_range(self.plot, log_range(*shown))
        if r.nonfinite:
            red = '<span style="color:#ff6060">Non-finite values{}</span>'
            notes.insert(0, (red.format(f": {r.nonfinite}"), red.format(""), red.format("")))
        variants = ["<br>".join(n[i] for n in notes if n[i]) for i in range(3)]
        fit_label(self.note, variants, size="8.5pt")
        self._table = table

    def _flag(self, key: str, g: np.ndarray) -> tuple[str, str, str]:
        """Update the vanishing/exploding glows of one curve; describe them (long to short)."""
        vanish_glow, explode_glow = self.glows[key]
        finite = np.isfinite(g) & (g > 0)
        name = short_layer_label(key)
        if not finite.any():
            vanish_glow.setData([], [])
            explode_glow.setData([], [])
            text = f"{name}: no finite gradient"
            return text, text, text
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
        ratio = fmt_sci(float(far / ref if np.isfinite(ref) and ref > 0 else np.nan))
        flags = ["", ""]
        if vanish.any():
            flags[0] = f'<span style="color:#6fa0ff">vanished at {describe_runs(vanish)}</span>'
            flags[1] = '<span style="color:#6fa0ff">vanished</span>'
        if explode.any():
            flags[0] += "; " * bool(flags[0]) + (f'<span style="color:#ff7050">exploding at '
                                                 f'{describe_runs(explode)}</span>')
            flags[1] += "; " * bool(flags[1]) + '<span style="color:#ff7050">exploding</span>'
        full = f"{name}: farthest/last step = {ratio}" + "; " * bool(flags[0]) + flags[0]
        mid = f"{name}: far/last {ratio}" + "; " * bool(flags[0]) + flags[0]
        short = f"{name}: {ratio}" + "; " * bool(flags[1]) + flags[1]
        return full, mid, short
