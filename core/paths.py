"""Dotted paths into an experiment: read a field, change it, parse ``--vary`` arguments.

A path names one field of the experiment file by its keys, with list indices as
numbers: ``init.forget_bias``, ``init.scales.recurrent``, ``model.layers.0.cell``,
``training.clip.mode``, ``task.seq_len``, and a task's own fields (``task.noise``).

- :func:`get_path` reads a field (a section gives its dataclass).
- :func:`with_path` / :func:`with_paths` return a new, validated experiment with
  fields changed.  A ``str`` value (what the command line gives) is parsed to the
  field's type: a number for numeric fields, ``true``/``false`` for flags, ``null``
  (or ``none``) where the field may be null, and kept as text for text fields.
- :func:`parse_vary` splits ``PATH=V1,V2,…``.

Changing a layer's ``cell`` fits the layer's other fields to the new cell
(:func:`fit_layer`): peepholes exist only on an lstm, an activation other than
tanh only on an rnn, so a grid over ``model.layers.0.cell`` turns them off where
they do not fit instead of failing; :func:`with_paths` says what it changed.

Errors are :class:`~core.errors.ConfigError` and name the path:
``init.forgt_bias: no such field (expected one of forget_bias, scales, scheme, seed)``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal

from .errors import ConfigError
from .experiment import (
    Experiment,
    TaskConfig,
    experiment_from_dict,
    experiment_to_dict,
    type_hints,
)

__all__ = ["fit_layer", "format_value", "get_path", "parse_value", "parse_vary", "with_path",
           "with_paths"]

_NULLS = ("null", "none")
_TASK_COMMON = ("name", "seq_len", "batch_size")


def _split(path: str) -> list[str]:
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{path!r}: expected a dotted field path such as init.forget_bias")
    parts = path.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"{path}: empty part in the path (expected e.g. model.layers.0.cell)")
    return parts


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``(inner type, may be null)`` of an annotation."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return inner[0], type(None) in args
    return tp, False


def _json_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("json", True)]


def _task_fields(task: TaskConfig) -> dict[str, Any]:
    """The task's fields (common and its own) with their current or default values."""
    from .tasks import get_spec

    spec = get_spec(task.name)
    own = {k: task.options.get(k, opt.default) for k, opt in spec.options.items()}
    return {"name": task.name, "seq_len": task.seq_len, "batch_size": task.batch_size, **own}


@dataclasses.dataclass
class _Field:
    """Where a path leads: its value, its annotation (None: untyped task field) and
    whether it may be null."""

    value: Any
    tp: Any
    nullable: bool


def _resolve(exp: Experiment, path: str) -> tuple[list[str | int], _Field]:
    """Walk ``path`` through ``exp``: the keys (list indices as ints) and the field."""
    parts = _split(path)
    keys: list[str | int] = []
    obj: Any = exp
    tp: Any = Experiment
    nullable = False
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "experiment"
        here = ".".join(parts[:i + 1])
        tp, nullable = _unwrap(tp)
        if obj is None and i > 0:
            if where == "task":
                raise ConfigError(f"{path}: this experiment has no task section")
            raise ConfigError(f"{path}: {where} is null here")
        if typing.get_origin(tp) is list:
            (inner,) = typing.get_args(tp)
            n = len(obj)
            if not n:
                raise ConfigError(f"{here}: {where} is empty")
            if not re.fullmatch(r"\d+", part):
                raise ConfigError(f"{here}: {where} is a list; expected an index ({_indices(n)})")
            k = int(part)
            if k >= n:
                raise ConfigError(f"{here}: no such index ({where} has {n}: {_indices(n)})")
            keys.append(k)
            obj, tp, nullable = obj[k], inner, False
            continue
        if tp is TaskConfig:
            fields = _task_fields(obj)
            if part not in fields:
                raise ConfigError(f"{here}: no such field (expected one of "
                                  f"{', '.join(sorted(fields))})")
            keys.append(part)
            tp = type_hints(TaskConfig)[part] if part in _TASK_COMMON else None
            obj, nullable = fields[part], False
            continue
        if dataclasses.is_dataclass(tp):
            names = _json_fields(tp)
            if part not in names:
                raise ConfigError(f"{here}: no such field (expected one of "
                                  f"{', '.join(sorted(names))})")
            keys.append(part)
            obj, tp = getattr(obj, part), type_hints(tp)[part]
            continue
        kind = "a list" if isinstance(obj, list) else f"a {_kind(tp)}"
        raise ConfigError(f"{here}: no such field ({where} is {kind}, not a section)")
    inner, may_be_null = _unwrap(tp)
    return keys, _Field(obj, inner, may_be_null or nullable)


def _indices(n: int) -> str:
    return "0" if n == 1 else f"0…{n - 1}"


def _kind(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "choice"
    return {bool: "flag", int: "whole number", float: "number", str: "text"}.get(tp, "value")


def get_path(exp: Experiment, path: str) -> Any:
    """The value at ``path`` (``model.layers.0.cell`` → ``"lstm"``); a section gives its
    dataclass (``init.scales`` → :class:`~core.experiment.Scales`).  A task field left
    out of the file gives the task's default."""
    return _resolve(exp, path)[1].value


def _is_section(f: _Field) -> bool:
    return dataclasses.is_dataclass(f.tp) or typing.get_origin(f.tp) in (list, dict)


def parse_value(exp: Experiment, path: str, text: str) -> Any:
    """``text`` (from the command line) as a value of the field at ``path``.

    Numbers for numeric fields, ``true``/``false`` for flags, ``null``/``none`` where
    the field may be null, the text itself for text and choice fields.  Text that does
    not fit is returned unchanged, so that validation names the field and what it
    expected.  A task's own fields follow the type of their default.
    """
    _keys, f = _resolve(exp, path)
    if _is_section(f):
        raise _section_error(path, f)
    return _typed(text, f.tp, f.nullable, f.value)


def _section_error(path: str, f: _Field) -> ConfigError:
    if typing.get_origin(f.tp) is list:
        (inner,) = typing.get_args(f.tp)
        first = _json_fields(inner)[0] if dataclasses.is_dataclass(inner) else ""
        example = f"{path}.0.{first}" if first else f"{path}.0"
        return ConfigError(f"{path}: a list, not a field; vary a field of one entry, "
                           f"e.g. {example}")
    if f.tp is TaskConfig:
        names = sorted(_task_fields(f.value))
    elif dataclasses.is_dataclass(f.tp):
        names = sorted(_json_fields(f.tp))
    else:
        names = []
    return ConfigError(f"{path}: a section, not a field; vary one of its fields "
                       f"({', '.join(names)})")


def _typed(text: str, tp: Any, nullable: bool, current: Any) -> Any:
    token = text.strip()
    low = token.lower()
    if nullable and low in _NULLS:
        return None
    if tp is None:  # a task's own field: the type of its default, else a guess
        if current is None or isinstance(current, (int, float, bool, str)):
            tp = type(current) if current is not None else Any
            if tp is int and not re.fullmatch(r"[+-]?\d+", token):
                tp = float  # a default of 0 does not make a field integral
        if low in _NULLS:
            return None
    if tp is bool:
        return {"true": True, "false": False}.get(low, token)
    if tp in (int, float):
        return _number(token, tp)
    if tp is str or typing.get_origin(tp) is Literal:
        return token
    if tp is Any:
        if low in ("true", "false"):
            return low == "true"
        number = _number(token, float)
        return number if not isinstance(number, str) else token
    return token


def _number(token: str, tp: type) -> Any:
    if re.fullmatch(r"[+-]?\d+", token):
        return int(token)
    try:
        value = float(token)
    except ValueError:
        return token  # validation says "expected a number, got 'abc'"
    if tp is int and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def format_value(value: Any) -> str:
    """A value as it is written in a path assignment: ``2``, ``0.5``, ``true``, ``null``,
    ``lstm``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return str(value)


def fit_layer(layer: dict[str, Any], keep: Sequence[str] = ()) -> list[str]:
    """Fit a layer (its experiment-file dict, changed in place) to its cell: peepholes
    off unless it is an lstm, the activation back to tanh unless it is an rnn.  Fields
    in ``keep`` (set on purpose) are left alone.  Returns what it changed, in words."""
    cell = layer.get("cell", "lstm")
    notes = []
    if cell != "lstm" and layer.get("peephole") and "peephole" not in keep:
        layer["peephole"] = False
        notes.append("peephole off (only an lstm has peepholes)")
    activation = layer.get("activation", "tanh")
    if cell != "rnn" and activation != "tanh" and "activation" not in keep:
        layer["activation"] = "tanh"
        notes.append(f"activation tanh, not {activation} (only an rnn takes an activation; "
                     f"{cell} gates are fixed)")
    return notes


def _dotted(message: str) -> str:
    """``model.layers[0].cell: …`` → ``model.layers.0.cell: …`` (for comparison)."""
    return re.sub(r"\[(\d+)\]", r".\1", message)


def with_paths(exp: Experiment, changes: Sequence[tuple[str, Any]]) -> tuple[Experiment, list[str]]:
    """A new experiment with every ``(path, value)`` of ``changes`` applied, validated
    as a file is (:func:`~core.experiment.experiment_from_dict`), and what
    :func:`fit_layer` changed besides, in words (``model.layers.0: peephole off …``).

    ``str`` values are parsed by :func:`parse_value`.  The result carries no weights:
    it is settings only.  ConfigError names the path (and the value, when the problem
    is with the combination rather than the field itself).
    """
    data = experiment_to_dict(exp)
    set_in_layer: dict[int, set[str]] = {}
    cells: list[int] = []
    typed: list[tuple[str, Any]] = []
    for path, value in changes:
        keys, f = _resolve(exp, path)
        if isinstance(value, str):
            value = parse_value(exp, path, value)
        elif _is_section(f) and not isinstance(value, (dict, list)):
            raise _section_error(path, f)
        node: Any = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        typed.append((path, value))
        if len(keys) == 4 and keys[:2] == ["model", "layers"]:
            k = int(keys[2])
            set_in_layer.setdefault(k, set()).add(str(keys[3]))
            if keys[3] == "cell":
                cells.append(k)
    notes = []
    for k in cells:
        layer = data["model"]["layers"][k]
        notes += [f"model.layers.{k}: {n}" for n in fit_layer(layer, tuple(set_in_layer[k]))]
    try:
        return experiment_from_dict(data), notes
    except ConfigError as exc:
        message = str(exc)
        head, colon, rest = message.partition(":")
        if len(typed) == 1 and colon and _dotted(head) == typed[0][0].strip():
            raise ConfigError(f"{typed[0][0].strip()}:{rest}") from None  # as the user wrote it
        told = ", ".join(f"{p}={format_value(v)}" for p, v in typed)
        raise ConfigError(f"{told}: {message}") from None


def with_path(exp: Experiment, path: str, value: Any) -> Experiment:
    """A new, validated experiment with the field at ``path`` set to ``value`` (a ``str``
    is parsed to the field's type); see :func:`with_paths`."""
    return with_paths(exp, [(path, value)])[0]


def parse_vary(text: str) -> tuple[str, list[str]]:
    """``"init.forget_bias=0,2"`` → ``("init.forget_bias", ["0", "2"])``: the path and
    its values as text (:func:`with_path` parses them to the field's type).  At least
    one value; none twice."""
    path, eq, rest = text.partition("=")
    path = path.strip()
    if not eq or not path:
        raise ConfigError(f"{text!r}: expected PATH=V1,V2,… (e.g. init.forget_bias=0,2)")
    _split(path)
    values = [v.strip() for v in rest.split(",")]
    if not rest.strip() or any(not v for v in values):
        raise ConfigError(f"{path}: expected values after '=', separated by commas "
                          f"(e.g. {path}=0,2), got {rest.strip()!r}")
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"{path}: the value {v} is given twice")
        seen.add(v)
    return path, values
