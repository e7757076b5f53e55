"""The Qt side of the lab: :class:`core.lab.Lab`'s events as signals, its work on threads.

Everything a user can do is a :class:`~core.lab.Lab` method; this bridge only
re-emits the Lab's events as Qt signals (so widgets can connect to them), runs
probes and training in worker threads (:mod:`gui.worker`), and asks before a
probe that would take long.  The rules — validation, weights policy, undo, the
modified mark — are the Lab's and are tested without Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from core.document import Document
from core.experiment import Experiment, LayerConfig, ModelConfig
from core.lab import Lab, layer_label, validate
from core.training.session import DIVERGED, FINISHED, IDLE, PAUSED, PAUSING, RUNNING

from .worker import ProbeRunner, TrainingRunner

# A probe estimated to take longer than this shows its progress and a Cancel button;
# past ASK_S the window asks before starting it.
PROGRESS_S = 2.0
ASK_S = 60.0

HISTORY_COLUMNS = ("step", "loss", "val_loss", "grad_norm_before", "grad_norm_after", "lr")


class LabState(QObject):
    """The one source of truth the views observe: a :class:`Lab` and its workers.

    Signals: ``experiment_changed(Experiment)``, ``result_changed(ProbeResult)``,
    ``history_changed(dict)`` (columns of numpy arrays), ``training_state_changed(str)``
    (idle, running, pausing, paused, finished, diverged), ``error(str)``,
    ``notice(str)`` (e.g. trained weights redrawn), ``nonfinite(str)``, ``busy(bool)``
    (probe in flight), ``probe_progress(float, str)`` (only for a long probe),
    ``file_changed()``, ``undo_changed()``, ``training_progress(int, int)``,
    ``pinned_changed()`` (a run pinned or unpinned: ``pin``, ``unpin``, ``pinned``),
    ``seeds_changed(int)`` (the probe's seed ensemble: ``set_seeds``; probed again).
    """

    experiment_changed = Signal(object)
    result_changed = Signal(object)
    history_changed = Signal(object)
    training_state_changed = Signal(str)
    error = Signal(str)
    notice = Signal(str)
    nonfinite = Signal(str)
    busy = Signal(bool)
    probe_progress = Signal(float, str)
    file_changed = Signal()
    undo_changed = Signal()
    training_progress = Signal(int, int)
    pinned_changed = Signal()
    seeds_changed = Signal(int)

    def __init__(self, experiment: Experiment | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.lab = lab = Lab(experiment)
        self.probe_runner = ProbeRunner(self)
        self.probe_runner.result.connect(self._on_probe_result)
        self.probe_runner.early.connect(self._on_probe_early)
        self.probe_runner.failed.connect(self._on_failure)
        self.probe_runner.busy.connect(self.busy)
        self.probe_runner.progress.connect(self._on_probe_progress)
        self.trainer = TrainingRunner(self)
        self.trainer.snapshots.connect(lab.record)
        self.trainer.rested.connect(self._on_rest)
        # Asked before a probe estimated past ASK_S; replaceable (tests).
        self.confirm_long_probe: Callable[[float], bool] = lambda seconds: True
        self.long_probe = False  # the probe in flight shows progress
        self._train_fn: Callable[..., Any] | None = None
        self._resume = False  # Train pressed while the run was pausing
        self._resume_after_edit = False  # an edit paused a running training
        lab.before_edit = self._pause_for_edit
        lab.experiment_changed.connect(self._on_experiment)
        lab.version_changed.connect(self._on_version)
        lab.history_changed.connect(lambda h: self.history_changed.emit(h.arrays()))
        lab.result_changed.connect(self.result_changed.emit)
        lab.training_state_changed.connect(self.training_state_changed.emit)
        lab.training_progress.connect(self.training_progress.emit)
        lab.nonfinite.connect(self.nonfinite.emit)
        lab.error.connect(self.error.emit)
        lab.notice.connect(self.notice.emit)
        lab.file_changed.connect(self.file_changed.emit)
        lab.undo_changed.connect(self.undo_changed.emit)
        lab.pinned_changed.connect(self.pinned_changed.emit)
        lab.seeds_changed.connect(self._on_seeds)

    # ------------------------------------------------------------------ reading

    def __getattr__(self, name: str) -> Any:
        """Everything else is the Lab's: experiment, params, result, path, modified,
        edits (set_scale, insert_layer, …), undo/redo, save, document, …"""
        if name == "lab":
            raise AttributeError(name)
        return getattr(self.lab, name)

    @property
    def history(self) -> dict[str, list[Any]]:
        """Training columns as lists (``step`` ints; NaN where not measured)."""
        h = self.lab.history
        return {c: h.column(c).tolist() for c in HISTORY_COLUMNS}

    def history_arrays(self) -> dict[str, np.ndarray]:
        return self.lab.history.arrays()

    @property
    def at_rest(self) -> bool:
        """No training thread is moving the weights."""
        return not self.trainer.running

    # ------------------------------------------------------------------ documents

    def load(self, exp: Experiment, path: str | Path | None = None,
             lesson: str | None = None) -> bool:
        """Replace the experiment (New, Open, a lesson): fresh weights, empty history."""
        self._stop_training()
        return self.lab.replace(exp, path=path, lesson=lesson)

    def load_document(self, doc: Document, path: str | Path | None = None,
                      lesson: str | None = None, modified: bool = False) -> bool:
        self._stop_training()
        return self.lab.load_document(doc, path=path, lesson=lesson, modified=modified)

    def open_file(self, path: str | Path) -> bool:
        self.wait_for_rest()
        return self.lab.open_file(path)

    def save(self, path: str | Path | None = None) -> bool:
        """Save the weights at rest (a running training pauses for it)."""
        self.wait_for_rest()
        return self.lab.save(path)

    def set_modified(self, value: bool = True) -> None:
        if value:
            self.lab.mark_modified()

    # ------------------------------------------------------------------ edits

    def _pause_for_edit(self) -> None:
        """An edit while training runs: bring the weights to rest for the edit, then
        carry on training (unless the edit drew fresh weights)."""
        self._resume_after_edit = self.wait_for_rest()

    def _on_version(self) -> None:
        self.request_probe()
        if self._resume_after_edit:
            self._resume_after_edit = False
            if self.lab.trained:
                QTimer.singleShot(0, self, self.train)

    def _on_seeds(self, n: int) -> None:
        self.seeds_changed.emit(n)
        self.request_probe()

    def _on_experiment(self, exp: Experiment) -> None:
        self.backend_label = self.lab.backend_label
        self.experiment_changed.emit(exp)

    # ------------------------------------------------------------------ probes

    def request_probe(self) -> None:
        """Probe the current weights in the background; a newer request cancels an
        older one.  A long probe reports progress; a very long one asks first."""
        seconds = self.lab.probe_seconds()
        if seconds > ASK_S and not self.confirm_long_probe(seconds):
            self.cancel_probe()
            self.error.emit(f"probe not run: it would take about {seconds:.0f} s; press "
                            "Probe (F5) to run it anyway")
            return
        self.long_probe = seconds > PROGRESS_S
        self.probe_runner.submit(self.lab.probe_job())

    def probe_now(self) -> None:
        """Run the probe whatever its estimated time (F5)."""
        self.long_probe = self.lab.probe_seconds() > PROGRESS_S
        self.probe_runner.submit(self.lab.probe_job())

    def show_analyses(self, *, connectivity: bool) -> None:
        """What the visible views need (see :meth:`core.lab.Lab.set_analyses`); probes
        again when a view just shown lacks its part of the result."""
        if self.lab.set_analyses(connectivity=connectivity):
            self.request_probe()

    def cancel_probe(self) -> None:
        self.probe_runner.cancel()
        self.lab.end_early_result()  # its analyses will not come

    def _on_probe_progress(self, fraction: float, stage: str) -> None:
        if self.long_probe:
            self.probe_progress.emit(fraction, stage)

    def _on_probe_result(self, job: Any, result: Any) -> None:
        from core.pairs import PairJob

        if isinstance(job, PairJob):
            self.lab.apply_pair(job, result)
        elif self.lab.publish(job, result) and self.lab.left_out(job):
            self.request_probe()  # the map's view was shown while this probe ran

    def _on_probe_early(self, job: Any, part: Any) -> None:
        """A probe's pass, shown while its slower analyses are still computed."""
        from core.lab import ProbeJob

        if isinstance(job, ProbeJob):
            self.lab.publish(job, part)

    def compare_pair(self, pair: Any) -> bool:
        """Run A of ``pair`` (:class:`core.pairs.Pair`) in the background, then pin it and
        make B live (a lesson's Compare step); progress shows, Cancel stops it."""
        from core.errors import UserError

        self.wait_for_rest()
        try:
            job = self.lab.pair_job(pair)
        except UserError as exc:
            self.lab.last_error = str(exc)
            self.error.emit(str(exc))
            return False
        self.long_probe = True
        self.probe_runner.submit(job)
        return True

    def _on_failure(self, message: str) -> None:
        self.lab.end_early_result()  # the analyses it waited for failed
        self.lab.last_error = message
        self.error.emit(message)

    # ------------------------------------------------------------------ training

    def train(self) -> None:
        """Start or resume training."""
        if self.trainer.running:
            if self.lab.training_state == PAUSING:
                self._resume = True
            return
        self._run("start")

    def _run(self, move: str) -> None:
        """``start`` or ``step`` the session at rest (else a new one from the current
        weights) and drive it in the worker thread."""
        session = self.lab.session
        if session is None or not session.resumable:
            session = self.lab.new_session(train_fn=self._train_fn)
        if getattr(session, move)():
            self.trainer.drive(session)
            self.training_state_changed.emit(session.state)

    def pause(self) -> None:
        """Pause: the step in flight is cancelled; the weights come to rest."""
        self._resume = False
        session = self.lab.session
        if session is not None and session.pause():
            self.training_state_changed.emit(session.state)

    def toggle_training(self) -> None:
        if self.lab.training_state == RUNNING:
            self.pause()
        else:
            self.train()

    def step(self) -> None:
        """Exactly one training step, then pause."""
        if not self.trainer.running:
            self._run("step")

    def undo(self) -> bool:
        """Undo (training, if running, stops at rest first and stays paused)."""
        self.wait_for_rest()
        return self.lab.undo()

    def redo(self) -> bool:
        self.wait_for_rest()
        return self.lab.redo()

    def reset(self) -> None:
        """Stop training and draw the weights afresh from the seed (undoable)."""
        self._stop_training()
        self.lab.reset()

    def wait_for_rest(self, timeout_s: float = 10.0) -> bool:
        """Pause training and wait until the worker hands back its weights, so that
        the Lab is up to date; returns whether training was running."""
        was_running = self.lab.training_state == RUNNING
        if self.trainer.running:
            self.pause()
            if not self.trainer.wait(timeout_s):
                self._stop_training()
        return was_running

    def _stop_training(self) -> None:
        self._resume = False
        self.trainer.forget()
        self.lab.stop_training()

    def _on_rest(self, rest: Any) -> None:
        self.lab.settle(rest)
        if self._resume:
            self._resume = False
            self.train()

    def shutdown(self, timeout_s: float = 0.5) -> None:
        """Stop background work (window closing), waiting at most ``timeout_s`` in all."""
        import time

        deadline = time.perf_counter() + timeout_s
        self.probe_runner.cancel()  # both stop at their next check, at the same time
        self.trainer.shutdown(timeout_s)
        self.probe_runner.shutdown(max(0.0, deadline - time.perf_counter()))


def probe_experiment(exp: Experiment, params: dict[str, np.ndarray]) -> Any:
    """Forward + BPTT on the experiment's probe batch (the one the window shows)."""
    from core.lab import run_probe

    return run_probe(exp, params, None)


__all__ = ["DIVERGED", "FINISHED", "IDLE", "PAUSED", "PAUSING", "RUNNING", "LabState",
           "LayerConfig", "ModelConfig", "layer_label", "probe_experiment", "validate"]
