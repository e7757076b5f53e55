"""Which initialisation knobs act on a model, and in words why not where they do not.

A knob that does nothing for the chosen cells should say so rather than silently do
nothing: the forget-gate bias needs a forget gate (LSTM, CIFG, minLSTM), and the
recurrent scale needs hidden-to-hidden weights (every cell but minGRU and minLSTM), or
the output feedback ``weight_oh_l0`` of ``output_recurrence``.
"""

from __future__ import annotations

from .experiment import ModelConfig
from .layout import CELL_NAMES, FORGET_BLOCK, INPUT_ONLY


def _cells(model: ModelConfig) -> str:
    seen = dict.fromkeys(CELL_NAMES[layer.cell] for layer in model.layers)
    return ", ".join(seen)


def idle_knobs(model: ModelConfig) -> dict[str, str]:
    """Experiment paths of the knobs that have no effect on ``model`` → a one-line reason."""
    out: dict[str, str] = {}
    if not any(layer.cell in FORGET_BLOCK for layer in model.layers):
        out["init.forget_bias"] = (f"no effect: {_cells(model)} cells have no forget gate "
                                   "(LSTM, CIFG and minLSTM have one)")
    if (model.pattern != "output_recurrence"
            and all(layer.cell in INPUT_ONLY for layer in model.layers)):
        out["init.scales.recurrent"] = (f"no effect: {_cells(model)} cells have no "
                                        "hidden-to-hidden weights (their gates see only the "
                                        "input); their memory is set by the gates")
    return out
