"""Work off the GUI thread: the probe (coalescing, latest wins) and the training loop.

Both runners live in the GUI thread and hand results back through queued signals,
so slots connected to them always run in the GUI thread.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from core.errors import UserError


def describe_exception(exc: BaseException) -> str:
    """One line for the user: the message of a UserError, else type and message."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller batch, sequence length or hidden size"
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return f"internal error ({type(exc).__name__}): {exc}"


_NOTHING = object()


class Throttle(QObject):
    """Calls ``fn(latest value)`` at most every ``min_ms``, and adaptively less often so
    that drawing takes at most ``share`` of the GUI thread's time.

    A value pushed while idle is drawn at once; values pushed during the pause
    replace each other (latest wins).
    """

    def __init__(self, fn: Callable[[Any], None], min_ms: int = 50, share: float = 0.2,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn, self._min_s, self._share = fn, min_ms / 1000.0, share
        self._pending: Any = _NOTHING
        self._next = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fire)

    def push(self, value: Any) -> None:
        self._pending = value
        if not self._timer.isActive():
            wait = max(0.0, self._next - time.perf_counter())
            self._timer.start(round(1000 * wait))

    def flush(self) -> None:
        """Draw the pending value now, if there is one."""
        if self._pending is not _NOTHING:
            self._timer.stop()
            self._fire()

    def _fire(self) -> None:
        value, self._pending = self._pending, _NOTHING
        if value is _NOTHING:
            return
        start = time.perf_counter()
        try:
            self._fn(value)
        finally:
            cost = time.perf_counter() - start
            self._next = time.perf_counter() + max(self._min_s, cost / self._share)


class _Relay(QObject):
    """Carries one job's outcome from a worker thread back to the GUI thread."""

    finished = Signal(int, object, str)  # generation, result, error message


class ProbeRunner(QObject):
    """Runs one job at a time; a newer request replaces the pending one (latest wins).

    ``submit(fn)`` queues ``fn`` (called in a worker thread).  Only the outcome of
    the newest request is published: ``result(object)`` or ``failed(str)``;
    outcomes of requests that a newer one superseded are dropped.
    """

    result = Signal(object)
    failed = Signal(str)
    busy = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._on_finished)
        self._latest = 0
        self._thread: threading.Thread | None = None
        self._pending: tuple[int, Callable[[], Any]] | None = None
        self.dropped = 0  # stale outcomes thrown away, for tests and curiosity

    @property
    def is_busy(self) -> bool:
        return self._thread is not None or self._pending is not None

    def submit(self, fn: Callable[[], Any]) -> int:
        """Request ``fn``; returns the request's generation number."""
        self._latest += 1
        if self._thread is not None:
            self._pending = (self._latest, fn)
        else:
            self.busy.emit(True)
            self._start(self._latest, fn)
        return self._latest

    def _start(self, generation: int, fn: Callable[[], Any]) -> None:
        relay = self._relay

        def run() -> None:
            try:
                result, message = fn(), ""
            except Exception as exc:  # shown in the window; the app goes on
                result, message = None, describe_exception(exc)
            relay.finished.emit(generation, result, message)

        self._thread = threading.Thread(target=run, name="gradlab-probe", daemon=True)
        self._thread.start()

    def _on_finished(self, generation: int, result: Any, message: str) -> None:
        self._thread = None
        if self._pending is not None:
            self.dropped += 1
            generation_next, fn = self._pending
            self._pending = None
            self._start(generation_next, fn)
            return
        self.busy.emit(False)
        if generation != self._latest:
            self.dropped += 1
            return
        if message:
            self.failed.emit(message)
        else:
            self.result.emit(result)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Forget pending work and wait for the running job."""
        self._pending = None
        self._latest += 1
        if self._thread is not None:
            self._thread.join(timeout_s)


class Rest:
    """Posted when a run stops moving (pause, end, error): host copies of its state."""

    def __init__(self, params: dict[str, Any] | None,
                 optimizer_state: dict[str, Any] | None) -> None:
        self.params = params
        self.optimizer_state = optimizer_state


def _fetch(snap: Any, name: str) -> Any:
    value = getattr(snap, name, None)
    return value() if callable(value) else value


class _Run:
    """One training run: its thread, mode, snapshot buffer and outcome.

    Weights and optimizer state are fetched only in the worker thread and
    only when the run comes to rest, where a :class:`Rest` joins the buffer.
    """

    def __init__(self, make_generator: Callable[[threading.Event], Iterator[Any]],
                 mode: str) -> None:
        self.cond = threading.Condition()
        self.mode = mode  # run | pause | step | stop
        self.buffer: deque[Any] = deque()
        self.cancel = threading.Event()
        self.outcome: tuple[bool, str] = (False, "")
        self._make = make_generator
        self._last: Any = None
        self.thread = threading.Thread(target=self._loop, name="gradlab-training", daemon=True)

    def set_mode(self, mode: str) -> None:
        with self.cond:
            if self.mode != "stop":
                self.mode = mode
            self.cond.notify_all()

    def _rest(self) -> None:
        if self._last is not None and not self.cancel.is_set():
            self.buffer.append(Rest(_fetch(self._last, "params"),
                                    _fetch(self._last, "optimizer_state")))
            self._last = None

    def _loop(self) -> None:
        gen = None
        try:
            while True:
                with self.cond:
                    if self.mode == "pause":
                        self._rest()
                    while self.mode == "pause":
                        self.cond.wait()
                    if self.mode == "stop":
                        return
                    if self.mode == "step":
                        self.mode = "pause"
                if gen is None:
                    gen = self._make(self.cancel)
                try:
                    snap = next(gen)
                except StopIteration:
                    self.outcome = (True, "")
                    return
                if self.cancel.is_set():
                    return
                self._last = snap
                self.buffer.append(snap)
        except Exception as exc:
            self.outcome = (False, describe_exception(exc))
        finally:
            try:
                self._rest()
            except Exception as exc:
                self.outcome = (False, describe_exception(exc))
            if gen is not None and hasattr(gen, "close"):
                try:
                    gen.close()
                except Exception:
                    traceback.print_exc()


class TrainingRunner(QObject):
    """Drives a training generator in a worker thread: train, pause, step, stop.

    The generator stays suspended while paused, so optimizer state survives a pause.
    Snapshots are buffered and delivered to the GUI by a timer at most
    ``1000 / interval_ms`` times a second: ``snapshots(list)`` carries every
    snapshot since the last delivery.  ``finished(bool)`` says the generator ran
    out (True) or ended early (False); ``failed(str)`` reports an exception.
    ``stop()`` never waits for a step to end: the old run is cancelled and forgotten.
    """

    snapshots = Signal(list)
    failed = Signal(str)
    finished = Signal(bool)

    def __init__(self, parent: QObject | None = None, interval_ms: int = 50) -> None:
        super().__init__(parent)
        self._run: _Run | None = None
        self._stopped: list[_Run] = []
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._flush)

    @property
    def active(self) -> bool:
        """A run exists (running or paused)."""
        return self._run is not None

    @property
    def running(self) -> bool:
        return self._run is not None and self._run.mode in ("run", "step")

    def start(self, make_generator: Callable[[threading.Event], Iterator[Any]],
              mode: str = "run") -> None:
        """Begin a new run in ``mode`` (run, step or pause).

        ``make_generator(cancel_event)`` is called in the worker thread.
        """
        self.stop()
        self._run = _Run(make_generator, mode)
        self._run.thread.start()
        self._timer.start()

    def resume(self) -> None:
        if self._run is not None:
            self._run.set_mode("run")

    def pause(self) -> None:
        if self._run is not None and self.running:
            self._run.set_mode("pause")

    def step(self) -> None:
        """Advance one step, then pause."""
        if self._run is not None:
            self._run.set_mode("step")

    def stop(self) -> None:
        """Cancel the run between steps; its buffered and later snapshots are dropped."""
        run, self._run = self._run, None
        if run is None:
            return
        run.cancel.set()
        run.set_mode("stop")
        self._timer.stop()
        self._stopped = [r for r in self._stopped if r.thread.is_alive()] + [run]

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop and wait for every worker thread (at application exit)."""
        self.stop()
        for run in self._stopped:
            run.thread.join(timeout_s)
        self._stopped = []

    def _flush(self) -> None:
        run = self._run
        if run is None:
            return
        ended = not run.thread.is_alive()
        if run.buffer:
            batch = []
            while run.buffer:
                batch.append(run.buffer.popleft())
            self.snapshots.emit(batch)
        if ended and run is self._run:
            self._run = None
            self._timer.stop()
            done, message = run.outcome
            if message:
                self.failed.emit(message)
            self.finished.emit(done)
