"""Tasks: where the data comes from.

One module per task (``sine``, ``adding``, ``copy``, ``mackey_glass``, ``parity``,
and ``series`` for the bundled data sets and CSV files), each declaring a
:class:`~core.tasks.base.TaskSpec`.  This module is the registry: it validates an
experiment's task section against its model and draws batches.  An experiment
without a task section (``exp.task`` None) has nothing to validate here and no
batches to draw: its data are the user's arrays (:mod:`core.userdata`).

Batches are float64 NumPy arrays, time-major: ``x`` is ``(T, B, D)``; ``y`` is
``(T, B, O)`` float64 (mse) or ``(T, B)`` int64 class ids (cross_entropy) for the
many_to_many and output_recurrence patterns, ``(B, O)`` or ``(B,)`` for many_to_one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, DataError
from . import adding, copy, mackey_glass, parity, series, sine
from .base import TaskSpec

if TYPE_CHECKING:
    from ..experiment import Experiment

REGISTRY: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (sine.SPEC, adding.SPEC, copy.SPEC, mackey_glass.SPEC, parity.SPEC,
                 series.DATASET_SPEC, series.CSV_SPEC)
}
TASK_NAMES: tuple[str, ...] = tuple(REGISTRY)
DATASET_NAMES: tuple[str, ...] = tuple(series.DATASETS)
SPLITS = ("train", "val", "probe")

__all__ = ["DATASET_NAMES", "NO_TASK", "REGISTRY", "TASK_NAMES", "describe_task",
           "make_batch", "persistence_baseline", "probe_batch", "task_options", "task_shapes",
           "validate_task"]

# The start of every message about data asked of an experiment without a task.
NO_TASK = "this experiment has no task section"


def get_spec(name: str) -> TaskSpec:
    """The registered task ``name``; ConfigError naming ``task.name`` otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"task.name: unknown task {name!r} "
                          f"(expected one of {', '.join(TASK_NAMES)})") from None


def task_options(name: str, options: dict | None = None) -> dict[str, Any]:
    """The task's options, checked, with defaults filled in for the missing ones."""
    return get_spec(name).parse(options)


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def validate_task(exp: Experiment) -> None:
    """Check the task's own fields, and that the model's sizes, loss and pattern fit it.

    Raises ConfigError naming the field (``task.noise``, ``model.input_size`` …); for
    the csv task a missing or malformed file raises DataError naming file and line.
    Without a task there is nothing to check: any model fits the user's arrays.
    """
    if exp.task is None:
        return
    spec = get_spec(exp.task.name)
    opts = spec.parse(exp.task.options)
    m, name = exp.model, spec.name
    if m.loss != spec.loss:
        kind = "classification" if spec.loss == "cross_entropy" else "regression"
        raise ConfigError(f"model.loss: the {name} task is a {kind} task and needs {spec.loss}, "
                          f"got {m.loss}")
    if m.pattern not in spec.patterns:
        raise ConfigError(f"model.pattern: the {name} task supports "
                          f"{', '.join(spec.patterns)}, got {m.pattern}")
    sizes = spec.sizes(opts)
    if m.input_size != sizes.input_size:
        raise ConfigError(f"model.input_size: the {name} task has "
                          f"{_plural(sizes.input_size, 'input channel')}{sizes.input_note}, "
                          f"got {m.input_size}")
    if m.output_size != sizes.output_size:
        word = "output class" if spec.loss == "cross_entropy" else "output"
        raise ConfigError(f"model.output_size: the {name} task has "
                          f"{_plural(sizes.output_size, word)}{sizes.output_note}, "
                          f"got {m.output_size}")
    spec.check(opts, exp.task.seq_len)


def task_shapes(name: str, options: dict | None = None) -> dict[str, Any]:
    """What a model for this task looks like.

    Returns ``{"input_size", "output_size", "loss", "patterns", "default_pattern",
    "max_seq_len"}``; ``max_seq_len`` is the longest window a series task can serve
    (None for generated tasks, and for csv before a path is set).
    """
    spec = get_spec(name)
    opts = spec.parse(options)
    sizes = spec.sizes(opts)
    return {"input_size": sizes.input_size, "output_size": sizes.output_size,
            "loss": spec.loss, "patterns": spec.patterns,
            "default_pattern": spec.default_pattern, "max_seq_len": spec.max_seq_len(opts)}


def make_batch(exp: Experiment, rng: np.random.Generator, split: str = "train",
               batch_size: int | None = None,
               seq_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the experiment's task: ``x`` (T,B,D) float64 and its targets ``y``.

    ``y`` is (T,B,O) float64 or (T,B) int64 for many_to_many / output_recurrence,
    (B,O) float64 or (B,) int64 for many_to_one.  ``split`` is "train" or "val": real
    and Mackey–Glass series draw windows from the earlier or the later part of the
    series; generated tasks draw fresh sequences from ``rng`` either way (keep a
    separate generator for validation).  "probe" (the batch the lab visualises) reads
    the training part.  ``batch_size`` and ``seq_len`` override the experiment's.
    Raises :class:`DataError` for an experiment without a task.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if exp.task is None:
        raise DataError(f"{NO_TASK}: give input and target arrays")
    if split == "probe":
        split = "train"
    spec = get_spec(exp.task.name)
    opts = spec.parse(exp.task.options)
    T = exp.task.seq_len if seq_len is None else int(seq_len)
    B = exp.task.batch_size if batch_size is None else int(batch_size)
    if T < 1 or B < 1:
        raise ConfigError(f"task: seq_len and batch_size must be at least 1, got {T} and {B}")
    pattern = exp.model.pattern
    if pattern not in spec.patterns:
        raise ConfigError(f"model.pattern: the {spec.name} task supports "
                          f"{', '.join(spec.patterns)}, got {pattern}")
    spec.check(opts, T)
    return spec.batch(opts, rng, split, T, B, pattern)


def probe_batch(exp: Experiment) -> tuple[np.ndarray, np.ndarray]:
    """The batch the lab shows for an experiment: ``task.batch_size`` sequences of the
    task's training part, drawn with ``init.seed`` — the one the window, ``gradlab
    analyze``, ``core.trace`` and the training loop's probe all use."""
    return make_batch(exp, np.random.default_rng(exp.init.seed), "train")


def describe_task(name: str) -> str:
    """One or two sentences on the task, for a tooltip or the lesson panel."""
    return get_spec(name).description


def persistence_baseline(exp: Experiment, x: np.ndarray, y: np.ndarray) -> float | None:
    """MSE of predicting every future value as the last observed one.

    For forecasting tasks (sine, mackey_glass, dataset, csv) with x (T,B,1) and y
    (T,B,O) or (B,O); None for the other tasks or mismatched shapes.  A model that
    does not beat this number has learnt nothing beyond "tomorrow is like today".
    """
    if exp.task is None:
        return None
    spec = REGISTRY.get(exp.task.name)
    if spec is None or not spec.forecasting:
        return None
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 1:
        return None
    if y.ndim == 3 and y.shape[:2] == x.shape[:2]:
        pred = x
    elif y.ndim == 2 and y.shape[0] == x.shape[1]:
        pred = x[-1]
    else:
        return None
    return float(np.mean((y - pred) ** 2))
