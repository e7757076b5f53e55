"""Parameter names and shapes, exactly as PyTorch's ``nn.RNN/LSTM/GRU`` name them.

``l{k}`` is layer k's forward cell, ``l{k}_reverse`` its reverse cell.  Besides
PyTorch's own names: ``weight_peep_l{k}`` (3, H) peephole weights (rows i, f, o),
``weight_oh_l0`` (G·H, O) output-to-hidden feedback of ``output_recurrence``, and
the linear head ``head.weight`` (O, H_out), ``head.bias`` (O).  minGRU and minLSTM have no
``weight_hh`` / ``bias_hh`` (their gates see only the input).
"""

from __future__ import annotations

from .experiment import LayerConfig, ModelConfig

GATES = {"rnn": (), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"),
         "cifg": ("f", "g", "o"), "mingru": ("z",), "minlstm": ("f", "i")}
BLOCKS = {"rnn": 1, "lstm": 4, "gru": 3, "cifg": 3, "mingru": 2, "minlstm": 3}
# How the cells are called in prose.
CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "cifg": "CIFG",
              "mingru": "minGRU", "minlstm": "minLSTM"}
# The row blocks of W_ih (and W_hh, W_oh) in order: the gates, and the candidate of
# minGRU/minLSTM (h̃, not a gate of the trace), or "h" for an RNN's single block.
ROW_BLOCKS = {**{c: g for c, g in GATES.items() if c not in ("rnn", "mingru", "minlstm")},
              "rnn": ("h",), "mingru": ("z", "h̃"), "minlstm": ("f", "i", "h̃")}
# Cells without hidden-to-hidden weights (no weight_hh, no bias_hh): their gates see
# only the input, and the step Jacobian ∂h_t/∂h_{t-1} is diagonal.
INPUT_ONLY = frozenset({"mingru", "minlstm"})
# The W_ih row block of the forget gate, which ``init.forget_bias`` shifts; cells
# without one (rnn, gru, mingru) are not in it.
FORGET_BLOCK = {"lstm": 1, "cifg": 0, "minlstm": 0}


def forget_rows(cell: str, H: int) -> slice | None:
    """The bias rows ``init.forget_bias`` shifts for ``cell`` (None: it has no forget gate)."""
    block = FORGET_BLOCK.get(cell)
    return None if block is None else slice(block * H, (block + 1) * H)


def directions(layer: LayerConfig) -> tuple[str, ...]:
    """Suffixes of the cells in a layer: ``("",)`` or ``("", "_reverse")``."""
    return ("", "_reverse") if layer.bidirectional else ("",)


def layer_keys(model: ModelConfig) -> list[tuple[int, str, str]]:
    """Every (layer index, suffix, trace key) in order, e.g. ``(0, "_reverse", "l0_reverse")``."""
    return [(k, d, f"l{k}{d}") for k, layer in enumerate(model.layers) for d in directions(layer)]


def layer_output_size(layer: LayerConfig) -> int:
    return layer.hidden_size * len(directions(layer))


def param_shapes(model: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name → shape of every parameter the model has, in a fixed order."""
    shapes: dict[str, tuple[int, ...]] = {}
    feedback = model.pattern == "output_recurrence"
    d_in = model.input_size
    for k, layer in enumerate(model.layers):
        H, G = layer.hidden_size, BLOCKS[layer.cell]
        for d in directions(layer):
            shapes[f"weight_ih_l{k}{d}"] = (G * H, d_in)
            hidden = not feedback and layer.cell not in INPUT_ONLY
            if hidden:
                shapes[f"weight_hh_l{k}{d}"] = (G * H, H)
            shapes[f"bias_ih_l{k}{d}"] = (G * H,)
            if hidden:
                shapes[f"bias_hh_l{k}{d}"] = (G * H,)
            if layer.peephole:
                shapes[f"weight_peep_l{k}{d}"] = (3, H)
            if feedback and k == 0:
                shapes["weight_oh_l0"] = (G * H, model.output_size)
        d_in = layer_output_size(layer)
    shapes["head.weight"] = (model.output_size, d_in)
    shapes["head.bias"] = (model.output_size,)
    return shapes


def param_family(name: str) -> str:
    """Which weight-scale knob a parameter answers to: input, recurrent, output or bias."""
    if name.startswith("weight_ih"):
        return "input"
    if name.startswith(("weight_hh", "weight_oh", "weight_peep")):
        return "recurrent"
    if name == "head.weight":
        return "output"
    return "bias"
