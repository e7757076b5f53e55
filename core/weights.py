"""Weights files: PyTorch-named parameters in ``.safetensors`` or ``.npz``, never pickles.

Names and shapes are exactly :func:`core.layout.param_shapes`: PyTorch's own
``torch.nn.RNN/LSTM/GRU`` names (``weight_ih_l0`` (G·H, D), ``weight_hh_l0``
(G·H, H), ``bias_ih_l0``, ``bias_hh_l0`` (G·H,), ``…_l0_reverse``) plus
``head.weight`` (O, H_out), ``head.bias`` (O,), ``weight_peep_l{k}`` (3, H) and
``weight_oh_l0`` (G·H, O).  minGRU and minLSTM layers have no ``weight_hh`` and no
``bias_hh``; their rows are z, h̃ (minGRU) and f, i, h̃ (minLSTM), a CIFG's f, g, o.

Bringing a model trained in PyTorch: an ``nn.LSTM`` (time-major, the default
``batch_first=False``) followed by an ``nn.Linear`` used as the head::

    import safetensors.torch
    safetensors.torch.save_file(
        {**lstm.state_dict(), **{"head." + k: v for k, v in head.state_dict().items()}},
        "w.safetensors")

and the experiment's ``model`` section describing the same sizes.  Going back,
``lstm.load_state_dict`` takes the names without ``head.`` and ``head`` takes
the two ``head.`` entries with the prefix removed.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError, WeightsError
from .experiment import ModelConfig
from .fileio import atomic_write
from .layout import param_shapes
from .memory import available_memory, format_bytes

SUFFIXES = (".safetensors", ".npz")
# Reading a file holds its bytes and a float64 copy (twice a float32 file's size).
_READ_FACTOR = 3
# The largest magnitude a weight may have: float32's, whatever the experiment's dtype
# (as for input values, core.userdata.MAX_VALUE), so float32 never overflows it.
MAX_WEIGHT = float(np.finfo(np.float32).max)
MAX_WEIGHTS_BYTES = 64 * 1024**3  # a regular file at most this large; memory is checked too
_SAFETENSORS_NUMERIC = {"F16", "F32", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _suffix(p: Path) -> str:
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise WeightsError(f"{p}: unknown weights format {p.suffix or '(no suffix)'!r}; "
                           "use .safetensors or .npz")
    return suffix


def _check_size(p: Path) -> None:
    from .safeio import check_regular

    size = check_regular(p, MAX_WEIGHTS_BYTES, str(p), WeightsError, "a weights file")
    avail = available_memory()
    if size * _READ_FACTOR > 0.8 * avail:
        raise WeightsError(f"{p}: the file is {format_bytes(size)}; loading it would need "
                           f"about {format_bytes(size * _READ_FACTOR)}, more than 80% of "
                           f"the {format_bytes(avail)} of memory available")


def _read_safetensors(p: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="np") as f:
            names = list(f.keys())
            _check_names(p, names, expected)
            for name in expected:  # shapes and dtypes from the header, before reading data
                sl = f.get_slice(name)
                _check_safetensors_dtype(p, name, sl.get_dtype())
                _check_shape(p, name, tuple(sl.get_shape()), expected[name])
            return {name: f.get_tensor(name) for name in expected}
    except WeightsError:
        raise
    except MemoryError:
        raise WeightsError(f"{p}: not enough memory to load it") from None
    except Exception as exc:  # SafetensorError, OSError: a corrupt or truncated file
        raise WeightsError(f"{p}: not a readable .safetensors file ({_one_line(exc)})") from None


def _read_npz(p: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    from .safeio import open_regular

    with open_regular(p, MAX_WEIGHTS_BYTES, str(p), WeightsError, "a weights file") as fh:
        try:
            magic = fh.read(4)
            fh.seek(0)
        except OSError as exc:
            raise WeightsError(f"{p}: cannot read ({exc.strerror or exc})") from None
        return _read_npz_open(p, fh, magic, expected)


def _read_npz_open(p: Path, fh: Any, magic: bytes,
                   expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The arrays of the open .npz ``fh``: every member's declared size and header
    checked before any is decompressed."""
    from .safeio import check_npz_members

    if magic[:1] == b"\x80":
        raise WeightsError(f"{p}: holds pickled objects, which are never loaded; "
                           "save plain arrays with numpy.savez or use .safetensors")
    if magic[:2] != b"PK":
        kind = "a single .npy array" if magic == b"\x93NUM" else "not a zip archive"
        raise WeightsError(f"{p}: not an .npz archive ({kind}); save with numpy.savez")
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(fh) as zf:
            declared = check_npz_members(zf, str(p), WeightsError)
        # names and shapes from the headers, before a byte of data is decompressed
        _check_names(p, list(declared), expected)
        for name, want in expected.items():
            _check_shape(p, name, declared[name][0], want)
        fh.seek(0)
        with np.load(fh, allow_pickle=False) as npz:
            for name in npz.files:
                try:
                    value = npz[name]
                except ValueError as exc:
                    if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                        raise WeightsError(f"{p}: holds pickled objects, which are never loaded "
                                           f"({name}); save plain numeric arrays") from None
                    raise
                if not isinstance(value, np.ndarray):
                    raise WeightsError(f"{p}: {name}: not a .npy array inside the archive")
                out[name] = value
    except UserError:
        raise
    except MemoryError:
        raise WeightsError(f"{p}: not enough memory to load it") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise WeightsError(f"{p}: corrupt or truncated .npz file ({_one_line(exc)})") from None
    except Exception as exc:  # zlib.error and other decompression failures
        raise WeightsError(f"{p}: corrupt or truncated .npz file ({_one_line(exc)})") from None
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _check_names(p: Path | str, names: list[str],
                 expected: dict[str, tuple[int, ...]]) -> None:
    missing = [n for n in expected if n not in names]
    unexpected = [n for n in names if n not in expected]
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"missing {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected {_names(unexpected)}")
    hint = ""
    prefixes = {n.split(".", 1)[0] + "." for n in unexpected if "." in n}
    for prefix in sorted(prefixes):
        stripped = {n[len(prefix):] for n in unexpected if n.startswith(prefix)}
        if stripped & set(missing):
            hint = f" (the names carry the prefix {prefix!r}; save the module's own state_dict)"
            break
    if not hint and unexpected and all(n.startswith(("weight_hh", "bias_hh")) for n in unexpected):
        hint = " (minGRU and minLSTM layers have no weight_hh / bias_hh: their gates see only the input)"
    raise WeightsError(f"{p}: does not match the model: {'; '.join(parts)}{hint}")


def _check_shape(p: Path | str, name: str, got: tuple[int, ...],
                 want: tuple[int, ...]) -> None:
    if tuple(got) != tuple(want):
        raise WeightsError(f"{p}: {name}: expected shape {tuple(want)}, got {tuple(got)}")


def _check_safetensors_dtype(p: Path | str, name: str, dtype: str) -> None:
    if dtype not in _SAFETENSORS_NUMERIC:
        extra = (" (NumPy has no bfloat16; convert with .float() before saving)"
                 if dtype == "BF16" else "")
        raise WeightsError(f"{p}: {name}: dtype {dtype} is not a supported numeric type{extra}")


def _validated(p: Path | str, raw: dict[str, np.ndarray],
               expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Float64 copies of ``raw[name]`` for every expected name: real dtype, shape, finite."""
    params: dict[str, np.ndarray] = {}
    for name, want in expected.items():
        a = raw[name]
        if a.dtype.kind not in "iuf":
            raise WeightsError(f"{p}: {name}: dtype {a.dtype} is not a real number type")
        _check_shape(p, name, a.shape, want)
        value = np.array(a, dtype=np.float64, copy=True, order="C")
        bad = int(np.count_nonzero(~np.isfinite(value)))
        if bad:
            raise WeightsError(f"{p}: {name}: holds {bad} non-finite value{'s' * (bad > 1)} "
                               "(NaN or infinity)")
        big = np.abs(value) > MAX_WEIGHT
        if big.any():
            where = [int(i) for i in np.argwhere(big)[0]]
            raise WeightsError(f"{p}: {name}: {int(big.sum())} value(s) beyond ±{MAX_WEIGHT:.4g} "
                               f"(they would overflow float32), the first, "
                               f"{value[tuple(where)]:.4g}, at index {where}")
        params[name] = value
    return params


def load_weights(path: str | os.PathLike[str], model: ModelConfig) -> dict[str, np.ndarray]:
    """Read PyTorch-named weights for ``model``: name → float64 array of ``param_shapes`` shape.

    Raises :class:`WeightsError` naming the file, and the parameter where one is
    at fault, for a missing or corrupt file, missing or unexpected names, a
    wrong shape, a non-numeric dtype or non-finite values.
    """
    p = Path(path)
    suffix = _suffix(p)
    _check_size(p)
    expected = param_shapes(model)
    raw = _read_safetensors(p, expected) if suffix == ".safetensors" else _read_npz(p, expected)
    _check_names(p, list(raw), expected)
    return _validated(p, raw, expected)


def _host(a: Any) -> np.ndarray:
    if hasattr(a, "get") and not isinstance(a, np.ndarray):  # a CuPy array
        a = a.get()
    return np.ascontiguousarray(np.asarray(a))


def save_weights(path: str | os.PathLike[str], params: dict[str, Any]) -> None:
    """Write ``params`` (name → array, kept in its dtype) as ``.safetensors`` or ``.npz``.

    The format follows the suffix; the write is atomic.
    """
    p = Path(path)
    suffix = _suffix(p)
    arrays = {name: _host(a) for name, a in params.items()}
    for name, a in arrays.items():
        if a.dtype.kind not in "iuf":
            raise WeightsError(f"{p}: {name}: dtype {a.dtype} cannot be saved as weights")

    if suffix == ".safetensors":
        from safetensors.numpy import save_file

        def write(tmp: str) -> None:
            save_file(arrays, tmp)
    else:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

    atomic_write(p, write)


# ----------------------------------------------------------------------------- in memory

_SAFETENSORS_TO_NUMPY = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2",
                         "I32": "<i4", "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4",
                         "U64": "<u8"}


def safetensors_views(data: bytes, label: str, error: type[UserError] = WeightsError,
                      memory_error: type[UserError] = WeightsError) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file held in memory, as safetensors' views
    (name → {dtype, shape, data}); a corrupt file raises ``error``, one too large for
    memory ``memory_error``, each message starting with ``label``."""
    from safetensors import deserialize

    try:
        return dict(deserialize(data))
    except MemoryError:
        raise memory_error(f"{label}: not enough memory to load it") from None
    except Exception as exc:  # SafetensorError: a corrupt or truncated file
        raise error(f"{label}: not a readable .safetensors file ({_one_line(exc)})") from None


def read_safetensors_bytes(data: bytes, label: str,
                           expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The arrays of a ``.safetensors`` file held in memory, in their own dtypes.

    Names, dtypes and shapes are checked against ``expected`` (name → shape) as
    :func:`load_weights` checks them; :class:`WeightsError` messages start with ``label``.
    """
    views = safetensors_views(data, label)
    _check_names(label, list(views), expected)
    for name, want in expected.items():
        _check_safetensors_dtype(label, name, views[name]["dtype"])
        _check_shape(label, name, tuple(views[name]["shape"]), want)
    try:
        return {name: np.frombuffer(views[name]["data"],
                                    dtype=_SAFETENSORS_TO_NUMPY[views[name]["dtype"]]
                                    ).reshape(want)
                for name, want in expected.items()}
    except ValueError as exc:  # data length does not match the header
        raise WeightsError(f"{label}: not a readable .safetensors file ({_one_line(exc)})") from None


def validate_arrays(label: str, arrays: dict[str, Any],
                    expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Check arrays in memory (NumPy or CuPy) as :func:`load_weights` checks a file.

    Names, real dtype, shape and finite values against ``expected`` (name → shape);
    returns float64 host copies.  :class:`WeightsError` messages start with ``label``.
    """
    _check_names(label, list(arrays), expected)
    return _validated(label, {name: _host(arrays[name]) for name in expected}, expected)


def weights_from_bytes(data: bytes, model: ModelConfig, label: str) -> dict[str, np.ndarray]:
    """:func:`load_weights` for the bytes of a ``.safetensors`` file (an archive member).

    Same checks and result (name → float64 array); messages start with ``label``.
    """
    expected = param_shapes(model)
    return _validated(label, read_safetensors_bytes(data, label, expected), expected)

