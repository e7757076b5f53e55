"""``trace.npz`` and ``summary.json``: what ``gradlab analyze`` writes.

The trace holds the SPEC §3 arrays (``loss`` (), ``output``, ``h.L`` (T,B,H),
``c.L``, ``gate.NAME.L``, ``dh.L``, ``dc.L``, ``gradnorm.L`` (T,), ``grad.PARAM``),
every array in time order.  The summary is a small JSON digest of it.

Gradient ratio: for every layer key ``L`` the summary gives
:func:`core.diagnosis.gradient_ratio`, the batch-mean ‖dL/dh_t‖ at the farthest step
back over the one at the last step processed: ``gradnorm.L[0] / gradnorm.L[T-1]``
for a forward cell, ``gradnorm.L[T-1] / gradnorm.L[0]`` for a reverse one (it runs
from T−1 down to 0, so its BPTT starts at t = 0).  Far below 1 the gradient shrank
on its way back, far above 1 it grew.  A ratio whose denominator is zero or not
finite is ``null``.  ``gradient_verdict`` gives the diagnosis of the same module
(vanishing, exploding, stable, …), which judges each step against where the
gradient enters, not against the last step alone.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .diagnosis import Diagnosis, diagnose
from .diagnosis import gradient_ratio as _ratio
from .errors import DataError, UserError
from .experiment import Experiment
from .fileio import atomic_write, atomic_write_text
from .layout import layer_keys
from .memory import param_count
from .safeio import check_npz_members

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
    from .safeio import open_regular

    p = Path(path)
    with open_regular(p, 2**62, str(p), DataError, "a trace file") as fh:
        try:
            magic = fh.read(4)
            fh.seek(0)
        except OSError as exc:
            raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
        if magic[:2] != b"PK":
            raise DataError(f"{p}: not a trace file (.npz archive)")
        return _read_trace(p, fh)


def _read_trace(p: Path, fh: Any) -> dict[str, np.ndarray]:
    """The arrays of the open trace ``fh``, every member's declared size checked first."""
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(fh) as zf:
            check_npz_members(zf, str(p), DataError)
        fh.seek(0)
        with np.load(fh, allow_pickle=False) as npz:
            for k in npz.files:
                value = npz[k]
                if not isinstance(value, np.ndarray):
                    raise DataError(f"{p}: {k}: not a .npy array inside the archive")
                out[k] = value
    except UserError:
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


def gradient_ratio(gradnorm: np.ndarray, reverse: bool = False) -> float | None:
    """g(farthest back) / g(last processed) of a (T,) gradient-norm curve in time order
    (:func:`core.diagnosis.gradient_ratio`); None when undefined."""
    return _ratio(gradnorm, reverse)


def summary(exp: Experiment, arrays: dict[str, Any], spectral_radius: dict[str, float],
            backend_name: str, nonfinite: str | None = None,
            diagnosis: Diagnosis | None = None) -> dict[str, Any]:
    """A JSON-ready digest: loss, spectral radii, gradient ratios and verdicts per layer
    key, backend, sizes.  ``diagnosis``: the probe's own (default: made from ``arrays``
    with the experiment's truncation window)."""
    keys = [key for _k, _d, key in layer_keys(exp.model)]
    h0 = np.asarray(arrays[f"h.{keys[0]}"])
    T, B = int(h0.shape[0]), int(h0.shape[1])
    if diagnosis is None:
        diagnosis = diagnose(arrays, exp.model.pattern, tbptt=exp.training.tbptt)
    ratios, far_last, verdicts, norms = {}, {}, {}, {}
    for key in keys:
        g = np.asarray(arrays[f"gradnorm.{key}"], dtype=np.float64).reshape(-1)
        found = diagnosis.curves.get(key)
        ratios[key] = gradient_ratio(g)  # time order, for every cell (the contract's)
        far_last[key] = found.ratio if found else gradient_ratio(g, key.endswith("_reverse"))
        verdicts[key] = found.verdict if found else None
        norms[key] = {"first": _num(g[0]), "last": _num(g[-1])} if g.size else {}
    m = exp.model
    return {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "loss": _num(np.asarray(arrays["loss"])),
        "spectral_radius": {k: _num(v) for k, v in spectral_radius.items()},
        "gradient_ratio": ratios,
        "gradient_ratio_definition": "batch-mean ||dL/dh_0|| / ||dL/dh_T-1||, in time order",
        "gradient_far_last": far_last,
        "gradient_far_last_definition": (
            "batch-mean ||dL/dh_t|| at the farthest step back over the last step processed: "
            "gradnorm[0] / gradnorm[T-1] for a forward cell, gradnorm[T-1] / gradnorm[0] for "
            "a reverse one (it runs from t=T-1 down to 0); the ratio the plots show"),
        "gradient_verdict": verdicts,
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
    """Run ``write()``; an OSError (disk full, no permission, a file too large) or a
    writer's own I/O error (safetensors') becomes a UserError naming ``path``."""
    try:
        write()
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        text = " ".join(str(exc).split())
        raise UserError(f"{path}: cannot write ({text[:160]})") from None
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
                result.nonfinite, getattr(result, "diagnosis", None))
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
