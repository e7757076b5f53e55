"""How many cores other processes leave this one: the BLAS thread policy's input.

OpenBLAS's worker threads wait for each other at every product.  When another process
holds part of a core, the thread that shares it is late at every one of a pass's
hundreds of small products, and the whole pass stalls: measured here, an LSTM pass at
batch 32, hidden 128, T = 200 took 516 ms on two threads beside one busy core, 98 ms
on one.  So a pass takes one thread per core that other processes leave (nearly) free.

The other processes' share is read from Linux's ``/proc/stat`` (all CPU time) less this
process's own CPU time (its BLAS threads' spinning included), over windows of at least
0.2 s between passes; elsewhere nothing is known and the BLAS keeps its threads.
"""

from __future__ import annotations

import math
import os
import threading
import time

# A core counts as taken once other processes use more than this share of it.
TAKEN = 0.25
WINDOW_S = 0.2


def _busy_seconds(tick: float) -> float | None:
    """CPU seconds all processes have used, machine-wide, or None off Linux."""
    try:
        fd = os.open("/proc/stat", os.O_RDONLY)
        try:
            line = os.read(fd, 256).split(b"\n", 1)[0]
        finally:
            os.close(fd)
        f = [int(v) for v in line.split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system (idle iowait) irq softirq steal; guest time is inside user
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / tick


class CpuShare:
    """The cores other processes keep busy, measured between calls to :meth:`free_cores`."""

    def __init__(self, cpus: int | None = None) -> None:
        self.cpus = cpus or os.cpu_count() or 1
        self._tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._lock = threading.Lock()
        self._others: float | None = None
        # The first window starts now, so that the first large pass, often 0.2 s or
        # more after the backend is made, already knows the machine's load.
        self._mark: tuple[float, float, float] | None = self._now()  # wall, busy, own

    def _now(self) -> tuple[float, float, float] | None:
        busy = _busy_seconds(self._tick)
        if busy is None:
            return None
        return time.monotonic(), busy, time.process_time()

    def others(self) -> float | None:
        """Cores other processes kept busy over the last window of at least 0.2 s (the
        latest finished one), or None before the first window ends or off Linux."""
        now = self._now()
        if now is None:
            return None
        with self._lock:
            if self._mark is None:
                self._mark = now
            elif now[0] - self._mark[0] >= WINDOW_S:
                wall, busy, own = (a - b for a, b in zip(now, self._mark, strict=True))
                self._others = max(0.0, (busy - own) / wall)
                self._mark = now
            return self._others

    def free_cores(self) -> int:
        """Cores this process may use without sharing one with another busy process:
        all of them until a window says otherwise, never fewer than one."""
        others = self.others()
        if others is None:
            return self.cpus
        return max(1, self.cpus - math.ceil(others - TAKEN))
