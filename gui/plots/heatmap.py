"""A units × time heatmap of one per-step state array, shared by the hidden and cell panels."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import colormaps
from .base import (
    Overlay,
    PlotPanel,
    fit_title,
    grow_range,
    layer_label,
    set_levels,
    short_layer_label,
)


class StateHeatmapPanel(PlotPanel):
    """Heatmap of ``arrays[f"{prefix}.{L}"][:, sample, :]`` with units on y and time on x."""

    prefix = "h"
    symbol = "h"  # as written in titles and the colour bar
    quantity = "Hidden state"

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._make_layer_selector()
        self._make_sample_selector()
        self.plot = self._add_plot(0, 0, self.quantity, "timestep", "unit index")
        self.image, self.bar = self._add_heatmap(self.plot, colormaps.diverging(),
                                                 self.symbol, row=0, col=1)
        self.plot.vb.setDefaultPadding(0.0)
        self.overlay = Overlay(self.plot)
        self._shown: np.ndarray | None = None
        self._connect_hover(self.plot, self._describe)

    def _missing(self, key: str, cell: str) -> str | None:
        """A message when the selected layer has no such state, else None."""
        return None

    def _draw(self) -> None:
        r = self._result
        key, cell = self._layer()
        b = self._sample()
        arr = r.arrays.get(f"{self.prefix}.{key}")
        message = self._missing(key, cell)
        if message is None and arr is None:
            message = f"No {self.quantity.lower()} in this result."
        if message is not None:
            self.image.clear()
            self._shown = None
            self._table = {}
            self.overlay.set(message, hide=(self.bar,))
            fit_title(self.plot, self.quantity)
            return
        self.overlay.set(None, hide=(self.bar,))
        data = np.asarray(arr)[:, min(b, arr.shape[1] - 1), :].T  # (H, T)
        H, T = data.shape
        self._n_steps = T
        self.image.setImage(data, autoLevels=False)
        self.image.setRect(-0.5, -0.5, T, H)
        top = colormaps.symmetric_levels(data, bounded=1.0)[1]
        if top > 1.0:  # unbounded values (a cell state): a round level, kept while the
            # data fill more than half of it, so that a colour keeps its meaning over
            # small changes and the bar's axis is not laid out afresh for each
            top = grow_range(float(self.bar.levels()[1]), top)
        set_levels(self.bar, (-top, top))
        self._set_time_range(self.plot, T, padding=0)
        self.plot.setYRange(-0.5, H - 0.5, padding=0)
        sym = f"{self.symbol}<sub>t</sub>"
        fit_title(self.plot, f"{self.quantity} {sym} — {layer_label(key)}, sample {b}",
                  f"{sym} · {layer_label(key)} · sample {b}",
                  f"{sym} · {short_layer_label(key)} · #{b}", sym)
        self._shown = data
        self._table = {f"{self.prefix}.{key}": data}

    def _describe(self, x: float, y: float) -> str | None:
        data = self._shown
        if data is None:
            return None
        t, unit = round(x), round(y)
        if 0 <= t < data.shape[1] and 0 <= unit < data.shape[0]:
            return f"t = {t}, unit {unit}: {self.symbol} = {data[unit, t]:+.3f}"
        return None
