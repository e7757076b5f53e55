"""Initialisation schemes and the weight-scale knobs.

Every scheme draws in float64 from ``numpy.random.default_rng(seed)`` in the
fixed order of :func:`core.layout.param_shapes`, so a seed gives the same
weights on every backend and dtype.  Gate blocks (i, f, g, o or r, z, n) are
initialised one block at a time.

- ``uniform``: PyTorch's default, U(−1/√H, 1/√H) for every cell weight and bias;
  the head as ``nn.Linear``: U(−1/√fan_in, 1/√fan_in).
- ``normal``: N(0, 1/fan_in) weights, zero biases.
- ``orthogonal``: each H×H recurrent block orthogonal (QR of a Gaussian), input
  blocks semi-orthogonal, zero biases.
- ``identity``: the IRNN of Le, Jaitly & Hinton (2015): recurrent blocks the
  identity, input weights N(0, 1/fan_in), zero biases.
- ``xavier``: Glorot uniform U(±√(6/(fan_in+fan_out))) per block, zero biases.

Then weights are multiplied by their family's scale (input, recurrent, output)
and ``forget_bias`` is added to the forget-gate bias (``b_if`` of an LSTM, ``b_f`` of a
CIFG or minLSTM; GRU, minGRU and RNN cells have no forget gate).
"""

from __future__ import annotations

import numpy as np

from .experiment import InitConfig, ModelConfig
from .layout import BLOCKS, forget_rows, param_family, param_shapes


def _orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # a uniformly distributed orthogonal matrix
    return q if rows >= cols else q.T


def _block(scheme: str, family: str, rng: np.random.Generator, rows: int, cols: int,
           hidden: int) -> np.ndarray:
    if scheme == "uniform":
        bound = 1.0 / np.sqrt(hidden if family != "output" else cols)
        return rng.uniform(-bound, bound, size=(rows, cols))
    if scheme == "xavier":
        bound = np.sqrt(6.0 / (rows + cols))
        return rng.uniform(-bound, bound, size=(rows, cols))
    if scheme == "orthogonal":
        return _orthogonal(rng, rows, cols)
    if scheme == "identity" and family == "recurrent" and rows == cols:
        return np.eye(rows)
    return rng.normal(0.0, 1.0 / np.sqrt(cols), size=(rows, cols))


def init_params(model: ModelConfig, init: InitConfig) -> dict[str, np.ndarray]:
    """Fresh float64 parameters for ``model``, named as PyTorch names them."""
    rng = np.random.default_rng(init.seed)
    scales = {"input": init.scales.input, "recurrent": init.scales.recurrent,
              "output": init.scales.output, "bias": 1.0}
    hidden_of = {}
    for k, layer in enumerate(model.layers):
        hidden_of[f"l{k}"] = (layer.hidden_size, layer.cell)
    params: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(model).items():
        family = param_family(name)
        layer_tag = name.split("_l")[-1].split("_")[0] if "_l" in name else None
        H, cell = hidden_of[f"l{layer_tag}"] if layer_tag is not None else (shape[-1], "rnn")
        if name.startswith("weight_peep"):
            bound = 1.0 / np.sqrt(H)
            value = (rng.uniform(-bound, bound, size=shape) if init.scheme == "uniform"
                     else np.zeros(shape))
        elif family == "bias":
            if init.scheme == "uniform":
                fan = H if name.startswith("bias_") else model_head_fan(model)
                bound = 1.0 / np.sqrt(fan)
                value = rng.uniform(-bound, bound, size=shape)
            else:
                value = np.zeros(shape)
        else:
            rows, cols = shape
            G = BLOCKS[cell] if family != "output" else 1
            if name.startswith("weight_oh"):
                fam = "input"  # feedback of an output: treat like an input projection
                blocks = [_block(init.scheme, fam, rng, rows // G, cols, H) for _ in range(G)]
            else:
                blocks = [_block(init.scheme, family, rng, rows // G, cols, H) for _ in range(G)]
            value = np.concatenate(blocks, axis=0)
        value = value * scales[family]
        params[name] = np.ascontiguousarray(value, dtype=np.float64)
    for k, layer in enumerate(model.layers):
        rows = forget_rows(layer.cell, layer.hidden_size)
        if rows is not None and init.forget_bias:
            for d in ("", "_reverse") if layer.bidirectional else ("",):
                params[f"bias_ih_l{k}{d}"][rows] += init.forget_bias
    return params


def model_head_fan(model: ModelConfig) -> int:
    """fan_in of the head: the top layer's output width."""
    top = model.layers[-1]
    return top.hidden_size * (2 if top.bidirectional else 1)
