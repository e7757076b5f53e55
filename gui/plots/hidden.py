"""(b) Hidden-state heatmap: units × time for one layer, direction and sample."""

from __future__ import annotations

from .heatmap import StateHeatmapPanel


class HiddenPanel(StateHeatmapPanel):
    name = "hidden"
    title = "Hidden state"
    tooltip = ("Hidden state h_t of every unit (rows) at every timestep (columns) for one "
               "sample. Blue is negative, red positive, white zero; hover to read a value.")
    prefix = "h"
    symbol = "h"
    quantity = "Hidden state"
