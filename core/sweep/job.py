"""One job of a sweep: one grid point at one seed, wherever it runs.

:func:`run_point` takes the point's experiment file (a dict, at its seed) and the
training steps, and returns plain NumPy values — what a Dask worker sends back.
It builds a :class:`core.lab.Lab` on the experiment (the seed's own initial
weights), probes it (forward + BPTT on the probe batch drawn from ``init.seed``,
without the Jacobian products or the connectivity map) and, with training steps,
trains it and records the outcome.  BLAS runs on one thread, so a seed gives the
same numbers in any process on any machine with the same libraries.

Result keys:

- ``gradnorm`` (T,) float64: layer 0 forward, mean over the batch of ‖dL/dh_t‖;
- ``grad_ratio``: its first over its last value in time order
  (:func:`core.diagnosis.gradient_ratio`, the core's one definition), NaN when
  undefined;
- ``spectral_radius``: of ``weight_hh_l0`` (for a gated cell the largest over its
  gate blocks, as ``summary.json`` reports it), NaN where there is none;
- ``loss``: of the initial weights on the probe batch;
- with training: ``final_loss`` (the training loss of the last step taken),
  ``val_loss`` (the validation batch's loss after the last step; NaN when training
  stopped early), ``diverged`` (a non-finite value stopped it) and ``steps``;
- ``status``: ``"ok"``, or ``"error: …"`` for a point that could not run (too
  large for memory, …).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["run_point"]


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def run_point(experiment: Mapping[str, Any], train_steps: int = 0) -> dict[str, Any]:
    """Probe (and train ``train_steps``) the experiment file ``experiment``; the
    result keys are listed in the module's docstring."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), np.errstate(all="ignore"):
        return _run(dict(experiment), int(train_steps))


def _run(data: dict[str, Any], train_steps: int) -> dict[str, Any]:
    from ..diagnosis import gradient_ratio
    from ..errors import UserError
    from ..experiment import experiment_from_dict
    from ..lab import Lab
    from ..training.session import DIVERGED

    out: dict[str, Any] = {"status": "ok"}
    try:
        exp = experiment_from_dict(data)
        if train_steps:  # one validation loss, after the last step; no probes on the way
            exp.training.eval_every = train_steps
            exp.training.trace_every = 0
        lab = Lab(exp)
        result = lab.probe(jacobian=False, connectivity=False)
    except UserError as exc:
        return {"status": f"error: {exc}"}
    g = np.asarray(result.arrays["gradnorm.l0"], dtype=np.float64).reshape(-1)
    ratio = gradient_ratio(g)
    out.update(gradnorm=g, grad_ratio=math.nan if ratio is None else ratio,
               spectral_radius=_float(result.spectral_radius.get("weight_hh_l0")),
               loss=_float(result.arrays.get("loss")))
    if not train_steps:
        return out
    try:
        rest = lab.train(train_steps)
    except UserError as exc:
        return {**out, "status": f"error: {exc}"}
    history = lab.history
    losses, val = history.column("loss"), history.column("val_loss")
    steps = len(history)
    diverged = bool(rest is not None and rest.state == DIVERGED) or bool(lab.nonfinite_message)
    out.update(final_loss=float(losses[-1]) if steps else math.nan,
               val_loss=float(val[-1]) if steps == train_steps and not diverged else math.nan,
               diverged=diverged, steps=steps)
    if rest is not None and rest.error and not diverged:
        out["status"] = f"error: {rest.error}"
    return out
