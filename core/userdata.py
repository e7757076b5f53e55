"""The user's own data: input and target arrays, from ``.npy`` files or in memory.

An experiment without a task section runs on these (and one with a task may too):
``x`` is ``(T, B, D)`` with ``D = model.input_size``; ``y`` is ``(T, B, O)`` for
many_to_many and output_recurrence, ``(B, O)`` for many_to_one, or integer class
labels ``(T, B)`` / ``(B,)`` in ``0 … O−1`` for cross_entropy (a trailing axis of
one is dropped).  Every check raises :class:`~core.errors.DataError` naming the file
(or ``input`` / ``target`` for arrays in memory), the shape expected and the shape
found, or the first non-finite value.

:func:`load_input` and :func:`load_target` read files (never unpickling);
:func:`check_arrays` checks arrays already in memory; both return host NumPy
arrays: ``x`` float64, ``y`` float64 or int64 class labels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, MemoryLimitError
from .experiment import ModelConfig
from .safeio import npy_declared, open_regular

# The largest .npy file read as --input or --target (a memory check follows).
MAX_NPY_BYTES = 64 * 1024**3

__all__ = ["check_arrays", "check_input", "check_target", "load_input", "load_target",
           "read_npy"]


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """One array from a .npy file; never unpickles.  DataError naming the file.

    Only a regular file is opened (a pipe or device is refused at once); its header
    is parsed and the shape it declares checked against the file's size and the
    memory free before the array is allocated."""
    p = Path(path)
    label = str(p)
    with open_regular(p, MAX_NPY_BYTES, label, DataError, "an array file") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            magic = fh.read(6)
            fh.seek(0)
        except OSError as exc:
            raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
        if magic[:1] == b"\x80":
            raise DataError(f"{p}: holds pickled objects, which are never loaded; save a "
                            "numeric array with numpy.save")
        if magic[:2] == b"PK":
            raise DataError(f"{p}: is an .npz archive; give a single array saved with "
                            "numpy.save")
        if magic != b"\x93NUMPY":
            raise DataError(f"{p}: not a .npy file; save the array with numpy.save")
        shape, _ = npy_declared(fh, label, size, DataError)
        try:
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        except MemoryError:
            raise MemoryLimitError(f"{p}: not enough memory to load the array of shape "
                                   f"{shape}") from None
        except ValueError as exc:
            if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                raise DataError(f"{p}: holds pickled objects, which are never loaded; save "
                                "a numeric array with numpy.save") from None
            raise DataError(f"{p}: corrupt .npy file ({_short(exc)})") from None
        except (OSError, EOFError) as exc:
            raise DataError(f"{p}: corrupt or truncated .npy file ({_short(exc)})") from None
        except Exception as exc:  # tokenize errors and the like from NumPy's header parser
            raise DataError(f"{p}: corrupt .npy file ({_short(exc)})") from None


def _short(text: object, limit: int = 160) -> str:
    line = _one_line(text)
    return line if len(line) <= limit else line[:limit - 3] + "..."


# The largest magnitude an input or target value may have: float32's, whatever the
# experiment's dtype, so that choosing float32 later can never overflow the data.
MAX_VALUE = float(np.finfo(np.float32).max)
MAX_SQUARED = MAX_VALUE * MAX_VALUE  # 1.2e77, a float64
_DOT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _first_bad(label: str, a: np.ndarray) -> None:
    if a.dtype.kind in "biu" or a.size == 0:
        return  # every integer lies within ±MAX_VALUE
    # The common case in one BLAS call: a finite sum of squares of at most MAX_VALUE²
    # means every value is finite and within range (a NaN or infinity makes the sum NaN
    # or infinite).  A sum that overflows its dtype, or a value beyond range, falls
    # through to the exact tests below, which either pass or name the value.
    if a.dtype in _DOT_DTYPES and a.flags.c_contiguous:
        flat = a.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            if float(np.dot(flat, flat)) <= MAX_SQUARED:
                return
    # Otherwise two reductions without temporaries: the extremes are within range (a NaN
    # makes min and max NaN, and NaN compares False); compared as Python floats, so a
    # float16 array meets no overflowing float16 MAX_VALUE.
    if (float(np.minimum.reduce(a, axis=None)) >= -MAX_VALUE
            and float(np.maximum.reduce(a, axis=None)) <= MAX_VALUE):
        return
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{label}: {int(bad.sum())} non-finite value(s) (NaN or infinity), the "
                        f"first at index {list(where)}")
    with np.errstate(invalid="ignore", over="ignore"):
        big = np.abs(a) > MAX_VALUE
    if big.any():
        where = tuple(int(i) for i in np.argwhere(big)[0])
        raise DataError(f"{label}: {int(big.sum())} value(s) beyond ±{MAX_VALUE:.4g} (they "
                        f"would overflow float32), the first, {a[where]:.4g}, at index "
                        f"{list(where)}")


def _cast(a: np.ndarray, dtype: Any) -> np.ndarray:
    """``a`` in ``dtype`` (checked by :func:`_first_bad` first: nothing overflows)."""
    with np.errstate(over="ignore"):
        return a.astype(dtype)


def _host(a: Any, label: str) -> np.ndarray:
    """A NumPy view or copy of ``a`` (a NumPy or CuPy array, or nested lists)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "__cuda_array_interface__") and hasattr(a, "get"):
        return a.get()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as exc:  # ragged nested lists, odd objects
        raise DataError(f"{label}: not an array of numbers ({_one_line(exc)})") from None


def check_input(a: Any, model: ModelConfig, label: str = "input",
                dtype: Any = np.float64) -> np.ndarray:
    """An input ``(T, B, D)`` with ``D = model.input_size``, as ``dtype`` (float64 unless
    asked: ``core.trace`` asks for its working dtype, saving two copies); ``label`` names
    it in errors (a file name, or "input")."""
    D = model.input_size
    a = _host(a, label)
    want = "(T, B, D) with D = model.input_size = {}"  # formatted only for a message
    if a.ndim != 3:
        raise DataError(f"{label}: expected an input of shape {want.format(D)}, got shape "
                        f"{a.shape}")
    if a.dtype.kind not in "biuf":
        raise DataError(f"{label}: expected numbers, got dtype {a.dtype}")
    if a.shape[2] != D:
        raise DataError(f"{label}: expected an input of shape {want.format(D)}, got shape "
                        f"{a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise DataError(f"{label}: needs at least one timestep and one sequence, got shape "
                        f"{a.shape}")
    _first_bad(label, a)  # before the cast: a value beyond float32 is named as such
    return a if a.dtype == dtype else _cast(a, dtype)


def check_target(a: Any, model: ModelConfig, T: int, B: int,
                 label: str = "target", dtype: Any = np.float64) -> np.ndarray:
    """A target for ``T`` steps of ``B`` sequences: (T, B, O), or (B, O) for many_to_one,
    as ``dtype`` (float64 unless asked); for cross_entropy integer class labels (T, B) or
    (B,) as int64."""
    O = model.output_size
    a = _host(a, label)
    seq = model.pattern != "many_to_one"
    if a.dtype.kind not in "biuf":
        raise DataError(f"{label}: expected numbers, got dtype {a.dtype}")
    if model.loss == "cross_entropy":
        want, desc = ((T, B), "(T, B)") if seq else ((B,), "(B,)")
        if a.shape == (*want, 1):
            a = a.reshape(want)
        if a.shape != want:
            raise DataError(f"{label}: expected integer class labels of shape {desc} = {want} "
                            f"for {_what(model)}, got shape {a.shape}")
        if a.dtype.kind == "f":
            _first_bad(label, a)
            if np.any(a != np.round(a)):
                raise DataError(f"{label}: class labels must be whole numbers")
        # the range in the file's own dtype, before a cast could wrap or overflow
        if a.size and (a.min() < 0 or a.max() >= O):
            lo, hi = a.min(), a.max()
            shown = (f"{int(lo)}..{int(hi)}" if a.dtype.kind in "biu"
                     else f"{float(lo):g}..{float(hi):g}")
            raise DataError(f"{label}: class labels must lie in 0..{O - 1} (output_size = {O}), "
                            f"got {shown}")
        return a.astype(np.int64, copy=False)
    want, desc = ((T, B, O), "(T, B, O)") if seq else ((B, O), "(B, O)")
    if a.shape != want:
        raise DataError(f"{label}: expected a target of shape {desc} = {want} for "
                        f"{_what(model)}, got shape {a.shape}")
    _first_bad(label, a)
    return a if a.dtype == dtype else _cast(a, dtype)


def _what(model: ModelConfig) -> str:
    return f"a {model.pattern} model with {model.loss} loss"


def check_arrays(model: ModelConfig, x: Any, y: Any,
                 dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Input and target arrays given in memory, checked against ``model``: shapes, dtypes,
    finiteness and class ranges.  Returns ``(x, y)`` on the host, in ``dtype`` (float64
    unless asked; class labels int64).  In float32, a value beyond its range counts as
    non-finite: it would be infinite in the pass.
    """
    if x is None:
        raise DataError("input: missing; give an input array of shape (T, B, D) with "
                        f"D = model.input_size = {model.input_size}")
    if y is None:
        raise DataError("target: missing; the loss, and so every gradient, needs a target")
    xs = check_input(x, model, dtype=dtype)
    return xs, check_target(y, model, T=xs.shape[0], B=xs.shape[1], dtype=dtype)


def load_input(path: str | os.PathLike[str], model: ModelConfig) -> np.ndarray:
    """``--input``: a (T, B, D) .npy array with D = model.input_size → float64."""
    return check_input(read_npy(path), model, str(Path(path)))


def load_target(path: str | os.PathLike[str], model: ModelConfig, T: int, B: int) -> np.ndarray:
    """``--target``: (T, B, O), or (B, O) for many_to_one; for cross_entropy integer
    classes (T, B) or (B,)."""
    return check_target(read_npy(path), model, T, B, str(Path(path)))
