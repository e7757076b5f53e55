"""``DIR/sweep.zarr``: a sweep's results as one labelled N-d data set (xarray on zarr).

Dimensions: one per grid axis, named by its path, with its values as
coordinates; ``seed`` (0 … N−1, added to ``init.seed``); ``t`` (0 … T−1, the
longest probe of any point).  Variables (every one but ``notes`` over the grid
axes and ``seed``):

``gradnorm`` (…, seed, t)     layer 0 forward ‖dL/dh_t‖, NaN-padded past a point's length
``grad_ratio``, ``spectral_radius``, ``loss``    see :mod:`core.sweep.job`
``final_loss``, ``val_loss``, ``diverged``, ``steps``  only when the sweep trains
``status``                    ``""`` not run yet · ``ok`` · ``invalid: …`` · ``error: …``
``notes`` (grid axes)         what fitting a layer to a new cell changed, ``"; "``-joined

Attributes: ``format`` (``gradlab-sweep``), ``version``, ``experiment`` (the base
experiment file as JSON text), ``grid`` (the axes as JSON), ``seeds``,
``train_steps``, ``command`` (the command line that made it).

The store is written in zarr format 2 with consolidated metadata, so that a plain
``xarray.open_zarr(path)`` opens it.  Every run has chunks of its own; the
results of a run are written as it finishes, its ``status`` last, so a run
counts as done only once everything of it is on disk.  A store is created under
a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..experiment import experiment_to_dict
from .grid import SweepPlan

__all__ = ["FORMAT", "STORE_NAME", "SweepStore", "create", "open_store", "pack"]

FORMAT = "gradlab-sweep"
VERSION = 1
STORE_NAME = "sweep.zarr"
SCALARS = ("grad_ratio", "spectral_radius", "loss")
TRAINED = ("final_loss", "val_loss")
_MATCH = ("experiment", "grid", "seeds", "train_steps")


def _attrs(plan: SweepPlan, command: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION,
            "experiment": json.dumps(experiment_to_dict(plan.base), sort_keys=True),
            "grid": plan.grid_json(), "seeds": plan.seeds, "train_steps": plan.train_steps,
            "command": command}


def _coord(values: tuple[Any, ...]) -> np.ndarray:
    kinds = {type(v) for v in values}
    if kinds <= {float} or kinds <= {int} or kinds <= {bool}:
        return np.asarray(values)
    from ..paths import format_value

    return np.asarray([format_value(v) for v in values], dtype=object)  # null, 10, lstm


def _dataset(plan: SweepPlan, command: str) -> Any:
    import xarray as xr

    dims = [a.path for a in plan.axes]
    shape = (*plan.shape, plan.seeds)
    run_dims = (*dims, "seed")
    status = np.full(shape, "", dtype=object)
    notes = np.full(plan.shape, "", dtype=object)
    for p in plan.points:
        notes[p.index] = "; ".join(p.notes)
        if p.experiment is None:
            status[p.index] = f"invalid: {p.reason}"
    variables: dict[str, Any] = {
        "gradnorm": ((*run_dims, "t"), np.full((*shape, plan.T), np.nan)),
        **{k: (run_dims, np.full(shape, np.nan)) for k in SCALARS},
    }
    if plan.train_steps:
        variables.update({k: (run_dims, np.full(shape, np.nan)) for k in TRAINED})
        variables["diverged"] = (run_dims, np.zeros(shape, dtype=bool))
        variables["steps"] = (run_dims, np.zeros(shape, dtype=np.int64))
    variables["status"] = (run_dims, status)
    variables["notes"] = (tuple(dims), notes)
    coords = {a.path: _coord(a.values) for a in plan.axes}
    coords.update(seed=np.arange(plan.seeds), t=np.arange(plan.T))
    ds = xr.Dataset(variables, coords=coords, attrs=_attrs(plan, command))
    ds["gradnorm"].attrs.update(long_name="‖dL/dh_t‖, layer 0 forward", units="1")
    ds["grad_ratio"].attrs.update(long_name="gradnorm[0] / gradnorm[T-1]")
    ds["spectral_radius"].attrs.update(long_name="spectral radius of weight_hh_l0")
    ds["loss"].attrs.update(long_name="loss of the initial weights")
    return ds


def _encoding(ds: Any) -> dict[str, dict[str, Any]]:
    enc = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(1 if d not in ("t",) else n for d, n in zip(var.dims, var.shape, strict=True))
        enc[name] = {"chunks": chunks}
    return enc


def _open_group(path: Path, mode: str) -> Any:
    """The zarr group at ``path`` in format 2, with zarr 3 (Python ≥ 3.11) or zarr 2."""
    import zarr

    if int(zarr.__version__.split(".")[0]) >= 3:
        return zarr.open_group(str(path), mode=mode, zarr_format=2)
    return zarr.open_group(str(path), mode=mode)


class SweepStore:
    """An open ``sweep.zarr`` to write results into (one writer at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._group = _open_group(path, "r+")
        self.train_steps = int(self._group.attrs["train_steps"])

    def attrs(self) -> dict[str, Any]:
        return dict(self._group.attrs)

    def status(self) -> np.ndarray:
        """``status`` over (grid axes…, seed), as Python strings."""
        return np.asarray(self._group["status"][...], dtype=object)

    def done(self) -> np.ndarray:
        """bool (grid axes…, seed): runs whose results are written (invalid ones too)."""
        return self.status() != ""

    def write(self, index: tuple[int, ...], seed: int, result: dict[str, Any]) -> None:
        """Write one run's ``result`` (:func:`core.sweep.job.run_point`) at grid
        ``index`` and ``seed``; ``status`` last."""
        g = self._group
        at = (*index, seed)
        if "gradnorm" in result:
            values = np.asarray(result["gradnorm"], dtype=np.float64)
            T = g["gradnorm"].shape[-1]
            if values.size > T:
                raise ValueError(f"gradnorm of {values.size} steps in a store of {T}")
            row = np.full(T, np.nan)
            row[:values.size] = values
            g["gradnorm"][at] = row
        names = SCALARS + ((*TRAINED, "diverged", "steps") if self.train_steps else ())
        for name in names:
            if name in result:
                g[name][at] = result[name]
        g["status"][at] = str(result.get("status", "ok"))


def create(path: Path, plan: SweepPlan, command: str = "") -> SweepStore:
    """A new store at ``path`` for ``plan``: every run not done, invalid points
    marked with their reason."""
    ds = _dataset(plan, command)
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    ds.to_zarr(str(tmp), mode="w", encoding=_encoding(ds), consolidated=True, zarr_format=2)
    os.replace(tmp, path)
    return SweepStore(path)


def open_store(path: Path, plan: SweepPlan) -> SweepStore:
    """The existing store at ``path``, checked to be of the same sweep as ``plan``
    (the experiment, grid, seeds and training steps); ConfigError otherwise."""
    try:
        store = SweepStore(path)
        attrs = store.attrs()
    except Exception as exc:
        raise ConfigError(f"{path}: not a sweep this version can resume ({exc})") from None
    if attrs.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a gradlab sweep")
    want = _attrs(plan, "")
    for key in _MATCH:
        if attrs.get(key) != want[key]:
            raise ConfigError(f"{path}: made with another {key.replace('_', ' ')} than this "
                              "command's; resume it with the command that made it "
                              f"({attrs.get('command') or 'see its attributes'}), or "
                              "choose another --out")
    return store


def pack(src: Path, dst: Path) -> None:
    """A one-file, read-only copy of the finished sweep at ``src``: ``dst`` (``….zarr.zip``),
    every variable one compressed chunk — how a ready sweep ships with a lesson.
    :func:`core.sweep.phase.open_sweep` opens either form."""
    import tempfile
    import zipfile

    import xarray as xr

    ds = xr.open_zarr(str(src)).load()
    for var in ds.variables.values():
        var.encoding.clear()  # one chunk per variable, not one per run
    tmp = dst.with_name(dst.name + ".partial")
    with tempfile.TemporaryDirectory() as folder:
        ds.to_zarr(folder, mode="w", consolidated=True, zarr_format=2)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # chunks are compressed
            for f in sorted(Path(folder).rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(folder).as_posix())
    os.replace(tmp, dst)
