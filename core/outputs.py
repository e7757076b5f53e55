"""All-or-nothing output folders: a command's files appear together or not at all.

A command that writes several files (``analyze``, ``train``, ``export``, ``compare``) writes them
into a *staging* folder beside its ``--out`` folder, ``.NAME.gradlab-PID-HEX.staging``,
and :meth:`OutputFolder.commit` moves the finished set into place:

- the staging folder first receives (as hard links, else copies) every entry of the
  existing folder that this command does not own — the user's own files stay —
  while files the command owns from an earlier run (``replaces``) are left behind,
  so an old ``trace.npz`` never sits beside new weights;
- then the two folders swap in one atomic step (Linux ``renameat2``
  ``RENAME_EXCHANGE``), or elsewhere in two renames whose half-way state the next
  run repairs;
- then the old folder, now under the staging name, is deleted.

A kill, a full disk or a signal at any moment leaves the old folder or the new one.
Leftovers of killed runs (staging folders, old folders, temporary files) whose
process is gone are removed by the next run that writes the same folder
(:func:`remove_stale`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import UserError
from .fileio import pid_alive, remove_stale_temporaries

# The files analyze writes, and those train owns (its own and analyze's): an earlier
# run's copies are never kept beside a new run's.  Analyze leaves a trained run's weights.
ANALYZE_OUTPUTS = frozenset({"trace.npz", "summary.json", "jacobian.npz", "connectivity.npy"})
RUN_OUTPUTS = ANALYZE_OUTPUTS | {"experiment.json", "weights.safetensors", "history.csv"}
COMPARE_OUTPUTS = frozenset({"compare.csv", "compare.json", "compare.png", "compare.svg"})
_STAGE = re.compile(r"^\.(?P<name>.+)\.gradlab-(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>staging|old)$")


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` atomically; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
        return False  # no renameat2, or a file system without RENAME_EXCHANGE
    raise OSError(err, os.strerror(err), str(b))


def remove_stale(parent: Path, name: str) -> list[Path]:
    """Remove what killed runs left beside the folder ``parent/name``: staging folders,
    and old folders of a swap cut in half (put back in place when the folder itself is
    missing).  Only leftovers of processes that are gone.  Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    target = parent / name
    for entry in sorted(entries, key=lambda p: p.name):
        m = _STAGE.match(entry.name)
        if not m or m["name"] != name or pid_alive(int(m["pid"])):
            continue
        try:
            if m["kind"] == "old" and not target.exists():
                os.rename(entry, target)  # the swap stopped half-way: the old folder returns
                continue
            shutil.rmtree(entry)
            removed.append(entry)
        except OSError:
            pass  # another run got there first, or no permission: left for later
    return removed


def _owner(replaces: Iterable[str] | Callable[[str], bool]) -> Callable[[str], bool]:
    """Whether a name is the command's own: a set of names, or a rule on a name."""
    if callable(replaces):
        return replaces
    names = frozenset(replaces)
    return names.__contains__


def _carry(old: Path, new: Path, owns: Callable[[str], bool]) -> None:
    """Link (else copy) every entry of ``old`` that the command does not own into ``new``."""
    for entry in old.iterdir():
        if owns(entry.name) or (new / entry.name).exists():
            continue
        if re.match(r"^\..+\.tmp$", entry.name) or _STAGE.match(entry.name):
            continue  # a temporary file of a killed write: not carried
        dest = new / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dest, symlinks=True, copy_function=_link_or_copy)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry), dest)
        else:
            _link_or_copy(str(entry), str(dest))


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
    return dst


class OutputFolder:
    """The staging folder of one command's outputs; :meth:`commit` puts them in place.

    ``target``: the ``--out`` folder (created when missing; a file there is an error).
    ``replaces``: the names the command owns (or a rule saying whether a name is one of
    them, for a command whose file names depend on what it draws); an earlier run's
    files of these names are dropped rather than carried over.  Use as a context manager: leaving it
    without :meth:`commit` (an error, Ctrl-C) removes the staging folder and leaves
    the target as it was.
    """

    def __init__(self, target: str | os.PathLike[str], label: str = "--out",
                 replaces: Iterable[str] | Callable[[str], bool] = RUN_OUTPUTS) -> None:
        given = Path(target)
        self.label = f"{label} {given}" if label else str(given)
        real = Path(os.path.realpath(given))
        if real.exists() and not real.is_dir():
            raise UserError(f"{self.label}: exists and is not a folder")
        if real.parent == real:
            raise UserError(f"{self.label}: cannot write into the root of a file system")
        self.target, self.given = real, given
        self.owns = _owner(replaces)
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.label}: cannot create the folder "
                            f"({exc.strerror or exc})") from None
        remove_stale(real.parent, real.name)
        if real.is_dir():
            remove_stale_temporaries(real)
        stage = real.parent / f".{real.name}.gradlab-{os.getpid()}-{secrets.token_hex(4)}.staging"
        try:
            stage.mkdir()
        except OSError as exc:
            raise UserError(f"{self.label}: cannot create a temporary folder beside it "
                            f"({exc.strerror or exc})") from None
        self.path = stage
        self.committed = False

    def final(self, path: Path) -> Path:
        """Where a file written at ``path`` in the staging folder ends up."""
        return self.given / Path(path).relative_to(self.path)

    def commit(self) -> None:
        """Move the staged outputs into place (see the module's docstring)."""
        target, stage = self.target, self.path
        try:
            if not target.exists():
                os.rename(stage, target)
            else:
                _carry(target, stage, self.owns)
                if _exchange(stage, target):
                    shutil.rmtree(stage, ignore_errors=True)  # now the old folder
                else:
                    old = stage.with_name(stage.name.removesuffix(".staging") + ".old")
                    os.rename(target, old)
                    try:
                        os.rename(stage, target)
                    except OSError:
                        os.rename(old, target)
                        raise
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise UserError(f"{self.label}: cannot put the outputs in place "
                            f"({exc.strerror or exc}); the folder is as it was") from None
        self.committed = True

    def discard(self) -> None:
        """Remove the staging folder; the target is left as it was."""
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self.discard()
        if isinstance(exc, UserError) and str(self.path) in str(exc):
            # name the file where it was to go, not the staging folder it was written in
            raise type(exc)(str(exc).replace(str(self.path), str(self.given))) from None


__all__ = ["ANALYZE_OUTPUTS", "COMPARE_OUTPUTS", "RUN_OUTPUTS", "OutputFolder", "remove_stale"]
