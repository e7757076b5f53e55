"""Losses: the value and dL/d(output) in one call.

``mse`` is the mean over every output element of (o − y)²; ``cross_entropy`` the
mean over outputs of −log softmax(o)[y] with integer class targets.
"""

from __future__ import annotations

from typing import Any


def softmax(xp: Any, o: Any) -> Any:
    """Softmax over the last axis, shifted for stability."""
    e = xp.exp(o - o.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def mse(xp: Any, out: Any, y: Any) -> tuple[float, Any]:
    """(mean((out − y)²), 2 (out − y) / N); ``out`` and ``y`` of the same shape."""
    diff = out - y
    n = diff.size
    loss = float((diff * diff).sum()) / n
    diff *= 2.0 / n
    return loss, diff


def cross_entropy(xp: Any, out: Any, y: Any) -> tuple[float, Any]:
    """Softmax cross-entropy: ``out`` (..., C) logits, ``y`` (...) integer classes."""
    z = out - out.max(axis=-1, keepdims=True)
    e = xp.exp(z)
    total = e.sum(axis=-1, keepdims=True)
    flat_z = z.reshape(-1, z.shape[-1])
    idx = xp.arange(flat_z.shape[0])
    cls = y.reshape(-1)
    n = flat_z.shape[0]
    loss = float((xp.log(total).reshape(-1) - flat_z[idx, cls]).sum()) / n
    e /= total  # softmax
    flat_p = e.reshape(-1, e.shape[-1])
    flat_p[idx, cls] -= 1.0  # softmax − one-hot
    e /= n
    return loss, e


LOSSES = {"mse": mse, "cross_entropy": cross_entropy}
