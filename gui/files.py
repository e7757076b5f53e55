"""Document handling without Qt: what a file holds, recent files, autosave and recovery.

A *document* is an experiment with its current weights, training history and optimizer
state.  It lives in a ``.gradlab`` archive (:mod:`core.archive`); an experiment ``.json``
holds the settings only.  Weights files (``.safetensors``, ``.npz``) are not documents:
they are loaded onto the current model.

Autosave writes ``<data dir>/autosave/<run>.gradlab`` and a marker
``<run>.json`` (pid, time, original path).  A clean save or exit removes both, so
markers found at start-up whose process is gone belong to a run that crashed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.archive import SUFFIX as ARCHIVE_SUFFIX
from core.archive import load_archive, save_archive
from core.errors import UserError, WeightsError
from core.experiment import (
    Experiment,
    ModelConfig,
    load_experiment_config,
    save_experiment,
)
from core.weights import SUFFIXES as WEIGHTS_SUFFIXES

EXPERIMENT_SUFFIX = ".json"
DOCUMENT_SUFFIXES = (ARCHIVE_SUFFIX, EXPERIMENT_SUFFIX)
OPENABLE_SUFFIXES = (*DOCUMENT_SUFFIXES, *WEIGHTS_SUFFIXES)
RECENT_LIMIT = 8
DATA_DIR_ENV = "GRADLAB_DATA_DIR"
MARKER_FORMAT = "gradlab-autosave"

OPEN_FILTER = ("Gradient Flow Lab files (*.gradlab *.json *.safetensors *.npz);;"
               "Saved experiments (*.gradlab);;Experiment settings (*.json);;"
               "Weights (*.safetensors *.npz);;All files (*)")
SAVE_FILTERS = {"Saved experiment: settings, weights, history (*.gradlab)": ARCHIVE_SUFFIX,
                "Experiment settings only (*.json)": EXPERIMENT_SUFFIX}


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """``"archive"``, ``"experiment"``, ``"weights"`` by suffix, or None if not ours."""
    suffix = Path(path).suffix.lower()
    if suffix == ARCHIVE_SUFFIX:
        return "archive"
    if suffix == EXPERIMENT_SUFFIX:
        return "experiment"
    if suffix in WEIGHTS_SUFFIXES:
        return "weights"
    return None


def data_dir() -> Path:
    """The per-user data folder: ``$GRADLAB_DATA_DIR`` if set, else the platform's."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("gradlab", "GradientFlowLab"))


# ----------------------------------------------------------------------------- documents


@dataclass
class Document:
    """An experiment with what a run added to it; ``params`` None means "from the seed"."""

    experiment: Experiment
    params: dict[str, np.ndarray] | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer_state: dict[str, np.ndarray] | None = None


def read_document(path: str | os.PathLike[str]) -> Document:
    """Read and fully validate a ``.gradlab`` archive or an experiment ``.json``.

    Raises :class:`UserError` naming the file (and member, field or line) at fault.
    """
    kind = file_kind(path)
    if kind == "archive":
        saved = load_archive(path)
        return Document(saved.experiment, saved.params, dict(saved.history),
                        saved.optimizer_state)
    if kind == "experiment":
        return Document(load_experiment_config(path))
    raise UserError(f"{path}: not an experiment (open a {ARCHIVE_SUFFIX} or "
                    f"{EXPERIMENT_SUFFIX} file; weights files load onto the current model)")


def read_weights(path: str | os.PathLike[str], model: ModelConfig) -> dict[str, np.ndarray]:
    """:func:`core.weights.load_weights`, its messages saying what they are about."""
    from core.weights import load_weights

    try:
        return load_weights(path, model)
    except UserError as exc:
        raise WeightsError(f"cannot load these weights onto the current model: {exc}") from None


def optimizer_state_fits(exp: Experiment, state: Mapping[str, Any] | None) -> bool:
    """Whether ``state`` has exactly the slots and shapes of ``exp``'s optimizer."""
    if state is None:
        return False
    from core.layout import param_shapes
    from core.training.optim import make_optimizer

    shapes = param_shapes(exp.model)
    slots = make_optimizer(exp.training, {}).slots
    expected = {f"{slot}.{name}": shape for slot in slots for name, shape in shapes.items()}
    if set(state) != {"step", *expected}:
        return False
    return all(tuple(np.shape(state[k])) == tuple(v) for k, v in expected.items())


def write_document(path: str | os.PathLike[str], doc: Document) -> None:
    """Write ``doc`` atomically: an archive, or only the settings for a ``.json`` path.

    An optimizer state that no longer fits the experiment's optimizer (its settings
    changed since training) is left out; training then starts the optimizer afresh.
    """
    if file_kind(path) == "experiment":
        save_experiment(doc.experiment, path)
        return
    state = doc.optimizer_state
    if doc.params is None or not optimizer_state_fits(doc.experiment, state):
        state = None
    save_archive(path, doc.experiment, doc.params, doc.history or None, state)


# ----------------------------------------------------------------------------- recent files


def add_recent(paths: Iterable[str], path: str | os.PathLike[str],
               limit: int = RECENT_LIMIT) -> list[str]:
    """``path`` (absolute) first, then the others without it, at most ``limit``."""
    new = str(Path(path).absolute())
    return [new, *(p for p in paths if p != new)][:limit]


def split_missing(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(still there, gone)``, each in the original order."""
    kept, gone = [], []
    for p in paths:
        (kept if Path(p).is_file() else gone).append(p)
    return kept, gone


def parse_recent(value: Any) -> list[str]:
    """The recent list from its stored JSON text; anything unreadable gives []."""
    try:
        items = json.loads(value) if isinstance(value, str) and value else []
    except ValueError:
        return []
    return [p for p in items if isinstance(p, str)] if isinstance(items, list) else []


# ----------------------------------------------------------------------------- autosave


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` is running on this machine."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        try:
            ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return bool(ok) and code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@dataclass
class AutosaveEntry:
    """One run's autosave: the archive, its marker and what the marker says."""

    archive: Path
    marker: Path
    run: str
    pid: int
    time: float
    path: str | None  # the document's own file, if it had one

    def discard(self) -> None:
        """Delete the marker, then the archive."""
        for p in (self.marker, self.archive):
            p.unlink(missing_ok=True)


class Autosave:
    """This run's autosave in ``folder``, and the ones crashed runs left behind."""

    def __init__(self, folder: str | os.PathLike[str], run: str | None = None,
                 pid: int | None = None) -> None:
        self.folder = Path(folder)
        self.run = run or uuid.uuid4().hex
        self.pid = os.getpid() if pid is None else pid
        self.archive = self.folder / f"{self.run}{ARCHIVE_SUFFIX}"
        self.marker = self.folder / f"{self.run}.json"

    def write(self, doc: Document, original: str | os.PathLike[str] | None) -> None:
        """Write the archive, then the marker (each atomically)."""
        from core.fileio import atomic_write_text

        write_document(self.archive, doc)
        marker = {"format": MARKER_FORMAT, "version": 1, "run": self.run,
                  "pid": self.pid, "time": time.time(),
                  "path": str(original) if original else None}
        atomic_write_text(self.marker, json.dumps(marker, indent=2) + "\n")

    @property
    def exists(self) -> bool:
        return self.marker.exists()

    def clear(self) -> None:
        """Remove this run's autosave (a clean save or exit)."""
        for p in (self.marker, self.archive):
            p.unlink(missing_ok=True)

    def orphans(self, alive: Callable[[int], bool] = pid_alive) -> list[AutosaveEntry]:
        """Autosaves of runs that ended without cleaning up, newest first.

        A marker is an orphan when it is not this run's and its process is gone
        (or its pid is this process's: an earlier run that got the same pid).
        Unreadable markers and markers without their archive are skipped.
        """
        if not self.folder.is_dir():
            return []
        found = []
        for marker in self.folder.glob("*.json"):
            entry = _read_marker(marker)
            if entry is None or entry.run == self.run:
                continue
            if entry.pid != self.pid and alive(entry.pid):
                continue
            found.append(entry)
        return sorted(found, key=lambda e: -e.time)


def _read_marker(marker: Path) -> AutosaveEntry | None:
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
            return None
        run, pid, when = data["run"], data["pid"], data["time"]
        path = data.get("path")
        if (not isinstance(run, str) or isinstance(pid, bool) or not isinstance(pid, int)
                or not isinstance(when, (int, float)) or not isinstance(path, (str, type(None)))):
            return None
    except (OSError, ValueError, KeyError):
        return None
    archive = marker.with_suffix(ARCHIVE_SUFFIX)
    if marker.stem != run or not archive.is_file():
        return None
    return AutosaveEntry(archive, marker, run, pid, float(when), path)


__all__ = ["DOCUMENT_SUFFIXES", "OPENABLE_SUFFIXES", "Autosave", "AutosaveEntry", "Document",
           "add_recent", "data_dir", "file_kind", "optimizer_state_fits", "parse_recent",
           "pid_alive", "read_document", "read_weights", "split_missing", "write_document"]
