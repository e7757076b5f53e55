"""The BLAS thread policy: one thread per core other processes leave free."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from core.backend import resolve_backend
from core.cpu_share import CpuShare


class Scripted(CpuShare):
    """A CpuShare fed readings (wall s, machine busy s, own CPU s)."""

    def __init__(self, readings, cpus=2):
        self.readings = list(readings)
        super().__init__(cpus)  # takes the first reading

    def _now(self):
        return self.readings.pop(0)


def test_free_cores_follow_the_other_processes_load():
    share = Scripted([
        (0.0, 100.0, 5.0),   # made: the first window starts
        (0.1, 100.1, 5.1),   # too soon to tell: nothing known yet
        (0.3, 100.5, 5.45),  # 0.05 s of others over 0.3 s: 0.17 cores
        (0.4, 100.6, 5.45),  # a window of 0.1 s is too short: the last figure stays
        (0.7, 101.1, 5.8),   # since 0.3: others 0.25 s over 0.4 s, 0.625 cores
        (1.0, 101.9, 6.0),   # others 0.6 s over 0.3 s: two cores
    ])
    assert share.free_cores() == 2 and share._others is None
    assert share.free_cores() == 2 and share._others == pytest.approx(0.05 / 0.3)
    assert share.free_cores() == 2
    assert share.free_cores() == 1 and share._others == pytest.approx(0.625)
    assert share.free_cores() == 1  # never fewer than one


def test_off_linux_nothing_is_known_and_every_core_is_used():
    share = Scripted([None, None, None])
    assert share.others() is None and share.free_cores() == share.cpus


class Busy:
    def __init__(self, free: int, cpus: int = 2):
        self.free, self.cpus = free, cpus

    def free_cores(self) -> int:
        return self.free


def _blas_threads() -> int:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")


def test_a_large_pass_takes_one_thread_per_free_core():
    import dataclasses

    before = _blas_threads()
    if before < 2:
        pytest.skip("BLAS runs on one thread here anyway")
    be = resolve_backend("numpy", "float32")
    busy = dataclasses.replace(be, share=Busy(1, cpus=before))
    with busy.whole_pass(1e12):
        assert _blas_threads() == 1
    assert _blas_threads() == before
    quiet = dataclasses.replace(be, share=Busy(before, cpus=before))
    with quiet.whole_pass(1e12):
        assert _blas_threads() == before
    with busy.whole_pass(10.0):  # a small pass is on one thread in any case
        assert _blas_threads() == 1


def test_step_loops_nest_in_a_passs_one_thread_limit():
    import dataclasses

    before = _blas_threads()
    if before < 2:
        pytest.skip("BLAS runs on one thread here anyway")
    be = dataclasses.replace(resolve_backend("numpy", "float32"), share=Busy(before, before))
    with be.whole_pass(10.0):  # small: one thread, which the step loops keep
        with be.step_loop(10.0):
            assert _blas_threads() == 1
        assert _blas_threads() == 1  # the inner loop's end leaves the pass's limit
    assert _blas_threads() == before
    with be.whole_pass(1e12):  # large on a quiet machine: all threads, but small steps
        assert _blas_threads() == before
        with be.step_loop(10.0):
            assert _blas_threads() == 1
        assert _blas_threads() == before
    assert _blas_threads() == before


@pytest.mark.skipif(not os.path.exists("/proc/stat") or (os.cpu_count() or 1) < 2,
                    reason="Linux's /proc/stat and two cores")
def test_a_busy_process_is_seen():
    share = CpuShare()
    share.others()
    spin = subprocess.Popen([sys.executable, "-c",
                             "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
    try:
        time.sleep(0.3)
        share.others()  # the window before the spinning started
        time.sleep(0.8)
        seen = share.others()
    finally:
        spin.wait()
    assert seen is not None and seen >= 0.4, seen  # a spinning process: near one core
