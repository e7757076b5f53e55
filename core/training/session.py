"""A training session as an explicit state machine, driven from any one thread.

States and the moves between them::

    idle ──start──▶ running ──pause──▶ pausing ──(step in flight ends)──▶ paused
                     │  ▲                                                 │
                     │  └───────────────────resume────────────────────────┘
                     ├──(all steps done)──▶ finished
                     └──(a non-finite step)──▶ diverged
    any state ──stop──▶ idle (whatever the run did since its last rest is dropped)

``step`` from idle or paused runs exactly one step and comes to rest again.

The session does not own a thread: whoever drives it calls :meth:`drive`, which
runs steps while the session is running and returns when it comes to rest.
Pausing cancels the step in flight (its update is not applied: the training loop
checks before it updates), so a pause takes effect within a few timesteps; a
resumed run is a new generator started from the rested weights and optimizer
state, which continues exactly as an uninterrupted run would (see
:mod:`core.training.loop`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..jobs import Cancelled, Control, describe_exception

IDLE, RUNNING, PAUSING, PAUSED, FINISHED, DIVERGED = (
    "idle", "running", "pausing", "paused", "finished", "diverged")
STATES = (IDLE, RUNNING, PAUSING, PAUSED, FINISHED, DIVERGED)

# (state, move) → next state; a move not listed is ignored (pausing a finished run).
MOVES: dict[tuple[str, str], str] = {
    (IDLE, "start"): RUNNING,
    (PAUSED, "start"): RUNNING,
    (PAUSING, "start"): RUNNING,
    (RUNNING, "pause"): PAUSING,
    (PAUSING, "rest"): PAUSED,
    (RUNNING, "rest"): PAUSED,
    (RUNNING, "done"): FINISHED,
    (PAUSING, "done"): FINISHED,
    (RUNNING, "diverge"): DIVERGED,
    (PAUSING, "diverge"): DIVERGED,
}


@dataclass
class Rest:
    """Where a run came to rest: host copies of its weights and optimizer state, and
    how many steps it took since it started (or since the previous rest)."""

    params: dict[str, Any] | None = field(repr=False)
    optimizer_state: dict[str, Any] | None = field(repr=False)
    steps: int
    state: str
    error: str = ""


# make(params, optimizer_state, control, steps) -> snapshots; params/state None at first.
StepsFactory = Callable[[Mapping[str, Any] | None, Mapping[str, Any] | None, Control, int],
                        Iterator[Any]]


class TrainingSession:
    """One training run of up to ``total`` steps, which may pause and resume.

    ``make(params, optimizer_state, control, steps)`` returns the snapshot generator
    (:func:`core.training.loop.train` with those arguments); it is called at the
    start and again at every resume with the weights and optimizer state the run
    rested with.  A snapshot needs ``nonfinite`` (None or a message), and
    ``params()`` / ``optimizer_state()`` giving host copies.
    """

    def __init__(self, make: StepsFactory, total: int) -> None:
        self._make = make
        self.total = int(total)
        self.state = IDLE
        self.steps_done = 0  # snapshots delivered over the whole session
        self.message = ""  # where it diverged, or what failed
        self._lock = threading.Lock()
        self._control = Control()
        self._one_step = False
        self._params: Mapping[str, Any] | None = None
        self._opt_state: Mapping[str, Any] | None = None

    # ----------------------------------------------------------- moves (any thread)

    def _move(self, move: str) -> bool:
        new = MOVES.get((self.state, move))
        if new is None:
            return False
        self.state = new
        return True

    def start(self) -> bool:
        """Run (from idle, or resume from paused or while pausing); False if it cannot."""
        with self._lock:
            self._one_step = False
            return self._move("start")

    resume = start

    def step(self) -> bool:
        """Run exactly one step, then rest (from idle or paused)."""
        with self._lock:
            if self.state not in (IDLE, PAUSED):
                return False
            self._one_step = True
            return self._move("start")

    def pause(self) -> bool:
        """Ask a running session to rest: the step in flight is cancelled."""
        with self._lock:
            if not self._move("pause"):
                return False
            self._control.cancel()
            return True

    def stop(self) -> None:
        """End the session; whatever it did since its last rest is dropped."""
        with self._lock:
            self.state = IDLE
            self._control.cancel()

    @property
    def active(self) -> bool:
        """Running or on its way to a rest."""
        return self.state in (RUNNING, PAUSING)

    @property
    def resumable(self) -> bool:
        return self.state in (IDLE, PAUSED)

    # ----------------------------------------------------------- the driver

    def drive(self, on_snapshot: Callable[[Any], None] | None = None) -> Rest | None:
        """Run steps until the session comes to rest; returns the :class:`Rest`, or
        None when the session was stopped (nothing to keep) or was not running.

        Call from one thread at a time.  ``on_snapshot(snap)`` is called in this
        thread after every step.  A resume that arrives while a pause is settling
        keeps the session running.
        """
        taken = 0
        while True:
            with self._lock:
                if self.state != RUNNING:
                    return None
                self._control = control = Control()
                left = 1 if self._one_step else self.total - self.steps_done
            outcome = self._run(control, max(left, 0), on_snapshot)
            if outcome is None:
                return None
            steps, error = outcome
            taken += steps
            with self._lock:
                if self.state == IDLE:
                    return None
                if error:
                    self.message = error
                    self.state = PAUSED if self.steps_done else IDLE
                elif self.state == RUNNING and control.cancelled and not self._one_step \
                        and self.steps_done < self.total:
                    continue  # resumed while the pause settled: carry on
                elif self.state != DIVERGED:
                    finished = self.steps_done >= self.total and not self._one_step
                    self._move("done" if finished else "rest")
                self._one_step = False
                return Rest(self._params, self._opt_state, taken, self.state, error)

    def _run(self, control: Control, left: int,
             on_snapshot: Callable[[Any], None] | None) -> tuple[int, str] | None:
        """One generator's worth of steps: ``(steps taken, error message)``, or None
        when the session was stopped.  Keeps the weights of the last step taken."""
        last, taken, error = None, 0, ""
        try:
            for snap in self._make(self._params, self._opt_state, control, left):
                last, taken = snap, taken + 1
                with self._lock:
                    if self.state == IDLE:  # stopped: drop everything
                        return None
                    self.steps_done += 1
                if on_snapshot is not None:
                    on_snapshot(snap)
                if snap.nonfinite:
                    with self._lock:
                        self.message = snap.nonfinite
                        self._move("diverge")
                    break
                if taken >= left or control.cancelled:
                    break
        except Cancelled:
            pass
        except Exception as exc:  # reported as the run's outcome
            error = describe_exception(exc)
        if last is not None:
            self._params = last.params()
            self._opt_state = last.optimizer_state()
        return taken, error

    def seed(self, params: Mapping[str, Any] | None,
             optimizer_state: Mapping[str, Any] | None) -> None:
        """The weights and optimizer state the first run starts from."""
        with self._lock:
            self._params, self._opt_state = params, optimizer_state


__all__ = ["DIVERGED", "FINISHED", "IDLE", "MOVES", "PAUSED", "PAUSING", "RUNNING", "STATES",
           "Rest", "TrainingSession"]
