"""Cells whose gates see only the input (minGRU, minLSTM): their step Jacobian
∂h_t/∂h_{t-1} is the diagonal matrix diag(k_t), the *keep factor* k_t = 1 − z_t (minGRU)
or f′_t (minLSTM), read straight off the trace's gates.  There is no W_hh whose
eigenvalues could be drawn, so the analyses that look at W_hh for the other cells look
at these factors instead:

- :func:`step_jacobian_spectra` — the eigenvalues of the step Jacobian are its
  diagonal entries: per layer, the entries at the last step processed and each unit's
  geometric mean over the steps; the "spectral radius" is the largest geometric mean,
  ρ(J_{T−1} ⋯ J_0)^(1/T) over the T steps, the per-step rate of the slowest-fading unit.
- :func:`keep_jacobian_norms` — ‖∂h_last/∂h_t‖₂ = max_j ∏_{s after t} k_{s,j}, exact.
- :func:`keep_theory` — the gradient-flow overlay: dL/dh_t = dL/dh_last ⊙ ∏ k, exact when
  the loss reads only the last step processed (many_to_one, one layer).

All arrays are NumPy on the host, in time order (T, B, H) as the trace holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .experiment import ModelConfig
from .layout import INPUT_ONLY, layer_keys

PREFIX = "step_jacobian_"  # spectra names: "step_jacobian_l0", "step_jacobian_l1_reverse"
# What the factor is, per cell, in words
KEEP_TEXT = {"mingru": "1 − z", "minlstm": "f′"}


def keep_factors(cell: str, gates: Mapping[str, Any]) -> np.ndarray:
    """The diagonal of ∂h_t/∂h_{t-1} (T, B, H) from a layer's gates (``gate.z`` of a
    minGRU, the normalised ``gate.f`` of a minLSTM)."""
    if cell == "mingru":
        return 1.0 - np.asarray(gates["z"], dtype=np.float64)
    if cell == "minlstm":
        return np.asarray(gates["f"], dtype=np.float64)
    raise ValueError(f"{cell} cells have a full step Jacobian, not a diagonal one")


def _layer_gates(arrays: Mapping[str, Any], key: str) -> dict[str, Any]:
    tail = f".{key}"
    return {name[5:-len(tail)]: a for name, a in arrays.items()
            if name.startswith("gate.") and name.endswith(tail)}


def _suffix_products(k: np.ndarray, reverse: bool) -> np.ndarray:
    """P[t] = ∏ of k over the steps processed after t (1 at the last one), k (T, ...)."""
    order = k[::-1] if not reverse else k  # from the last step processed backwards
    prod = np.cumprod(order, axis=0)
    out = np.ones_like(prod)
    out[1:] = prod[:-1]
    return out[::-1] if not reverse else out


def step_jacobian_spectra(model: ModelConfig, arrays: Mapping[str, Any],
                          sample: int = 0) -> tuple[dict, dict]:
    """For every direction of a minGRU/minLSTM layer: ``({"step_jacobian_L": {"last": (H,),
    "mean": (H,)}}, {"step_jacobian_L": ρ})`` — the step Jacobian's eigenvalues (its
    diagonal) at the last step processed and as each unit's geometric mean over the T
    steps, for batch element ``sample``; ρ is the largest geometric mean.  Empty without
    such layers or under ``output_recurrence`` (no hidden recurrence there)."""
    eigs: dict[str, dict[str, np.ndarray]] = {}
    radius: dict[str, float] = {}
    if model.pattern == "output_recurrence":
        return eigs, radius
    for k, suffix, key in layer_keys(model):
        cell = model.layers[k].cell
        if cell not in INPUT_ONLY:
            continue
        keep = keep_factors(cell, _layer_gates(arrays, key))[:, sample]  # (T, H)
        with np.errstate(divide="ignore"):
            mean = np.exp(np.log(keep).mean(axis=0))
        last = keep[0] if suffix else keep[-1]
        eigs[PREFIX + key] = {"last": last.astype(complex), "mean": mean.astype(complex)}
        radius[PREFIX + key] = float(mean.max()) if mean.size else float("nan")
    return eigs, radius


def keep_jacobian_norms(keep: np.ndarray, reverse: bool = False) -> np.ndarray:
    """(T,) ‖∂h_last/∂h_t‖₂ for one sample's keep factors ``keep`` (T, H): the Jacobian
    product is diag(∏ k), whose 2-norm is its largest entry."""
    return np.abs(_suffix_products(np.asarray(keep, dtype=np.float64), reverse)).max(axis=-1)


def keep_theory(arrays: Mapping[str, Any], key: str, cell: str,
                reverse: bool = False) -> np.ndarray:
    """(T,) batch mean of ‖dL/dh_last ⊙ ∏_{s after t} k_s‖: the gradient that reaches step t
    from the last step processed, through the gates alone.  It is the whole dL/dh_t when
    the loss reads only that step (a one-layer many_to_one model)."""
    keep = keep_factors(cell, _layer_gates(arrays, key))
    dh = np.asarray(arrays[f"dh.{key}"], dtype=np.float64)
    last = dh[0] if reverse else dh[-1]  # (B, H)
    reach = _suffix_products(keep, reverse) * last
    return np.sqrt((reach * reach).sum(axis=-1)).mean(axis=-1)
