"""Work off the GUI thread: probes (a newer one cancels the stale one) and training.

Both runners live in the GUI thread and hand results back through queued signals,
so slots connected to them always run in the GUI thread.  The work itself is the
core's: a :class:`core.lab.ProbeJob` and a :class:`core.training.session.TrainingSession`,
each stopped through its :class:`core.jobs.Control` within a few timesteps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from core.jobs import Cancelled, Control, describe_exception
from core.training.session import Rest, TrainingSession

_NOTHING = object()
# How long a probe's early part waits for the whole result before it is shown alone.
EARLY_GRACE_MS = 30


class Pacer:
    """Keeps the redraws of several throttles out of one event-loop turn: after one has
    drawn, the others wait ``gap_ms``, so that the window paints the first before the
    second draws.  Without it two throttles of the same period (the training curves and
    the probes of the training weights) drew and painted together, one long stall
    instead of two short ones."""

    def __init__(self, gap_ms: float = 10.0) -> None:
        self._gap_s = gap_ms / 1000.0
        self._until = 0.0

    def wait_s(self) -> float:
        """Seconds until a redraw may follow the last one (0: now)."""
        return max(0.0, self._until - time.perf_counter())

    def drew(self) -> None:
        self._until = time.perf_counter() + self._gap_s


class Throttle(QObject):
    """Calls ``fn(latest value)`` at most every ``min_ms``, and adaptively less often so
    that drawing takes at most ``share`` of the GUI thread's time.

    A value pushed while idle is drawn at once (after the redraw of another throttle
    sharing its ``pacer`` has been painted); values pushed during the pause replace
    each other (latest wins).
    """

    def __init__(self, fn: Callable[[Any], None], min_ms: int = 50, share: float = 0.2,
                 parent: QObject | None = None, pacer: Pacer | None = None) -> None:
        super().__init__(parent)
        self._fn, self._min_s, self._share = fn, min_ms / 1000.0, share
        self._pacer = pacer
        self._pending: Any = _NOTHING
        self._next = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fire)

    @property
    def pending(self) -> bool:
        """A value waits to be drawn."""
        return self._pending is not _NOTHING

    def set_min_ms(self, min_ms: int) -> None:
        """Change the least time between two calls; a pause already begun keeps its end."""
        self._min_s = min_ms / 1000.0

    def push(self, value: Any) -> None:
        self._pending = value
        if not self._timer.isActive():
            wait = max(0.0, self._next - time.perf_counter())
            self._timer.start(round(1000 * wait))

    def flush(self) -> None:
        """Draw the pending value now, if there is one."""
        if self._pending is not _NOTHING:
            self._timer.stop()
            self._draw()

    def _fire(self) -> None:
        wait = self._pacer.wait_s() if self._pacer is not None else 0.0
        if wait > 0.0 and self._pending is not _NOTHING:
            self._timer.start(max(1, round(1000 * wait)))
            return
        self._draw()

    def _draw(self) -> None:
        value, self._pending = self._pending, _NOTHING
        if value is _NOTHING:
            return
        start = time.perf_counter()
        try:
            self._fn(value)
        finally:
            cost = time.perf_counter() - start
            self._next = time.perf_counter() + max(self._min_s, cost / self._share)
            if self._pacer is not None:
                self._pacer.drew()


class _Relay(QObject):
    """Carries a worker thread's news back to the GUI thread (queued signals)."""

    finished = Signal(int, object, str)  # generation, result, error message
    early = Signal(int, object)  # generation, a part of the result ready before the rest
    progress = Signal(int, float, str)  # generation, fraction, stage


class ProbeRunner(QObject):
    """Runs probe jobs in worker threads; a new request cancels the one in flight.

    ``submit(job)`` starts ``job.run(control)`` at once in a new thread and cancels
    the previous job, which stops at its next check (a few timesteps) and whose
    outcome is dropped: a newer edit never waits behind a stale probe.  Only the
    newest job's outcome is published: ``result(job, result)`` or ``failed(str)``;
    before it, ``early(job, part)`` for each part of the result the job hands out
    early (core.jobs.Control.early); ``progress(fraction, stage)`` while it runs;
    ``busy(bool)``.

    An early part is held back ``early_grace_ms``: when the whole result follows
    within that time only the whole is published.  On a small model the analyses take
    a few milliseconds, and drawing the early part meanwhile would only compete with
    them for the cores and the GIL (and draw twice); on a large one the pass still
    shows long before its analyses.  A grace of 0 shows every early part at once.
    """

    result = Signal(object, object)
    early = Signal(object, object)
    failed = Signal(str)
    progress = Signal(float, str)
    busy = Signal(bool)

    def __init__(self, parent: QObject | None = None, early_grace_ms: int = EARLY_GRACE_MS
                 ) -> None:
        super().__init__(parent)
        self.early_grace_ms = early_grace_ms
        self._early: tuple[int, Any] | None = None  # (generation, part) held back
        self._early_timer = QTimer(self)
        self._early_timer.setSingleShot(True)
        self._early_timer.timeout.connect(self._release_early)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._on_finished)
        self._relay.early.connect(self._on_early)
        self._relay.progress.connect(self._on_progress)
        self._latest = 0
        self._job: Any = None
        self._control: Control | None = None
        self._threads: list[threading.Thread] = []
        self.dropped = 0  # stale jobs cancelled or thrown away, for tests and curiosity

    @property
    def is_busy(self) -> bool:
        return self._job is not None

    def submit(self, job: Any) -> int:
        """Run ``job`` (anything with ``run(control)``); returns its generation."""
        self._cancel_current()
        self._latest += 1
        generation, relay = self._latest, self._relay
        last = [0.0]

        def report(fraction: float, stage: str) -> None:
            now = time.perf_counter()
            if now - last[0] >= 0.05 or fraction >= 1.0:
                last[0] = now
                relay.progress.emit(generation, fraction, stage)

        control = Control(on_progress=report,
                          on_early=lambda part: relay.early.emit(generation, part))

        def run() -> None:
            try:
                result, message = job.run(control), ""
            except Cancelled:
                return
            except Exception as exc:  # shown in the window; the app goes on
                result, message = None, describe_exception(exc)
            relay.finished.emit(generation, result, message)

        if self._job is None:
            self.busy.emit(True)
        self._job, self._control = job, control
        thread = threading.Thread(target=run, name="gradlab-probe", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return generation

    def _cancel_current(self) -> None:
        if self._control is not None:
            self._control.cancel()
            self.dropped += 1
        self._control = None

    def cancel(self) -> None:
        """Cancel the job in flight (the Cancel button); nothing is published."""
        if self._job is None:
            return
        self._cancel_current()
        self._latest += 1
        self._job = None
        self.busy.emit(False)

    def _on_progress(self, generation: int, fraction: float, stage: str) -> None:
        if generation == self._latest:
            self.progress.emit(fraction, stage)

    def _on_early(self, generation: int, part: Any) -> None:
        if generation == self._latest and self._job is not None:
            self._early = (generation, part)
            if self.early_grace_ms > 0:
                self._early_timer.start(self.early_grace_ms)
            else:
                self._release_early()

    def _release_early(self) -> None:
        early, self._early = self._early, None
        if early is not None and early[0] == self._latest and self._job is not None:
            self.early.emit(self._job, early[1])

    def _on_finished(self, generation: int, result: Any, message: str) -> None:
        if generation != self._latest or self._job is None:
            return
        job, self._job, self._control = self._job, None, None
        self._early = None  # the whole result came within the grace: only it is shown
        self.busy.emit(False)
        if message:
            self.failed.emit(message)
        else:
            self.result.emit(job, result)

    def shutdown(self, timeout_s: float = 0.5) -> None:
        """Cancel everything and wait at most ``timeout_s`` in all for the threads
        (daemon threads: one stuck in a long library call does not hold the exit)."""
        self.cancel()
        deadline = time.perf_counter() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.perf_counter()))
        self._threads = []


class _RunRelay(QObject):
    ended = Signal(int)  # run number


class TrainingRunner(QObject):
    """Drives a :class:`TrainingSession` in a worker thread until it comes to rest.

    Snapshots are buffered and delivered by a timer at most ``1000 / interval_ms``
    times a second: ``snapshots(list)``.  When the session comes to rest (paused,
    finished, diverged, failed) ``rested(Rest)`` follows the last snapshots;
    :meth:`wait` does the same synchronously.  A stopped session ends silently.
    """

    snapshots = Signal(list)
    rested = Signal(object)

    def __init__(self, parent: QObject | None = None, interval_ms: int = 50) -> None:
        super().__init__(parent)
        self._relay = _RunRelay(self)
        self._relay.ended.connect(self._on_ended)
        self._run = 0
        self._thread: threading.Thread | None = None
        self._session: TrainingSession | None = None
        self._buffer: deque[Any] = deque()
        self._rest: Rest | None = None
        self._old: list[threading.Thread] = []
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._flush)

    @property
    def running(self) -> bool:
        """A thread is driving a session."""
        return self._thread is not None

    def drive(self, session: TrainingSession) -> None:
        """Drive ``session`` (already started) in a new thread."""
        self.forget()
        self._run += 1
        run, relay, buffer = self._run, self._relay, deque()
        self._buffer, self._session = buffer, session

        def work() -> None:
            rest = session.drive(buffer.append)
            if run == self._run:
                self._rest = rest
            relay.ended.emit(run)

        self._rest = None
        self._thread = threading.Thread(target=work, name="gradlab-training", daemon=True)
        self._thread.start()
        self._timer.start()

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Block until the thread comes to rest (after a pause or a stop), deliver what
        it left; False if it did not stop within ``timeout_s``."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            return False
        self._finish()
        return True

    def forget(self) -> None:
        """Drop the current thread: its snapshots and rest are not delivered (its
        session must have been stopped)."""
        if self._thread is not None:
            self._old = [t for t in self._old if t.is_alive()] + [self._thread]
        self._run += 1
        self._thread = None
        self._timer.stop()
        self._buffer = deque()

    def _flush(self) -> None:
        if self._buffer:
            batch = []
            while self._buffer:
                batch.append(self._buffer.popleft())
            self.snapshots.emit(batch)

    def _on_ended(self, run: int) -> None:
        if run == self._run and self._thread is not None:
            self._finish()

    def _finish(self) -> None:
        self._thread = None
        self._timer.stop()
        self._flush()
        rest, self._rest = self._rest, None
        self.rested.emit(rest)

    def shutdown(self, timeout_s: float = 0.5) -> None:
        """At exit: stop the session and wait at most ``timeout_s`` for the threads."""
        if self._session is not None:
            self._session.stop()
        threads = [*self._old, *([self._thread] if self._thread else [])]
        self.forget()
        deadline = time.perf_counter() + timeout_s
        for t in threads:
            t.join(max(0.0, deadline - time.perf_counter()))
