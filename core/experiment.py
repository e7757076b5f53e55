"""The experiment file: model, initialisation, task, training and backend settings.

An experiment is plain data (nested dataclasses).  Every section but the model has
defaults, except the task: an experiment without one (``task`` None) runs on the
arrays the user gives (:mod:`core.userdata`).  :func:`experiment_from_dict`
validates a JSON object field by field and names the first problem it finds
(``model.layers[0].hidden_size: expected an integer, got 'big'``);
:func:`load_experiment` adds the file name; :func:`save_experiment` writes atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .fileio import atomic_write_text
from .limits import LIMITS, MAX_HIDDEN  # noqa: F401 - MAX_HIDDEN kept importable from here

FORMAT = "gradlab-experiment"
VERSION = 1

CELLS = ("rnn", "lstm", "gru", "cifg", "mingru", "minlstm")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
PATTERNS = ("many_to_many", "many_to_one", "output_recurrence")
LOSSES = ("mse", "cross_entropy")
SCHEMES = ("uniform", "normal", "orthogonal", "identity", "xavier")
MAX_LAYERS = 64
# Without a task and without training.batch_size, an update takes every given sequence,
# but at most this many (drawn afresh each step): full-batch descent on small arrays,
# minibatches on large ones.
ARRAY_BATCH = 256


@dataclass
class LayerConfig:
    """One recurrent layer of the stack."""

    cell: Literal["rnn", "lstm", "gru", "cifg", "mingru", "minlstm"] = "lstm"
    hidden_size: int = 32
    bidirectional: bool = False
    peephole: bool = False
    activation: Literal["tanh", "relu", "sigmoid", "linear"] = "tanh"


@dataclass
class ModelConfig:
    """The network: a stack of layers, a design pattern, a linear head and a loss."""

    input_size: int = 1
    output_size: int = 1
    layers: list[LayerConfig] = field(default_factory=lambda: [LayerConfig()])
    pattern: Literal["many_to_many", "many_to_one", "output_recurrence"] = "many_to_many"
    loss: Literal["mse", "cross_entropy"] = "mse"


@dataclass
class Scales:
    """Multipliers on each matrix family: the lab's weight-scale knobs."""

    input: float = 1.0
    recurrent: float = 1.0
    output: float = 1.0


@dataclass
class InitConfig:
    scheme: Literal["uniform", "normal", "orthogonal", "identity", "xavier"] = "uniform"
    scales: Scales = field(default_factory=Scales)
    forget_bias: float = 0.0
    seed: int = 0


@dataclass
class TaskConfig:
    """The data: a task name, sizes, and the task's own fields (kept in ``options``)."""

    name: str = "sine"
    seq_len: int = 100
    batch_size: int = 16
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClipConfig:
    mode: Literal["none", "norm", "value"] = "norm"
    max_norm: float = 1.0
    max_value: float = 1.0


@dataclass
class ScheduleConfig:
    name: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = 100
    gamma: float = 0.5
    min_lr: float = 0.0


@dataclass
class TrainingConfig:
    optimizer: Literal["sgd", "rmsprop", "adam"] = "adam"
    lr: float = 0.001
    momentum: float = 0.0
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    tbptt: int | None = None
    teacher_forcing: float = 1.0
    # Sequences per update; None: the task's batch_size, or without a task every given
    # sequence up to ARRAY_BATCH (see :func:`training_batch_size`).
    batch_size: int | None = None
    steps: int = 500
    eval_every: int = 10
    trace_every: int = 10


@dataclass
class BackendConfig:
    device: Literal["auto", "numpy", "cupy"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"


@dataclass
class Experiment:
    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    # None: no task; the data are arrays the user gives (``--input/--target``, trace(exp, x, y)).
    task: TaskConfig | None = None
    training: TrainingConfig = field(default_factory=TrainingConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    title: str = ""
    description: str = ""
    # Weights loaded beside the file (PyTorch names → arrays); never part of the JSON.
    weights: dict[str, Any] | None = field(default=None, repr=False, compare=False,
                                           metadata={"json": False})


# ----------------------------------------------------------------------------- validation

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it; raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {_describe(value)} is not one of "
                              f"{', '.join(map(str, choices))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, where)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_describe(value)}")
        return [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {_describe(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_describe(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value}")
        try:
            return float(value)
        except OverflowError:  # an integer beyond the float range
            raise ConfigError(f"{where}: expected a finite number, got {_describe(value)}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported annotation {tp!r}")  # pragma: no cover - schema bug


def _describe(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a schema class (resolving them is slow; they never change)."""
    return typing.get_type_hints(cls)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _from_dict(cls: type, data: Any, where: str) -> Any:
    """Build ``cls`` from ``data``; ``where`` is the field path so far ("" at the top)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'experiment'}: expected an object, got {_describe(data)}")
    hints = type_hints(cls)
    if cls is TaskConfig:  # task-specific fields are collected into `options`
        known = {"name", "seq_len", "batch_size"}
        kwargs = {k: _convert(data[k], hints[k], _join(where, k)) for k in known if k in data}
        kwargs["options"] = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs)
    names = {f.name for f in dataclasses.fields(cls) if f.metadata.get("json", True)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{_join(where, key)}: unknown field "
                              f"(expected one of {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], _join(where, f.name))
    return cls(**kwargs)


def _field(exp: Experiment, path: str) -> tuple[bool, Any]:
    """``(present, value)`` of the dotted ``path``; absent when a section is None (no task)."""
    obj: Any = exp
    for part in path.split("."):
        if obj is None:
            return False, None
        obj = getattr(obj, part)
    return True, obj


def _check_ranges(exp: Experiment) -> None:
    """Every numeric field against its range in :data:`core.limits.LIMITS`, then the
    rules that tie fields together."""
    m = exp.model
    if not m.layers:
        raise ConfigError("model.layers: at least one recurrent layer is needed")
    if len(m.layers) > MAX_LAYERS:
        raise ConfigError(f"model.layers: at most {MAX_LAYERS} layers, got {len(m.layers)}")
    for path, lim in LIMITS.items():
        head, per_layer, tail = path.partition("[k].")
        if per_layer:
            for k, layer in enumerate(m.layers):
                lim.check(getattr(layer, tail), f"{head}[{k}].{tail}")
            continue
        present, value = _field(exp, path)
        if present:
            lim.check(value)
    for k, layer in enumerate(m.layers):
        where = f"model.layers[{k}]"
        if layer.peephole and layer.cell != "lstm":
            raise ConfigError(f"{where}.peephole: peephole connections need an lstm cell, not {layer.cell}")
        if layer.activation != "tanh" and layer.cell != "rnn":
            raise ConfigError(f"{where}.activation: only rnn cells take an activation; "
                              f"{layer.cell} gates are fixed")
        if layer.bidirectional and m.pattern == "output_recurrence":
            raise ConfigError(f"{where}.bidirectional: output_recurrence has no hidden-to-hidden "
                              "recurrence to run backwards; use many_to_many or many_to_one")
    if m.loss == "cross_entropy" and m.output_size < 2:
        raise ConfigError("model.output_size: cross_entropy needs at least 2 classes")


def experiment_from_dict(data: Any) -> Experiment:
    """Validate a parsed experiment JSON object and build an :class:`Experiment`."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object at the top level, got {_describe(data)}")
    if data.get("format") != FORMAT:
        raise ConfigError(f"format: expected {FORMAT!r}, got {_describe(data.get('format'))}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"version: expected an integer, got {_describe(version)}")
    if version > VERSION or version < 1:
        raise ConfigError(f"version: this build reads version {VERSION}, the file is version "
                          f"{_describe(version)}")
    if "model" not in data:
        raise ConfigError("model: missing (every experiment needs a model section)")
    body = {k: v for k, v in data.items() if k not in ("format", "version")}
    exp = _from_dict(Experiment, body, "")
    _check_ranges(exp)
    from .tasks import validate_task

    validate_task(exp)
    return exp


def experiment_to_dict(exp: Experiment) -> dict[str, Any]:
    """The JSON object for ``exp`` (task options are written flat into ``task``; an
    experiment without a task has no ``task`` section)."""
    body = dataclasses.asdict(dataclasses.replace(exp, weights=None))
    body.pop("weights")
    task = body["task"]
    if task is None:
        body.pop("task")
    else:
        task.update(task.pop("options"))
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    for key in ("title", "description"):
        if not body[key]:
            body.pop(key)
    out.update(body)
    return out


def training_batch_size(exp: Experiment, n_given: int | None = None) -> int:
    """Sequences per training update: ``training.batch_size`` when set, else the task's
    ``batch_size``; without a task, every one of the ``n_given`` sequences up to
    :data:`ARRAY_BATCH`.  (Updates draw from given arrays with replacement only when
    the batch is larger than the arrays.)"""
    if exp.training.batch_size is not None:
        return exp.training.batch_size
    if exp.task is not None:
        return exp.task.batch_size
    if n_given is None:
        raise ValueError("an experiment without a task trains on given arrays")
    return max(1, min(int(n_given), ARRAY_BATCH))


# The largest experiment file read (a regular file; the same cap as an archive's member).
MAX_EXPERIMENT_BYTES = 16 * 1024**2


def load_experiment_config(path: str | os.PathLike[str]) -> Experiment:
    """Read and validate an experiment JSON file; errors name the file and field."""
    from .safeio import read_capped

    p = Path(path)
    raw = read_capped(p, MAX_EXPERIMENT_BYTES, str(p), ConfigError, "an experiment file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: cannot read ({exc})") from None
    if not text.strip():
        raise ConfigError(f"{p}: the file is empty (an experiment is a JSON object; "
                          "gradlab presets lists lessons to start from)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; deep nesting
        raise ConfigError(f"{p}: not usable JSON ({exc})") from None
    try:
        return experiment_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def save_experiment(exp: Experiment, path: str | os.PathLike[str]) -> None:
    """Write ``exp`` as JSON, atomically."""
    atomic_write_text(path, json.dumps(experiment_to_dict(exp), indent=2) + "\n")


def replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` re-exported for callers that edit experiments."""
    return dataclasses.replace(obj, **changes)
