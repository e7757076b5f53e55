"""The Trace: every per-step array of one forward pass and its BPTT.

Arrays stay on the backend (NumPy or CuPy) until :meth:`Trace.to_arrays` copies
them to the host under the SPEC's ``trace.npz`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import Backend
from .experiment import ModelConfig


@dataclass
class LayerTrace:
    """One direction of one layer, arrays in time order: h, c (LSTM), gates, dh, dc (T, B, H)."""

    h: Any
    c: Any = None
    gates: dict[str, Any] = field(default_factory=dict)
    dh: Any = None
    dc: Any = None


@dataclass
class Trace:
    model: ModelConfig
    backend: Backend
    output: Any  # (T, B, O) or (B, O)
    layers: dict[str, LayerTrace]
    loss: float = float("nan")
    grads: dict[str, Any] = field(default_factory=dict)
    dx: Any = None  # dL/dx (T, B, D)
    feed: Any = None  # output_recurrence: the value fed back at each step (T, B, O)
    dh0: dict[str, Any] = field(default_factory=dict)  # dL/d(initial h) per layer key
    dc0: dict[str, Any] = field(default_factory=dict)  # dL/d(initial c), LSTM

    def gradnorm(self, key: str) -> Any:
        """(T,) mean over the batch of ‖dL/dh_t‖₂ for layer key ``key``."""
        dh = self.layers[key].dh
        xp = self.backend.xp
        return xp.sqrt(xp.einsum("tbh,tbh->tb", dh, dh)).mean(axis=-1)  # no (T, B, H) temporary

    @property
    def nonfinite(self) -> str | None:
        """Where NaN or Inf first appeared (layer and timestep), or None if all is finite."""
        return find_nonfinite(self)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Host copies under SPEC §3 keys: loss, output, h.L, c.L, gate.NAME.L, dh.L, dc.L,
        gradnorm.L, grad.PARAM."""
        host = self.backend.to_numpy
        out: dict[str, np.ndarray] = {"loss": np.asarray(self.loss, dtype=np.float64),
                                      "output": host(self.output)}
        for key, L in self.layers.items():
            out[f"h.{key}"] = host(L.h)
            if L.c is not None:
                out[f"c.{key}"] = host(L.c)
            for g, a in L.gates.items():
                out[f"gate.{g}.{key}"] = np.ascontiguousarray(host(a))
            if L.dh is not None:
                out[f"dh.{key}"] = host(L.dh)
                out[f"gradnorm.{key}"] = host(self.gradnorm(key))
            if L.dc is not None:
                out[f"dc.{key}"] = host(L.dc)
        for name, g in self.grads.items():
            out[f"grad.{name}"] = host(g)
        return out


def _first_bad_step(xp: Any, a: Any, reverse: bool) -> int | None:
    """First timestep (in processing order) where ``a`` (T, ...) is not finite."""
    bad = ~xp.isfinite(a).reshape(a.shape[0], -1).all(axis=1)
    idx = np.flatnonzero(np.asarray(bad.get() if hasattr(bad, "get") else bad))
    if idx.size == 0:
        return None
    return int(idx[-1] if reverse else idx[0])


def find_nonfinite(trace: Trace) -> str | None:
    """A message naming the first layer and timestep holding NaN/Inf, or None."""
    xp = trace.backend.xp
    for key, L in trace.layers.items():
        reverse = key.endswith("_reverse")
        for what, arr in (("hidden state h", L.h), ("cell state c", L.c)):
            if arr is not None:
                t = _first_bad_step(xp, arr, reverse)
                if t is not None:
                    return f"non-finite {what} in layer {key}, first at timestep {t}"
    if not np.isfinite(trace.loss):
        return "non-finite loss (the outputs overflowed)"
    for key, L in trace.layers.items():
        if L.dh is not None:
            # The backward pass runs against processing order, so the first bad step is
            # the last one in processing order.
            t = _first_bad_step(xp, L.dh, not key.endswith("_reverse"))
            if t is not None:
                return f"non-finite gradient dL/dh in layer {key}, first at timestep {t}"
    for name, g in trace.grads.items():
        if not bool(xp.isfinite(g).all()):
            return f"non-finite gradient of {name}"
    return None
