"""Bounded reads: every file the lab opens is a regular file of a known, capped size.

A named pipe would block a reader forever, a device such as ``/dev/zero`` never ends,
and a small compressed file can declare gigabytes.  The helpers here refuse each at
once with one line naming the file:

- :func:`check_regular` — a path that exists and is a regular file (following links),
  with its size at most a cap; FIFOs, devices, sockets and folders are refused.
- :func:`read_capped` — the bytes of such a file, opened without blocking and read at
  most ``cap + 1`` bytes (a file that grows while read is refused too).
- :func:`open_regular` — a binary file object on such a file, for readers that
  stream (zip, npy, CSV).
- :func:`npy_declared` — the shape and dtype a ``.npy`` stream declares, parsed and
  checked against the bytes that follow it before any array is allocated.
- :func:`check_npz_members` — every member of an ``.npz`` checked the same way, by
  its declared uncompressed size, before anything is decompressed.
"""

from __future__ import annotations

import ast
import os
import stat
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import MemoryLimitError, UserError
from .memory import available_memory, format_bytes

# The share of the memory free now that one file's contents may take once loaded.
MEMORY_SHARE = 0.8
# Bytes a .npy header may take (NumPy itself stops at 10 000).
MAX_NPY_HEADER = 65_536


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse_kind(label: str, mode: int, error: type[UserError]) -> None:
    if not stat.S_ISREG(mode):
        raise error(f"{label}: is {_kind(mode)}, not a regular file; give a file")


def _stat(path: Path, label: str, error: type[UserError]) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise error(f"{label}: no such file") from None
    except OSError as exc:
        raise error(f"{label}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # a NUL character in the path
        raise error(f"{label}: cannot read ({exc})") from None


def size_refusal(label: str, size: int, cap: int, what: str = "a file") -> str:
    """The one line that refuses a file of ``size`` bytes above ``cap``."""
    return (f"{label}: the file is {format_bytes(size)}; {what} may be at most "
            f"{format_bytes(cap)}")


def check_regular(path: str | os.PathLike[str], cap: int, label: str | None = None,
                  error: type[UserError] = UserError, what: str = "a file") -> int:
    """The size of the regular file at ``path``; ``error`` naming it (``label``) when it
    is missing, not a regular file, empty (no file the lab reads may be) or larger than
    ``cap`` bytes."""
    p = Path(path)
    label = label or str(p)
    st = _stat(p, label, error)
    _refuse_kind(label, st.st_mode, error)
    if st.st_size == 0:
        raise error(f"{label}: the file is empty (0 bytes); expected {what}")
    if st.st_size > cap:
        raise error(size_refusal(label, st.st_size, cap, what))
    return int(st.st_size)


def open_regular(path: str | os.PathLike[str], cap: int, label: str | None = None,
                 error: type[UserError] = UserError, what: str = "a file") -> IO[bytes]:
    """A binary file object on the regular file at ``path`` of at most ``cap`` bytes.

    The file is opened without blocking (a FIFO put in its place after the check
    cannot stall the open) and checked again on the open descriptor.
    """
    p = Path(path)
    label = label or str(p)
    check_regular(p, cap, label, error, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise error(f"{label}: no such file") from None
    except OSError as exc:
        raise error(f"{label}: cannot read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        _refuse_kind(label, st.st_mode, error)
        if st.st_size > cap:
            raise error(size_refusal(label, st.st_size, cap, what))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path: str | os.PathLike[str], cap: int, label: str | None = None,
                error: type[UserError] = UserError, what: str = "a file") -> bytes:
    """The bytes of the regular file at ``path``, at most ``cap`` of them."""
    label = label or str(path)
    with open_regular(path, cap, label, error, what) as fh:
        try:
            data = fh.read(cap + 1)
        except OSError as exc:
            raise error(f"{label}: cannot read ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise error(f"{label}: grew past {format_bytes(cap)} while being read; "
                    f"{what} may be at most {format_bytes(cap)}")
    return data


def memory_cap(factor: float = 1.0) -> int:
    """The bytes a file may hold when loading it takes ``factor`` times its size: the
    share :data:`MEMORY_SHARE` of the memory free now, over ``factor``."""
    return int(MEMORY_SHARE * available_memory() / factor)


def check_fits(label: str, need: int, what: str = "loading it",
               error: type[UserError] = MemoryLimitError) -> None:
    """``error`` when ``need`` bytes exceed the share of free memory one load may take."""
    have = available_memory()
    if need > MEMORY_SHARE * have:
        raise error(f"{label}: {what} needs about {format_bytes(need)}; the limit is "
                    f"{format_bytes(MEMORY_SHARE * have)}, {100 * MEMORY_SHARE:.0f} % of the "
                    f"{format_bytes(have)} of memory free now")


def _header_dict(fh: IO[bytes], label: str, error: type[UserError]) -> dict[str, Any]:
    magic = fh.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise error(f"{label}: not a .npy array (no NUMPY magic)")
    major = magic[6]
    if major == 1:
        size_bytes = fh.read(2)
        n = int.from_bytes(size_bytes, "little") if len(size_bytes) == 2 else -1
    elif major in (2, 3):
        size_bytes = fh.read(4)
        n = int.from_bytes(size_bytes, "little") if len(size_bytes) == 4 else -1
    else:
        raise error(f"{label}: unsupported .npy format version {major}.{magic[7]}")
    if n < 0:
        raise error(f"{label}: truncated .npy header")
    if n > MAX_NPY_HEADER:
        raise error(f"{label}: .npy header of {n} bytes, more than {MAX_NPY_HEADER}")
    raw = fh.read(n)
    if len(raw) < n:
        raise error(f"{label}: truncated .npy header")
    try:
        text = raw.decode("latin-1" if major == 1 else "utf-8")
        header = ast.literal_eval(text)
    except (SyntaxError, ValueError, UnicodeDecodeError, MemoryError, RecursionError,
            TypeError):
        raise error(f"{label}: corrupt .npy header (not a Python dict literal)") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise error(f"{label}: corrupt .npy header (expected the keys descr, fortran_order, "
                    "shape)")
    return header


def npy_declared(fh: IO[bytes], label: str, remaining: int,
                 error: type[UserError] = UserError) -> tuple[tuple[int, ...], np.dtype]:
    """Read a ``.npy`` header from ``fh`` and return ``(shape, dtype)``.

    ``remaining`` is the number of bytes from the start of the header to the end of
    the array's stream; the declared data must fit in them, and the array in memory.
    Object dtypes (pickles) are refused.  Leaves ``fh`` at the first data byte.
    """
    start = fh.tell()
    header = _header_dict(fh, label, error)
    shape, descr = header["shape"], header["descr"]
    if (not isinstance(shape, tuple)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                       for n in shape) or len(shape) > 32):
        raise error(f"{label}: corrupt .npy header (shape {str(shape)[:40]})")
    if not isinstance(header["fortran_order"], bool):
        raise error(f"{label}: corrupt .npy header (fortran_order)")
    try:
        dtype = np.dtype(descr if isinstance(descr, str) else
                         np.lib.format.descr_to_dtype(descr))
    except (TypeError, ValueError, KeyError, SyntaxError):
        raise error(f"{label}: corrupt .npy header (dtype {str(descr)[:40]!r})") from None
    if dtype.hasobject:
        raise error(f"{label}: holds pickled objects, which are never loaded; save a numeric "
                    "array with numpy.save")
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    data_left = remaining - (fh.tell() - start)
    if nbytes > data_left:
        raise error(f"{label}: declares an array of shape {shape} ({format_bytes(nbytes)}) "
                    f"but holds only {format_bytes(max(data_left, 0))} of data; the file is "
                    "truncated or corrupt")
    check_fits(label, nbytes * 2, "loading the array it declares", MemoryLimitError)
    return shape, dtype


def check_npz_members(zf: zipfile.ZipFile, label: str, error: type[UserError] = UserError,
                      factor: float = 2.0) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Every member of an ``.npz`` by its declared uncompressed size, before any is
    decompressed: their total, times ``factor`` (the copies loading makes), must fit in
    memory; each member's own ``.npy`` header must fit in its declared size.  Returns
    ``{name without .npy: (shape, dtype)}`` from the headers alone."""
    infos = zf.infolist()
    found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    total = sum(info.file_size for info in infos)
    check_fits(label, int(total * factor), f"unpacking its {len(infos)} array(s) "
               f"({format_bytes(total)} declared)")
    for info in infos:
        if info.flag_bits & 0x1:
            raise error(f"{label}: {info.filename[:80]}: encrypted members are not supported")
        try:
            with zf.open(info) as member:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                found[name] = npy_declared(member, f"{label}: {info.filename[:80]}",
                                           info.file_size, error)
        except UserError:
            raise
        except Exception as exc:  # BadZipFile, zlib.error, EOFError, OSError
            text = " ".join(str(exc).split())[:160]
            raise error(f"{label}: {info.filename[:80]}: corrupt member ({text})") from None
    return found


__all__ = ["MEMORY_SHARE", "check_fits", "check_npz_members", "check_regular", "memory_cap",
           "npy_declared", "open_regular", "read_capped", "size_refusal"]
