"""Lesson presets: full experiment files in ``resources/lessons/``, one per lesson.

A lesson's name is its file name without ``.json``; its ``title`` and
``description`` fields say what it shows.  Used by the app's Lessons menu and by
``gradlab presets`` / ``--preset`` (no Qt here).
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError
from .experiment import Experiment, experiment_from_dict
from .pairs import Pair, check_pair, pair_from_dict
from .resources import resource_path

LESSONS_DIR = resource_path("lessons")

# Teaching order; any other lesson file is listed after these, alphabetically.
ORDER = (
    "vanishing_tanh",
    "exploding_clipping",
    "edge_of_chaos",
    "sigmoid_flattening",
    "forget_gate",
    "lstm_anatomy",
    "peephole",
    "gru_gates",
    "coupled_gates",
    "input_only_gates",
    "bidirectional",
    "sequence_to_one",
    "teacher_forcing",
    "one_weights_every_length",
)


def _names() -> list[str]:
    found = {p.stem for p in LESSONS_DIR.glob("*.json")}
    first = [n for n in ORDER if n in found]
    return first + sorted(found - set(first))


def lesson_path(name: str) -> Path:
    """The file of lesson ``name``; ConfigError listing the lessons if there is none."""
    names = _names()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(names) or 'none'}")
    return LESSONS_DIR / f"{name}.json"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path.name}: cannot read lesson ({exc})") from None


def list_lessons() -> list[tuple[str, str]]:
    """Every lesson as ``(name, title)``, in teaching order."""
    out = []
    for name in _names():
        try:
            title = str(_read(LESSONS_DIR / f"{name}.json").get("title") or name)
        except ConfigError:
            title = name
        out.append((name, title))
    return out


def lesson_sweep(name: str) -> Path | None:
    """The ready sweep that ships with lesson ``name`` (``resources/sweeps/NAME.zarr.zip``,
    shown as a phase diagram), or None."""
    path = LESSONS_DIR.parent / "sweeps" / f"{name}.zarr.zip"
    return path if path.is_file() else None


def load_lesson(name: str) -> Experiment:
    """The validated experiment of lesson ``name`` (its ``compare`` step aside: see
    :func:`lesson_pair`)."""
    data = _read(lesson_path(name))
    data.pop("compare", None)
    try:
        return experiment_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"lesson {name}: {exc}") from None


def lesson_pair(name: str) -> Pair | None:
    """The lesson's one-click "Compare" step (:class:`core.pairs.Pair`), or None: its
    optional ``compare`` object ``{"path", "values": [A, B], "train_steps", "label"}``,
    checked against the lesson's own settings."""
    raw = _read(lesson_path(name)).get("compare")
    if raw is None:
        return None
    pair = pair_from_dict(raw, f"lesson {name}: compare")
    try:
        check_pair(load_lesson(name), pair)
    except ConfigError as exc:
        raise ConfigError(f"lesson {name}: compare: {exc}") from None
    return pair
