"""Background work: probes that a newer request cancels, and the training runner."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time
from types import SimpleNamespace

from core.jobs import Cancelled
from core.training.session import FINISHED, PAUSED, TrainingSession
from gui.worker import ProbeRunner, TrainingRunner


class Job:
    """A probe job: waits on ``release`` (checking for cancellation), returns ``value``."""

    def __init__(self, value, release=None, log=None):
        self.value, self.release, self.log = value, release, log if log is not None else []

    def run(self, control):
        self.log.append(("start", self.value))
        while self.release is not None and not self.release.wait(0.005):
            control.check()
        self.log.append(("end", self.value))
        return self.value


def test_a_new_request_cancels_the_stale_one_at_once(qtbot):
    runner = ProbeRunner()
    results, log, never = [], [], threading.Event()
    runner.result.connect(lambda job, r: results.append(r))
    for i in range(1, 5):
        runner.submit(Job(i, never, log))  # each would run forever
    t0 = time.perf_counter()
    runner.submit(Job(5, None, log))  # does not wait behind the others
    qtbot.waitUntil(lambda: results == [5], timeout=5000)
    assert time.perf_counter() - t0 < 2.0
    assert ("end", 5) in log and not any(e == ("end", i) for e in log for i in range(1, 5))
    assert runner.dropped == 4
    runner.shutdown()


def test_cancel_publishes_nothing_and_shutdown_does_not_block(qtbot):
    runner = ProbeRunner()
    results, busy = [], []
    runner.result.connect(lambda job, r: results.append(r))
    runner.busy.connect(busy.append)
    runner.submit(Job(1, threading.Event()))
    runner.cancel()
    assert not runner.is_busy and busy == [True, False]
    runner.submit(Job(2, threading.Event()))
    t0 = time.perf_counter()
    runner.shutdown()
    assert time.perf_counter() - t0 < 0.6
    qtbot.wait(50)
    assert results == []


def test_probe_failure_is_reported_and_runner_goes_on(qtbot):
    runner = ProbeRunner()
    failures, results = [], []
    runner.failed.connect(failures.append)
    runner.result.connect(lambda job, r: results.append(r))

    class Bad:
        def run(self, control):
            raise ValueError("no good")

    with qtbot.waitSignal(runner.failed, timeout=5000):
        runner.submit(Bad())
    assert "no good" in failures[0]
    with qtbot.waitSignal(runner.result, timeout=5000):
        runner.submit(Job(42))
    assert results == [42]
    runner.shutdown()


class EarlyJob:
    """A probe job that hands out an early part, then (after ``release``) the whole."""

    def __init__(self, release=None):
        self.release = release

    def run(self, control):
        control.early("pass")
        while self.release is not None and not self.release.wait(0.005):
            control.check()
        return "pass and analyses"


def test_an_early_part_is_shown_only_when_the_whole_result_is_late(qtbot):
    """The whole result within the grace: only it is published.  Later: the early
    part first, then the whole."""
    runner = ProbeRunner(early_grace_ms=2000)
    seen = []
    runner.early.connect(lambda job, part: seen.append(part))
    runner.result.connect(lambda job, r: seen.append(r))
    runner.submit(EarlyJob())
    qtbot.waitUntil(lambda: seen == ["pass and analyses"], timeout=5000)
    qtbot.wait(50)
    assert seen == ["pass and analyses"]

    runner.early_grace_ms = 20
    seen.clear()
    release = threading.Event()
    runner.submit(EarlyJob(release))
    qtbot.waitUntil(lambda: seen == ["pass"], timeout=5000)  # the grace ran out
    release.set()
    qtbot.waitUntil(lambda: seen == ["pass", "pass and analyses"], timeout=5000)

    seen.clear()  # a newer job: the stale one's early part is never shown
    stale = EarlyJob(threading.Event())
    runner.submit(stale)
    runner.submit(Job("new"))
    qtbot.waitUntil(lambda: seen == ["new"], timeout=5000)
    qtbot.wait(60)
    assert seen == ["new"]
    runner.shutdown()


def counting(params, opt_state, control, n):
    """A fake training generator: params count the steps; sleeps a little per step."""
    start = (params or {}).get("w", 0)
    for i in range(1, n + 1):
        if control.cancelled:
            raise Cancelled
        time.sleep(0.002)
        w = start + i
        yield SimpleNamespace(step=w, nonfinite=None, params=lambda w=w: {"w": w},
                              optimizer_state=lambda w=w: {"step": w})


def test_training_runner_drives_pauses_steps_and_finishes(qtbot):
    runner = TrainingRunner(interval_ms=20)
    got, rests = [], []
    runner.snapshots.connect(got.extend)
    runner.rested.connect(rests.append)
    session = TrainingSession(counting, total=100_000)
    assert session.start()
    runner.drive(session)
    qtbot.waitUntil(lambda: len(got) >= 5, timeout=5000)
    assert session.pause()
    qtbot.waitUntil(lambda: len(rests) == 1, timeout=5000)
    assert session.state == PAUSED
    assert rests[0].params == {"w": got[-1].step}  # the weights of the last step delivered
    qtbot.wait(100)
    n = len(got)
    assert len(got) == n

    assert session.step()  # exactly one more, from the rested weights
    runner.drive(session)
    qtbot.waitUntil(lambda: len(rests) == 2, timeout=5000)
    assert [s.step for s in got] == list(range(1, n + 2))

    short = TrainingSession(counting, total=3)
    short.start()
    runner.drive(short)
    qtbot.waitUntil(lambda: len(rests) == 3, timeout=5000)
    assert short.state == FINISHED and rests[-1].steps == 3
    runner.shutdown()


def test_training_runner_reports_exceptions(qtbot):
    runner = TrainingRunner(interval_ms=20)

    def broken(params, opt_state, control, n):
        yield SimpleNamespace(step=1, nonfinite=None, params=dict, optimizer_state=dict)
        raise RuntimeError("diverged badly")

    session = TrainingSession(broken, total=10)
    session.start()
    with qtbot.waitSignal(runner.rested, timeout=5000) as blocker:
        runner.drive(session)
    assert "diverged badly" in blocker.args[0].error
    runner.shutdown()


def test_throttles_sharing_a_pacer_never_draw_in_one_turn(qtbot):
    """A result and a history pushed together: one draws at once, the other only after
    the pacer's gap (the window paints in between); flush still draws at once; latest
    value wins."""
    from gui.worker import Pacer, Throttle

    drawn = []
    pacer = Pacer(gap_ms=30)
    a = Throttle(lambda v: drawn.append(("a", v, time.perf_counter())), min_ms=0, pacer=pacer)
    b = Throttle(lambda v: drawn.append(("b", v, time.perf_counter())), min_ms=0, pacer=pacer)
    a.push(1)
    b.push(1)
    b.push(2)  # replaces the pending 1
    qtbot.waitUntil(lambda: len(drawn) == 2, timeout=2000)
    assert sorted((n, v) for n, v, _ in drawn) == [("a", 1), ("b", 2)]
    assert drawn[1][2] - drawn[0][2] >= 0.025
    drawn.clear()
    a.push(3)
    b.push(4)
    b.flush()  # an export asks: drawn now, whatever the pacer says
    assert [(n, v) for n, v, _ in drawn] == [("b", 4)]
    qtbot.waitUntil(lambda: len(drawn) == 2, timeout=2000)
    assert drawn[1][:2] == ("a", 3)
