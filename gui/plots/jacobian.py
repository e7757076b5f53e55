"""(f) Norm of the Jacobian product ‖∂h_{T−1}/∂h_t‖ over t, per layer and direction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg

from .. import colormaps
from .base import (
    Overlay,
    PlotPanel,
    fit_title,
    legend_html,
    log_range,
    mkpen,
    model_layers,
    positive,
    set_y_range,
    short_layer_label,
)
from .pins import PinAware, PinnedCurves

NORM = "‖∂h<sub>T−1</sub>/∂h<sub>t</sub>‖₂"
TITLES = (f"Jacobian product norm {NORM}", f"Jacobian norm {NORM}", NORM)


class JacobianPanel(PinAware, PlotPanel):
    name = "jacobian"
    analyses = ("jacobian",)
    title = "Jacobian products"
    tooltip = ("How strongly the last hidden state depends on the state at step t: the "
               "spectral norm ‖∂h_{T−1}/∂h_t‖₂ of the product of step Jacobians, log scale. "
               "A steady slope down to the left means memory (and gradient) fades "
               "exponentially with distance.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.plot = self._add_plot(0, 0, "Jacobian product norm", "timestep", "Jacobian norm",
                                   log_y=True)
        fit_title(self.plot, *TITLES)
        self._legend = self._add_legend(self.plot, columns=2)
        self.overlay = Overlay(self.plot)
        self._pool: list[pg.PlotDataItem] = []  # grown, never removed: items keep their scene
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._structure: tuple | None = None
        self.pinned = PinnedCurves(self.plot)

    def _build(self, keys: tuple[str, ...]) -> None:
        if keys == self._structure:
            return
        self._structure = keys
        while len(self._pool) < len(keys):
            c = pg.PlotDataItem(pen=mkpen(colormaps.line_color(len(self._pool)), 2))
            self.plot.addItem(c)
            self._pool.append(c)
        for c in self._pool:
            c.setData([], [])
            c.setVisible(False)
        self.curves.clear()
        self._legend.clear()
        for key, c in zip(keys, self._pool, strict=False):
            c.setVisible(True)
            self.curves[key] = c
            self._legend.addItem(c, short_layer_label(key))
        # one curve: the title says what it is; a few: the title holds the legend
        titles = TITLES
        if 1 < len(keys) <= 3:
            legend = legend_html([(colormaps.line_color(i), short_layer_label(key))
                                  for i, key in enumerate(keys)])
            titles = (f"{TITLES[0]}: {legend}", f"{NORM}: {legend}", legend, NORM)
        self._legend.setVisible(len(keys) > 3)
        fit_title(self.plot, *titles)

    def _draw(self) -> None:
        r = self._result
        jac = r.jacobian
        T = int(np.shape(r.x)[0])
        self._n_steps = T
        keys = tuple(key for key, _cell in model_layers(r) if key in jac)
        keys += tuple(sorted(k for k in jac if k not in keys))
        self._build(keys)
        if not keys:  # none, or not yet: an early result's products are on their way
            self._table = {}
            computing = "jacobian" in getattr(r, "pending", ())
            self.overlay.set("Computing the Jacobian products of these weights…" if computing
                             else "No Jacobian products in this result.", hide=(self._legend,))
            return
        self.overlay.set(None, hide=(self._legend,))
        self._legend.setVisible(len(keys) > 3)
        steps = np.arange(T, dtype=np.float64)
        table: dict[str, np.ndarray] = {"timestep": steps}
        shown = []
        for key in keys:
            y = np.asarray(jac[key], dtype=np.float64).ravel()
            x = steps if y.size == T else np.arange(y.size, dtype=np.float64)
            self.curves[key].setData(x, positive(y))
            shown.append(y)
            if y.size == T:
                table[f"jacobian.{key}"] = y
        series = []
        for i, pin in enumerate(self.pins):
            for j, key in enumerate(keys):
                y = pin.curves.get(f"jacobian.{key}")
                if y is not None:
                    series.append((i, j, f"{pin.label}.{key}", np.arange(np.size(y)), y))
                    if np.size(y) == T:
                        table[f"pinned.{pin.label}.jacobian.{key}"] = np.asarray(y, np.float64)
        self.pinned.show(series, self.pin_legends)
        shown.extend(self.pinned.values())
        self._set_time_range(self.plot, T)
        set_y_range(self.plot, log_range(*shown))
        self._table = table
