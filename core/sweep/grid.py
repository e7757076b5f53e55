"""The grid of a sweep: ``--grid PATH=VALUES`` axes and the points they span.

An axis is a dotted experiment path (:mod:`core.paths`) and its values, written

- ``a,b,c`` — a list (numbers, ``true``/``false``, ``null``, or text such as ``lstm``);
- ``START:STOP:N`` — N points from START to STOP, linearly spaced;
- ``START:STOP:Nlog`` — N points, logarithmically spaced (START and STOP above 0).

A range over a whole-number field (``task.seq_len=10:100:4``) is rounded to whole
numbers; values that round to the same number are an error.

:func:`plan` takes the product of the axes (the last axis varies fastest) and
applies every point to the base experiment with :func:`core.paths.with_paths`:
a changed layer cell fits the layer's other fields to it (peepholes, an
activation) and says so in the point's ``notes``.  A point that is still invalid
keeps the reason in ``reason`` and is recorded, not run — unless every point with
one of an axis's values is invalid: then that value is a mistake, and the plan
fails with the reason (ConfigError, one line).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, UserError
from ..experiment import Experiment, experiment_from_dict, experiment_to_dict
from ..paths import format_value, get_path, parse_value, parse_vary, with_paths

__all__ = ["MAX_JOBS", "MAX_SEEDS", "Axis", "Point", "SweepPlan", "parse_grid", "plan"]

MAX_SEEDS = 10_000
MAX_JOBS = 1_000_000  # grid points × seeds
MAX_AXIS_POINTS = 10_000
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*:\s*({_NUMBER})\s*:\s*(\d+)\s*(log)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Axis:
    """One ``--grid``: its ``path``, its typed ``values`` (the coordinates) and the text
    it was given (``spec``)."""

    path: str
    values: tuple[Any, ...]
    spec: str = ""

    def __len__(self) -> int:
        return len(self.values)

    @property
    def labels(self) -> list[str]:
        """Each value as it is written in a path assignment (``0.5``, ``lstm``)."""
        return [format_value(v) for v in self.values]


def _range_values(path: str, current: Any, text: str, m: re.Match[str]) -> list[Any]:
    start, stop, n = float(m.group(1)), float(m.group(2)), int(m.group(3))
    log = m.group(4) is not None
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise ConfigError(f"{path}: a range {text} needs a numeric field; give the values "
                          "as a list, e.g. a,b,c")
    if not 1 <= n <= MAX_AXIS_POINTS:
        raise ConfigError(f"{path}: {text}: N must be 1 to {MAX_AXIS_POINTS}, got {n}")
    if log and (start <= 0 or stop <= 0):
        raise ConfigError(f"{path}: {text}: a log range needs START and STOP above 0")
    values = np.geomspace(start, stop, n) if log else np.linspace(start, stop, n)
    if isinstance(current, int):
        ints = [round(float(v)) for v in values]
        if len(set(ints)) != len(ints):
            raise ConfigError(f"{path}: {text} rounds to the same whole number twice "
                              f"({', '.join(map(str, ints))}); use fewer points")
        return ints
    return [float(v) for v in values]


def parse_grid(text: str, exp: Experiment) -> Axis:
    """``"init.scales.recurrent=0.5:2:6"`` → an :class:`Axis` of ``exp``'s field.

    ConfigError (one line, naming the path) for an unknown path, a section, a bad
    range or a value given twice."""
    path, eq, rest = text.partition("=")
    path = path.strip()
    if not eq or not path:
        raise ConfigError(f"{text!r}: expected PATH=VALUES (e.g. init.scales.recurrent=0.5:2:6 "
                          "or model.layers.0.cell=rnn,lstm)")
    current = get_path(exp, path)  # unknown paths are named here
    m = _RANGE.match(rest)
    if m is not None:
        parse_value(exp, path, "0")  # a section is refused by name
        values = _range_values(path, current, rest.strip(), m)
    elif ":" in rest and "," not in rest:
        raise ConfigError(f"{path}: expected START:STOP:N or START:STOP:Nlog (N a whole "
                          f"number of points), got {rest.strip()!r}")
    else:
        path, texts = parse_vary(f"{path}={rest}")
        values = [parse_value(exp, path, t) for t in texts]
        if isinstance(current, float):  # "1" on a number field is 1.0, as validation reads it
            values = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                      for v in values]
    labels = [format_value(v) for v in values]
    for label in labels:
        if labels.count(label) > 1:
            raise ConfigError(f"{path}: the value {label} is given twice")
    return Axis(path, tuple(values), rest.strip())


@dataclass(frozen=True)
class Point:
    """One grid point: its ``index`` along each axis, its ``changes`` and the
    experiment they give (None when invalid, ``reason`` says why), and ``notes``:
    what fitting a layer to a new cell changed besides."""

    index: tuple[int, ...]
    changes: tuple[tuple[str, Any], ...]
    experiment: Experiment | None = field(repr=False)
    notes: tuple[str, ...] = ()
    reason: str = ""


@dataclass
class SweepPlan:
    """What a sweep runs: the base experiment (settings only), the axes, the points
    (in C order of the axes), the seeds per point, the training steps and ``T``, the
    longest probe sequence of any valid point."""

    base: Experiment
    axes: list[Axis]
    points: list[Point]
    seeds: int
    train_steps: int
    T: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    @property
    def jobs(self) -> int:
        """Valid points × seeds: the runs to make."""
        return sum(1 for p in self.points if p.experiment is not None) * self.seeds

    def seeded(self, point: Point, offset: int) -> dict[str, Any]:
        """The experiment file of ``point`` at seed ``init.seed + offset``, as a dict
        (what a job receives)."""
        assert point.experiment is not None
        data = experiment_to_dict(point.experiment)
        data["init"]["seed"] = point.experiment.init.seed + offset
        return data

    def grid_json(self) -> str:
        """The axes as JSON text: ``[{"path": …, "values": ["0.5", …]}, …]``."""
        return json.dumps([{"path": a.path, "values": a.labels} for a in self.axes])


def _check_count(name: str, n: Any, low: int, high: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high:
        raise ConfigError(f"{name}: expected a whole number from {low} to {high}, got {n!r}")
    return n


def _probe_length(exp: Experiment) -> int:
    """The number of timesteps a probe of ``exp`` reads."""
    from ..lab import probe_batch

    x, _y = probe_batch(exp, None)
    return int(np.shape(x)[0])


def plan(exp: Experiment, axes: Sequence[Axis], seeds: int = 1, train_steps: int = 0) -> SweepPlan:
    """Every point of the product of ``axes`` applied to ``exp``; see the module's
    docstring for invalid points.  ConfigError for bad counts, a path given twice, a
    value that fits no point, or too many runs."""
    _check_count("seeds", seeds, 1, MAX_SEEDS)
    _check_count("train_steps", train_steps, 0, 10**9)
    if not axes:
        raise ConfigError("--grid: give at least one PATH=VALUES")
    paths = [a.path for a in axes]
    for p in paths:
        if paths.count(p) > 1:
            raise ConfigError(f"{p}: on the grid twice; give all its values in one --grid")
    if p := next((p for p in paths if p in ("init.seed", "seed", "t")), None):
        raise ConfigError(f"{p}: use --seeds for seeds, not --grid")
    base = experiment_from_dict(experiment_to_dict(exp))  # settings only: no weights
    if base.task is None:
        raise ConfigError("a sweep runs on the experiment's task, and this experiment has "
                          "none: add a task section")
    size = math.prod(len(a) for a in axes)
    if size * seeds > MAX_JOBS:
        raise ConfigError(f"--grid: {size} points × {seeds} seeds is more than "
                          f"{MAX_JOBS:,} runs")
    last = base.init.seed + seeds - 1
    if seeds > 1:
        with_paths(base, [("init.seed", last)])  # out of range: named here
    points: list[Point] = []
    ok_values: list[set[int]] = [set() for _ in axes]
    first_reason: dict[tuple[int, int], str] = {}
    lengths: dict[str, int] = {}
    for index in itertools.product(*[range(len(a)) for a in axes]):
        changes = tuple((a.path, a.values[i]) for a, i in zip(axes, index, strict=True))
        try:
            point_exp, notes = with_paths(base, changes)
            key = json.dumps(experiment_to_dict(point_exp)["task"], sort_keys=True)
            if key not in lengths:
                lengths[key] = _probe_length(point_exp)
        except UserError as exc:
            reason = str(exc)
            for k, i in enumerate(index):
                first_reason.setdefault((k, i), reason)
            points.append(Point(index, changes, None, (), reason))
            continue
        for k, i in enumerate(index):
            ok_values[k].add(i)
        points.append(Point(index, changes, point_exp, tuple(notes)))
    for k, a in enumerate(axes):
        for i in range(len(a)):
            if i not in ok_values[k]:
                reason = first_reason[(k, i)]
                prefix = f"{a.path}={a.labels[i]}"
                raise ConfigError(reason if reason.startswith(a.path) else f"{prefix}: {reason}")
    return SweepPlan(base, list(axes), points, seeds, train_steps, max(lengths.values()))
