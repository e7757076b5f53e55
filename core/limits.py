"""The allowed range of every numeric field of an experiment, in one table.

The schema check (:func:`core.experiment.experiment_from_dict`, so every file, the
command line and the Lab) refuses a value outside its range with
:meth:`Limit.message`, and the window's number fields take their bounds and their
messages from the same :class:`Limit`, so a value is refused everywhere with the
same words.  ``docs/formats.md`` shows :func:`markdown_table` (a test keeps the two
equal).

Counts whose real limit is memory (sequence length, batch sizes, steps) go up to
:data:`MAX_COUNT`, the largest integer a window field holds; a size that would
not fit is refused by the memory check with an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

MAX_HIDDEN = 65_536  # input, hidden and output sizes
MAX_COUNT = 2**31 - 1  # lengths, batches and steps: memory and time are the real limit
MAX_SCALE = 10.0
MAX_FORGET_BIAS = 20.0  # σ(20) = 1 − 2·10⁻⁹: beyond it the gate cannot open further
MAX_LR = 100.0
MAX_CLIP = 1e6


def format_number(value: Any) -> str:
    """A bound or a given value as a person writes it: ``10``, ``0.001``, ``1e-07``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        text = str(int(value))
    else:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Limit:
    """The range of one field: ``lo``…``hi``, each bound closed unless ``lo_open`` /
    ``hi_open``; ``nullable`` fields may also be null (``null`` says what it means)."""

    path: str
    kind: type  # int or float
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    nullable: bool = False
    null: str = ""
    note: str = ""

    def contains(self, value: float) -> bool:
        """Whether ``value`` (a number, never None) lies in the range."""
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return bool(above and below)

    def allowed(self, value: Any) -> bool:
        """Whether ``value`` is allowed: in range, or None where null is."""
        if value is None:
            return self.nullable
        return self.contains(value)

    def rule(self) -> str:
        """``between 1 and 65536``, ``above 0 and at most 100``, ``at least 0 and below 1``."""
        lo, hi = format_number(self.lo), format_number(self.hi)
        if not self.lo_open and not self.hi_open:
            return f"between {lo} and {hi}"
        first = f"above {lo}" if self.lo_open else f"at least {lo}"
        second = f"below {hi}" if self.hi_open else f"at most {hi}"
        return f"{first} and {second}"

    def message(self, value: Any, where: str | None = None) -> str:
        """What the schema says of a value outside the range (``where``: the field's
        path with its index, ``model.layers[1].hidden_size``)."""
        null = " or null" if self.nullable else ""
        return f"{where or self.path}: must be {self.rule()}{null}, got {format_number(value)}"

    def check(self, value: Any, where: str | None = None) -> None:
        """Raise ConfigError with :meth:`message` when ``value`` is not allowed."""
        if not self.allowed(value):
            raise ConfigError(self.message(value, where))


def _table(*limits: Limit) -> dict[str, Limit]:
    return {lim.path: lim for lim in limits}


# The layer index of a per-layer field is written [k] here and filled in by the check.
LIMITS: dict[str, Limit] = _table(
    Limit("model.input_size", int, 1, MAX_HIDDEN),
    Limit("model.output_size", int, 1, MAX_HIDDEN, note="cross_entropy needs at least 2 classes"),
    Limit("model.layers[k].hidden_size", int, 1, MAX_HIDDEN),
    Limit("init.scales.input", float, 0.0, MAX_SCALE),
    Limit("init.scales.recurrent", float, 0.0, MAX_SCALE),
    Limit("init.scales.output", float, 0.0, MAX_SCALE),
    Limit("init.forget_bias", float, -MAX_FORGET_BIAS, MAX_FORGET_BIAS),
    Limit("init.seed", int, 0, MAX_COUNT),
    Limit("task.seq_len", int, 1, MAX_COUNT, note="a task may need more (adding: 2)"),
    Limit("task.batch_size", int, 1, MAX_COUNT),
    Limit("training.lr", float, 0.0, MAX_LR, lo_open=True),
    Limit("training.momentum", float, 0.0, 1.0, hi_open=True),
    Limit("training.beta1", float, 0.0, 1.0, hi_open=True),
    Limit("training.beta2", float, 0.0, 1.0, hi_open=True),
    Limit("training.alpha", float, 0.0, 1.0, hi_open=True),
    Limit("training.eps", float, 0.0, 1.0, lo_open=True),
    Limit("training.weight_decay", float, 0.0, 1.0),
    Limit("training.schedule.step_size", int, 1, MAX_COUNT),
    Limit("training.schedule.gamma", float, 0.0, 1.0, lo_open=True),
    Limit("training.schedule.min_lr", float, 0.0, MAX_LR),
    Limit("training.clip.max_norm", float, 0.0, MAX_CLIP, lo_open=True),
    Limit("training.clip.max_value", float, 0.0, MAX_CLIP, lo_open=True),
    Limit("training.tbptt", int, 1, MAX_COUNT, nullable=True, null="full BPTT"),
    Limit("training.teacher_forcing", float, 0.0, 1.0),
    Limit("training.batch_size", int, 1, MAX_COUNT, nullable=True,
          null="the task's batch_size, or every given sequence up to 256"),
    Limit("training.steps", int, 0, MAX_COUNT),
    Limit("training.eval_every", int, 0, MAX_COUNT, note="0: never"),
    Limit("training.trace_every", int, 0, MAX_COUNT, note="0: never"),
)


def limit(path: str) -> Limit:
    """The limit of ``path`` (``training.lr``, ``model.layers[k].hidden_size``)."""
    return LIMITS[path]


def markdown_table() -> str:
    """The table as ``docs/formats.md`` shows it."""
    rows = ["| field | type | min | max | notes |", "|---|---|---|---|---|"]
    for lim in LIMITS.values():
        lo = f"{format_number(lim.lo)} (excluded)" if lim.lo_open else format_number(lim.lo)
        hi = f"{format_number(lim.hi)} (excluded)" if lim.hi_open else format_number(lim.hi)
        notes = [f"or null: {lim.null}"] if lim.nullable else []
        if lim.note:
            notes.append(lim.note)
        kind = "integer" if lim.kind is int else "number"
        rows.append(f"| `{lim.path}` | {kind} | {lo} | {hi} | {'; '.join(notes)} |")
    return "\n".join(rows)


__all__ = ["LIMITS", "MAX_COUNT", "MAX_HIDDEN", "Limit", "format_number", "limit",
           "markdown_table"]
