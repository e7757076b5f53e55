"""The conditions a benchmark runs under: which BLAS kernels, how many threads, and how
busy the other processes keep the machine.

- :func:`clean_blas_env` must run before NumPy is imported: some machines set
  ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``) for old OpenBLAS builds, which makes a
  current OpenBLAS run older, slower kernels than a user's machine would.  The
  benchmark restarts itself without them, in its own command only (never in tests).
- :func:`blas_summary` says which kernels and thread counts threadpoolctl sees.
- :class:`LoadMeter` measures the CPU time other processes took during a timed round,
  in cores, from ``/proc/stat`` less this process's own CPU time: on a 2-core machine a
  fraction of a core of other load is enough to stall every 2-thread engine, so such
  rounds are dropped rather than averaged in.
- :func:`reference_ms` times a fixed workload, the same whatever the code under test:
  a shared machine's speed drifts (by a third within the hour on some), and runs of
  different moments compare only beside it.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REMOVED = "GRADLAB_BENCH_REMOVED_ENV"  # what the restart removed, for the report


def clean_blas_env(keep_flag: str = "--keep-blas-env") -> None:
    """Restart this script without ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` when either
    is set, unless ``keep_flag`` is among the arguments.  Call before importing NumPy."""
    if keep_flag in sys.argv[1:] or "numpy" in sys.modules:
        return
    found = {k: os.environ[k] for k in BLAS_ENV if k in os.environ}
    if not found:
        return
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
    env[_REMOVED] = " ".join(f"{k}={v}" for k, v in found.items())
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def removed_env() -> str:
    """The OpenBLAS variables this run was restarted without ("" if none)."""
    return os.environ.get(_REMOVED, "")


def blas_summary() -> str:
    """Every thread pool threadpoolctl sees: library, version, kernels, threads, file."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed: BLAS kernels unknown"
    from core.backend import blas_pool_text

    parts = [f"{blas_pool_text(p)} from {os.path.basename(p.get('filepath', '?'))}"
             for p in threadpool_info()]
    return "; ".join(parts) or "no BLAS or OpenMP thread pool found"


@dataclass(frozen=True)
class _Mark:
    wall: float
    busy: float  # seconds of CPU time all processes used, machine-wide (None: unknown)
    own: float  # seconds of CPU time this process used, all its threads


class LoadMeter:
    """Other processes' CPU use between two marks, in cores (1.0 = one core kept busy).

    Linux only (``/proc/stat``); elsewhere :meth:`other` returns None.  The kernel counts
    in ticks of 10 ms, so over a 0.2 s window a reading is good to about 0.1 core.
    """

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.available = self._busy() is not None

    def _busy(self) -> float | None:
        try:
            with open("/proc/stat", "rb") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        busy = sum(fields[0:3]) + sum(fields[5:8])
        return busy / self._tick

    def mark(self) -> _Mark:
        return _Mark(time.perf_counter(), self._busy() or 0.0, time.process_time())

    def other(self, start: _Mark, end: _Mark) -> float | None:
        """Cores other processes kept busy between ``start`` and ``end``."""
        if not self.available or end.wall <= start.wall:
            return None
        others = (end.busy - start.busy) - (end.own - start.own)
        return max(0.0, others / (end.wall - start.wall))


def reference_ms(repeats: int = 5) -> float:
    """Median milliseconds of a fixed one-thread workload: Python arithmetic and small
    NumPy products, as a GUI redraw and a probe mix them.  Lower is a faster machine."""
    import numpy as np

    times = []
    for _ in range(repeats):
        a = np.full((32, 32), 0.01)
        t0 = time.perf_counter()
        total = 0
        for i in range(100_000):
            total += i * i % 7
        for _ in range(1000):
            a = np.tanh(a @ a + 0.01)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)
