"""A/B pairs: run variant A of the current settings, pin it, and make B the live run.

A lesson's "Compare" step is one click: :class:`Pair` names a dotted experiment
path (:mod:`core.paths`) and its two values.  :class:`PairJob` runs A in any thread
— its own :class:`core.lab.Lab` on the current settings with the path set to A,
starting from the seed's draw of the current settings wherever the parameters
agree (:func:`core.compare.shared_weights`), trained ``train_steps`` when asked,
then probed with every analysis — and :meth:`core.lab.Lab.apply_pair` pins it and
sets the path to B as one undoable edit, so the user then watches (or trains) B
over A.  Same seed, same data batches: the difference is the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, UserError
from .experiment import Experiment
from .init import init_params
from .jobs import Control, Part
from .paths import format_value, with_path


@dataclass(frozen=True)
class Pair:
    """``path`` set to ``a`` (pinned) and to ``b`` (live); A trains ``train_steps`` first."""

    path: str
    a: Any
    b: Any
    train_steps: int = 0
    label: str = ""

    @property
    def title(self) -> str:
        """The button's words: ``Compare init.forget_bias 0 and 2``."""
        return self.label or f"Compare {self.path} {format_value(self.a)} and " \
                             f"{format_value(self.b)}"


def pair_from_dict(raw: Any, where: str = "compare") -> Pair:
    """A :class:`Pair` from a lesson's ``compare`` object: ``{"path": …, "values":
    [A, B], "train_steps": N, "label": …}``; ConfigError naming ``where`` otherwise."""
    if not isinstance(raw, dict) or set(raw) - {"path", "values", "train_steps", "label"}:
        raise ConfigError(f"{where}: expected an object with path, values and optionally "
                          "train_steps and label")
    values = raw.get("values")
    path = raw.get("path")
    if not isinstance(path, str) or not isinstance(values, list) or len(values) != 2:
        raise ConfigError(f"{where}: expected a dotted path and two values")
    steps = raw.get("train_steps", 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= 100_000:
        raise ConfigError(f"{where}.train_steps: expected a whole number from 0 to 100000")
    label = raw.get("label", "")
    if not isinstance(label, str) or len(label) > 80:
        raise ConfigError(f"{where}.label: expected a text of at most 80 characters")
    return Pair(path, values[0], values[1], steps, label)


def check_pair(exp: Experiment, pair: Pair) -> tuple[Experiment, Experiment]:
    """The experiments of A and B (settings only); ConfigError if either is refused."""
    return with_path(exp, pair.path, pair.a), with_path(exp, pair.path, pair.b)


@dataclass
class PairOutcome:
    """What running A gave: its experiment, probe result and training history."""

    experiment: Experiment
    result: Any
    history: Any
    shared: tuple[str, ...] = field(default=())


class PairJob:
    """Run A of ``pair`` from ``version`` (a :class:`core.weights_policy.Version`):
    ``job.run(control)`` → :class:`PairOutcome`; then ``Lab.apply_pair(job, outcome)``."""

    def __init__(self, version: Any, pair: Pair) -> None:
        self.version = version
        self.pair = pair

    def run(self, control: Control | None = None) -> PairOutcome:
        from .compare import shared_weights
        from .lab import Lab

        base = self.version.experiment
        a_exp, _b = check_pair(base, self.pair)
        params, shared = shared_weights(base, init_params(base.model, base.init), a_exp)
        a_exp.weights = params
        lab = Lab(a_exp)
        if self.version.data is not None and not lab.set_data(*self.version.data):
            raise UserError(lab.last_error)
        steps = self.pair.train_steps
        if steps:
            done = [0]

            def each(_snapshot: Any) -> None:
                done[0] += 1
                if control is not None:
                    control.report(0.9 * done[0] / steps, f"training A: step {done[0]} of "
                                                          f"{steps}")

            rest = lab.train(steps, cancel=control and (lambda: control.cancelled),
                             on_snapshot=each)
            if control is not None:
                control.check()
            if rest is not None and rest.error:
                raise UserError(f"A ({self.pair.path}={format_value(self.pair.a)}): "
                                f"{rest.error}")
        part = Part(control, 0.9 if steps else 0.0, 1.0) if control is not None else None
        result = lab.probe(part)
        return PairOutcome(lab.experiment, result, lab.history, tuple(shared))


__all__ = ["Pair", "PairJob", "PairOutcome", "check_pair", "pair_from_dict"]
