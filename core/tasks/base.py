"""What every task module declares: its options, sizes, patterns and batch generator.

A task's options are parsed from ``TaskConfig.options`` by small parser functions;
each parser gets the value and the field's name (``task.noise``) and raises
:class:`ConfigError` naming that field when the value does not fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

Parser = Callable[[Any, str], Any]
# batch(opts, rng, split, T, B, pattern) -> (x (T,B,D) float64, y)
BatchFn = Callable[[dict, np.random.Generator, str, int, int, str], tuple[np.ndarray, np.ndarray]]

COMMON_FIELDS = ("name", "seq_len", "batch_size")


@dataclass(frozen=True)
class Option:
    """One task field: its default and the parser that checks a given value."""

    default: Any
    parse: Parser
    help: str = ""


@dataclass(frozen=True)
class Sizes:
    """Input channels and outputs a model needs for a task, with short explanations."""

    input_size: int
    output_size: int
    input_note: str = ""
    output_note: str = ""


def _no_check(opts: dict, seq_len: int) -> None:
    return None


def _no_max(opts: dict) -> int | None:
    return None


@dataclass(frozen=True)
class TaskSpec:
    """Everything the registry needs to know about one task."""

    name: str
    description: str
    options: Mapping[str, Option]
    loss: str
    patterns: tuple[str, ...]
    default_pattern: str
    sizes: Callable[[dict], Sizes]
    batch: BatchFn
    forecasting: bool = False
    check: Callable[[dict, int], None] = _no_check
    max_seq_len: Callable[[dict], int | None] = _no_max

    def parse(self, options: Mapping[str, Any] | None) -> dict:
        """Check ``options`` field by field; return them with defaults filled in."""
        options = dict(options or {})
        for key in options:
            if key not in self.options:
                names = ", ".join(sorted((*COMMON_FIELDS, *self.options)))
                raise ConfigError(f"task.{key}: unknown field (expected one of {names})")
        return {key: (opt.parse(options[key], f"task.{key}") if key in options else opt.default)
                for key, opt in self.options.items()}


# ----------------------------------------------------------------------------- parsers

def describe(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    text = json.dumps(value) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _g(value: float) -> str:
    try:
        return f"{value:g}"
    except OverflowError:  # an integer beyond the float range
        return describe(value)


def _bounds(value: float, where: str, low: float | None, high: float | None,
            low_open: bool = False) -> None:
    if low is not None and (value <= low if low_open else value < low):
        word = "greater than" if low_open else "at least"
        raise ConfigError(f"{where}: must be {word} {low:g}, got {_g(value)}")
    if high is not None and value > high:
        raise ConfigError(f"{where}: must be at most {high:g}, got {_g(value)}")


def integer(low: int | None = None, high: int | None = None) -> Parser:
    """Parser for an integer in ``[low, high]`` (a float with no fraction is accepted)."""
    def parse(value: Any, where: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {describe(value)}")
        _bounds(value, where, low, high)
        return value
    return parse


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Parser:
    """Parser for a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def parse(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {describe(value)}")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            raise ConfigError(f"{where}: expected a finite number, got {describe(value)}") from None
        if not np.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value}")
        _bounds(value, where, low, high, low_open)
        return value
    return parse


def boolean() -> Parser:
    def parse(value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {describe(value)}")
        return value
    return parse


def choice(*choices: str) -> Parser:
    def parse(value: Any, where: str) -> str:
        if value not in choices:
            raise ConfigError(f"{where}: {describe(value)} is not one of {', '.join(choices)}")
        return value
    return parse


def optional(inner: Parser) -> Parser:
    """``null`` or whatever ``inner`` accepts."""
    def parse(value: Any, where: str) -> Any:
        return None if value is None else inner(value, where)
    return parse


HORIZON = Option(1, integer(1, 1000), "how many future values each output predicts")
VAL_FRACTION = Option(0.2, number(0.05, 0.5), "the last fraction of the series kept for validation")


def forecast_sizes() -> Callable[[dict], Sizes]:
    """Sizes of a one-channel next-step forecasting task with ``horizon`` outputs."""
    def sizes(opts: dict) -> Sizes:
        h = opts["horizon"]
        out = "the next value" if h == 1 else f"the next {h} values, one output each"
        return Sizes(1, h, " (the current value)", f" ({out}; set by horizon)")
    return sizes
