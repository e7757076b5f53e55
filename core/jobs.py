"""Cancellation and progress for long computations, without threads of its own.

A :class:`Control` is handed to a computation (a probe, a training run); the
computation calls :meth:`Control.check` between steps, which raises
:class:`Cancelled` once :meth:`Control.cancel` was called from any thread, and
:meth:`Control.report` to say how far it got.  Whoever owns the thread decides
what a cancelled job means; the core only promises to stop soon (between two
timesteps, two Jacobian rows or two training steps); a long call that cannot check
(a large eigenvalue problem in LAPACK) is waited for in short slices
(:func:`run_cancellable`).
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")


class Cancelled(Exception):
    """The job was cancelled; nothing it computed should be used."""


class Control:
    """A cancel flag and a progress callback shared by a job and its owner.

    ``on_progress(fraction, text)`` is called from the job's thread with a fraction
    in [0, 1] of the whole job and a few words on the stage.  ``on_early(part)``, if
    given, receives a part of the result that is ready before the rest (a probe's pass
    before its slower analyses), also from the job's thread.
    """

    def __init__(self, on_progress: Callable[[float, str], None] | None = None,
                 on_early: Callable[[Any], None] | None = None) -> None:
        self._event = threading.Event()
        self._on_progress = on_progress
        self._on_early = on_early
        self._stage = (0.0, 1.0, "")

    @property
    def wants_early(self) -> bool:
        """Whether the owner takes early parts of the result (:meth:`early`)."""
        return self._on_early is not None

    def early(self, part: Any) -> None:
        """Hand ``part`` of the result, ready before the rest, to the owner (if it
        takes them); checks for cancellation first."""
        self.check()
        if self._on_early is not None:
            self._on_early(part)

    def cancel(self) -> None:
        """Ask the job to stop at its next check (any thread)."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled."""
        if self._event.is_set():
            raise Cancelled

    def stage(self, start: float, end: float, text: str) -> None:
        """The next reports cover [start, end] of the whole job, under ``text``."""
        self._stage = (start, end, text)
        self.report(0.0)

    def report(self, done: float, text: str | None = None) -> None:
        """``done`` of the current stage (0..1) is finished (``text``: a finer word on
        it than the stage's own); checks for cancellation."""
        self.check()
        if self._on_progress is not None:
            lo, hi, stage_text = self._stage
            self._on_progress(lo + (hi - lo) * min(max(done, 0.0), 1.0), text or stage_text)


class Part(Control):
    """The control of one part of a job: its progress fills ``[lo, hi]`` of the
    ``parent``'s current stage, and the parent's cancel stops it too."""

    def __init__(self, parent: Control, lo: float, hi: float) -> None:
        super().__init__(lambda f, text: parent.report(lo + (hi - lo) * f, text))
        self._parent = parent

    @property
    def cancelled(self) -> bool:
        return self._parent.cancelled or super().cancelled

    def check(self) -> None:
        self._parent.check()
        super().check()


_ABANDONED: list[threading.Thread] = []


def abandoned_calls() -> int:
    """Calls :func:`run_cancellable` gave up on that are still running.  A process
    ending with one should end with ``os._exit``: the BLAS library's exit handlers
    wait for its threads, which the abandoned call may still be using."""
    _ABANDONED[:] = [t for t in _ABANDONED if t.is_alive()]
    return len(_ABANDONED)


def run_cancellable(work: Callable[[], T], control: Control | None = None,
                    slice_s: float = 0.05) -> T:
    """``work()`` for one long call that cannot check a control itself (a LAPACK call):
    it runs in a daemon thread while this thread waits in slices of ``slice_s`` seconds,
    checking ``control`` between them — a cancel raises :class:`Cancelled`, and Ctrl-C
    (KeyboardInterrupt, delivered to the main thread between slices) ends the wait
    too, within a slice.  The abandoned call runs on to its end in its thread; its
    result is discarded.  ``work``'s own exception is raised here."""
    done = threading.Event()
    box: list[Any] = []

    def run() -> None:
        try:
            box.append((True, work()))
        except BaseException as exc:  # handed to the waiting thread
            box.append((False, exc))
        finally:
            done.set()

    thread = threading.Thread(target=run, name="gradlab-long-call", daemon=True)
    thread.start()
    try:
        while not done.wait(slice_s):
            check(control)
    except BaseException:
        _ABANDONED.append(thread)
        raise
    ok, value = box[0]
    if not ok:
        raise value
    return value


def describe_exception(exc: BaseException) -> str:
    """One line for the user: the message of a UserError, else type and message (the
    traceback goes to stderr, for a report)."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller batch, sequence length or hidden size"
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return f"internal error ({type(exc).__name__}): {exc}"


def check(control: Control | None) -> None:
    """:meth:`Control.check` for an optional control."""
    if control is not None and control.cancelled:
        raise Cancelled


__all__ = [
    "Cancelled",
    "Control",
    "Part",
    "abandoned_calls",
    "check",
    "describe_exception",
    "run_cancellable",
]
