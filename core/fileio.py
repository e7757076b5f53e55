"""Atomic writes: a temporary file in the same folder, then a rename over the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import UserError


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only if it succeeds.

    If ``write`` raises, the previous file at ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
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
