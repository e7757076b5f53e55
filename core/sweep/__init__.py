"""Sweeps: a grid of experiment settings × seeds, each run probed (and trained), the
results written to ``DIR/sweep.zarr`` as they finish — on a Dask cluster, a local one
by default.

- :mod:`core.sweep.grid` — ``--grid PATH=VALUES`` axes and the plan of points;
- :mod:`core.sweep.job` — the job: one point at one seed;
- :mod:`core.sweep.store` — the zarr layout, written by one writer as runs finish;
- :mod:`core.sweep.runner` — running the jobs (Dask, or in this process), resuming.
"""

from __future__ import annotations

from .grid import Axis, Point, SweepPlan, parse_grid, plan
from .job import run_point
from .runner import Progress, SweepStats, embedded_client, run_sweep
from .store import STORE_NAME, SweepStore

__all__ = ["STORE_NAME", "Axis", "Point", "Progress", "SweepPlan", "SweepStats", "SweepStore",
           "embedded_client", "parse_grid", "plan", "run_point", "run_sweep"]
