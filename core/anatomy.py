"""The anatomy of an LSTM step: what the cell learns, keeps, remembers and uses.

An LSTM step splits into four parts (``c_{-1} = 0``; SPEC gate rows i, f, g, o)::

    learn    = i ⊙ g              the new content written into the cell at this step
    forget   = f ⊙ c_{t-1}        what survives of the previous cell state
    remember = c_t = forget + learn   the memory carried on to the next step
    use      = o ⊙ tanh(c_t)      the part of the memory read out, i.e. h_t

"Previous" follows the cell's processing order: step t−1 for a forward cell, step
t+1 for a reverse cell, so the first step processed (t = 0 forward, t = T−1
reverse) starts from a zero cell state.  A CIFG (coupled input and forget gates) has
the same anatomy with i = 1 − f: what it learns is exactly what it forgets to make room
for.  Pure NumPy, no Qt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

PARTS = ("learn", "forget", "remember", "use")


def has_anatomy(arrays: Mapping[str, Any], key: str) -> bool:
    """Whether ``arrays`` hold what :func:`lstm_anatomy` needs for layer ``key``: the
    gates f, g, o and the cell state (i too, except for a CIFG's coupled gates)."""
    return all(f"{name}.{key}" in arrays for name in ("gate.f", "gate.g", "gate.o", "c"))


def previous_cell_state(c: np.ndarray, reverse: bool, carry: bool = True) -> np.ndarray:
    """``c_{t-1}`` in processing order for every step of ``c`` (T, B, H); zero for the
    first step processed, and everywhere when ``carry`` is False (no state crosses time)."""
    prev = np.zeros_like(c)
    if carry and c.shape[0] > 1:
        if reverse:
            prev[:-1] = c[1:]
        else:
            prev[1:] = c[:-1]
    return prev


def lstm_anatomy(arrays: Mapping[str, Any], key: str, *,
                 carry: bool = True) -> dict[str, np.ndarray]:
    """``learn``, ``forget``, ``remember`` and ``use``, each (T, B, H) float64, of the
    LSTM layer ``key`` (``"l0"``, ``"l1_reverse"``, …) in a trace.

    ``remember`` is the traced cell state c_t and ``use`` is o ⊙ tanh(c_t) computed
    from it, so on a consistent trace remember = forget + learn and use = h_t.
    ``carry=False`` is for the output-recurrence pattern, where every step starts
    from a zero cell state (nothing is forgotten because nothing is carried).
    Raises ValueError if the trace has no LSTM gates and cell state for ``key``.
    """
    if not has_anatomy(arrays, key):
        raise ValueError(f"layer {key} has no LSTM gates and cell state in this trace")
    f, g, o, c = (np.asarray(arrays[name], dtype=np.float64)
                  for name in (f"gate.f.{key}", f"gate.g.{key}", f"gate.o.{key}", f"c.{key}"))
    coupled = f"gate.i.{key}" not in arrays  # a CIFG: the input gate is 1 − f
    i = 1.0 - f if coupled else np.asarray(arrays[f"gate.i.{key}"], dtype=np.float64)
    prev = previous_cell_state(c, key.endswith("_reverse"), carry)
    return {"learn": i * g, "forget": f * prev, "remember": c, "use": o * np.tanh(c)}


__all__ = ["PARTS", "has_anatomy", "lstm_anatomy", "previous_cell_state"]
