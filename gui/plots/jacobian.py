"""(f) Norm of the Jacobian product ‖∂h_{T−1}/∂h_t‖ over t, per layer and direction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg

from .. import colormaps
from .base import Overlay, PlotPanel, mkpen, model_layers, positive, short_layer_label


class JacobianPanel(PlotPanel):
    name = "jacobian"
    title = "Jacobian products"
    tooltip = ("How strongly the last hidden state depends on the state at step t: the "
               "spectral norm ‖∂h_{T−1}/∂h_t‖₂ of the product of step Jacobians, log scale. "
               "A steady slope down to the left means memory (and gradient) fades "
               "exponentially with distance.")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.plot = self._add_plot(0, 0, "Jacobian product norm ‖∂h<sub>T−1</sub>/∂h<sub>t</sub>‖₂",
                                   "timestep",
                                   "Jacobian norm", log_y=True)
        self._legend = self._add_legend(self.plot, columns=2)
        self.overlay = Overlay(self.plot)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._structure: tuple | None = None

    def _build(self, keys: tuple[str, ...]) -> None:
        if keys == self._structure:
            return
        self._structure = keys
        for c in self.curves.values():
            self.plot.removeItem(c)
        self.curves.clear()
        self._legend.clear()
        for i, key in enumerate(keys):
            c = pg.PlotDataItem(pen=mkpen(colormaps.line_color(i), 2))
            self.plot.addItem(c)
            self.curves[key] = c
            self._legend.addItem(c, short_layer_label(key))

    def _draw(self) -> None:
        r = self._result
        jac = getattr(r, "jacobian", None) or {}
        T = int(np.shape(r.x)[0])
        self._n_steps = T
        keys = tuple(key for key, _cell in model_layers(r) if key in jac)
        keys += tuple(sorted(k for k in jac if k not in keys))
        self._build(keys)
        if not keys:
            self._table = {}
            self.overlay.set("No Jacobian products in this result.")
            return
        self.overlay.set(None)
        steps = np.arange(T, dtype=np.float64)
        table: dict[str, np.ndarray] = {"timestep": steps}
        for key in keys:
            y = np.asarray(jac[key], dtype=np.float64).ravel()
            x = steps if y.size == T else np.arange(y.size, dtype=np.float64)
            self.curves[key].setData(x, positive(y))
            if y.size == T:
                table[f"jacobian.{key}"] = y
        self._set_time_range(self.plot, T)
        self.plot.enableAutoRange(axis="y")
        self._table = table
