"""A sweep as a phase diagram: one quantity over two grid axes, without Qt.

:func:`open_sweep` reads ``sweep.zarr`` (xarray); :func:`phase_map` takes the
median over the seeds of one quantity — ``grad_ratio`` as log10, the others as
they are — over an x axis and an optional y axis, the other grid axes held at
chosen indices, runs that did not finish (``status`` other than ``ok``) left out.
:func:`position` places a setting on an axis in cell units (the window's "you are
here" marker); :func:`critical_line` places the mean-field critical scale
(:mod:`core.meanfield`) on the ``init.scales.recurrent`` axis for every cell of
the other axis; :func:`changes_at` is the setting of one cell, to load into a Lab.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..experiment import Experiment, experiment_from_dict
from ..paths import format_value

__all__ = ["QUANTITIES", "RECURRENT", "PhaseMap", "changes_at", "critical_line", "grid_axes",
           "measured_edge", "open_sweep", "phase_map", "position"]

RECURRENT = "init.scales.recurrent"
# variable → what the map shows (the colour bar's label)
QUANTITIES = {
    "grad_ratio": "log10 g(0)/g(T-1)",
    "final_loss": "final training loss",
    "val_loss": "validation loss",
    "loss": "initial loss",
    "spectral_radius": "spectral radius of W_hh",
}


def open_sweep(path: str | Path) -> Any:
    """The sweep at ``path`` (``…/sweep.zarr``, the folder holding it, or a packed
    ``….zarr.zip``), loaded into
    memory as an ``xarray.Dataset``; ConfigError when it is not one."""
    import xarray as xr

    p = Path(path)
    if p.name != "sweep.zarr" and (p / "sweep.zarr").exists():
        p = p / "sweep.zarr"
    try:
        if p.suffix == ".zip":  # a packed sweep (core.sweep.store.pack)
            import zarr

            with zarr.storage.ZipStore(str(p), mode="r") as store:
                ds = xr.open_zarr(store).load()
        else:
            ds = xr.open_zarr(str(p)).load()
    except Exception as exc:  # any unreadable folder gets the same one-line message
        raise ConfigError(f"{p}: not a readable sweep ({type(exc).__name__}: {exc})") from None
    if ds.attrs.get("format") != "gradlab-sweep":
        raise ConfigError(f"{p}: not a gradlab sweep (no format attribute 'gradlab-sweep')")
    return ds


def grid_axes(ds: Any) -> list[str]:
    """The grid axes of a sweep, in order (every dimension but ``seed`` and ``t``)."""
    return [str(d) for d in ds["status"].dims if d != "seed"]


def base_experiment(ds: Any) -> Experiment:
    return experiment_from_dict(json.loads(ds.attrs["experiment"]))


def coords(ds: Any, axis: str) -> list[Any]:
    """An axis's values as Python values (float, int, bool or str)."""
    out = []
    for v in np.asarray(ds[axis].values).tolist():
        out.append(v if isinstance(v, (bool, int, float)) else str(v))
    return out


@dataclass
class PhaseMap:
    """``values`` (ny, nx): the median over seeds of ``quantity`` (log10 for the
    gradient ratio) at every cell; ``x``/``y`` the axes (y None: one row),
    ``fixed`` the indices of the other axes."""

    quantity: str
    x: str
    y: str | None
    x_values: list[Any]
    y_values: list[Any]
    values: np.ndarray
    fixed: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return QUANTITIES.get(self.quantity, self.quantity)


def _select(ds: Any, fixed: Mapping[str, int]) -> Any:
    return ds.isel({k: int(v) for k, v in fixed.items()}) if fixed else ds


def phase_map(ds: Any, quantity: str, x: str, y: str | None = None,
              fixed: Mapping[str, int] | None = None) -> PhaseMap:
    """The map of ``quantity`` over ``x`` (and ``y``); see the module's docstring.
    Axes not named and not in ``fixed`` are held at index 0."""
    axes = grid_axes(ds)
    if quantity not in ds.data_vars:
        raise ConfigError(f"{quantity}: not in this sweep (it has "
                          f"{', '.join(q for q in QUANTITIES if q in ds.data_vars)})")
    for a in (x, y):
        if a is not None and a not in axes:
            raise ConfigError(f"{a}: not an axis of this sweep ({', '.join(axes)})")
    held = {a: int((fixed or {}).get(a, 0)) for a in axes if a not in (x, y)}
    sub = _select(ds, held)
    data = sub[quantity].where(sub["status"] == "ok")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # cells without a finished run
        med = data.astype(np.float64).median("seed", skipna=True)
        if quantity == "grad_ratio":
            med = np.log10(med.where(med >= 0))  # a ratio of 0 (underflow): -inf
    dims = [x] if y is None else [y, x]
    values = np.asarray(med.transpose(*dims).values, dtype=np.float64).reshape(
        (1 if y is None else sub.sizes[y]), sub.sizes[x])
    return PhaseMap(quantity, x, y, coords(ds, x), coords(ds, y) if y else [None], values, held)


def _log_spaced(v: np.ndarray) -> bool:
    if v.size < 3 or np.any(v <= 0):
        return False
    r = v[1:] / v[:-1]
    d = np.diff(v)
    return bool(np.allclose(r, r[0], rtol=1e-6) and not np.allclose(d, d[0], rtol=1e-6))


def position(values: list[Any], value: Any) -> float | None:
    """Where ``value`` lies on an axis of ``values``, in cell units (cell i at i):
    interpolated between numeric values (in log on a log-spaced axis), the index of
    a matching text value; None when it lies outside or is not there."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric or value is None or isinstance(value, (bool, str)):
        labels = [format_value(v) for v in values]
        text = format_value(value)
        return float(labels.index(text)) if text in labels else None
    v = np.asarray(values, dtype=np.float64)
    x = float(value)
    if v.size == 1:
        return 0.0 if math.isclose(x, v[0], rel_tol=1e-9) else None
    idx = np.arange(v.size, dtype=np.float64)
    if v[0] > v[-1]:
        v, idx = v[::-1], idx[::-1]
    if not (v[0] - 1e-12 * abs(v[0]) <= x <= v[-1] + 1e-12 * abs(v[-1])):
        return None
    if _log_spaced(v):
        return float(np.interp(math.log(x), np.log(v), idx))
    return float(np.interp(x, v, idx))


def changes_at(pm: PhaseMap, i: int, j: int = 0, ds: Any = None) -> list[tuple[str, Any]]:
    """The ``(path, value)`` setting of cell ``(i, j)`` (x index, y index), the held
    axes included (their values read from ``ds``)."""
    out: list[tuple[str, Any]] = [(pm.x, pm.x_values[i])]
    if pm.y is not None:
        out.append((pm.y, pm.y_values[j]))
    if ds is not None:
        out += [(a, coords(ds, a)[k]) for a, k in pm.fixed.items()]
    return out


def critical_line(ds: Any, pm: PhaseMap) -> tuple[list[tuple[float, float]], list[float], str]:
    """The mean-field critical scale in map coordinates: ``([(x, y) per cell of the
    other axis], [the scales], note)``.  The note says why cells have no point (another
    cell, a scale outside the axis, no recurrent-scale axis)."""
    from ..meanfield import critical_scale, supported
    from ..paths import with_paths

    if RECURRENT not in (pm.x, pm.y):
        return [], [], f"the mean-field line needs {RECURRENT} on an axis"
    scale_values = pm.x_values if pm.x == RECURRENT else pm.y_values
    other = pm.y if pm.x == RECURRENT else pm.x
    other_values = pm.y_values if pm.x == RECURRENT else pm.x_values
    base = base_experiment(ds)
    held = [(a, coords(ds, a)[k]) for a, k in pm.fixed.items()]
    points, scales, notes = [], [], []
    for j, ov in enumerate(other_values):
        changes = [*held, *([(other, ov)] if other is not None else [])]
        try:
            exp, _ = with_paths(base, changes) if changes else (base, [])
        except ConfigError as exc:
            notes.append(str(exc))
            continue
        why = supported(exp)
        if why is not None:
            notes.append(why)
            continue
        s = critical_scale(exp)
        p = position(scale_values, s)
        if p is None:
            notes.append(f"the critical scale {s:.3g} lies outside the swept scales")
            continue
        points.append((p, float(j)) if pm.x == RECURRENT else (float(j), p))
        scales.append(s)
    return points, scales, "; ".join(dict.fromkeys(notes))


def measured_edge(pm: PhaseMap) -> list[float | None]:
    """Where the measured gradient ratio first reaches 1 along the recurrent-scale axis,
    for every cell of the other axis: the scale, interpolated linearly in log10 ratio
    between the two cells around it; None where it does not cross (or the map is not of
    ``grad_ratio`` over ``init.scales.recurrent``)."""
    if pm.quantity != "grad_ratio" or RECURRENT not in (pm.x, pm.y):
        return []
    rows = pm.values if pm.x == RECURRENT else pm.values.T
    scales = np.asarray(pm.x_values if pm.x == RECURRENT else pm.y_values, dtype=np.float64)
    out: list[float | None] = []
    for row in rows:
        edge = None
        for k in range(1, row.size):
            a, b = row[k - 1], row[k]
            if np.isfinite(b) and not np.isnan(a) and a < 0 <= b:
                frac = 1.0 if not np.isfinite(a) else float(-a / (b - a))
                edge = float(scales[k - 1] + frac * (scales[k] - scales[k - 1]))
                break
        out.append(edge)
    return out
