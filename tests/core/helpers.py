"""Shared builders for core tests: small models, data and finite differences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from core.backend import resolve_backend
from core.experiment import InitConfig, LayerConfig, ModelConfig
from core.init import init_params
from core.network import Network


def small_model(cell: str = "lstm", pattern: str = "many_to_many", bidirectional: bool = False,
                depth: int = 1, peephole: bool = False, activation: str = "tanh",
                loss: str = "mse", D: int = 2, H: int = 3, O: int = 2) -> ModelConfig:
    layers = [LayerConfig(cell=cell, hidden_size=H + k, bidirectional=bidirectional,
                          peephole=peephole, activation=activation) for k in range(depth)]
    return ModelConfig(input_size=D, output_size=O, layers=layers, pattern=pattern, loss=loss)


def small_data(model: ModelConfig, T: int = 5, B: int = 2, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, model.input_size))
    seq = model.pattern != "many_to_one"
    if model.loss == "cross_entropy":
        y = rng.integers(0, model.output_size, size=(T, B) if seq else (B,))
    else:
        y = rng.normal(size=(T, B, model.output_size) if seq else (B, model.output_size))
    return x, y


def network(model: ModelConfig, dtype: str = "float64", seed: int = 3, device: str = "numpy",
            scheme: str = "uniform", scale: float = 1.0, compiled: bool = True,
            time_loop: bool = True) -> Network:
    """A small network with random weights; ``compiled=False`` keeps the cells' NumPy
    steps on the CPU instead of the compiled ones (core.cells.native), and
    ``time_loop=False`` the compiled steps in the Python loop over t instead of the
    compiled time loop (core.cells.timeloop)."""
    init = InitConfig(scheme=scheme, seed=seed)
    init.scales.input = init.scales.recurrent = init.scales.output = scale
    params = init_params(model, init)
    # Random peepholes and biases so every term of every rule is exercised.
    rng = np.random.default_rng(seed + 100)
    for name, value in params.items():
        if name.startswith(("weight_peep", "bias")):
            params[name] = rng.uniform(-0.5, 0.5, size=value.shape)
    return Network(model, params, replace(resolve_backend(device, dtype), compiled=compiled,
                                          time_loop=time_loop))


def numeric_grad(f, a: np.ndarray, idx: list[tuple], eps: float = 1e-4) -> np.ndarray:
    """Central differences (five-point stencil, error O(eps⁴)) of the scalar ``f()``
    with respect to ``a[i]`` for i in idx; ``a`` is perturbed in place and restored."""
    out = np.empty(len(idx))
    for n, i in enumerate(idx):
        keep = a[i]
        vals = []
        for step in (-2, -1, 1, 2):
            a[i] = keep + step * eps
            vals.append(f())
        a[i] = keep
        out[n] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * eps)
    return out


def sample_indices(shape: tuple, n: int, rng: np.random.Generator) -> list[tuple]:
    """Up to ``n`` distinct indices of an array of ``shape`` (all of them when small)."""
    size = int(np.prod(shape))
    flat = np.arange(size) if size <= n else rng.choice(size, n, replace=False)
    return [np.unravel_index(int(i), shape) for i in flat]


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(np.linalg.norm(a), np.linalg.norm(b), 1e-12)
    return float(np.linalg.norm(a - b) / scale)
