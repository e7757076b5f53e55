"""A lab session's versions, and what an edit does to their weights.

A :class:`Version` is everything an edit or a training run changes, immutable; a
:class:`Change` is one undo step between two of them.  :func:`carry` is the lab's
weights policy:

- Weights still as the seed drew them (no training, not loaded) are drawn again for
  the new settings, so a knob position always means the same weights.
- Trained or loaded weights are kept where the edit allows: a weight-scale knob
  rescales its family (input, recurrent, output; peepholes with the recurrent one) by
  new/old, the forget bias shifts the LSTM forget-gate biases by new − old, and edits
  that leave the model as it was (task, training, backend settings) keep them.
- An edit that cannot keep them (a new architecture, scheme or seed) draws fresh
  weights; the caller says so, and undo brings the trained ones back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .experiment import Experiment
from .init import init_params
from .layout import forget_rows, param_family
from .training.history import History

FAMILIES = ("input", "recurrent", "output")


@dataclass(frozen=True, eq=False)
class Version:
    """Everything an edit or a training run changes, as one immutable value.

    ``params``: name → float64 array (never written to); ``history``: the rows of
    training that led to these weights; ``origin``: "seed" (drawn from
    ``experiment.init``), "loaded" (from a file) or "trained"; ``data``: the user's
    ``(x, y)`` arrays, or None for the experiment's task.
    """

    experiment: Experiment
    params: Mapping[str, np.ndarray] = field(repr=False)
    history: History = field(default_factory=History, repr=False)
    optimizer_state: Mapping[str, Any] | None = field(default=None, repr=False)
    origin: str = "seed"
    data: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Undo hands these very arrays back: nobody may change them in place.
        for a in self.params.values():
            if isinstance(a, np.ndarray) and a.flags.writeable:
                a.setflags(write=False)

    def but(self, **changes: Any) -> Version:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Change:
    """One undoable step: its text and the versions before and after it.  Edits of
    the same ``key`` (one knob) in quick succession merge into one, as a slider drag
    should: ``time`` is when it last changed (``time.monotonic``)."""

    text: str
    before: Version
    after: Version
    training: bool = False
    key: str | None = None
    time: float = 0.0


def carry(v: Version, exp: Experiment, policy: str) -> tuple[Version, str]:
    """The version after ``v`` with experiment ``exp`` (validated), its weights by the
    policy — "keep" (settings), "init" (an initialisation edit) or "model" (an
    architecture or task edit) — and a sentence for the user when trained or loaded
    weights were rescaled or replaced ("" otherwise)."""
    model_same = exp.model == v.experiment.model
    if policy != "init" and model_same:  # e.g. another task of the same sizes
        return v.but(experiment=exp), ""
    if v.origin == "seed" and not len(v.history):
        return Version(exp, init_params(exp.model, exp.init), data=v.data), ""
    if model_same and policy == "init":
        old, new = v.experiment.init, exp.init
        if (old.scheme, old.seed) == (new.scheme, new.seed):
            return (v.but(experiment=exp, params=rescale(v.params, exp, old)),
                    rescale_text(old, new))
    what = "model" if not model_same else "initialisation"
    steps = len(v.history)
    text = (f"New {what}: weights drawn afresh from seed {exp.init.seed}; the "
            + (f"trained weights ({steps} steps)" if steps else "loaded weights")
            + " are one undo (Ctrl+Z) away")
    return Version(exp, init_params(exp.model, exp.init), data=v.data), text


def rescale(params: Mapping[str, np.ndarray], exp: Experiment,
             old: Any) -> dict[str, np.ndarray]:
    """Trained weights under ``exp``'s scales and forget bias (they were under ``old``):
    each family times new/old (peepholes too: the initialisation scales them with the
    recurrent family), the LSTM forget-gate biases shifted by new − old.  A family
    whose old scale was 0 holds no trained values to scale: it is drawn from the seed
    at its new scale."""
    new = exp.init
    out = dict(params)
    fresh: dict[str, np.ndarray] | None = None
    for family in FAMILIES:
        a, b = getattr(old.scales, family), getattr(new.scales, family)
        if a == b:
            continue
        if a == 0 and fresh is None:
            fresh = init_params(exp.model, new)
        for name, value in params.items():
            if param_family(name) == family:
                out[name] = fresh[name] if a == 0 else value * (b / a)
    shift = new.forget_bias - old.forget_bias
    if shift:
        for k, layer in enumerate(exp.model.layers):
            rows = forget_rows(layer.cell, layer.hidden_size)
            if rows is None:
                continue
            for d in ("", "_reverse") if layer.bidirectional else ("",):
                name = f"bias_ih_l{k}{d}"
                b = out[name].copy()
                b[rows] += shift
                out[name] = b
    return out


def rescale_text(old: Any, new: Any) -> str:
    parts = []
    for family in FAMILIES:
        a, b = getattr(old.scales, family), getattr(new.scales, family)
        if a != b:
            parts.append(f"{family} weights ×{b / a:.4g}" if a else
                         f"{family} weights drawn from the seed at scale {b:g} (they were 0)")
    if new.forget_bias != old.forget_bias:
        parts.append(f"forget-gate biases {new.forget_bias - old.forget_bias:+.4g}")
    return "Trained weights kept and adjusted: " + ", ".join(parts)


__all__ = ["FAMILIES", "Change", "Version", "carry", "rescale", "rescale_text"]
