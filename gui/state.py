"""The observable lab state: experiment, weights, latest probe result, training history.

Views never talk to each other: they call the edit methods here, and redraw
from the signals.  Every edit is validated with the same rules as experiment
files (so the messages match the command line) and then re-runs the probe in
the background.

Weights policy: a change of architecture, task or initialisation (scheme,
scales, forget bias, seed) re-draws the weights from the seed, so a slider
position always means the same weights; anything else (sequence length, batch,
training settings, backend) keeps the current, possibly trained, weights.

Document: ``path`` is the file the experiment came from or was saved to;
``modified`` says there are unsaved changes (an edit, a training step, loaded
weights).  :meth:`LabState.document` is what a save writes.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from core.backend import BackendError, resolve_backend
from core.errors import UserError
from core.experiment import (
    Experiment,
    LayerConfig,
    ModelConfig,
    experiment_from_dict,
    experiment_to_dict,
)
from core.init import init_params

from .files import Document, file_kind, read_document, read_weights, write_document
from .worker import ProbeRunner, Rest, TrainingRunner

HISTORY_COLUMNS = ("step", "loss", "val_loss", "grad_norm_before", "grad_norm_after", "lr")

# Training states published by ``training_state_changed``.
IDLE, RUNNING, PAUSED, FINISHED, DIVERGED = "idle", "running", "paused", "finished", "diverged"


def probe_experiment(exp: Experiment, params: dict[str, np.ndarray]) -> Any:
    """Forward + BPTT on the experiment's fixed probe batch (the one training probes)."""
    from core.probe import probe
    from core.tasks import make_batch

    x, y = make_batch(exp, np.random.default_rng(exp.init.seed), "train")
    with np.errstate(all="ignore"):
        return probe(exp, params, x, y)


def validate(exp: Experiment) -> Experiment:
    """A validated copy of ``exp`` (ConfigError names the first bad field)."""
    checked = experiment_from_dict(experiment_to_dict(exp))
    checked.weights = exp.weights
    return checked


def task_sizes(name: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """``core.tasks.task_shapes`` when the task registry offers it, else None."""
    try:
        from core.tasks import task_shapes
    except ImportError:
        return None
    return task_shapes(name, options)


def _max_seq_len(name: str, options: dict[str, Any]) -> int | None:
    try:
        sizes = task_sizes(name, options)
    except UserError:
        return None
    return None if sizes is None else sizes.get("max_seq_len")


class _EditCommand(QUndoCommand):
    """An undoable edit: values of experiment parts before and after."""

    def __init__(self, state: LabState, text: str, before: dict[str, Any],
                 after: dict[str, Any]) -> None:
        super().__init__(text)
        self._state, self._before, self._after = state, before, after

    def redo(self) -> None:
        self._state._apply_parts(self._after)

    def undo(self) -> None:
        self._state._apply_parts(self._before)


def _get_part(exp: Experiment, path: str) -> Any:
    obj: Any = exp
    for name in path.split("."):
        obj = getattr(obj, name)
    return copy.deepcopy(obj)


def _with_parts(exp: Experiment, parts: dict[str, Any]) -> Experiment:
    new = copy.deepcopy(dataclasses.replace(exp, weights=None))
    new.weights = exp.weights
    for path, value in parts.items():
        *head, last = path.split(".")
        obj: Any = new
        for name in head:
            obj = getattr(obj, name)
        setattr(obj, last, copy.deepcopy(value))
    return new


class LabState(QObject):
    """The one source of truth the views observe.

    ``experiment`` (treat as read-only: change it through the methods), ``params``
    (name → float64 array), ``result`` (latest ProbeResult), ``history`` (training
    columns), ``undo_stack`` (architecture and task edits).

    Signals: ``experiment_changed(Experiment)``, ``result_changed(ProbeResult)``,
    ``history_changed(dict)`` (columns of numpy arrays), ``training_state_changed(str)``
    (idle, running, paused, finished, diverged), ``error(str)`` (a refused edit or a
    failure in the background), ``nonfinite(str)`` (where NaN/Inf began; ``""`` when
    the latest result is finite again), ``busy(bool)`` (probe in flight),
    ``params_reset()`` (weights re-drawn from the seed), ``file_changed()``.
    """

    experiment_changed = Signal(object)
    result_changed = Signal(object)
    history_changed = Signal(object)
    training_state_changed = Signal(str)
    error = Signal(str)
    nonfinite = Signal(str)
    busy = Signal(bool)
    params_reset = Signal()
    file_changed = Signal()
    training_progress = Signal(int, int)  # steps done in this run, steps planned

    def __init__(self, experiment: Experiment | None = None, parent: QObject | None = None,
                 probe_fn: Callable[[Experiment, dict], Any] = probe_experiment,
                 train_fn: Callable[..., Iterator[Any]] | None = None) -> None:
        super().__init__(parent)
        self._probe_fn = probe_fn
        self._train_fn = train_fn
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self.probe_runner = ProbeRunner(self)
        self.probe_runner.result.connect(self._on_probe_result)
        self.probe_runner.failed.connect(self._on_failure)
        self.probe_runner.busy.connect(self.busy)
        self.trainer = TrainingRunner(self)
        self.trainer.snapshots.connect(self._on_snapshots)
        self.trainer.failed.connect(self._on_failure)
        self.trainer.finished.connect(self._on_run_finished)
        self.path: Path | None = None
        self.lesson: str | None = None
        self._modified = False
        self.result: Any = None
        self.nonfinite_message = ""
        self.last_error = ""
        self.training_state = IDLE
        self._run_stale = False  # the experiment changed since the run began
        self._probe_current = False  # the last snapshot carried a probe of its weights
        self._awaiting_rest = False  # paused, but the worker has not handed back weights
        self._resume_on_rest = False
        self._run_total = 0
        self._optimizer_state: dict[str, Any] | None = None
        self._rest_steps = 0  # history rows that the weights in ``params`` have seen
        self._run_steps = 0
        self.history: dict[str, list[float]] = {c: [] for c in HISTORY_COLUMNS}
        self.experiment = validate(experiment or Experiment())
        self.backend_label = self._backend_label(self.experiment)
        self.params = self._fresh_params(self.experiment)

    # ------------------------------------------------------------------ properties

    @property
    def modified(self) -> bool:
        """Unsaved changes since the last load or save."""
        return self._modified or not self.undo_stack.isClean()

    def _on_clean_changed(self, _clean: bool) -> None:
        self.file_changed.emit()

    def set_modified(self, value: bool = True) -> None:
        """Mark unsaved changes (or none: the document matches its file)."""
        if not value:
            self.undo_stack.setClean()
        if value != self._modified:
            self._modified = value
            self.file_changed.emit()


    def history_arrays(self) -> dict[str, np.ndarray]:
        """The training history as float64 columns (NaN where a value was not measured)."""
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.history.items()}

    # ------------------------------------------------------------------ whole experiments

    def load(self, exp: Experiment, path: str | Path | None = None,
             lesson: str | None = None) -> bool:
        """Replace the experiment (New, Open, a lesson): fresh weights, empty history."""
        try:
            checked = validate(exp)
            label = self._backend_label(checked)
        except (UserError, BackendError) as exc:
            self._report(str(exc))
            return False
        self.trainer.stop()
        self.experiment = checked
        self.backend_label = label
        self.path = Path(path) if path else None
        self.lesson = lesson
        self.undo_stack.clear()
        self._reset_weights(keep_loaded=True, announce=False)
        self._modified = False
        self.file_changed.emit()
        self.experiment_changed.emit(self.experiment)
        self.request_probe()
        return True

    def open_file(self, path: str | Path) -> bool:
        """Open a ``.gradlab`` archive or experiment ``.json`` as the document, or load
        a weights file onto the current model.  Everything is validated before anything
        changes: a bad file is reported and leaves the current experiment as it was."""
        if file_kind(path) == "weights":
            return self.load_weights_file(path)
        try:
            doc = read_document(path)
        except UserError as exc:
            self._report(str(exc))
            return False
        except OSError as exc:
            self._report(f"{path}: could not open ({exc})")
            return False
        return self.load_document(doc, path=path)

    def load_document(self, doc: Document, path: str | Path | None = None,
                      lesson: str | None = None, modified: bool = False) -> bool:
        """Replace the document: experiment, weights (else drawn from the seed), training
        history and optimizer state (so that Train resumes where the file left off)."""
        exp = doc.experiment
        if doc.params is not None:
            exp = dataclasses.replace(exp)
            exp.weights = doc.params
        if not self.load(exp, path=path, lesson=lesson):
            return False
        if doc.history:
            rows = len(next(iter(doc.history.values())))
            self.history = {c: _column_list(doc.history.get(c), c, rows)
                            for c in HISTORY_COLUMNS}
            self._rest_steps = rows
            self.history_changed.emit(self.history_arrays())
        self._optimizer_state = dict(doc.optimizer_state) if doc.optimizer_state else None
        if modified:
            self.set_modified(True)
        return True

    def load_weights_file(self, path: str | Path) -> bool:
        """Put the weights of a ``.safetensors``/``.npz`` file on the current model.

        They must fit the model exactly (names and shapes); otherwise a message says
        what does not fit and nothing changes.
        """
        try:
            params = read_weights(path, self.experiment.model)
        except UserError as exc:
            self._report(str(exc))
            return False
        self.set_weights(params)
        return True

    def set_weights(self, params: dict[str, np.ndarray]) -> None:
        """Use ``params`` (checked to fit the model) as the weights; training starts
        afresh from them, with an empty history."""
        self.trainer.stop()
        self.experiment = dataclasses.replace(self.experiment)
        self.experiment.weights = params
        self._reset_weights(keep_loaded=True, announce=False)
        self.set_modified(True)
        self.experiment_changed.emit(self.experiment)
        self.request_probe()

    def document(self) -> Document:
        """What a save writes: the experiment, the weights at rest with the history rows
        they have seen, and the optimizer state (a running training keeps going)."""
        rows = self._rest_steps
        history = {c: np.asarray(v[:rows], dtype=np.int64 if c == "step" else np.float64)
                   for c, v in self.history.items()}
        return Document(self.experiment, self.params, history, self._optimizer_state)

    def save(self, path: str | Path | None = None) -> bool:
        """Write the document atomically to ``path`` (default: the current file): a
        ``.gradlab`` archive, or only the settings for a ``.json`` name.  A failure is
        reported, leaves any previous file intact and the document unsaved."""
        target = Path(path) if path else self.path
        if target is None:
            raise ValueError("no file name to save to")
        try:
            write_document(target, self.document())
        except Exception as exc:  # OSError, UserError, or anything a writer raises
            self._report(f"{target}: could not save ({exc or type(exc).__name__})")
            return False
        self.path = target
        self.set_modified(False)
        self.file_changed.emit()
        return True

    def wait_for_rest(self, timeout_ms: int = 10_000) -> bool:
        """Pause training and wait until the worker hands back its weights, so that
        :meth:`document` is up to date; returns whether training was running."""
        from PySide6.QtCore import QEventLoop, QTimer

        was_running = self.training_state == RUNNING
        self.pause()
        if not (self._awaiting_rest and self.trainer.active):
            return was_running
        loop = QEventLoop()

        def check(*_args: Any) -> None:
            if not (self._awaiting_rest and self.trainer.active):
                loop.quit()

        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)
        self.trainer.snapshots.connect(check)
        self.trainer.finished.connect(check)
        try:
            timer.start(timeout_ms)
            loop.exec(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        finally:
            timer.stop()
            self.trainer.snapshots.disconnect(check)
            self.trainer.finished.disconnect(check)
        return was_running

    # ------------------------------------------------------------------ architecture (undoable)

    def set_model(self, model: ModelConfig, text: str = "Edit architecture") -> bool:
        """Replace the model; refused with a message when it cannot work."""
        return self._push(text, {"model": model})

    def insert_layer(self, index: int, layer: LayerConfig) -> bool:
        layers = [*self.experiment.model.layers]
        index = max(0, min(index, len(layers)))
        layers.insert(index, layer)
        return self._push_layers(layers, f"Add {layer_label(layer)} layer")

    def remove_layer(self, index: int) -> bool:
        layers = [*self.experiment.model.layers]
        removed = layers.pop(index)
        return self._push_layers(layers, f"Delete {layer_label(removed)} layer")

    def move_layer(self, src: int, dst: int) -> bool:
        layers = [*self.experiment.model.layers]
        if not (0 <= src < len(layers)) or src == dst:
            return False
        layer = layers.pop(src)
        layers.insert(max(0, min(dst, len(layers))), layer)
        return self._push_layers(layers, f"Move {layer_label(layer)} layer")

    def update_layer(self, index: int, **changes: Any) -> bool:
        layers = [copy.deepcopy(lay) for lay in self.experiment.model.layers]
        old = layers[index]
        if all(getattr(old, k) == v for k, v in changes.items()):
            return True
        layers[index] = dataclasses.replace(old, **changes)
        what = ", ".join(f"{k} = {v}" for k, v in changes.items())
        return self._push_layers(layers, f"Layer {index}: {what}")

    def set_pattern(self, pattern: str) -> bool:
        if pattern == self.experiment.model.pattern:
            return True
        model = dataclasses.replace(self.experiment.model, pattern=pattern)
        return self._push(f"Pattern {pattern.replace('_', ' ')}", {"model": model})

    def set_loss(self, loss: str) -> bool:
        if loss == self.experiment.model.loss:
            return True
        model = dataclasses.replace(self.experiment.model, loss=loss)
        return self._push(f"Loss {loss}", {"model": model})

    def _push_layers(self, layers: list[LayerConfig], text: str) -> bool:
        return self._push(text, {"model": dataclasses.replace(self.experiment.model,
                                                              layers=layers)})

    def _push(self, text: str, after: dict[str, Any]) -> bool:
        try:
            validate(_with_parts(self.experiment, after))
        except UserError as exc:
            self._report(str(exc))
            return False
        before = {path: _get_part(self.experiment, path) for path in after}
        self.undo_stack.push(_EditCommand(self, text, before, after))
        return True

    def _apply_parts(self, parts: dict[str, Any]) -> None:
        try:
            exp = validate(_with_parts(self.experiment, parts))
        except UserError as exc:
            self._report(str(exc))
            return
        self._commit(exp, reinit=True, undoable=True)
        self.file_changed.emit()

    # ------------------------------------------------------------------ settings

    def set_scale(self, family: str, value: float) -> bool:
        """Set the weight scale of ``family`` ∈ input, recurrent, output."""
        scales = dataclasses.replace(self.experiment.init.scales, **{family: float(value)})
        return self.set_init(scales=scales)

    def set_init(self, **changes: Any) -> bool:
        """Change initialisation fields (scheme, scales, forget_bias, seed); re-draws weights."""
        init = dataclasses.replace(self.experiment.init, **changes)
        return self._edit(dataclasses.replace(self.experiment, init=init), reinit=True)

    def set_task(self, name: str | None = None, **changes: Any) -> bool:
        """Change the task; ``seq_len``/``batch_size`` or a task field by keyword.

        A new task name brings the model's input/output sizes and loss with it
        (an undoable edit); other fields keep the weights.
        """
        task = self.experiment.task
        if name is not None and name != task.name:
            return self._change_task_name(name, changes)
        common = {k: changes.pop(k) for k in ("seq_len", "batch_size") if k in changes}
        options = {**task.options, **changes}
        options = {k: v for k, v in options.items() if v is not None}
        if changes and "seq_len" not in common:  # another series may be shorter
            longest = _max_seq_len(task.name, options)
            if longest is not None and task.seq_len > longest:
                common["seq_len"] = longest
        new_task = dataclasses.replace(task, options=options, **common)
        return self._edit(dataclasses.replace(self.experiment, task=new_task), reinit=False)

    def _change_task_name(self, name: str, options: dict[str, Any]) -> bool:
        model = self.experiment.model
        try:
            sizes = task_sizes(name, options)
        except UserError as exc:
            self._report(str(exc))
            return False
        if sizes is not None:
            pattern = model.pattern
            if pattern not in sizes.get("patterns", (pattern,)):
                pattern = sizes.get("default_pattern", pattern)
            model = dataclasses.replace(model, input_size=int(sizes["input_size"]),
                                        output_size=int(sizes["output_size"]),
                                        loss=sizes.get("loss", model.loss), pattern=pattern)
        parts = {"task.name": name, "task.options": dict(options), "model": model}
        longest = sizes.get("max_seq_len") if sizes else None
        if longest is not None and self.experiment.task.seq_len > longest:
            parts["task.seq_len"] = int(longest)  # a short real series: fit the window to it
        return self._push(f"Task {name}", parts)

    def set_training(self, **changes: Any) -> bool:
        """Change training fields (optimizer, lr, tbptt, teacher_forcing, …)."""
        training = dataclasses.replace(self.experiment.training, **changes)
        return self._edit(dataclasses.replace(self.experiment, training=training), reinit=False)

    def set_clip(self, **changes: Any) -> bool:
        """Change the clipping mode or threshold (mode, max_norm, max_value)."""
        clip = dataclasses.replace(self.experiment.training.clip, **changes)
        return self.set_training(clip=clip)

    def set_backend(self, device: str | None = None, dtype: str | None = None) -> bool:
        """Change the array backend (auto, numpy, cupy) or precision (float32, float64)."""
        b = self.experiment.backend
        backend = dataclasses.replace(b, device=device or b.device, dtype=dtype or b.dtype)
        return self._edit(dataclasses.replace(self.experiment, backend=backend), reinit=False)

    def set_text(self, title: str | None = None, description: str | None = None) -> None:
        """Change the experiment's title or description (no re-probe)."""
        exp = self.experiment
        self.experiment = dataclasses.replace(
            exp, title=exp.title if title is None else title,
            description=exp.description if description is None else description)
        self.set_modified(True)
        self.experiment_changed.emit(self.experiment)

    def _edit(self, candidate: Experiment, reinit: bool) -> bool:
        try:
            exp = validate(candidate)
            self._backend_label(exp)
        except (UserError, BackendError) as exc:
            self._report(str(exc))
            self.experiment_changed.emit(self.experiment)  # views snap back
            return False
        if exp == self.experiment:
            return True
        self._commit(exp, reinit=reinit)
        return True

    def _commit(self, exp: Experiment, reinit: bool, undoable: bool = False) -> None:
        self.experiment = exp
        self.backend_label = self._backend_label(exp)
        if not undoable:  # the undo stack's clean state tracks undoable edits
            self.set_modified(True)
        if reinit:
            self._reset_weights()
        elif self.trainer.active:
            self._run_stale = True  # the next Train starts a run with the new settings
            self.pause()
        self.experiment_changed.emit(self.experiment)
        if not self._awaiting_rest:  # else the probe follows when the weights come back
            self.request_probe()

    # ------------------------------------------------------------------ weights and probe

    def _backend_label(self, exp: Experiment) -> str:
        return resolve_backend(exp.backend.device, exp.backend.dtype).label

    def _fresh_params(self, exp: Experiment) -> dict[str, np.ndarray]:
        if exp.weights is not None:
            return {k: np.array(v, dtype=np.float64) for k, v in exp.weights.items()}
        return init_params(exp.model, exp.init)

    def _reset_weights(self, keep_loaded: bool = False, announce: bool = True) -> None:
        self.trainer.stop()
        if not keep_loaded and self.experiment.weights is not None:
            self.experiment.weights = None  # edits re-draw from the seed
        self.params = self._fresh_params(self.experiment)
        self._optimizer_state = None
        self._rest_steps = 0
        self._run_stale = False
        self._resume_on_rest = False
        self._awaiting_rest = False
        self.history = {c: [] for c in HISTORY_COLUMNS}
        self.history_changed.emit(self.history_arrays())
        self._set_training_state(IDLE)
        if announce:
            self.params_reset.emit()

    def request_probe(self) -> None:
        """Re-run forward + BPTT on the current weights in the background (latest wins)."""
        exp, params, fn = self.experiment, self.params, self._probe_fn
        self.probe_runner.submit(lambda: fn(exp, params))

    def _on_probe_result(self, result: Any) -> None:
        self._publish(result)

    def _publish(self, result: Any, context: str = "") -> None:
        self.result = result
        message = getattr(result, "nonfinite", None) or ""
        if message and context:
            message = f"{context}{message}"
        self.result_changed.emit(result)
        if self.training_state == DIVERGED and self.nonfinite_message:
            return  # keep saying where training broke down
        if message or self.nonfinite_message:
            self.nonfinite_message = message
            self.nonfinite.emit(message)

    def _on_failure(self, message: str) -> None:
        self._report(message)

    def _report(self, message: str) -> None:
        self.last_error = message
        self.error.emit(message)

    # ------------------------------------------------------------------ training

    def train(self) -> None:
        """Start or resume training."""
        if self.trainer.running:
            return
        if self._awaiting_rest:
            self._resume_on_rest = True
            self._set_training_state(RUNNING)
            return
        if self.trainer.active and not self._run_stale:
            self.trainer.resume()
        else:
            self._start_run("run")
        self._set_training_state(RUNNING)

    def pause(self) -> None:
        """Pause between steps; the optimizer's state is kept."""
        self._resume_on_rest = False
        if self.trainer.running:
            self.trainer.pause()
            self._awaiting_rest = True
        if self.training_state == RUNNING:
            self._set_training_state(PAUSED)

    def toggle_training(self) -> None:
        """Train when idle or paused, pause when running."""
        if self.training_state == RUNNING:
            self.pause()
        else:
            self.train()

    def step(self) -> None:
        """Run exactly one training step, then pause."""
        if self.trainer.running or self._awaiting_rest:
            return
        if self.trainer.active and not self._run_stale:
            self.trainer.step()
        else:
            self._start_run("step")
        self._awaiting_rest = True
        self._set_training_state(PAUSED)

    def reset(self) -> None:
        """Stop training and re-draw the weights from the seed."""
        self._reset_weights()
        self.experiment_changed.emit(self.experiment)
        self.request_probe()

    def _start_run(self, mode: str) -> None:
        from core.training.loop import train as core_train

        fn = self._train_fn or core_train
        exp, params = self.experiment, self.params
        opt_state = self._optimizer_state
        steps = max(exp.training.steps, 1)
        self._run_steps = 0
        self._run_total = steps
        self._run_stale = False

        def make(cancel: threading.Event) -> Iterator[Any]:
            kwargs: dict[str, Any] = {"steps": steps, "cancel": cancel.is_set}
            if opt_state is not None:
                kwargs["optimizer_state"] = opt_state
            try:
                return fn(exp, params, **kwargs)
            except (UserError, ValueError, KeyError):
                if opt_state is None:
                    raise
                kwargs.pop("optimizer_state")  # settings changed the optimizer: start afresh
                return fn(exp, params, **kwargs)

        self.trainer.start(make, mode=mode)

    def _on_snapshots(self, batch: list[Any]) -> None:
        latest_probe, probe_step = None, 0
        message = ""
        for snap in batch:
            if isinstance(snap, Rest):
                self._on_rest(snap)
                continue
            step = (self.history["step"][-1] + 1) if self.history["step"] else 1
            self.history["step"].append(step)
            for col in HISTORY_COLUMNS[1:]:
                value = getattr(snap, col, None)
                self.history[col].append(np.nan if value is None else float(value))
            self._run_steps += 1
            self._probe_current = getattr(snap, "probe", None) is not None
            if self._probe_current:
                latest_probe, probe_step = snap.probe, step
            if getattr(snap, "nonfinite", None):
                message = snap.nonfinite
        if len(batch) > sum(isinstance(snap, Rest) for snap in batch):
            self.set_modified(True)  # the weights moved
        self.history_changed.emit(self.history_arrays())
        self.training_progress.emit(self._run_steps, getattr(self, "_run_total", 0))
        if latest_probe is not None:
            self._publish(latest_probe, f"probe after training step {probe_step}: ")
        if message:
            self.nonfinite_message = message
            self.nonfinite.emit(message)
            self._set_training_state(DIVERGED)

    def _on_rest(self, rest: Rest) -> None:
        if rest.params is not None:
            self.params = {k: np.asarray(v, dtype=np.float64) for k, v in rest.params.items()}
        self._optimizer_state = rest.optimizer_state
        self._rest_steps = len(self.history["step"])
        self._awaiting_rest = False
        if self._resume_on_rest:
            self._resume_on_rest = False
            self.train()
        elif not self._probe_current:
            self.request_probe()  # the plots show exactly the weights at rest

    def _on_run_finished(self, completed: bool) -> None:
        self._awaiting_rest = False
        if self.training_state == DIVERGED:
            return
        if self.training_state in (RUNNING, PAUSED):
            self._set_training_state(FINISHED if completed else PAUSED)

    def _set_training_state(self, value: str) -> None:
        if value != self.training_state:
            self.training_state = value
            self.training_state_changed.emit(value)

    def shutdown(self) -> None:
        """Stop background work (window closing)."""
        self.trainer.shutdown()
        self.probe_runner.shutdown()


def _column_list(values: Any, name: str, rows: int) -> list[Any]:
    """A history column from a file as Python numbers (NaN where the file has none)."""
    if values is None:
        return [np.nan] * rows
    if name == "step":
        return [int(v) for v in values]
    return [float(v) for v in values]


def layer_label(layer: LayerConfig) -> str:
    """Short human name: ``RNN (tanh)``, ``LSTM + peepholes``, ``bidirectional GRU``."""
    name = {"rnn": f"RNN ({layer.activation})", "lstm": "LSTM", "gru": "GRU"}[layer.cell]
    if layer.peephole:
        name += " + peepholes"
    if layer.bidirectional:
        name = f"bidirectional {name}"
    return name


__all__ = ["LabState", "layer_label", "probe_experiment", "validate"]
