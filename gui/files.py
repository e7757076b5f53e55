"""Files around the window, without Qt: recent files, autosave and recovery.

What a file holds (documents, weights) is :mod:`core.document`'s; it is re-exported here.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.archive import SUFFIX as ARCHIVE_SUFFIX
from core.document import (
    DOCUMENT_SUFFIXES,
    EXPERIMENT_SUFFIX,
    OPENABLE_SUFFIXES,
    Document,
    file_kind,
    optimizer_state_fits,
    read_document,
    read_weights,
    write_document,
)

RECENT_LIMIT = 8
DATA_DIR_ENV = "GRADLAB_DATA_DIR"
MARKER_FORMAT = "gradlab-autosave"

OPEN_FILTER = ("Gradient Flow Lab files (*.gradlab *.json *.safetensors *.npz *.zarr.zip);;"
               "Saved experiments (*.gradlab);;Experiment settings (*.json);;"
               "Weights (*.safetensors *.npz);;Packed sweeps (*.zarr.zip);;All files (*)")
SAVE_FILTERS = {"Saved experiment: settings, weights, history (*.gradlab)": ARCHIVE_SUFFIX,
                "Experiment settings only (*.json)": EXPERIMENT_SUFFIX}


def data_dir() -> Path:
    """The per-user data folder: ``$GRADLAB_DATA_DIR`` if set, else the platform's."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("gradlab", "GradientFlowLab"))


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
    title: str = ""  # the experiment's title (a lesson's name), for the recovery question

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
                  "path": str(original) if original else None,
                  "title": doc.experiment.title}
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
        from core.fileio import remove_stale_temporaries

        remove_stale_temporaries(self.folder)  # what killed autosaves left half-written
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
    title = data.get("title")
    return AutosaveEntry(archive, marker, run, pid, float(when), path,
                         title if isinstance(title, str) else "")


__all__ = ["DOCUMENT_SUFFIXES", "OPENABLE_SUFFIXES", "Autosave", "AutosaveEntry", "Document",
           "add_recent", "data_dir", "file_kind", "optimizer_state_fits", "parse_recent",
           "pid_alive", "read_document", "read_weights", "split_missing", "write_document"]
