"""The training state machine (core.training.session), driven by a fake step generator.

No network is involved: ``make(params, opt_state, control, n)`` yields snapshots whose
weights are a step counter, so every test can tell exactly which steps ran, from
which weights and optimizer state each run started, and where it came to rest.
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from core.errors import UserError
from core.jobs import Cancelled
from core.training.session import (
    DIVERGED,
    FINISHED,
    IDLE,
    MOVES,
    PAUSED,
    PAUSING,
    RUNNING,
    STATES,
    Rest,
    TrainingSession,
)

ALL_MOVES = ("start", "pause", "rest", "done", "diverge")


class Snap:
    """What the session needs of a snapshot: ``nonfinite``, ``params()``,
    ``optimizer_state()``; ``count`` is the global step number it ends."""

    def __init__(self, count: int, t: int, nonfinite: str | None = None) -> None:
        self.count = count
        self.t = t
        self.nonfinite = nonfinite

    def params(self) -> dict[str, int]:
        return {"count": self.count}

    def optimizer_state(self) -> dict[str, int]:
        return {"t": self.t}


class Fake:
    """A factory for the session: each call is one run (the start or a resume).

    ``delay``: seconds a step takes, spent in slices that check the control (a
    cancelled step raises :class:`Cancelled`, its update is never yielded);
    ``nonfinite_at``: the global step whose snapshot is non-finite; ``fail_at``: the
    global step that raises ``error`` instead; ``fail_on_make``: raise when called.
    """

    def __init__(self, delay: float = 0.0, nonfinite_at: int | None = None,
                 fail_at: int | None = None, error: Exception | None = None,
                 fail_on_make: Exception | None = None) -> None:
        self.delay = delay
        self.nonfinite_at = nonfinite_at
        self.fail_at = fail_at
        self.error = error
        self.fail_on_make = fail_on_make
        self.calls: list[tuple[object, object, int]] = []
        self.yielded: list[int] = []  # global step numbers, in order
        self.cancelled_in_flight = 0

    def __call__(self, params, opt_state, control, n):
        self.calls.append((params, opt_state, n))
        if self.fail_on_make is not None:
            raise self.fail_on_make
        return self._steps(params, opt_state, control, n)

    def _steps(self, params, opt_state, control, n):
        count = 0 if params is None else params["count"]
        t = 0 if opt_state is None else opt_state["t"]
        for i in range(n):
            if control.cancelled:
                return
            step = count + i + 1
            if self.delay:
                for _ in range(5):
                    time.sleep(self.delay / 5)
                    if control.cancelled:
                        self.cancelled_in_flight += 1
                        raise Cancelled
            if step == self.fail_at:
                raise self.error
            bad = f"step {step}: the loss became NaN" if step == self.nonfinite_at else None
            self.yielded.append(step)
            yield Snap(step, t + i + 1, bad)


def session(fake: Fake, total: int) -> TrainingSession:
    return TrainingSession(fake, total)


def drive_in_thread(s: TrainingSession, on_snapshot=None):
    """Start ``s.drive`` in a thread; returns (thread, box) with box["rest"] at the end."""
    box: dict[str, object] = {}

    def run() -> None:
        box["rest"] = s.drive(on_snapshot)
        box["returned"] = time.perf_counter()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, box


def wait_for(predicate, timeout: float = 5.0) -> None:
    end = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.002)


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize(("state", "move"), list(itertools.product(STATES, ALL_MOVES)))
def test_every_move_follows_the_table_and_unlisted_moves_are_ignored(state, move):
    s = session(Fake(), 5)
    s.state = state
    moved = s._move(move)
    if (state, move) in MOVES:
        assert moved is True
        assert s.state == MOVES[(state, move)]
    else:
        assert moved is False
        assert s.state == state


def test_the_table_names_only_known_states_and_moves():
    for (state, move), new in MOVES.items():
        assert state in STATES and new in STATES and move in ALL_MOVES


@pytest.mark.parametrize("state", STATES)
def test_public_moves_from_every_state(state):
    """start/resume, pause and step do what the table says and nothing otherwise."""
    for method, move in (("start", "start"), ("resume", "start"), ("pause", "pause")):
        s = session(Fake(), 5)
        s.state = state
        ok = getattr(s, method)()
        assert ok is ((state, move) in MOVES), (method, state)
        assert s.state == MOVES.get((state, move), state), (method, state)
    s = session(Fake(), 5)
    s.state = state
    ok = s.step()
    assert ok is (state in (IDLE, PAUSED))
    assert s.state == (RUNNING if ok else state)


def test_pause_cancels_the_control_only_when_it_moves():
    s = session(Fake(), 5)
    control = s._control
    assert s.pause() is False  # idle: nothing to pause
    assert not control.cancelled
    s.start()
    assert s.pause() is True
    assert s.state == PAUSING
    assert s._control.cancelled
    assert s.pause() is False  # already pausing
    assert s.state == PAUSING


def test_stop_from_any_state_goes_idle():
    for state in STATES:
        s = session(Fake(), 5)
        s.state = state
        s.stop()
        assert s.state == IDLE


def test_drive_does_nothing_unless_running():
    fake = Fake()
    s = session(fake, 5)
    assert s.drive() is None
    assert fake.calls == []
    s.state = PAUSED
    assert s.drive() is None
    assert fake.calls == []


# --------------------------------------------------------------------------- runs


def test_start_then_drive_runs_every_step_and_finishes():
    fake = Fake()
    s = session(fake, 7)
    s.seed({"count": 0}, None)
    seen: list[int] = []
    assert s.start()
    rest = s.drive(lambda snap: seen.append(snap.count))
    assert isinstance(rest, Rest)
    assert rest.state == FINISHED == s.state
    assert rest.steps == 7 and s.steps_done == 7
    assert seen == fake.yielded == [1, 2, 3, 4, 5, 6, 7]
    assert rest.params == {"count": 7}
    assert rest.optimizer_state == {"t": 7}
    assert rest.error == ""
    assert fake.calls == [({"count": 0}, None, 7)]
    assert not s.active
    # finished is final: neither start nor step moves it
    assert s.start() is False and s.step() is False
    assert s.state == FINISHED


def test_the_first_run_starts_from_the_seeded_weights_and_state():
    fake = Fake()
    s = session(fake, 3)
    s.seed({"count": 10}, {"t": 4})
    s.start()
    rest = s.drive()
    assert fake.calls[0] == ({"count": 10}, {"t": 4}, 3)
    assert fake.yielded == [11, 12, 13]
    assert rest.params == {"count": 13} and rest.optimizer_state == {"t": 7}


def test_step_runs_exactly_one_then_pauses():
    fake = Fake()
    s = session(fake, 5)
    assert s.step()
    assert s.state == RUNNING
    rest = s.drive()
    assert rest.steps == 1 and rest.state == PAUSED == s.state
    assert fake.yielded == [1]
    assert fake.calls[-1][2] == 1  # the generator was asked for one step only
    assert s.step()
    rest = s.drive()
    assert rest.steps == 1 and rest.state == PAUSED
    assert rest.params == {"count": 2}
    assert fake.calls[-1][:2] == ({"count": 1}, {"t": 1})
    # then a plain start runs the rest of the total and finishes
    assert s.start()
    rest = s.drive()
    assert rest.state == FINISHED and rest.steps == 3
    assert fake.yielded == [1, 2, 3, 4, 5]
    assert s.steps_done == 5


def test_pause_from_another_thread_rests_quickly_then_resume_completes_the_total():
    total = 1000  # 20 s of steps: only a pause ends the first drive in time
    fake = Fake(delay=0.02)
    s = session(fake, total)
    s.seed({"count": 0}, None)
    s.start()
    th, box = drive_in_thread(s)
    wait_for(lambda: len(fake.yielded) >= 3)
    asked = time.perf_counter()
    assert s.pause()
    th.join(timeout=5)
    assert not th.is_alive()
    latency = box["returned"] - asked
    assert latency < 0.5, f"pause took {latency:.3f} s"
    rest = box["rest"]
    assert isinstance(rest, Rest)
    assert rest.state == PAUSED == s.state
    assert rest.error == ""
    first = rest.steps
    assert first == len(fake.yielded) == s.steps_done
    assert rest.params == {"count": first} and rest.optimizer_state == {"t": first}

    # resume: a new run from the rested weights and state, for the steps left
    fake.delay = 0.0
    assert s.start()
    rest = s.drive()
    assert fake.calls[1] == ({"count": first}, {"t": first}, total - first)
    assert rest.state == FINISHED
    assert first + rest.steps == total == s.steps_done
    assert fake.yielded == list(range(1, total + 1))  # no step lost or repeated
    assert rest.params == {"count": total}


def test_a_cancelled_step_in_flight_is_not_applied():
    fake = Fake(delay=0.05)
    s = session(fake, 50)
    s.start()
    th, box = drive_in_thread(s)
    wait_for(lambda: len(fake.yielded) >= 1)
    s.pause()
    th.join(timeout=5)
    rest = box["rest"]
    assert rest.state == PAUSED
    assert fake.cancelled_in_flight == 1
    assert rest.params == {"count": rest.steps} == {"count": fake.yielded[-1]}


def test_pause_from_on_snapshot_keeps_exactly_the_steps_seen():
    fake = Fake()
    s = session(fake, 10)
    seen: list[int] = []

    def each(snap):
        seen.append(snap.count)
        if snap.count == 4:
            s.pause()

    s.start()
    rest = s.drive(each)
    assert rest.state == PAUSED and rest.steps == 4 == s.steps_done
    assert rest.params == {"count": 4}
    s.start()
    rest = s.drive(lambda snap: seen.append(snap.count))
    assert rest.state == FINISHED and rest.steps == 6
    assert seen == list(range(1, 11))


def test_pause_on_the_last_step_still_finishes():
    fake = Fake()
    s = session(fake, 3)
    s.start()
    rest = s.drive(lambda snap: snap.count == 3 and s.pause())
    assert rest.state == FINISHED == s.state
    assert s.steps_done == 3


def test_a_resume_while_pausing_keeps_the_session_running():
    fake = Fake()
    s = session(fake, 10)

    def each(snap):
        if snap.count == 3:
            s.pause()
            s.start()  # the user changed their mind before the run came to rest

    s.start()
    rest = s.drive(each)
    while s.state == RUNNING:  # a host may have to drive again; either way it runs on
        rest = s.drive()
    assert rest is not None
    assert s.state == FINISHED
    assert s.steps_done == 10


def test_a_nonfinite_snapshot_diverges_and_stops():
    fake = Fake(nonfinite_at=3)
    s = session(fake, 10)
    seen: list[int] = []
    s.start()
    rest = s.drive(lambda snap: seen.append(snap.count))
    assert rest.state == DIVERGED == s.state
    assert rest.steps == 3 == s.steps_done
    assert fake.yielded == [1, 2, 3] == seen  # nothing after the bad step was asked for
    assert s.message == "step 3: the loss became NaN"
    assert rest.params == {"count": 3}
    assert rest.error == ""
    # diverged is final
    assert s.start() is False and s.step() is False and s.pause() is False
    assert s.drive() is None
    assert len(fake.calls) == 1


def test_stop_during_drive_returns_none():
    fake = Fake()
    s = session(fake, 10)
    s.start()
    rest = s.drive(lambda snap: snap.count == 4 and s.stop())
    assert rest is None
    assert s.state == IDLE
    assert fake.yielded == [1, 2, 3, 4]


def test_stop_from_another_thread_returns_none_quickly():
    fake = Fake(delay=0.02)
    s = session(fake, 1000)
    s.start()
    th, box = drive_in_thread(s)
    wait_for(lambda: len(fake.yielded) >= 2)
    asked = time.perf_counter()
    s.stop()
    th.join(timeout=5)
    assert not th.is_alive()
    assert box["rest"] is None
    assert box["returned"] - asked < 0.5
    assert s.state == IDLE


def test_an_exception_after_some_steps_rests_with_the_user_error_message_verbatim():
    message = "target: batch size does not match the input's 4 (target shape (3, 1))"
    fake = Fake(fail_at=4, error=UserError(message))
    s = session(fake, 10)
    s.start()
    rest = s.drive()
    assert isinstance(rest, Rest)
    assert rest.error == message
    assert s.message == message
    assert rest.state == PAUSED == s.state  # the three good steps are kept
    assert rest.steps == 3 and s.steps_done == 3
    assert rest.params == {"count": 3} and rest.optimizer_state == {"t": 3}


def test_an_internal_error_names_its_type(capsys):
    fake = Fake(fail_at=2, error=ValueError("shapes (3,) and (4,) not aligned"))
    s = session(fake, 10)
    s.start()
    rest = s.drive()
    assert rest.state == PAUSED
    assert "ValueError" in rest.error and "not aligned" in rest.error
    capsys.readouterr()  # the traceback went to stderr


def test_an_exception_before_the_first_step_leaves_the_session_idle():
    message = "input: expected shape (T, B, 2), got (5, 3)"
    fake = Fake(fail_at=1, error=UserError(message))
    s = session(fake, 10)
    s.seed({"count": 0}, None)
    s.start()
    rest = s.drive()
    assert rest is not None
    assert rest.error == message
    assert rest.state == IDLE == s.state
    assert rest.steps == 0 and s.steps_done == 0
    assert rest.params == {"count": 0}  # the seeded weights, untouched
    assert s.start()  # it can be started again


def test_an_exception_making_the_generator_leaves_the_session_idle():
    fake = Fake(fail_on_make=UserError("training.steps: must be positive"))
    s = session(fake, 10)
    s.start()
    rest = s.drive()
    assert rest.error == "training.steps: must be positive"
    assert rest.state == IDLE == s.state
