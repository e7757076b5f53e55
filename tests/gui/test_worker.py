"""Background work: coalescing probes and the pausable training runner."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time
from types import SimpleNamespace

from gui.worker import ProbeRunner, Rest, TrainingRunner


def test_probe_requests_coalesce_latest_wins(qtbot):
    runner = ProbeRunner()
    ran, results, release = [], [], threading.Event()
    runner.result.connect(results.append)

    def job(i):
        def fn():
            ran.append(i)
            if i == 1:
                release.wait(5)
            return i
        return fn

    for i in range(1, 6):
        runner.submit(job(i))
    assert runner.is_busy
    release.set()
    qtbot.waitUntil(lambda: not runner.is_busy, timeout=5000)
    qtbot.wait(50)
    assert ran == [1, 5]  # 2, 3 and 4 were replaced while 1 ran
    assert results == [5]  # the stale result of 1 was dropped
    runner.shutdown()


def test_probe_failure_is_reported_and_runner_goes_on(qtbot):
    runner = ProbeRunner()
    failures, results = [], []
    runner.failed.connect(failures.append)
    runner.result.connect(results.append)

    def bad():
        raise ValueError("no good")

    with qtbot.waitSignal(runner.failed, timeout=5000):
        runner.submit(bad)
    assert "no good" in failures[0]
    with qtbot.waitSignal(runner.result, timeout=5000):
        runner.submit(lambda: 42)
    assert results == [42]
    runner.shutdown()


def counting_generator(cancel: threading.Event, steps: int = 1_000_000):
    for i in range(1, steps + 1):
        if cancel.is_set():
            return
        time.sleep(0.002)
        yield SimpleNamespace(step=i, params=lambda i=i: {"w": i})


def test_training_runner_runs_pauses_steps_and_ends(qtbot):
    runner = TrainingRunner(interval_ms=20)
    got: list = []
    runner.snapshots.connect(got.extend)
    runner.start(counting_generator)
    qtbot.waitUntil(lambda: len(got) >= 5, timeout=5000)

    runner.pause()
    qtbot.waitUntil(lambda: any(isinstance(s, Rest) for s in got), timeout=5000)
    rest = next(s for s in got if isinstance(s, Rest))
    steps = [s.step for s in got if not isinstance(s, Rest)]
    assert rest.params == {"w": steps[-1]}  # the weights of the last step, fetched at rest
    qtbot.wait(100)
    assert [s.step for s in got if not isinstance(s, Rest)] == steps

    runner.step()  # exactly one more, optimizer state (the generator) kept
    qtbot.waitUntil(lambda: sum(isinstance(s, Rest) for s in got) == 2, timeout=5000)
    assert [s.step for s in got if not isinstance(s, Rest)] == [*steps, steps[-1] + 1]

    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        runner.start(lambda cancel: counting_generator(cancel, steps=3))
    assert blocker.args == [True]
    assert not runner.active
    runner.shutdown()


def test_training_runner_reports_exceptions(qtbot):
    runner = TrainingRunner(interval_ms=20)

    def broken(cancel):
        yield SimpleNamespace(step=1, params=lambda: {})
        raise RuntimeError("diverged badly")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start(broken)
    assert "diverged badly" in blocker.args[0]
    runner.shutdown()
