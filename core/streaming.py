"""Truncated BPTT over very long sequences in memory bounded by the window.

:func:`stream` walks a sequence window by window, carrying each layer's state
across the boundary as a constant — exactly what ``Network.run(x, y, tbptt=k)``
computes, but keeping only one window's arrays alive.  It returns the loss, the
accumulated parameter gradients and the per-step gradient norms ‖dL/dh_t‖, not
the full traces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError
from .network import Network


@dataclass
class StreamResult:
    loss: float
    grads: dict[str, Any]  # on the backend
    gradnorm: dict[str, np.ndarray]  # layer key -> (T,) mean over the batch of ‖dL/dh_t‖
    final_state: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def stream(net: Network, x: Any, y: Any, window: int,
           progress: Callable[[int, int], None] | None = None) -> StreamResult:
    """Forward + truncated BPTT (window ``window``) of x (T, B, D) against y, window by window.

    Unidirectional ``many_to_many`` and ``many_to_one`` models only: a reverse cell
    needs the whole future, and output recurrence carries no hidden state.
    ``progress(done, total)`` is called after each window.
    """
    m = net.model
    if any(layer.bidirectional for layer in m.layers):
        raise DataError("streaming needs unidirectional layers: a reverse cell reads the whole future")
    if m.pattern == "output_recurrence":
        raise DataError("streaming supports many_to_many and many_to_one")
    if window < 1:
        raise DataError(f"window must be at least 1, got {window}")
    T = int(np.shape(x)[0])
    seq = m.pattern == "many_to_many"
    keys = [f"l{k}" for k in range(len(m.layers))]
    gradnorm = {key: np.zeros(T) for key in keys}
    grads: dict[str, Any] = {}
    loss = 0.0
    state: dict[str, tuple[Any, Any]] = {}
    for start in range(0, T, window):
        stop = min(start + window, T)
        xs = x[start:stop]
        last = stop == T
        if seq:
            tr = net.run(xs, y[start:stop], initial=state, loss_scale=(stop - start) / T)
        elif last:
            tr = net.run(xs, y, initial=state)
        else:
            tr = net.run(xs, None, initial=state, need_backward=False)
        if tr.grads:
            loss += tr.loss
            for name, g in tr.grads.items():
                if name in grads:
                    grads[name] += g
                else:
                    grads[name] = g
            for key in keys:
                gradnorm[key][start:stop] = net.backend.to_numpy(tr.gradnorm(key))
        state = {key: (L.h[-1].copy(), None if L.c is None else L.c[-1].copy())
                 for key, L in tr.layers.items()}
        if progress is not None:
            progress(stop, T)
    return StreamResult(loss=loss, grads=grads, gradnorm=gradnorm, final_state=state)
