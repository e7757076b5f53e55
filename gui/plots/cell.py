"""(d) Cell-state heatmap of an LSTM layer: units × time for one sample."""

from __future__ import annotations

from core.layout import CELL_NAMES

from .base import layer_label
from .heatmap import StateHeatmapPanel


class CellPanel(StateHeatmapPanel):
    name = "cell"
    title = "Cell state"
    tooltip = ("The LSTM cell state c_t (the long-term memory) of every unit over time for "
               "one sample. Diverging colours: blue negative, red positive. Only LSTM cells "
               "keep a cell state.")
    prefix = "c"
    symbol = "c"
    quantity = "Cell state"

    def _missing(self, key: str, cell: str) -> str | None:
        if cell not in ("lstm", "cifg"):
            return (f"No cell state for this cell: {layer_label(key)} is "
                    f"{'an' if cell == 'rnn' else 'a'} {CELL_NAMES[cell]} cell.<br>"
                    "Only LSTM (and CIFG) cells keep a separate cell state c<sub>t</sub>.")
        return None
