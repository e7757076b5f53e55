"""Gradient Flow Lab's engine: RNN, LSTM and GRU forward passes and BPTT on NumPy or CuPy.

The Python API, the same engine as the app and the command line::

    from core import load_experiment, trace
    exp = load_experiment("experiment.json", weights="w.safetensors")  # weights optional
    arrays = trace(exp, x, y)  # forward + BPTT: the trace.npz keys, NumPy arrays

Importing ``core`` is light: no Qt, and the engine loads on first use.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from .errors import UserError
from .experiment import Experiment

__all__ = ["Experiment", "UserError", "load_experiment", "trace"]


def load_experiment(path: str | os.PathLike[str],
                    weights: str | os.PathLike[str] | None = None) -> Experiment:
    """Read and validate an experiment file; with ``weights`` (.safetensors or .npz),
    load them for its model and attach them as ``exp.weights`` (name → float64 array).

    Raises :class:`UserError` (a ConfigError or WeightsError) naming the file and field.
    """
    from .experiment import load_experiment_config

    exp = load_experiment_config(path)
    if weights is not None:
        from .weights import load_weights

        exp.weights = load_weights(weights, exp.model)
    return exp


@functools.cache
def _engine() -> tuple[Any, ...]:
    """What :func:`trace` calls, imported on its first call (importing ``core`` stays
    light) and then kept: six imports cost microseconds a call."""
    from .errors import DataError, MemoryLimitError
    from .network import check_memory
    from .probe import teacher_mask_for
    from .trace_cache import cache_of
    from .userdata import check_arrays, check_input

    return (DataError, MemoryLimitError, check_memory, cache_of, check_arrays, check_input,
            teacher_mask_for)


def trace(exp: Experiment, x: Any = None, y: Any = None, *,
          tbptt: int | str | None = "experiment") -> dict[str, np.ndarray]:
    """One forward pass and BPTT; returns the trace arrays (the keys of ``trace.npz``).

    x: (T, B, D) and y: (T, B, O), or (B, O) for ``many_to_one``; integer classes
    (T, B) or (B,) for ``cross_entropy``; both checked (shapes, numbers, finite values,
    class range) by :func:`core.userdata.check_arrays`; ``x`` alone runs the
    forward pass only.  Without ``x`` a batch of the
    experiment's task is drawn with seed ``init.seed``; an experiment without a task
    needs both arrays.  Weights are ``exp.weights``, else a fresh initialisation.
    ``tbptt``: truncation window; by default the experiment's ``training.tbptt``,
    None for full BPTT.  For ``output_recurrence`` the teacher-forcing mask is drawn
    as the app's probe draws it, so the result equals ``trace.npz`` of ``gradlab
    analyze``.
    Raises :class:`UserError` for bad or missing data or a size that would not fit
    in memory.

    Repeated calls on one experiment reuse its backend, its initial weights and the
    memory of earlier passes while the model, ``init`` and ``backend`` stay the same
    (:mod:`core.trace_cache`); results are those of a fresh network, bit for bit.
    """
    DataError, MemoryLimitError, check_memory, cache_of, check_arrays, check_input, \
        teacher_mask_for = _engine()
    if x is None and y is not None:
        raise DataError("target given without an input; pass both x and y, or neither")
    if x is None and exp.task is None:
        from .tasks import NO_TASK

        raise DataError(f"{NO_TASK}: give input and target arrays (trace(exp, x, y)); "
                        "the input x is missing")
    if x is None:
        T, B = exp.task.seq_len, exp.task.batch_size
    else:
        # Without y: the forward pass alone (no loss, so no gradients).
        # Checked straight into the working dtype: no float64 copy to convert again.
        dt = exp.backend.dtype
        x, y = (check_arrays(exp.model, x, y, dtype=dt) if y is not None
                else (check_input(x, exp.model, dtype=dt), None))
        T, B = x.shape[0], x.shape[1]
    cache = cache_of(exp)  # the backend, weights and memory of earlier calls
    try:
        cache.check_memory(exp, T, B)
    except MemoryLimitError:
        cache.release()  # memory kept for reuse counts as taken: free it, then ask again
        check_memory(exp.model, T, B, exp.backend.dtype)
    if x is None:
        from .tasks import probe_batch

        x, y = probe_batch(exp)
    params = exp.weights if exp.weights is not None else cache.initial_params(exp)
    window = exp.training.tbptt if tbptt == "experiment" else tbptt
    mask = teacher_mask_for(exp, int(x.shape[0]))
    # The weights as they are now, copied into the network (and memory) of earlier calls.
    with cache.network(exp, params) as net:
        return net.run(x, y, tbptt=window, teacher_mask=mask).to_arrays()
