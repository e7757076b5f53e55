"""``trace.npz`` and ``summary.json``: what ``gradlab analyze`` writes.

The trace holds the SPEC §3 arrays (``loss`` (), ``output``, ``h.L`` (T,B,H),
``c.L``, ``gate.NAME.L``, ``dh.L``, ``dc.L``, ``gradnorm.L`` (T,), ``grad.PARAM``),
every array in time order.  The summary is a small JSON digest of it.

Gradient ratio: for every layer key ``L`` (``l{k}`` and ``l{k}_reverse`` alike)
the summary gives ``gradnorm.L[0] / gradnorm.L[T-1]``, i.e. ‖dL/dh_0‖ / ‖dL/dh_{T-1}‖
in *time* order, each the batch mean.  For a forward cell a ratio far below 1
means the gradient vanished on its way back to the start; a reverse cell runs
from T−1 down to 0, so its gradient travels the other way and vanishing shows as
a ratio far *above* 1.  A ratio whose denominator is zero or not finite is ``null``.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, UserError
from .experiment import Experiment
from .fileio import atomic_write, atomic_write_text
from .layout import layer_keys
from .memory import param_count

SUMMARY_FORMAT = "gradlab-summary"
SUMMARY_VERSION = 1


def save_trace(path: str | os.PathLike[str], arrays: dict[str, Any]) -> None:
    """Write ``arrays`` (key → NumPy array) as a compressed ``.npz``, atomically.

    Object arrays are refused (they would need pickling).
    """
    host = {k: np.asarray(v) for k, v in arrays.items()}
    for k, a in host.items():
        if a.dtype.kind == "O":
            raise TypeError(f"trace array {k!r} has dtype object; only numeric arrays are saved")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append '.npz' to a name
            np.savez_compressed(fh, **host)

    atomic_write(path, write)


def load_trace(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``trace.npz`` back: key → array.  Raises :class:`DataError` naming the file."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise DataError(f"{p}: no such file") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if magic[:2] != b"PK":
        raise DataError(f"{p}: not a trace file (.npz archive)")
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(p, allow_pickle=False) as npz:
            for k in npz.files:
                value = npz[k]
                if not isinstance(value, np.ndarray):
                    raise DataError(f"{p}: {k}: not a .npy array inside the archive")
                out[k] = value
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataError(f"{p}: holds pickled objects, which are never loaded") from None
        raise DataError(f"{p}: corrupt trace file ({' '.join(str(exc).split())})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise DataError(f"{p}: corrupt or truncated trace file ({exc})") from None
    except Exception as exc:  # zlib.error and other decompression failures
        raise DataError(f"{p}: corrupt or truncated trace file ({exc})") from None
    return out


def _num(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def gradient_ratio(gradnorm: np.ndarray) -> float | None:
    """‖dL/dh_0‖ / ‖dL/dh_{T-1}‖ from a (T,) gradient-norm curve; None when undefined."""
    g = np.asarray(gradnorm, dtype=np.float64).reshape(-1)
    if g.size == 0 or not np.isfinite(g[[0, -1]]).all() or g[-1] == 0:
        return None
    return _num(g[0] / g[-1])


def summary(exp: Experiment, arrays: dict[str, Any], spectral_radius: dict[str, float],
            backend_name: str, nonfinite: str | None = None) -> dict[str, Any]:
    """A JSON-ready digest: loss, spectral radii, gradient ratios per layer key, backend, sizes."""
    keys = [key for _k, _d, key in layer_keys(exp.model)]
    h0 = np.asarray(arrays[f"h.{keys[0]}"])
    T, B = int(h0.shape[0]), int(h0.shape[1])
    ratios, norms = {}, {}
    for key in keys:
        g = np.asarray(arrays[f"gradnorm.{key}"], dtype=np.float64).reshape(-1)
        ratios[key] = gradient_ratio(g)
        norms[key] = {"first": _num(g[0]), "last": _num(g[-1])} if g.size else {}
    m = exp.model
    return {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "loss": _num(np.asarray(arrays["loss"])),
        "spectral_radius": {k: _num(v) for k, v in spectral_radius.items()},
        "gradient_ratio": ratios,
        "gradient_ratio_definition": (
            "gradnorm[0] / gradnorm[T-1]: batch-mean ||dL/dh_t|| at t=0 over t=T-1, in time "
            "order for every layer key (a reverse cell's gradient flows from t=0 towards T-1)"),
        "gradient_norm": norms,
        "backend": backend_name,
        "nonfinite": nonfinite,
        "sizes": {
            "seq_len": T,
            "batch_size": B,
            "input_size": m.input_size,
            "output_size": m.output_size,
            "pattern": m.pattern,
            "loss": m.loss,
            "layers": [{"cell": la.cell, "hidden_size": la.hidden_size,
                        "bidirectional": la.bidirectional, "peephole": la.peephole}
                       for la in m.layers],
            "parameters": param_count(m),
        },
    }


def save_summary(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write the summary as strict JSON (no NaN or Infinity), atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def writing(path: Path, write: Any) -> Path:
    """Run ``write()``; an OSError (disk full, no permission) becomes a UserError
    naming ``path``."""
    try:
        write()
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def write_results(out: Path, exp: Experiment, result: Any, extras: bool = True) -> list[Path]:
    """``out/trace.npz`` and ``out/summary.json`` of a :class:`core.probe.ProbeResult`;
    with ``extras``, also its Jacobian norms (``jacobian.npz``, layer key → (T,)) and
    connectivity map (``connectivity.npy``, (T_out, T_in)) when it has them.  Returns
    the paths written."""
    written = []
    p = out / "trace.npz"
    written.append(writing(p, lambda: save_trace(p, result.arrays)))
    s = summary(exp, result.arrays, result.spectral_radius, result.backend_label,
                result.nonfinite)
    q = out / "summary.json"
    written.append(writing(q, lambda: save_summary(q, s)))
    if not extras:
        return written
    if result.jacobian:
        j = out / "jacobian.npz"

        def write_jac(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{k: np.asarray(v) for k, v in result.jacobian.items()})

        written.append(writing(j, lambda: atomic_write(j, write_jac)))
    if result.connectivity is not None:
        c = out / "connectivity.npy"

        def write_conn(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(result.connectivity), allow_pickle=False)

        written.append(writing(c, lambda: atomic_write(c, write_conn)))
    return written
