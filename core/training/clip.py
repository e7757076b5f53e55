"""Gradient clipping: by global norm (Pascanu, Mikolov & Bengio 2013) or by value.

Works in place on ``dict[str, array]`` gradients (NumPy or CuPy).  Non-finite
gradients are never scaled (that would spread NaN everywhere); the norms come
back as ``nan``/``inf`` so the caller can stop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..experiment import ClipConfig


def global_norm(grads: Mapping[str, Any]) -> float:
    """‖g‖₂ over every gradient array together; ``inf`` or ``nan`` when not finite.

    Sums of squares that overflow although every entry is finite are recomputed
    with rescaling, so a finite gradient always has a finite norm.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _global_norm(grads)


def _global_norm(grads: Mapping[str, Any]) -> float:
    arrays = [g for g in grads.values() if g is not None and g.size]
    if not arrays:
        return 0.0
    total = None
    for g in arrays:
        s = (g * g).sum()
        total = s if total is None else total + s
    norm = math.sqrt(float(total))
    if math.isfinite(norm):
        return norm
    peak = max(float(abs(g).max()) for g in arrays)
    if not math.isfinite(peak):
        return float("nan") if any(bool((g != g).any()) for g in arrays) else float("inf")
    acc = 0.0
    for g in arrays:  # rescaled by the largest entry, so no square overflows
        acc += float(((g / peak) ** 2).sum())
    return peak * math.sqrt(acc)


def clip_gradients(grads: Mapping[str, Any], clip: ClipConfig) -> tuple[float, float]:
    """Clip ``grads`` in place as ``clip.mode`` says; return (norm before, norm after).

    - ``none``: untouched.
    - ``norm``: if ‖g‖ > max_norm, every gradient is scaled by max_norm/‖g‖.
    - ``value``: every entry is clamped to [−max_value, max_value].
    """
    before = global_norm(grads)
    if not math.isfinite(before) or clip.mode == "none":
        return before, before
    if clip.mode == "norm":
        if before > clip.max_norm:
            scale = clip.max_norm / before
            for g in grads.values():
                if g is not None:
                    g *= scale
            return before, clip.max_norm
        return before, before
    if clip.mode == "value":
        v = clip.max_value
        for g in grads.values():
            if g is not None:
                g.clip(-v, v, out=g)
        return before, global_norm(grads)
    raise ValueError(f"unknown clip mode {clip.mode!r}")
