"""Running a sweep's jobs: on a Dask cluster, or in this process.

:func:`run_sweep` writes ``DIR/sweep.zarr`` (:mod:`core.sweep.store`) for a
:class:`~core.sweep.grid.SweepPlan`, one job per valid grid point × seed
(:func:`core.sweep.job.run_point`).  With a ``distributed.Client`` the jobs are
Dask futures: the scheduler places them, and when a worker is lost it runs that
worker's jobs again elsewhere.  Without one they run here, one after another
(for small sweeps, tests and the window).  Either way the results are written
here, by one writer, as they arrive.

``resume=True`` opens the existing store (of the same sweep) and runs only what
it lacks; without it an existing store is an error.  ``KeyboardInterrupt`` (or
``cancel()`` returning True) cancels the jobs not finished and leaves every
written result in place; :func:`run_sweep` then raises :class:`core.jobs.Cancelled`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError
from ..jobs import Cancelled
from . import job as job_module
from .grid import SweepPlan
from .store import STORE_NAME, create, open_store

__all__ = ["Progress", "SweepStats", "embedded_client", "run_sweep"]

_IMPORT_HINT = ("a Dask worker cannot import the lab ({exc}); install it where the workers "
                "run, or start them with PYTHONPATH at the lab's folder")


@dataclass
class Progress:
    """How far a sweep got: runs ``done`` of ``total`` in this call (runs written
    earlier and invalid points are not counted), seconds since it started."""

    done: int
    total: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Runs per second so far (0 before the first)."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far; None before the first run."""
        return (self.total - self.done) / self.rate if self.done else None


@dataclass
class SweepStats:
    """What :func:`run_sweep` did: the store's path, runs computed now, runs found
    already written, runs in all (valid points × seeds)."""

    path: Path
    computed: int
    kept: int
    total: int


def _keys(plan: SweepPlan) -> str:
    h = hashlib.sha256(f"{plan.grid_json()}|{plan.seeds}|{plan.train_steps}".encode())
    return h.hexdigest()[:12]


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Any:
    """Worker processes started inside inherit an ignored SIGINT: a Ctrl-C in the
    terminal reaches only this process, which cancels the jobs and closes the cluster
    (instead of every worker dying with a traceback of its own)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def embedded_client(workers: int | None = None) -> Any:
    """A Dask ``LocalCluster`` on this machine — ``workers`` processes (default: one
    per CPU core) of one thread each — and a client of it, closed on exit."""
    from distributed import Client, LocalCluster

    n = workers or os.cpu_count() or 1
    with _workers_ignore_ctrl_c():
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def run_sweep(plan: SweepPlan, out: str | os.PathLike[str], *, client: Any = None,
              resume: bool = False, command: str = "",
              on_progress: Callable[[Progress], None] | None = None,
              cancel: Callable[[], bool] | None = None) -> SweepStats:
    """Run ``plan``'s missing jobs into ``out/sweep.zarr``; see the module's docstring."""
    path = Path(out) / STORE_NAME
    if path.exists() and not resume:
        raise ConfigError(f"{path} already exists; add --resume to finish it, or choose "
                          "another --out")
    store = open_store(path, plan) if path.exists() else create(path, plan, command)
    done = store.done()
    todo = [(p, s) for p in plan.points if p.experiment is not None
            for s in range(plan.seeds) if not done[(*p.index, s)]]
    stats = SweepStats(path, 0, plan.jobs - len(todo), plan.jobs)
    start = time.monotonic()

    def finished(point_index: tuple[int, ...], seed: int, result: dict[str, Any]) -> None:
        store.write(point_index, seed, result)
        stats.computed += 1
        if on_progress is not None:
            on_progress(Progress(stats.computed, len(todo), time.monotonic() - start))

    if on_progress is not None:
        on_progress(Progress(0, len(todo), 0.0))
    if client is None:
        _run_here(plan, todo, finished, cancel)
    else:
        _run_on(client, plan, todo, finished, cancel)
    return stats


def _run_here(plan: SweepPlan, todo: list, finished: Callable[..., None],
              cancel: Callable[[], bool] | None) -> None:
    for point, seed in todo:
        if cancel is not None and cancel():
            raise Cancelled
        try:
            result = job_module.run_point(plan.seeded(point, seed), plan.train_steps)
        except KeyboardInterrupt:
            raise Cancelled from None
        finished(point.index, seed, result)


def _run_on(client: Any, plan: SweepPlan, todo: list, finished: Callable[..., None],
            cancel: Callable[[], bool] | None) -> None:
    from distributed import as_completed

    # distributed's own wait, interrupted by Ctrl-C, can log a traceback of its cancel
    # callback from the event loop's thread (a NameError inside distributed.utils.sync);
    # a job's failure reaches us through its future, so that logger says nothing we need
    logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
    tag = _keys(plan)
    where: dict[str, tuple[tuple[int, ...], int]] = {}
    futures: list[Any] = []
    try:
        for point, seed in todo:
            key = f"gradlab-sweep-{tag}-{'-'.join(map(str, point.index))}-s{seed}"
            f = client.submit(job_module.run_point, plan.seeded(point, seed), plan.train_steps,
                              key=key, pure=False)
            where[f.key] = (point.index, seed)
            futures.append(f)
        for f in as_completed(futures):
            if cancel is not None and cancel():
                raise Cancelled
            index, seed = where[f.key]
            try:
                result = f.result()
            except ModuleNotFoundError as exc:
                raise UserError(_IMPORT_HINT.format(exc=exc)) from None
            finished(index, seed, result)
            f.release()
    except BaseException as exc:  # Ctrl-C, cancel or a failure: the rest is not run
        with contextlib.suppress(Exception):
            client.cancel(futures)
        if isinstance(exc, KeyboardInterrupt):
            raise Cancelled from None
        raise
