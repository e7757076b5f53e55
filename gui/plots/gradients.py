"""(e) Gradient magnitude per timestep, ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖ for LSTM and CIFG), on a log axis;
overlays: ρ^(T−1−t) for a linear RNN, the exact gate product ∏(1−z) or ∏ f′ for a minGRU
or minLSTM."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg

from core.diagnosis import CurveDiagnosis, below_float_range, diagnose_result
from core.diagonal import keep_theory
from core.layout import CELL_NAMES

from .. import colormaps
from .base import (
    PlotPanel,
    batch_norm,
    clear_curve,
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
from .pins import PIN_STYLES, PinnedCurves, pin_color, runs_legends

if TYPE_CHECKING:
    from core.probe import ProbeResult

GRAD = "‖∂L/∂h<sub>t</sub>‖"
DC = "‖∂L/∂c<sub>t</sub>‖"
VANISH_COLOR = (80, 140, 255, 90)
EXPLODE_COLOR = (255, 70, 40, 110)
FLOOR_COLOR = (128, 128, 128, 150)
FLOOR_LABEL = "below float range (0)"
# The colour of each finding of core.diagnosis in the note (None: the text colour).
KIND_COLORS = {"vanished": "#6fa0ff", "underflow": "#9a9a9a", "exploded": "#ff7050",
               "nonfinite": "#ff6060", "unreached": None, "entry": None}
VERDICT_COLORS = {"vanishing": "#6fa0ff", "exploding": "#ff7050", "non-finite": "#ff6060"}
BAND_ALPHA = 60  # the fill of a seed band (live run); pinned bands are fainter
PIN_BAND_ALPHA = 28
CELL_STATE = ("lstm", "cifg")  # cells whose ‖∂L/∂c_t‖ is drawn dashed


def log_ratio(live: np.ndarray, pinned: np.ndarray) -> np.ndarray:
    """log₁₀(live / pinned) per timestep (T,); NaN where either is not a positive number
    or the lengths differ (then all NaN)."""
    a = np.asarray(live, dtype=np.float64).ravel()
    b = np.asarray(pinned, dtype=np.float64).ravel()
    if a.size != b.size:
        return np.full(a.size, np.nan)
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    out = np.full(a.size, np.nan)
    out[ok] = np.log10(a[ok]) - np.log10(b[ok])
    return out


def _fill(plot: pg.PlotItem, z: float) -> tuple[pg.PlotDataItem, pg.PlotDataItem,
                                                  pg.FillBetweenItem]:
    """Two invisible curves and the fill between them, in ``plot`` at depth ``z``."""
    clear = pg.mkPen((0, 0, 0, 0))  # drawn (a FillBetweenItem needs their paths), unseen
    low, high = pg.PlotDataItem(pen=clear), pg.PlotDataItem(pen=clear)
    fill = pg.FillBetweenItem(low, high)
    for item in (low, high, fill):
        item.setZValue(z)
        plot.addItem(item)
    return low, high, fill


def _glow(item: pg.PlotDataItem, steps: np.ndarray, g: np.ndarray, where: np.ndarray) -> None:
    """Draw ``g`` only at the steps ``where`` marks; an empty glow stays empty without
    a redraw (most results mark none, and a curve of NaNs costs a whole update)."""
    if where.any():
        item.setData(steps, positive(np.where(where, g, np.nan)))
    else:
        clear_curve(item)


def _span(text: str, colour: str | None) -> str:
    return f'<span style="color:{colour}">{text}</span>' if colour else text


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


KEEP_LABEL = {"mingru": "∏(1−z)", "minlstm": "∏ f′"}


def keep_product_theory(result: ProbeResult) -> tuple[np.ndarray, str] | None:
    """For a one-layer, one-direction minGRU/minLSTM under hidden recurrence: the gradient
    that reaches each step from the last one through the gates alone,
    ‖dL/dh_{T−1} ⊙ ∏_{s>t} k_s‖ (batch mean; :func:`core.diagonal.keep_theory`), exact when
    only the last step has a loss — and its legend text; else None."""
    model = result.experiment.model
    if len(model.layers) != 1 or model.pattern == "output_recurrence":
        return None
    layer = model.layers[0]
    if layer.cell not in KEEP_LABEL or layer.bidirectional or "dh.l0" not in result.arrays:
        return None
    with np.errstate(all="ignore"):
        curve = keep_theory(result.arrays, "l0", layer.cell)
    return curve, f"theory {KEEP_LABEL[layer.cell]}"


class GradientsPanel(PlotPanel):
    name = "gradients"
    title = "Gradient flow over time"
    tooltip = ("How much gradient reaches each timestep during backpropagation through time: "
               "‖∂L/∂h_t‖ per layer and direction, the mean over the batch of the norm over "
               "units (dashed: ‖∂L/∂c_t‖ of LSTM and CIFG cells), log scale. Each step is judged against "
               "the gradient that enters where it can reach that step (from the loss, or from "
               "the layer above): a blue glow marks vanished gradient (under a millionth of "
               "the largest that entered), a red glow exploded gradient (over a thousand times "
               "all that entered). Steps whose gradient fell below the float range (exactly 0) "
               "are marked by a grey bar at the bottom. The note gives, per layer, the verdict "
               "and the gradient at the farthest step back over the one at the last step "
               "processed.")

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
        # the legend's sample for the bars of steps below the float range: never any data
        self.floor_sample = pg.PlotDataItem(pen=pg.mkPen(FLOOR_COLOR, width=6))
        self.plot.addItem(self.floor_sample)
        # Pools, one entry per layer and direction, only ever grown: items stay in the plot
        # (hidden when unused) rather than being removed and left without a scene.
        self._h_pool: list[pg.PlotDataItem] = []
        self._c_pool: list[pg.PlotDataItem] = []
        self._glow_pool: list[tuple[pg.PlotDataItem, pg.PlotDataItem]] = []
        self._floor_pool: list[pg.PlotDataItem] = []
        self.curves: dict[str, pg.PlotDataItem] = {}  # "h.L" / "c.L" → curve
        self.glows: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        # "L" → a bar at the bottom of the axis over the steps below the float range
        self.floors: dict[str, pg.PlotDataItem] = {}
        self._structure: tuple | None = None
        self._title_legend = ""
        # Pinned runs: "A.l0" → its curve, and their legend.
        self.pinned = PinnedCurves(self.plot)
        self._pins: tuple = ()
        # Seed bands (Lab.set_seeds): the live run's, then the pinned runs', pooled.
        self._band_pool: list[tuple[pg.PlotDataItem, pg.PlotDataItem, pg.FillBetweenItem]] = []
        self._pin_band_pool: list[tuple[pg.PlotDataItem, pg.PlotDataItem,
                                        pg.FillBetweenItem]] = []
        self.bands: dict[str, pg.FillBetweenItem] = {}  # "L" or "A.L" → its fill
        # The difference view: log₁₀(live / pinned) per timestep, shown while runs are pinned.
        self.diff = self._add_plot(2, 0, "Difference: log₁₀(live / pinned)", "timestep",
                                   "log₁₀ ratio")
        self.diff.addLine(y=0, pen=mkpen(pg.getConfigOption("foreground"), 1, "dot"))
        self.glw.ci.layout.setRowStretchFactor(0, 3)
        self.glw.ci.layout.setRowStretchFactor(2, 1)
        self.glw.removeItem(self.diff)
        self._diff_pool: list[pg.PlotDataItem] = []
        self.diff_curves: dict[str, pg.PlotDataItem] = {}  # "A.l0" → log ratio curve

    def set_pinned(self, runs: Sequence[tuple[Any, Sequence[str]]]) -> None:
        """Draw pinned runs (``core.lab.Pinned``) dashed and muted behind the live curves,
        each with its legend entry naming the pin and its ``differences``."""
        pins = tuple(pin for pin, _diffs in runs)
        series = []
        for i, pin in enumerate(pins):
            for j, key in enumerate(pin.layer_keys):
                band = pin.band(key)
                y = band[0] if band is not None else pin.gradient(key)
                series.append((i, j, f"{pin.label}.{key}", np.arange(np.size(y)), y))
        self.pinned.show(series, runs_legends(runs))
        self._draw_pin_bands(pins)
        if bool(pins) != bool(self._pins):
            if pins:
                self.glw.addItem(self.diff, row=2, col=0)
            else:
                self.glw.removeItem(self.diff)
        if pins != self._pins:  # new curves: the axis range takes them in
            self._pins = pins
            if self._result is not None:
                self._stale = True
                if not self._hidden_in_window():
                    self._catch_up()

    def _draw_pin_bands(self, pins: Sequence[Any]) -> None:
        """The seed band of each pinned run that has one, faint, behind everything."""
        bands = [(i, j, pin, key) for i, pin in enumerate(pins)
                 for j, key in enumerate(pin.layer_keys) if pin.band(key) is not None]
        while len(self._pin_band_pool) < len(bands):
            self._pin_band_pool.append(_fill(self.plot, -6))
        for low, high, fill in self._pin_band_pool:
            low.setData([], [])
            high.setData([], [])
            fill.setVisible(False)
        for k in [k for k in self.bands if "." in k]:
            del self.bands[k]
        for (low, high, fill), (_i, j, pin, key) in zip(self._pin_band_pool, bands,
                                                        strict=False):
            _mean, lo, hi = pin.band(key)
            self._set_band(low, high, fill, lo, hi, j, PIN_BAND_ALPHA)
            self.bands[f"{pin.label}.{key}"] = fill

    @staticmethod
    def _set_band(low: pg.PlotDataItem, high: pg.PlotDataItem, fill: pg.FillBetweenItem,
                  lo: np.ndarray, hi: np.ndarray, j: int, alpha: int) -> None:
        color = pin_color(j, alpha)
        steps = np.arange(np.size(lo), dtype=np.float64)
        # a band point that is not positive cannot be drawn on the log axis: both ends go
        low.setData(steps, positive(np.where(np.asarray(hi) > 0, lo, np.nan)))
        high.setData(steps, positive(np.where(np.asarray(lo) > 0, hi, np.nan)))
        fill.setBrush(pg.mkBrush(color))
        fill.setVisible(True)

    def _draw_band(self, layers: list[tuple[str, str]], band: Any,
                   table: dict[str, np.ndarray], shown: list[np.ndarray]) -> None:
        """The live run's seed band (``core.compare.SeedBand``) per layer, or none."""
        while len(self._band_pool) < len(layers):
            self._band_pool.append(_fill(self.plot, -4))
        for low, high, fill in self._band_pool:
            clear_curve(low)
            clear_curve(high)
            fill.setVisible(False)
        for k in [k for k in self.bands if "." not in k]:
            del self.bands[k]
        if band is None:
            return
        for j, ((key, _cell), (low, high, fill)) in enumerate(
                zip(layers, self._band_pool, strict=False)):
            if f"gradnorm.{key}" not in band.curves:
                continue
            mean, lo, hi = band.stats(f"gradnorm.{key}")
            self._set_band(low, high, fill, lo, hi, j, BAND_ALPHA)
            self.curves[f"h.{key}"].setData(np.arange(mean.size, dtype=np.float64),
                                            positive(mean))
            self.bands[key] = fill
            table[f"gradnorm.{key}.mean"] = mean
            table[f"gradnorm.{key}.low"] = lo
            table[f"gradnorm.{key}.high"] = hi
            shown.extend([lo, hi])

    def _draw_differences(self, layers: list[tuple[str, str]], live: dict[str, np.ndarray],
                          table: dict[str, np.ndarray]) -> None:
        """log₁₀(live / pinned) per timestep for every pinned run and layer."""
        pairs = [(i, j, pin, key) for i, pin in enumerate(self._pins)
                 for j, (key, _cell) in enumerate(layers)
                 if pin.gradient(key) is not None]
        while len(self._diff_pool) < len(pairs):
            item = pg.PlotDataItem()
            self.diff.addItem(item)
            self._diff_pool.append(item)
        self.diff_curves.clear()
        for item in self._diff_pool:
            item.setData([], [])
            item.setVisible(False)
        spans = []
        for item, (i, j, pin, key) in zip(self._diff_pool, pairs, strict=False):
            band = pin.band(key)
            ratio = log_ratio(live[key], band[0] if band is not None else pin.gradient(key))
            item.setPen(pg.mkPen(colormaps.line_color(j), width=2,
                                 style=PIN_STYLES[i % len(PIN_STYLES)]))
            item.setData(np.arange(ratio.size, dtype=np.float64), ratio)
            item.setVisible(True)
            self.diff_curves[f"{pin.label}.{key}"] = item
            table[f"logratio.{pin.label}.{key}"] = ratio
            spans.append(ratio[np.isfinite(ratio)])
        if not pairs:
            return
        values = np.concatenate(spans) if spans else np.zeros(0)
        top = max(float(np.max(np.abs(values))) if values.size else 0.0, 0.5)
        self.diff.setYRange(-top, top, padding=0.05)
        self._set_time_range(self.diff, len(next(iter(live.values()), ())))
        names = ", ".join(pin.label for pin in self._pins)
        fit_title(self.diff, f"Difference: log₁₀(live / pinned) per timestep — "
                  f"above 0 the live run keeps more gradient ({names})",
                  f"log₁₀(live / pinned) per timestep ({names})", "log₁₀(live / pinned)")

    def _grow(self, n: int) -> None:
        while len(self._h_pool) < n:
            color = colormaps.line_color(len(self._h_pool))
            glows = (pg.PlotDataItem(pen=pg.mkPen(VANISH_COLOR, width=9)),
                     pg.PlotDataItem(pen=pg.mkPen(EXPLODE_COLOR, width=9)))
            for g in glows:
                g.setZValue(-5)
                self.plot.addItem(g)
            self._glow_pool.append(glows)
            floor = pg.PlotDataItem(pen=pg.mkPen(color, width=5), connect="finite")
            self.plot.addItem(floor)
            self._floor_pool.append(floor)
            self._h_pool.append(pg.PlotDataItem(pen=mkpen(color, 2)))
            self._c_pool.append(pg.PlotDataItem(pen=mkpen(color, 1.5, "dash")))
            self.plot.addItem(self._h_pool[-1])
            self.plot.addItem(self._c_pool[-1])

    def _build(self, layers: list[tuple[str, str]], theory: str | None, floor: bool) -> None:
        """The curves, legend and title entries; ``theory`` the overlay's legend text."""
        structure = (tuple(layers), theory, floor)
        if structure == self._structure:
            return
        self._structure = structure
        self._grow(len(layers))
        self.curves.clear()
        self.glows.clear()
        self.floors.clear()
        self._legend.clear()
        for item in [*self._h_pool, *self._c_pool, *self._floor_pool,
                     *(g for pair in self._glow_pool for g in pair)]:
            item.setData([], [])
            item.setVisible(False)
        for i, (key, cell) in enumerate(layers):
            h, c, glows = self._h_pool[i], self._c_pool[i], self._glow_pool[i]
            self.curves[f"h.{key}"] = h
            self.glows[key] = glows
            self.floors[key] = self._floor_pool[i]
            for item in (h, *glows, self._floor_pool[i]):
                item.setVisible(True)
            self._legend.addItem(h, short_layer_label(key))
            if cell in CELL_STATE:
                c.setVisible(True)
                self.curves[f"c.{key}"] = c
        lstm = any(cell in CELL_STATE for _key, cell in layers)
        if lstm:
            self._legend.addItem(self.dc_sample, "‖∂L/∂c<sub>t</sub>‖ (dashed)")
        self.theory.setVisible(theory is not None)
        if theory:
            self._legend.addItem(self.theory, theory)
        if floor:
            self._legend.addItem(self.floor_sample, FLOOR_LABEL)
        # A few entries go into the title, where they never cover a curve; many need the box.
        fg = pg.getConfigOption("foreground")
        one = len(layers) == 1
        entries = [(colormaps.line_color(i), GRAD if one else short_layer_label(key))
                   for i, (key, _cell) in enumerate(layers)]
        if lstm:
            entries.append((colormaps.line_color(0) if one else fg, DC, "dash"))
        if theory:
            entries.append((fg, theory, "dot"))
        if floor:
            entries.append(("#9a9a9a", FLOOR_LABEL))
        small = len(entries) <= 3
        self._title_legend = legend_html(entries) if small and len(entries) > 1 else ""
        self._legend.setVisible(not small)

    def _draw(self) -> None:
        r = self._result
        layers = model_layers(r)
        rho = linear_rnn_theory(r)
        keep = keep_product_theory(r) if rho is None else None
        diagnosis = diagnose_result(r)
        found = {key: diagnosis.curves.get(key) for key, _cell in layers}
        floor = any(d is not None and d.underflow.any() for d in found.values())
        theory = ("theory ρ<sup>T−1−t</sup>" if rho is not None
                  else keep[1] if keep is not None else None)
        self._build(layers, theory, floor)
        T = int(np.shape(r.x)[0])
        self._n_steps = T
        steps = np.arange(T, dtype=np.float64)
        table: dict[str, np.ndarray] = {"timestep": steps}
        notes: list[tuple[str, str, str]] = []
        shown: list[np.ndarray] = []
        first_g: np.ndarray | None = None
        live: dict[str, np.ndarray] = {}
        for key, cell in layers:
            g = r.arrays.get(f"gradnorm.{key}")
            if g is None and f"dh.{key}" in r.arrays:
                g = batch_norm(r.arrays[f"dh.{key}"])
            if g is None:
                g = np.full(T, np.nan)
            g = np.asarray(g, dtype=np.float64).ravel()
            self.curves[f"h.{key}"].setData(steps, positive(g))
            table[f"gradnorm.{key}"] = g
            live[key] = g
            shown.append(g)
            if cell in CELL_STATE:
                dc = r.arrays.get(f"dc.{key}")
                c = batch_norm(dc) if dc is not None else np.full(T, np.nan)
                # a norm under the float type's smallest normal number is not drawn as a value
                tiny = below_float_range(c, dc.dtype) if dc is not None else np.zeros(T, bool)
                drawn = np.where(tiny, np.nan, c)
                self.curves[f"c.{key}"].setData(steps, positive(drawn))
                table[f"dcnorm.{key}"] = c
                shown.append(drawn)
            if first_g is None:
                first_g = g
            notes.append(self._flag(key, g, found[key]))
        band = getattr(r, "seed_band", None)
        self._draw_band(layers, band, table, shown)
        if band is not None:
            live = {key: band.stats(f"gradnorm.{key}")[0] if f"gradnorm.{key}" in band.curves
                    else g for key, g in live.items()}
            for key, _cell in layers:  # the glows go where the drawn (mean) curve is
                self._flag(key, live[key], found[key])
            seed = r.experiment.init.seed
            notes = [(f"{a} (seed {seed})", f"{b} (seed {seed})", c) for a, b, c in notes]
            what = html.escape(f"Curves: the {band.legend}; the verdicts are seed {seed}'s")
            notes.insert(0, (what, html.escape(band.legend), html.escape(band.legend)))
        legend = self._title_legend
        if getattr(r, "seed_note", ""):
            grey = f'<span style="color:#9a9a9a">{html.escape(r.seed_note)}</span>'
            notes.append((grey, grey, ""))
        if rho is not None and first_g is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                theory = first_g[-1] * rho ** (T - 1 - steps)
            self.theory.setData(steps, positive(theory))
            table["theory"] = theory
            shown.append(theory)
            what = legend or f"{GRAD} per timestep"
            fit_title(self.plot, f"Linear RNN, ρ = {rho:.3g}: {what}", f"{what}, ρ = {rho:.3g}",
                      f"{GRAD}, ρ = {rho:.3g}")
        elif keep is not None:  # minGRU/minLSTM: the gradient read off the gates
            curve, text = keep
            self.theory.setData(steps, positive(curve))
            table["theory"] = curve
            shown.append(curve)
            what = legend or f"{GRAD} per timestep"
            fit_title(self.plot, f"{CELL_NAMES[layers[0][1]]}, {text} from the last step: "
                      f"{what}", f"{what}, {text}", f"{GRAD}, {text}")
        elif legend:
            fit_title(self.plot, f"Gradient per timestep (batch mean): {legend}",
                      f"Per timestep: {legend}", legend, f"{GRAD} per timestep")
        else:
            fit_title(self.plot, f"Gradient per timestep {GRAD} (batch mean)",
                      f"{GRAD} per timestep (batch mean)", f"{GRAD} per timestep", GRAD)
        for pin in self._pins:  # its curves and bands (gradnorm.L, gradnorm.L.low, …)
            for key, values in pin.curves.items():
                if not key.startswith("gradnorm."):
                    continue
                shown.append(np.asarray(values, dtype=np.float64).ravel())
                if np.size(values) == T:
                    table[f"pinned.{pin.label}.{key}"] = np.asarray(values, np.float64).ravel()
        if self._pins:
            self._draw_differences(layers, live, table)
        self._set_time_range(self.plot, T)
        span = log_range(*shown)
        if span is not None and floor:  # room below the data for the bars
            span = (span[0] - 0.08 * (span[1] - span[0]) - 0.3, span[1])
        set_y_range(self.plot, span)
        self._draw_floors(layers, found, steps)
        if r.nonfinite:
            red = '<span style="color:#ff6060">Non-finite values{}</span>'
            notes.insert(0, (red.format(f": {r.nonfinite}"), red.format(""), red.format("")))
        variants = ["<br>".join(n[i] for n in notes if n[i]) for i in range(3)]
        fit_label(self.note, variants, size="8.5pt")
        self._table = table

    def _draw_floors(self, layers: list[tuple[str, str]],
                     found: dict[str, CurveDiagnosis | None], steps: np.ndarray) -> None:
        """A bar at the bottom of the axis over each curve's steps below the float range,
        one row per layer and direction."""
        lo, hi = self.plot.vb.viewRange()[1]  # log10 units
        for i, (key, _cell) in enumerate(layers):
            d = found[key]
            item = self.floors[key]
            if d is None or not d.underflow.any() or d.underflow.size != steps.size:
                clear_curve(item)
                continue
            y = 10.0 ** (lo + (0.02 + 0.03 * i) * (hi - lo))
            item.setData(steps, np.where(d.underflow, y, np.nan))

    def _flag(self, key: str, g: np.ndarray, d: CurveDiagnosis | None) -> tuple[str, str, str]:
        """Set the glows of curve ``g`` (T,) from the core's diagnosis ``d``; its note,
        long to short."""
        vanish_glow, explode_glow = self.glows[key]
        name = short_layer_label(key)
        steps = np.arange(g.size, dtype=np.float64)
        if d is None or d.vanished.size != g.size:
            clear_curve(vanish_glow)
            clear_curve(explode_glow)
            text = f"{name}: no gradient"
            return text, text, text
        _glow(vanish_glow, steps, g, d.faded)
        _glow(explode_glow, steps, g, d.exploded)
        verdict = _span(d.verdict, VERDICT_COLORS.get(d.verdict))
        ratio = "undefined" if d.ratio is None else fmt_sci(d.ratio)
        found = d.findings()
        details = "; ".join(_span(text, KIND_COLORS[kind]) for kind, text in found)
        brief = "; ".join(_span(text if kind != "entry" else f"judged by what enters from the "
                                f"{d.source}", KIND_COLORS[kind])
                          for kind, text in d.findings(limit=1))
        full = f"{name}: {verdict}, farthest/last step = {ratio}" + "; " * bool(details) + details
        mid = f"{name}: {verdict}, far/last {ratio}" + "; " * bool(brief) + brief
        short = f"{name}: {verdict} {ratio}"
        return full, mid, short
