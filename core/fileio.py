"""Atomic writes: a temporary file in the same folder, then a rename over the target."""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

from .errors import UserError


def _temporary(target: Path) -> str:
    """Create an empty temporary file beside ``target`` and return its path.

    It is created as ``open(target, "w")`` would create the target itself: mode 0666
    less the user's umask, or the mode of the file it will replace (``tempfile.mkstemp``
    would make it 0600, leaving saved files unreadable to everyone else).
    """
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None  # a new file: the umask decides
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            if mode is not None:
                os.chmod(tmp, mode)
        finally:
            os.close(fd)
        return str(tmp)
    raise FileExistsError(f"{target.parent}: no free name for a temporary file")


# A temporary file of :func:`atomic_write`: ``.NAME.PID-HEX.tmp`` (``.NAME.HEX.tmp`` before
# the writer's process id was part of the name).
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.tmp$")
# A temporary file without a process id is stale once this old (seconds).
_UNOWNED_AGE = 3600.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs now (a permission error means it does)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str],
                             name: str | None = None) -> list[Path]:
    """Remove the temporary files killed writes left in ``folder`` (only those of
    ``name`` when given): those whose process is gone, and unowned ones over an hour
    old.  Best effort; returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMPORARY.match(entry.name)
        if not m or (name is not None and m["name"] != name):
            continue
        try:
            if m["pid"] is not None:
                stale = not pid_alive(int(m["pid"]))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > _UNOWNED_AGE
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only if it succeeds.

    If ``write`` raises, the previous file at ``path`` is left untouched.  The file gets
    the permissions a plain write would give it: those of the file it replaces, else
    0666 less the umask.  Temporary files that killed writes of the same file left
    behind are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent, target.name)
    tmp = _temporary(target)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def ensure_folder(path: str | os.PathLike[str], label: str = "",
                  error: type[Exception] = UserError) -> Path:
    """Create the folder ``path`` if needed; ``error`` (a UserError by default) names it
    when it is a file or cannot be created.  ``label`` prefixes the name, e.g. "--out"."""
    out = Path(path)
    name = f"{label} {out}" if label else str(out)
    if out.exists() and not out.is_dir():
        raise error(f"{name}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{name}: cannot create the folder ({exc.strerror or exc})") from None
    return out


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
