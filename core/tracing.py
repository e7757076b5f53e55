"""The Trace: every per-step array of one forward pass and its BPTT.

Arrays stay on the backend (NumPy or CuPy) until :meth:`Trace.to_arrays` copies
them to the host under the SPEC's ``trace.npz`` keys.
"""

from __future__ import annotations

import math
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
        # Squares summed in float64: float32 gradients of 1e19 (or 1e-22) would overflow
        # (or underflow) when squared in their own precision, though they are finite.
        # einsum, so there is no (T, B, H) temporary.
        sq = xp.einsum("tbh,tbh->tb", dh, dh, dtype=xp.float64)
        return xp.sqrt(sq).mean(axis=-1).astype(dh.dtype, copy=False)

    @property
    def nonfinite(self) -> str | None:
        """Where NaN or Inf first appeared — quantity, layer, direction and timestep
        (:func:`find_nonfinite`) — or None if all is finite."""
        return find_nonfinite(self)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Host copies under SPEC §3 keys: loss, output, h.L, c.L, gate.NAME.L, dh.L, dc.L,
        gradnorm.L, grad.PARAM."""
        xp = self.backend.xp
        out: dict[str, Any] = {"loss": np.asarray(self.loss, dtype=np.float64),
                               "output": self.output}
        for key, L in self.layers.items():
            out[f"h.{key}"] = L.h
            if L.c is not None:
                out[f"c.{key}"] = L.c
            for g, a in L.gates.items():  # a gate's block of (G, T, B, H), or a copy
                out[f"gate.{g}.{key}"] = a if a.flags.c_contiguous else xp.ascontiguousarray(a)
            if L.dh is not None:
                out[f"dh.{key}"] = L.dh
                out[f"gradnorm.{key}"] = self.gradnorm(key)
            if L.dc is not None:
                out[f"dc.{key}"] = L.dc
        for name, g in self.grads.items():
            out[f"grad.{name}"] = g
        if self.backend.name == "cupy":
            host = self.backend.to_numpy
            return {k: a if k == "loss" else host(a) for k, a in out.items()}
        # On the CPU the arrays are NumPy's already: the pass's own, which its workspace
        # never lends again while they are referred to.
        return out


def _first_bad_step(xp: Any, a: Any, reverse: bool) -> int | None:
    """First timestep (in processing order) where ``a`` (T, ...) is not finite."""
    bad = ~xp.isfinite(a).reshape(a.shape[0], -1).all(axis=1)
    idx = np.flatnonzero(np.asarray(bad.get() if hasattr(bad, "get") else bad))
    if idx.size == 0:
        return None
    return int(idx[-1] if reverse else idx[0])


# What each array of a LayerTrace holds, for messages; a step computes the gates, then c, then h.
QUANTITIES = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o",
              "r": "reset gate r", "z": "update gate z", "n": "candidate n",
              "c": "cell state c", "h": "hidden state h"}


def _kind(xp: Any, a: Any) -> str:
    """"NaN" if ``a`` holds a NaN, else "Inf"."""
    return "NaN" if bool(xp.isnan(a).any()) else "Inf"


def layer_place(key: str) -> str:
    """``"l1_reverse"`` → ``"layer l1 (reverse direction)"``."""
    direction = "reverse" if key.endswith("_reverse") else "forward"
    return f"layer {key.removesuffix('_reverse')} ({direction} direction)"


def _first_bad_state(trace: Trace) -> tuple[int, str] | None:
    """(timestep, message) of the first non-finite forward value (h, c or a gate) in the
    order the pass computes them, or None.  Layer by layer (forward direction first),
    except ``output_recurrence``, which runs step by step through all its layers."""
    xp = trace.backend.xp
    feedback = trace.model.pattern == "output_recurrence"
    found: list[tuple[int, int, int, str]] = []  # (processing position, layer order, t, msg)
    for order, (key, L) in enumerate(trace.layers.items()):
        reverse = key.endswith("_reverse")
        T = L.h.shape[0]
        ts = [t for a in (L.h, L.c) if a is not None
              for t in [_first_bad_step(xp, a, reverse)] if t is not None]
        if not ts:
            continue
        t = max(ts) if reverse else min(ts)
        for name, a in [*L.gates.items(), ("c", L.c), ("h", L.h)]:
            if a is not None and not bool(xp.isfinite(a[t]).all()):
                msg = (f"the {QUANTITIES.get(name, name)} of {layer_place(key)} became "
                       f"{_kind(xp, a[t])} at timestep {t}")
                break
        found.append((T - 1 - t if reverse else t, order, t, msg))
        if not feedback:
            break  # the layers above read this one: it is where the trouble began
    if not found:
        return None
    _pos, _order, t, msg = min(found)
    return t, msg


def _first_bad_gradient(trace: Trace) -> tuple[int, str] | None:
    """(timestep, message) of the first non-finite dL/dh in the order BPTT computes it
    (from the top layer down, each direction against its processing order), or None."""
    xp = trace.backend.xp
    feedback = trace.model.pattern == "output_recurrence"
    items = [(key, L) for key, L in trace.layers.items() if L.dh is not None]
    by_layer: dict[str, list[tuple[str, LayerTrace]]] = {}
    for key, L in items:
        by_layer.setdefault(key.removesuffix("_reverse"), []).append((key, L))
    order = [kl for layer in reversed(list(by_layer.values())) for kl in layer]
    found: list[tuple[int, int, int, str]] = []  # (BPTT position, order, t, msg)
    for n, (key, L) in enumerate(order):
        reverse = key.endswith("_reverse")
        T = L.dh.shape[0]
        t = _first_bad_step(xp, L.dh, not reverse)
        if t is None:
            continue
        msg = (f"the gradient dL/dh of {layer_place(key)} became {_kind(xp, L.dh[t])} "
               f"at timestep {t}")
        found.append((t if reverse else T - 1 - t, n, t, msg))
        if not feedback:
            break
    if not found:
        return None
    _pos, _n, t, msg = min(found)
    return t, msg


def _output_place(trace: Trace, t: int) -> str:
    """Which states the output at timestep ``t`` reads."""
    top_layer = list(trace.layers)[-1].removesuffix("_reverse")
    top = [k for k in trace.layers if k.removesuffix("_reverse") == top_layer]
    if np.ndim(trace.output) == 2:  # many_to_one: the last step of each direction
        T = trace.layers[top[0]].h.shape[0]
        read = (f"timestep {T - 1} forward and 0 reverse" if len(top) > 1
                else f"timestep {T - 1}, forward direction")
        return f"the read-out of layer {top_layer}'s last states ({read})"
    dirs = "forward and reverse directions" if len(top) > 1 else "forward direction"
    return f"the output at timestep {t}, read from layer {top_layer} ({dirs})"


def param_place(name: str) -> str:
    """Where a parameter sits: ``weight_hh_l1_reverse`` → ``layer l1 (reverse
    direction)``; ``head.weight`` → ``the head``."""
    if name.startswith("head."):
        return "the head"
    i = name.rfind("_l")
    return layer_place(name[i + 1:]) if i >= 0 else "the model"


def _peak_step(xp: Any, a: Any) -> int:
    """The timestep of ``a`` (T, …) with the largest finite magnitude (0 if none)."""
    with np.errstate(all="ignore"):
        mags = xp.abs(a).reshape(a.shape[0], -1)
        mags = xp.where(xp.isfinite(mags), mags, xp.inf).max(axis=1)
    host = np.asarray(mags.get() if hasattr(mags, "get") else mags, dtype=np.float64)
    return int(host.argmax()) if host.size else 0


def output_where(trace: Trace) -> str:
    """The output with the largest magnitude: its timestep, and the layer and
    directions it reads."""
    out = trace.output
    t = _peak_step(trace.backend.xp, out) if np.ndim(out) == 3 else 0
    return f"the largest is {_output_place(trace, t)}"


def param_where(trace: Trace, name: str) -> str:
    """``name`` with its layer, direction and the timestep whose contribution to its
    gradient is largest: the step where that layer's dL/dh (for the head, the
    output) is largest in magnitude, non-finite values counting largest."""
    if name.startswith("head.") or name.startswith("weight_oh"):
        out = trace.output
        if np.ndim(out) == 3:
            t = _peak_step(trace.backend.xp, out)
            return (f"{name} of {param_place(name)}, whose largest contribution came at "
                    f"timestep {t},")
        T = next(iter(trace.layers.values())).h.shape[0]
        return f"{name} of {param_place(name)}, which reads timestep {T - 1},"
    i = name.rfind("_l")
    key = name[i + 1:] if i >= 0 else ""
    L = trace.layers.get(key)
    if L is not None and L.dh is not None:
        t = _peak_step(trace.backend.xp, L.dh)
        return (f"{name} of {param_place(name)}, whose largest contribution came at "
                f"timestep {t},")
    return f"{name} of {param_place(name)}"


def find_nonfinite(trace: Trace) -> str | None:
    """Where NaN or Inf first appeared, or None if all is finite.

    Names the quantity, the layer and direction and the timestep: the first
    non-finite forward value (gate, cell state c, hidden state h, then the output), in
    the order the pass computes them; with a finite forward pass, the first
    non-finite dL/dh in the order BPTT computes it; a loss that overflowed names
    the output it came from and says whether dL/dh stayed finite.
    """
    xp = trace.backend.xp
    state = _first_bad_state(trace)
    out = trace.output
    out_t = None
    if out is not None:
        if np.ndim(out) == 3:
            out_t = _first_bad_step(xp, out, False)
        elif not bool(xp.isfinite(out).all()):
            out_t = next(iter(trace.layers.values())).h.shape[0] - 1
    feedback = trace.model.pattern == "output_recurrence"
    if state is not None and not (feedback and out_t is not None and out_t < state[0]):
        return state[1]
    if out_t is not None:
        return (f"{_output_place(trace, out_t)} became {_kind(xp, out)} while every state "
                f"before it was finite")
    grad = _first_bad_gradient(trace)
    loss = float(trace.loss)
    # Only an infinite loss counts here: on finite outputs and (checked) targets neither
    # loss can be NaN, so a NaN loss is one never computed (no target, or a given dL/do).
    if math.isinf(loss):
        mags = xp.abs(out).reshape(out.shape[0], -1).max(axis=1) if np.ndim(out) == 3 else None
        t = (int(np.asarray(mags.get() if hasattr(mags, "get") else mags).argmax())
             if mags is not None else next(iter(trace.layers.values())).h.shape[0] - 1)
        largest = float(xp.abs(out).max())
        dtype = np.dtype(trace.backend.dtype).name
        how = (f"the squared errors of outputs as large as {largest:.2g} add up past the "
               f"{dtype} range" if trace.model.loss == "mse" else
               f"the cross-entropy of logits as large as {largest:.2g} overflowed {dtype}")
        then = (f"; then {grad[1]}" if grad is not None
                else "; every state and every dL/dh stayed finite")
        return f"the loss became Inf: {how}, the largest in {_output_place(trace, t)}{then}"
    if grad is not None:
        return f"with every forward value finite, {grad[1]}"
    for name, g in trace.grads.items():
        if not bool(xp.isfinite(g).all()):
            return (f"the gradient of {param_where(trace, name)} became {_kind(xp, g)} while "
                    f"every dL/dh was finite (its sum over the timesteps overflowed)")
    return None
