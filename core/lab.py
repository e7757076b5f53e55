"""The Lab: one session of the lab, without Qt — what the window, the CLI and a notebook drive.

A :class:`Lab` holds the experiment, its weights, the training history and the
optimizer state (together a :class:`Version`, never changed in place), the latest
probe result, the document's path and whether it has unsaved changes.  Every edit
makes a new version and is undoable; undo gives back the exact weights (the same
arrays) and the history that were there before it.  Events (psygnal signals) tell
observers what changed; they are emitted in the thread that called the method.

The weights policy — what an edit does to trained weights — is
:mod:`core.weights_policy`'s.

Long work: :meth:`Lab.probe` and :meth:`Lab.train` run synchronously and take a
:class:`core.jobs.Control` to cancel them.  A host with threads (the window) uses
:meth:`Lab.probe_job` / :meth:`Lab.publish` and :meth:`Lab.new_session` /
:meth:`Lab.record` / :meth:`Lab.settle` to run the same work elsewhere.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from .archive import MAX_PINNED, Pinned, pin_curves
from .backend import BackendError, resolve_backend
from .document import Document, file_kind, read_document, read_weights, write_document
from .errors import DataError, UserError
from .experiment import (
    Experiment,
    LayerConfig,
    ModelConfig,
    TaskConfig,
    experiment_from_dict,
    experiment_to_dict,
)
from .init import init_params
from .jobs import Control
from .probe import ProbeResult, probe_seconds
from .training import loop as training_loop  # imported now, not on the first Train
from .training.history import History
from .training.session import DIVERGED, IDLE, Rest, TrainingSession
from .weights_policy import FAMILIES, Change, Version, carry

MERGE_S = 1.0
# The undo history keeps at most this many steps, and forgets its oldest ones while the
# arrays it holds beyond the current version's (weights, optimizer state, data) pass
# this many bytes: a large model's every edit keeps a copy of its weights.
UNDO_STEPS = 200
UNDO_BYTES = 1 << 30
PIN_LABELS = "ABCDEFGH"
MAX_BAND_SEEDS = 50  # the window's seed ensemble (gradlab compare takes more)
# Fields that say nothing about what a run computes: left out of Lab.differences.
_NOT_COMPARED = ("format", "version", "title", "description")


def validate(exp: Experiment) -> Experiment:
    """A validated copy of ``exp`` (ConfigError names the first bad field)."""
    checked = experiment_from_dict(experiment_to_dict(exp))
    checked.weights = exp.weights
    return checked


def backend_label(exp: Experiment) -> str:
    """The backend an experiment runs on ("NumPy · float32 · compiled steps");
    BackendError when it cannot run here (no GPU for "cupy")."""
    return resolve_backend(exp.backend.device, exp.backend.dtype).label


def layer_label(layer: LayerConfig) -> str:
    """Short human name: ``RNN (tanh)``, ``LSTM + peepholes``, ``bidirectional GRU``."""
    name = {"rnn": f"RNN ({layer.activation})", "lstm": "LSTM", "gru": "GRU",
            "cifg": "CIFG LSTM", "mingru": "minGRU", "minlstm": "minLSTM"}[layer.cell]
    if layer.peephole:
        name += " + peepholes"
    if layer.bidirectional:
        name = f"bidirectional {name}"
    return name


def probe_batch(exp: Experiment, data: tuple[Any, Any] | None) -> tuple[Any, Any]:
    """The batch a probe shows: the user's arrays (all of them), else the task's batch
    drawn with ``init.seed``; DataError when there is neither.  The memory check runs
    before anything is drawn."""
    from .network import check_memory

    if data is not None:
        return data
    if exp.task is None:
        raise DataError("this experiment has no task section: load input and target "
                        "arrays (.npy), or choose a task")
    check_memory(exp.model, exp.task.seq_len, exp.task.batch_size, exp.backend.dtype)
    from .tasks import probe_batch as task_probe_batch

    return task_probe_batch(exp)


def run_probe(exp: Experiment, params: Mapping[str, Any], data: tuple[Any, Any] | None,
              control: Control | None = None, **options: Any) -> ProbeResult:
    """Forward + BPTT and the analyses on the probe batch (see :func:`probe_batch`);
    ``options``: ``jacobian``, ``connectivity`` (both True by default) for
    :func:`core.probe.probe`."""
    from .estimate import check, estimate
    from .probe import probe

    if data is None and exp.task is not None:  # every analysis asked for, before the draw
        check(estimate(exp, exp.task.seq_len, exp.task.batch_size,
                       jacobian=options.get("jacobian", True),
                       connectivity=options.get("connectivity", True)))
    x, y = probe_batch(exp, data)
    with np.errstate(all="ignore"):
        return probe(exp, dict(params), x, y, control=control, **options)


def _version_arrays(v: Version) -> list[np.ndarray]:
    """The arrays a version holds: its weights, its optimizer state's (the flat
    ``Optimizer.state_dict`` form) and its data."""
    held = [*v.params.values(), *(v.optimizer_state or {}).values(), *(v.data or ())]
    return [a for a in held if isinstance(a, np.ndarray)]


class ProbeJob:
    """A probe of one version, to run in any thread: ``job.run(control)``; with
    ``seeds`` above 1 the result also carries the seed band of its settings."""

    def __init__(self, version: Version, fn: Callable[..., Any], seeds: int = 1,
                 **options: Any) -> None:
        self.version = version
        self.seeds = seeds
        self._fn = fn
        self._options = options

    def run(self, control: Control | None = None) -> Any:
        v = self.version
        if self.seeds <= 1:
            return self._fn(v.experiment, v.params, v.data, control, **self._options)
        from .compare import seed_band
        from .jobs import Part

        main = Part(control, 0.0, 0.5) if control is not None else None
        result = self._fn(v.experiment, v.params, v.data, main, **self._options)
        if v.origin != "seed" or len(v.history):
            result.seed_note = (f"no band over {self.seeds} seeds: these weights are "
                                f"{'trained' if len(v.history) else 'loaded'}, one run; "
                                "gradlab compare --seeds --train-steps trains each seed")
        else:
            rest = Part(control, 0.5, 1.0) if control is not None else None
            result.seed_band = seed_band(v.experiment, self.seeds, v.data, rest)
        return result


class Lab:
    """One lab session: the model the window, the command line and notebooks share.

    ``Lab(experiment)``, :meth:`from_preset`, :meth:`open`.  Read: ``experiment``,
    ``params``, ``history``, ``result``, ``modified``, ``path``.  Edit with the
    ``set_*`` and layer methods (each returns True, or False after emitting
    ``error`` with the reason, changing nothing); ``undo``/``redo``; ``probe``,
    ``train``, ``save``.
    """

    experiment_changed = Signal(object)  # Experiment
    params_changed = Signal()  # new weights (an edit, undo, a training rest)
    history_changed = Signal(object)  # History
    result_changed = Signal(object)  # ProbeResult
    training_state_changed = Signal(str)  # core.training.session states
    training_progress = Signal(int, int)  # steps done in this session, planned
    nonfinite = Signal(str)  # where NaN/Inf began; "" when finite again
    error = Signal(str)  # a refused edit or a failed job
    notice = Signal(str)  # something the user should know (weights redrawn, …)
    file_changed = Signal()  # path or modified mark
    undo_changed = Signal()
    version_changed = Signal()  # anything a probe shows may have changed
    pinned_changed = Signal()  # a run pinned or unpinned (see Lab.pin)
    seeds_changed = Signal(int)  # the seed ensemble of the probe (see Lab.set_seeds)

    def __init__(self, experiment: Experiment | None = None, *,
                 probe_fn: Callable[..., Any] = run_probe) -> None:
        exp = validate(experiment or Experiment(task=TaskConfig()))
        from .network import check_param_memory

        check_param_memory(exp.model)  # MemoryLimitError before anything is drawn
        self.backend_label = backend_label(exp)
        self._probe_fn = probe_fn
        self._v = Version(exp, _fresh_params(exp), origin="seed" if exp.weights is None
                          else "loaded")
        self._saved: Version | None = self._v
        self._undo: list[Change] = []
        self._redo: list[Change] = []
        self.path: Path | None = None
        self.lesson: str | None = None
        self.result: Any = None
        self.nonfinite_message = ""
        self.last_error = ""
        self.session: TrainingSession | None = None
        self._live: History | None = None  # history of the running session
        self._session_start: Version | None = None
        self._session_entry: Change | None = None  # the undo entry of this session's run
        # Called before an edit while training runs elsewhere: must bring it to rest.
        self.before_edit: Callable[[], None] | None = None
        # Edits of one knob closer together than this (s) are one undo step (a drag).
        self.merge_s = MERGE_S
        self.undo_steps = UNDO_STEPS  # see _trim_undo
        self.undo_bytes = UNDO_BYTES
        self._held: dict[int, tuple[Version, dict[int, int]]] = {}  # see _undo_bytes
        self._pinned: list[Pinned] = []
        self._saved_pins: tuple[Pinned, ...] = ()  # the pins the file holds
        self._seeds = 1
        self._connectivity = True  # whether probes compute the connectivity map

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_preset(cls, name: str) -> Lab:
        """A lab on lesson ``name`` (see ``gradlab presets``)."""
        from .lessons import load_lesson

        lab = cls(load_lesson(name))
        lab.lesson = name
        return lab

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Lab:
        """A lab on a ``.gradlab`` document or an experiment ``.json``."""
        doc = read_document(path)
        lab = cls(doc.experiment)
        lab._install(doc, Path(path))
        return lab

    # ------------------------------------------------------------------ reading

    @property
    def version(self) -> Version:
        return self._v

    @property
    def experiment(self) -> Experiment:
        return self._v.experiment

    @property
    def params(self) -> Mapping[str, np.ndarray]:
        return self._v.params

    @property
    def history(self) -> History:
        """Training rows so far (``len()`` = steps recorded), the running ones included."""
        return self._live if self._live is not None else self._v.history

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self._v.data

    @property
    def optimizer_state(self) -> Mapping[str, Any] | None:
        return self._v.optimizer_state

    @property
    def modified(self) -> bool:
        """Unsaved changes: the current version is not the one in the file, or a
        training run has taken steps since its last rest."""
        running = self._live is not None and len(self._live) > len(self._v.history)
        return self._v is not self._saved or running or tuple(self._pinned) != self._saved_pins

    @property
    def trained(self) -> bool:
        """Weights that the seed cannot give back: trained or loaded."""
        return self._v.origin != "seed" or len(self._v.history) > 0

    @property
    def training_state(self) -> str:
        return self.session.state if self.session is not None else IDLE

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_text(self) -> str:
        return self._undo[-1].text if self._undo else ""

    @property
    def redo_text(self) -> str:
        return self._redo[-1].text if self._redo else ""

    def document(self) -> Document:
        """What a save writes: the experiment, the weights at rest with the history rows
        they have seen, the optimizer state, the user's arrays if it runs on them, and
        the pinned runs."""
        v = self._v
        return Document(v.experiment, dict(v.params), v.history.arrays() if len(v.history)
                        else {}, dict(v.optimizer_state) if v.optimizer_state else None,
                        v.data, list(self._pinned))

    # ------------------------------------------------------------------ versions

    def _set(self, v: Version, *, exp_changed: bool = True) -> None:
        old = self._v
        self._v = v
        if exp_changed or old.experiment is not v.experiment:
            self.experiment_changed.emit(v.experiment)
        if old.params is not v.params:
            self.params_changed.emit()
        if old.history is not v.history:
            self.history_changed.emit(v.history)
        self.file_changed.emit()
        self.version_changed.emit()

    def _commit(self, text: str, after: Version, training: bool = False,
                key: str | None = None) -> None:
        now = time.monotonic()
        before = self._v
        top = self._undo[-1] if self._undo else None
        if (key is not None and top is not None and top.key == key and top.after is self._v
                and now - top.time < self.merge_s and not self._redo):
            self._undo.pop()  # the same knob again, a moment later: one undo step
            before = top.before
        self._undo.append(Change(text, before, after, training, key, now))
        self._redo.clear()
        self._trim_undo()
        self._set(after)
        self.undo_changed.emit()

    def _trim_undo(self) -> None:
        """Forget the oldest undo steps past :data:`UNDO_STEPS`, and while the arrays
        the history holds beyond the current version's pass :data:`UNDO_BYTES`; the
        newest step always stays."""
        while len(self._undo) > 1 and (len(self._undo) > self.undo_steps
                                       or self._undo_bytes() > self.undo_bytes):
            del self._undo[0]

    def _undo_bytes(self) -> int:
        """Bytes of the arrays the undo and redo steps hold that the current version
        does not (each array once, however many versions share it)."""
        held: dict[int, int] = {}
        seen: dict[int, tuple[Version, dict[int, int]]] = {}
        for change in (*self._undo, *self._redo):
            for v in (change.before, change.after):
                entry = self._held.get(id(v))
                if entry is None or entry[0] is not v:  # each version's arrays, once
                    entry = (v, {id(a): a.nbytes for a in _version_arrays(v)})
                seen[id(v)] = entry
                held.update(entry[1])
        self._held = seen  # the versions still in the history
        for a in _version_arrays(self._v):
            held.pop(id(a), None)
        return sum(held.values())

    def undo(self) -> bool:
        """Go back one edit (or one training run): the exact weights and history before."""
        if not self._undo:
            return False
        self._rest_first()
        change = self._undo.pop()
        self._redo.append(change)
        self._set(change.before)
        self.undo_changed.emit()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._rest_first()
        change = self._redo.pop()
        self._undo.append(change)
        self._set(change.after)
        self.undo_changed.emit()
        return True

    def _rest_first(self) -> None:
        """Before the version changes: a running session is brought to rest by the host
        (``before_edit``) or else stopped; a session at rest is let go, so that the
        next run starts from the new version (its optimizer state included)."""
        if self.session is not None and self.session.active and self.before_edit is not None:
            self.before_edit()
        if self.session is None:
            return
        if self.session.active:
            self.stop_training()
            return
        self.session = None
        self._live = None
        self.training_state_changed.emit(IDLE)

    def _report(self, message: str) -> bool:
        self.last_error = message
        self.error.emit(message)
        return False

    # ------------------------------------------------------------------ edits

    def _edit(self, text: str, exp: Experiment, policy: str = "keep",
              key: str | None = None) -> bool:
        """Validate ``exp`` and make it current with weights by ``policy``: "keep",
        "init" (an init edit) or "model" (an architecture edit)."""
        try:
            checked = validate(exp)
            label = backend_label(checked)
        except (UserError, BackendError) as exc:
            self._report(str(exc))
            self.experiment_changed.emit(self.experiment)  # views snap back
            return False
        if checked == self.experiment and checked.weights is self.experiment.weights:
            return True
        if checked.model != self.experiment.model:
            from .network import check_param_memory

            try:  # before any weights of the new model are drawn
                check_param_memory(checked.model)
            except UserError as exc:
                self._report(str(exc))
                self.experiment_changed.emit(self.experiment)
                return False
        self._rest_first()
        after = self._carry(self._v, checked, policy)
        self.backend_label = label
        self._commit(text, after, key=key)
        return True

    def _carry(self, v: Version, exp: Experiment, policy: str) -> Version:
        """The version after ``v`` with experiment ``exp``: :func:`weights_policy.carry`,
        its sentence (if any) as a notice."""
        after, text = carry(v, exp, policy)
        if text:
            self.notice.emit(text)
        return after

    def set_scale(self, family: str, value: float) -> bool:
        """Weight scale of ``family`` ∈ input, recurrent, output."""
        if family not in FAMILIES:
            return self._report(f"init.scales: unknown family {family!r} "
                                f"(expected one of {', '.join(FAMILIES)})")
        scales = dataclasses.replace(self.experiment.init.scales, **{family: float(value)})
        return self._init_edit(f"{family.capitalize()} scale {value:g}",
                               key=f"init.scales.{family}", scales=scales)

    def set_path(self, path: str, value: Any) -> bool:
        """Set the field at dotted ``path`` (``init.forget_bias``, ``training.clip.mode``,
        …) to ``value`` as one edit (:meth:`set_paths` for one field)."""
        from .paths import format_value

        return self.set_paths([(path, value)], text=f"{path} {format_value(value)}")

    def pair_job(self, pair: Any) -> Any:
        """A job running A of ``pair`` (:class:`core.pairs.Pair`) in any thread; hand its
        outcome to :meth:`apply_pair`.  ConfigError if A or B is not a valid setting."""
        from .pairs import PairJob, check_pair

        check_pair(self.experiment, pair)
        return PairJob(self._v, pair)

    def apply_pair(self, job: Any, outcome: Any) -> bool:
        """Pin A's run (:class:`core.pairs.PairOutcome`) and set the path to B (one
        undoable edit; the pin itself is not undone, as with :meth:`pin`).  False when
        the settings changed since the job started."""
        from .paths import format_value

        if job.version is not self._v:
            return False
        pair = job.pair
        h = outcome.history
        exp = copy.deepcopy(outcome.experiment)
        exp.weights = None
        label = self._add_pin(None, exp, outcome.result, h, None).label
        ok = self.set_path(pair.path, pair.b)
        if ok:
            self.notice.emit(f"Pinned {label}: {pair.path} = {format_value(pair.a)}"
                             + (f", trained {len(h)} steps" if len(h) else "")
                             + f"; the live run has {format_value(pair.b)}")
        return ok

    def compare_pair(self, pair: Any, control: Control | None = None) -> bool:
        """:meth:`pair_job`, run here, then :meth:`apply_pair`."""
        try:
            job = self.pair_job(pair)
        except UserError as exc:
            return self._report(str(exc))
        return self.apply_pair(job, job.run(control))

    def set_init(self, **changes: Any) -> bool:
        """Initialisation fields: scheme, scales, forget_bias, seed."""
        text = "Initialisation: " + ", ".join(f"{k} {_short(v)}" for k, v in changes.items())
        return self._init_edit(text, key=_key("init", changes), **changes)

    def _init_edit(self, text: str, key: str | None = None, **changes: Any) -> bool:
        try:
            init = dataclasses.replace(self.experiment.init, **changes)
        except TypeError as exc:
            return self._report(f"init: {exc}")
        return self._edit(text, _replace(self.experiment, init=init), "init", key)

    def set_training(self, **changes: Any) -> bool:
        """Training fields (optimizer, lr, tbptt, teacher_forcing, steps, …); weights kept."""
        try:
            training = dataclasses.replace(self.experiment.training, **changes)
        except TypeError as exc:
            return self._report(f"training: {exc}")
        text = "Training: " + ", ".join(f"{k} {_short(v)}" for k, v in changes.items())
        return self._edit(text, _replace(self.experiment, training=training),
                          key=_key("training", changes))

    def set_clip(self, **changes: Any) -> bool:
        """Clipping mode or threshold (mode, max_norm, max_value)."""
        try:
            clip = dataclasses.replace(self.experiment.training.clip, **changes)
        except TypeError as exc:
            return self._report(f"training.clip: {exc}")
        return self.set_training(clip=clip)

    def set_backend(self, device: str | None = None, dtype: str | None = None) -> bool:
        """Array backend (auto, numpy, cupy) or precision (float32, float64)."""
        b = self.experiment.backend
        backend = dataclasses.replace(b, device=device or b.device, dtype=dtype or b.dtype)
        return self._edit(f"Backend {backend.device}, {backend.dtype}",
                          _replace(self.experiment, backend=backend))

    def set_text(self, title: str | None = None, description: str | None = None) -> bool:
        """The experiment's title or description."""
        exp = self.experiment
        return self._edit("Edit description", _replace(
            exp, title=exp.title if title is None else title,
            description=exp.description if description is None else description))

    def set_task(self, name: str | None = None, **changes: Any) -> bool:
        """The task: a new ``name`` (bringing the model's sizes, loss and pattern with
        it), or ``seq_len``, ``batch_size`` or a task field by keyword."""
        task = self.experiment.task
        if task is None and name is None:
            return self._report("task: this experiment has no task; choose one by name")
        if name is not None and (task is None or name != task.name):
            return self._change_task_name(name, changes)
        assert task is not None
        common = {k: changes.pop(k) for k in ("seq_len", "batch_size") if k in changes}
        options = {k: v for k, v in {**task.options, **changes}.items() if v is not None}
        if changes and "seq_len" not in common:  # another series may be shorter
            longest = _max_seq_len(task.name, options)
            if longest is not None and 1 <= longest < task.seq_len:
                common["seq_len"] = longest  # (a series too short for any window is
                # refused by the task's own check, which says how many values it needs)
        new_task = dataclasses.replace(task, options=options, **common)
        edited = {**common, **changes}
        text = "Task: " + ", ".join(f"{k} {_short(v)}" for k, v in edited.items())
        return self._edit(text, _replace(self.experiment, task=new_task),
                          key=_key("task", edited))

    def _change_task_name(self, name: str, options: dict[str, Any]) -> bool:
        from .tasks import task_shapes

        exp, model = self.experiment, self.experiment.model
        try:
            sizes = task_shapes(name, options)
        except UserError as exc:
            return self._report(str(exc))
        pattern = model.pattern
        if pattern not in sizes.get("patterns", (pattern,)):
            pattern = sizes.get("default_pattern", pattern)
        model = dataclasses.replace(model, input_size=int(sizes["input_size"]),
                                    output_size=int(sizes["output_size"]),
                                    loss=sizes.get("loss", model.loss), pattern=pattern)
        old = exp.task or TaskConfig()
        seq_len = old.seq_len
        longest = sizes.get("max_seq_len")
        if longest is not None and 1 <= longest < seq_len:
            seq_len = int(longest)  # a short real series: fit the window to it
        task = TaskConfig(name=name, seq_len=seq_len, batch_size=old.batch_size,
                          options={k: v for k, v in options.items() if v is not None})
        return self._edit(f"Task {name}", _replace(exp, task=task, model=model), "model")

    def set_paths(self, changes: Sequence[tuple[str, Any]], text: str | None = None) -> bool:
        """Set fields by dotted path (:func:`core.paths.with_paths`: ``[("init.scales.
        recurrent", 1.5), ("model.layers.0.cell", "lstm")]``) as one undoable edit —
        a sweep's grid point loaded into the lab.  A changed cell fits its layer (as a
        notice); the weights follow the weights policy of an architecture edit when the
        model changes, of an init edit when the initialisation does."""
        from .paths import format_value, with_paths

        try:
            exp, notes = with_paths(self.experiment, changes)
        except UserError as exc:
            return self._report(str(exc))
        exp.weights = self.experiment.weights
        policy = ("model" if exp.model != self.experiment.model
                  else "init" if exp.init != self.experiment.init else "keep")
        for note in notes:
            self.notice.emit(note)
        told = ", ".join(f"{p} {format_value(v)}" for p, v in changes)
        return self._edit(text or f"Set {told}", exp, policy)

    def set_model(self, model: ModelConfig, text: str = "Edit architecture") -> bool:
        return self._edit(text, _replace(self.experiment, model=model), "model")

    def insert_layer(self, index: int, layer: LayerConfig) -> bool:
        layers = [*self.experiment.model.layers]
        layers.insert(max(0, min(index, len(layers))), layer)
        return self._layers(layers, f"Add {layer_label(layer)} layer")

    def remove_layer(self, index: int) -> bool:
        layers = [*self.experiment.model.layers]
        if not 0 <= index < len(layers):
            return self._report(f"model.layers: no layer {index}")
        removed = layers.pop(index)
        return self._layers(layers, f"Delete {layer_label(removed)} layer")

    def move_layer(self, src: int, dst: int) -> bool:
        layers = [*self.experiment.model.layers]
        if not (0 <= src < len(layers)) or src == dst:
            return False
        layer = layers.pop(src)
        layers.insert(max(0, min(dst, len(layers))), layer)
        return self._layers(layers, f"Move {layer_label(layer)} layer")

    def update_layer(self, index: int, **fields: Any) -> bool:
        layers = [*self.experiment.model.layers]
        if not 0 <= index < len(layers):
            return self._report(f"model.layers: no layer {index}")
        try:
            layers[index] = dataclasses.replace(layers[index], **fields)
        except TypeError as exc:
            return self._report(f"model.layers[{index}]: {exc}")
        text = f"Layer {index + 1}: " + ", ".join(f"{k} {_short(v)}" for k, v in fields.items())
        return self._layers(layers, text)

    def set_pattern(self, pattern: str) -> bool:
        if pattern == self.experiment.model.pattern:
            return True
        model = dataclasses.replace(self.experiment.model, pattern=pattern)
        return self.set_model(model, f"Pattern {pattern.replace('_', ' ')}")

    def set_loss(self, loss: str) -> bool:
        if loss == self.experiment.model.loss:
            return True
        return self.set_model(dataclasses.replace(self.experiment.model, loss=loss),
                              f"Loss {loss}")

    def tasks_for(self, pattern: str | None = None, loss: str | None = None) -> list[str]:
        """The tasks, in registry order, that a model with ``pattern`` and ``loss`` (either
        left out: any) can train on; csv, which needs a file, is left out."""
        from .tasks import TASK_NAMES, task_shapes

        names = []
        for name in TASK_NAMES:
            if name == "csv":
                continue
            shapes = task_shapes(name)
            if pattern in (None, *shapes["patterns"]) and loss in (None, shapes["loss"]):
                names.append(name)
        return names

    def set_design(self, pattern: str | None = None, loss: str | None = None) -> bool:
        """A new design pattern and/or loss, as one undoable step.  When the task cannot
        have them, the first task that can (:meth:`tasks_for`) comes with them, bringing
        its sizes — and, where no task has both the asked value and the current other
        one, its own pattern or loss; :attr:`notice` says which task and what else
        fits.  Refused (False, ``error``) when no task fits or given arrays do not."""
        exp, model = self.experiment, self.experiment.model
        want_p, want_l = pattern or model.pattern, loss or model.loss
        if (want_p, want_l) == (model.pattern, model.loss):
            return True
        words = " with ".join(w.replace("_", " ") for w in (pattern, loss) if w)
        same_task = _replace(exp, model=dataclasses.replace(model, pattern=want_p, loss=want_l))
        if exp.task is None or self._fits(same_task):
            if not self._data_fit(same_task.model):
                return False
            return self.set_model(same_task.model, words[:1].upper() + words[1:])
        names = self.tasks_for(want_p, want_l)
        if not names and pattern is None:
            names = self.tasks_for(loss=want_l)
        if not names and loss is None:
            names = self.tasks_for(pattern=want_p)
        candidates = [c for c in (self._with_task(n, want_p, want_l) for n in names)
                      if self._fits(c)]
        if not candidates:
            return self._report(f"model: no task can train a model with {words}")
        new = candidates[0]
        if not self._data_fit(new.model):
            return False
        old, name = exp.task.name, new.task.name
        also = [c.task.name for c in candidates[1:]]
        changed = [f"{k} {getattr(new.model, k).replace('_', ' ')}" for k in ("pattern", "loss")
                   if getattr(new.model, k) != getattr(model, k)]
        if not self._edit(f"{words[:1].upper() + words[1:]}: task {name}", new, "model"):
            return False
        self.notice.emit(f"The {old} task cannot have {words}: the task is now {name} ("
                         + ", ".join(changed) + "); Ctrl+Z goes back"
                         + (f". Also fits: {', '.join(also)}" if also else ""))
        return True

    def set_output_size(self, n: int) -> bool:
        """Outputs of the dense head (classes, for cross-entropy: at least 2).  A task
        fixes its own output size and refuses another; given arrays must fit."""
        model = self.experiment.model
        if n == model.output_size:
            return True
        new = dataclasses.replace(model, output_size=int(n))
        if not self._data_fit(new):
            return False
        return self.set_model(new, f"Output size {n}")

    def _fits(self, exp: Experiment) -> bool:
        try:
            validate(exp)
        except UserError:
            return False
        return True

    def _data_fit(self, model: ModelConfig) -> bool:
        """Whether the given arrays (if any) fit ``model``; reported when they do not."""
        if self._v.data is None:
            return True
        from .userdata import check_arrays

        try:
            check_arrays(model, *self._v.data)
        except UserError as exc:
            return self._report(f"your arrays do not fit: {exc}")
        return True

    def _with_task(self, name: str, pattern: str, loss: str) -> Experiment:
        """The experiment with task ``name``, its sizes and loss, and ``pattern`` where
        the task has it (else the task's own)."""
        from .tasks import task_shapes

        exp, shapes = self.experiment, task_shapes(name)
        model = dataclasses.replace(
            exp.model, input_size=int(shapes["input_size"]), output_size=int(shapes["output_size"]),
            loss=shapes["loss"],
            pattern=pattern if pattern in shapes["patterns"] else shapes["default_pattern"])
        old = exp.task or TaskConfig()
        seq_len = old.seq_len
        if shapes["max_seq_len"] is not None:
            seq_len = min(seq_len, int(shapes["max_seq_len"]))
        task = TaskConfig(name=name, seq_len=seq_len, batch_size=old.batch_size)
        return _replace(exp, task=task, model=model)

    def _layers(self, layers: list[LayerConfig], text: str) -> bool:
        return self.set_model(dataclasses.replace(self.experiment.model, layers=layers), text)

    def set_weights(self, params: Mapping[str, Any], text: str = "Load weights") -> bool:
        """Use ``params`` (they must fit the model exactly) as the weights; the history
        starts afresh.  Undoable."""
        from .network import Network

        try:
            Network(self.experiment.model, params, resolve_backend("numpy", "float64"))
        except UserError as exc:
            return self._report(f"cannot use these weights: {exc}")
        self._rest_first()
        host = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        self._commit(text, self._v.but(params=host, history=History(), optimizer_state=None,
                                       origin="loaded"))
        return True

    def load_weights(self, path: str | os.PathLike[str]) -> bool:
        """Put the weights of a ``.safetensors``/``.npz`` file on the current model."""
        try:
            params = read_weights(path, self.experiment.model)
        except UserError as exc:
            return self._report(str(exc))
        return self.set_weights(params, f"Load weights {Path(path).name}")

    def set_data(self, x: Any, y: Any, text: str = "Use your data") -> bool:
        """Probe and train on the arrays ``x`` (T, B, D) and ``y`` instead of the task;
        ``set_data(None, None)`` goes back to the task.  Undoable."""
        if x is None and y is None:
            if self._v.data is None:
                return True
            self._rest_first()
            self._commit("Use the task's data", self._v.but(data=None))
            return True
        from .userdata import check_arrays

        try:
            x, y = check_arrays(self.experiment.model, x, y)
        except UserError as exc:
            return self._report(str(exc))
        self._rest_first()
        self._commit(text, self._v.but(data=(x, y)))
        return True

    def load_data(self, input_path: str | os.PathLike[str],
                  target_path: str | os.PathLike[str]) -> bool:
        """:meth:`set_data` from ``.npy`` files (validated as ``gradlab analyze`` does)."""
        from .userdata import load_input, load_target

        try:
            x = load_input(str(input_path), self.experiment.model)
            y = load_target(str(target_path), self.experiment.model, T=x.shape[0], B=x.shape[1])
        except UserError as exc:
            return self._report(str(exc))
        return self.set_data(x, y, f"Use data {Path(input_path).name}")

    def reset(self) -> bool:
        """Draw the weights afresh from the seed and start the history over.  Undoable."""
        self._rest_first()
        exp = self.experiment
        if exp.weights is not None:
            exp = _replace(exp)
            exp.weights = None
        self._commit("Reset weights", Version(exp, init_params(exp.model, exp.init),
                                              data=self._v.data))
        return True

    # ------------------------------------------------------------------ documents

    def replace(self, exp: Experiment, *, lesson: str | None = None,
                path: str | os.PathLike[str] | None = None) -> bool:
        """Start over on ``exp`` (New, a lesson): fresh weights, empty history, no undo."""
        return self.load_document(Document(exp), path=path, lesson=lesson)

    def load_document(self, doc: Document, *, path: str | os.PathLike[str] | None = None,
                      lesson: str | None = None, modified: bool = False) -> bool:
        """Start over on a document (Open, recovery): its experiment, weights, history
        and optimizer state.  Everything is checked before anything changes."""
        from .network import check_param_memory

        try:
            exp = validate(doc.experiment)
            label = backend_label(exp)
            check_param_memory(exp.model)
        except (UserError, BackendError) as exc:
            return self._report(str(exc))
        self.stop_training()
        self.backend_label = label
        self.lesson = lesson  # before the events: a view of the new experiment sees it
        self._install(dataclasses.replace(doc, experiment=exp), Path(path) if path else None)
        if modified:
            self._saved = None
        self.file_changed.emit()
        return True

    def _install(self, doc: Document, path: Path | None) -> None:
        exp = doc.experiment
        if doc.params is not None:
            params = {k: np.array(v, dtype=np.float64) for k, v in doc.params.items()}
            origin = "loaded"
        else:
            params, origin = _fresh_params(exp), ("seed" if exp.weights is None else "loaded")
        history = History.from_arrays(doc.history) if doc.history else History()
        v = Version(exp, params, history, dict(doc.optimizer_state)
                    if doc.optimizer_state else None, origin, doc.data)
        self._undo.clear()
        self._redo.clear()
        self.path = path
        self.result = None
        self._saved = v
        had_pins = bool(self._pinned) or bool(doc.pinned)  # pins belong to their document
        self._pinned = list(doc.pinned)[-MAX_PINNED:]
        self._saved_pins = tuple(self._pinned)
        self._set(v)
        self.undo_changed.emit()
        if had_pins:
            self.pinned_changed.emit()

    def open_file(self, path: str | os.PathLike[str]) -> bool:
        """Open a document (.gradlab, .json) in place of this one, or load a weights
        file onto the current model; a bad file is reported and changes nothing."""
        if file_kind(path) == "weights":
            return self.load_weights(path)
        try:
            doc = read_document(path)
        except UserError as exc:
            return self._report(str(exc))
        except OSError as exc:
            return self._report(f"{path}: could not open ({exc.strerror or exc})")
        return self.load_document(doc, path=path)

    def save(self, path: str | os.PathLike[str] | None = None) -> bool:
        """Write the document atomically to ``path`` (default: its own file).

        A ``.gradlab`` archive keeps everything, the user's arrays included.  A
        ``.json`` keeps the settings only: it is written, but the document stays
        modified when it has trained or loaded weights, a history or the user's arrays,
        which the file leaves out.  A failure is reported and
        leaves any earlier file intact.
        """
        target = Path(path) if path else self.path
        if target is None:
            return self._report("no file name to save to")
        try:
            write_document(target, self.document())
        except UserError as exc:
            return self._report(f"{target}: could not save ({exc})")
        except OSError as exc:
            return self._report(f"{target}: could not save ({exc.strerror or exc})")
        left_out = [what for what, held in (
            ("the trained or loaded weights and their history", self.trained),
            ("your data arrays", self._v.data is not None),
            ("the pinned runs", bool(self._pinned))) if held]
        if file_kind(target) != "experiment" or not left_out:
            self.path = target
            self._saved = self._v
            self._saved_pins = tuple(self._pinned)
        else:
            self.notice.emit(f"Saved the settings to {target.name}; {' and '.join(left_out)} "
                             "are not in a .json file — save a .gradlab to keep them")
        self.file_changed.emit()
        return True

    def mark_modified(self) -> None:
        """Treat the document as unsaved (recovered work)."""
        self._saved = None
        self.file_changed.emit()

    # ------------------------------------------------------------------ pinned runs

    @property
    def pinned(self) -> list[Pinned]:
        """The pinned runs, oldest first (a copy)."""
        return list(self._pinned)

    def pin(self, label: str | None = None) -> Pinned | None:
        """Keep the current run — its version, its probe result (the gradient curves)
        and its training curves — to compare later runs with.

        Pinning is not an edit: it changes nothing a probe computes, so it is not on
        the undo stack (undo never unpins); it does change what a save writes, so the
        document counts as modified.  At most :data:`MAX_PINNED` runs: a further pin
        drops the oldest and says so through :attr:`notice`.  ``label`` defaults to
        the first free letter (A, B, …).  Refused (None, ``error``) before a probe of
        the current settings has finished.
        """
        result = self.result
        shown = getattr(result, "experiment", None)
        if (result is None or (shown is not None and shown != self.experiment)
                or getattr(result, "pending", ())):
            self._report("nothing to pin yet: wait for the probe of the current settings "
                         "(Training → Run probe, F5)")
            return None
        return self._add_pin(label, copy.deepcopy(self.experiment), result, self.history,
                             self._v)

    def _add_pin(self, label: str | None, exp: Experiment, result: Any, history: History,
                 version: Version | None) -> Pinned:
        """Pin a run: its experiment, probe result and training history (dropping the
        oldest pin past :data:`MAX_PINNED`); ``label`` None takes the first free letter."""
        kept = ({c: history.column(c) for c in ("step", "loss", "val_loss")}
                if len(history) else {})
        if len(self._pinned) >= MAX_PINNED:
            dropped = self._pinned.pop(0)
            self.notice.emit(f"Unpinned {dropped.label}: at most {MAX_PINNED} pinned runs")
        used = {p.label for p in self._pinned}
        if label is None:
            label = next((c for c in PIN_LABELS if c not in used), str(len(used) + 1))
        pin = Pinned(str(label), exp, pin_curves(result), kept, version, result)
        self._pinned.append(pin)
        self.pinned_changed.emit()
        self.file_changed.emit()
        return pin

    def unpin(self, i: int | Pinned) -> bool:
        """Drop pinned run ``i`` (its index in :attr:`pinned`, or the run itself)."""
        index = self._pinned.index(i) if isinstance(i, Pinned) and i in self._pinned else i
        if not isinstance(index, int) or not 0 <= index < len(self._pinned):
            return self._report(f"no pinned run {i}")
        self._pinned.pop(index)
        self.pinned_changed.emit()
        self.file_changed.emit()
        return True

    def unpin_all(self) -> None:
        if self._pinned:
            self._pinned.clear()
            self.pinned_changed.emit()
            self.file_changed.emit()

    def differences(self, pinned: Pinned) -> list[str]:
        """What differs between ``pinned`` and the current run, one item per field as
        ``"init.forget_bias 0 → 2"`` (dotted paths as in ``gradlab compare``; a field
        only one side has shows "–"), then ``"steps trained 0 → 150"`` when the
        training differs.  Title and description are left out; empty when the same."""
        from .paths import format_value

        old, new = _leaves(experiment_to_dict(pinned.experiment)), \
            _leaves(experiment_to_dict(self.experiment))
        out = []
        for path in [*old, *(k for k in new if k not in old)]:
            a, b = old.get(path, _MISSING), new.get(path, _MISSING)
            if (a == b and type(a) is type(b)) or _same_number(a, b):
                continue
            shown = ["–" if v is _MISSING else format_value(v) for v in (a, b)]
            out.append(f"{path} {shown[0]} → {shown[1]}")
        steps = len(self.history)
        if pinned.steps != steps:
            out.append(f"steps trained {pinned.steps} → {steps}")
        return out

    # ------------------------------------------------------------------ probing

    @property
    def seeds(self) -> int:
        """Seeds of the probe's ensemble: above 1, a probe also draws the same settings
        at seeds ``init.seed + 1 …`` and its result carries their band."""
        return self._seeds

    def set_seeds(self, n: int) -> bool:
        """Probe over ``n`` seeds (1 to :data:`MAX_BAND_SEEDS`).  A way of looking, not an
        edit: not on the undo stack and not saved; the next probe shows it."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or \
                not 1 <= int(n) <= MAX_BAND_SEEDS:
            return self._report(f"seeds: expected a whole number from 1 to {MAX_BAND_SEEDS}, "
                                f"got {str(n)[:40]}")
        if int(n) != self._seeds:
            self._seeds = int(n)
            self.seeds_changed.emit(self._seeds)
        return True

    def set_analyses(self, *, connectivity: bool) -> bool:
        """Whether probes compute the connectivity map (True by default).  A way of
        looking, like :meth:`set_seeds`: a window leaves the map out while its view is
        hidden, since it costs more than the rest of a lesson's probe.  True when the
        result shown lacks what is now asked for, so the host should probe again."""
        self._connectivity = bool(connectivity)
        r = self.result
        return (self._connectivity and r is not None
                and getattr(r, "connectivity", False) is None
                and "connectivity" not in getattr(r, "pending", ()))

    def left_out(self, job: ProbeJob) -> bool:
        """Whether ``job`` left out the connectivity map that is now asked for (its view
        came into sight while the job ran), so the host should probe again."""
        return (self._connectivity and job.version is self._v
                and job._options.get("connectivity") is False)

    def probe_job(self, **options: Any) -> ProbeJob:
        """A probe of the current version, for a host to run in its own thread;
        ``options``: ``jacobian=False`` or ``connectivity=False`` leave those out
        (the connectivity map follows :meth:`set_analyses` unless given)."""
        options.setdefault("connectivity", self._connectivity)
        return ProbeJob(self._v, self._probe_fn, self._seeds, **options)

    def publish(self, job: ProbeJob, result: Any, context: str = "") -> bool:
        """Show ``result`` of ``job`` if it is still about the current version (and
        seed ensemble).  An early result (its ``pending`` analyses still being
        computed; core.jobs.Control.early) is shown like any other, and the complete
        one that follows replaces it."""
        if job.version is not self._v or job.seeds != self._seeds:
            return False
        self._show(result, context)
        return True

    def end_early_result(self) -> None:
        """The probe of the early result shown was cancelled or failed: show that
        result as final, without the analyses it waited for (the views then say there
        are none, not that they are on their way)."""
        r = self.result
        if getattr(r, "pending", ()):
            self._show(dataclasses.replace(r, pending=()))

    def probe_seconds(self) -> float:
        """A rough, pessimistic estimate of a probe's time (0 without data)."""
        exp, data = self.experiment, self._v.data
        if data is not None:
            T, B = np.shape(data[0])[:2]
        elif exp.task is not None:
            T, B = exp.task.seq_len, exp.task.batch_size
        else:
            return 0.0
        one = probe_seconds(exp, int(T), int(B), connectivity=self._connectivity)
        if self._seeds > 1 and not self.trained:  # the band's probes leave out the analyses
            one += (self._seeds - 1) * probe_seconds(exp, int(T), int(B), jacobian=False,
                                                     connectivity=False)
        return one

    def probe(self, control: Control | None = None, **options: Any) -> Any:
        """Forward + BPTT and the analyses of the current weights, synchronously; the
        result is also :attr:`result` (the one the window shows).  ``options`` as for
        :meth:`probe_job`."""
        job = self.probe_job(**options)
        result = job.run(control)
        self.publish(job, result)
        return result

    def _show(self, result: Any, context: str = "") -> None:
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

    # ------------------------------------------------------------------ training

    def new_session(self, steps: int | None = None,
                    train_fn: Callable[..., Any] | None = None,
                    cancel: Callable[[], bool] | None = None) -> TrainingSession:
        """A training session from the current version, for :meth:`record` and
        :meth:`settle` to follow (a host drives it in its own thread).  ``cancel()``
        is polled before every step: True ends the run there."""
        fn = train_fn or training_loop.train
        v = self._v
        exp, data = v.experiment, v.data
        total = max(exp.training.steps if steps is None else int(steps), 1)

        def make(params: Any, opt_state: Any, control: Control, n: int) -> Any:
            kwargs: dict[str, Any] = {"steps": n, "control": control}
            if cancel is not None:
                kwargs["cancel"] = cancel
            if data is not None:
                kwargs["data"] = data
            state = opt_state
            if state is not None:
                kwargs["optimizer_state"] = state
            try:
                return fn(exp, params, **kwargs)
            except (UserError, ValueError, KeyError):
                if state is None:
                    raise
                kwargs.pop("optimizer_state")  # the settings changed the optimizer
                return fn(exp, params, **kwargs)

        session = TrainingSession(make, total)
        session.seed(dict(v.params), dict(v.optimizer_state) if v.optimizer_state else None)
        self.session = session
        self._live, self._session_start = None, v
        self._session_entry: Change | None = None
        return session

    def record(self, snapshots: Iterable[Any]) -> None:
        """Add the rows of ``snapshots`` (in order) to the running history; show the
        newest probe among them."""
        if self.session is None:
            return
        if self._live is None:
            self._live, self._session_start = self._v.history.copy(), self._v
        latest, step, message = None, 0, ""
        unchanged = len(self._live) == len(self._v.history)
        for snap in snapshots:
            step = len(self._live) + 1
            self._live.record(_Row(snap, step))
            if getattr(snap, "probe", None) is not None:
                latest = snap.probe
            if getattr(snap, "nonfinite", None):
                message = snap.nonfinite
        self.history_changed.emit(self._live)
        if unchanged and len(self._live) > len(self._v.history):
            self.file_changed.emit()  # the weights are moving: unsaved work
        self.training_progress.emit(self.session.steps_done, self.session.total)
        if message:
            self.nonfinite_message = message
        if latest is not None:
            self._show(latest, f"probe after training step {step}: ")
        if message:
            self.nonfinite.emit(message)

    def settle(self, rest: Rest | None) -> None:
        """The session came to rest: its weights and history become the current
        version, as one undoable "Train N steps" (a resumed run extends its entry)."""
        session = self.session
        if rest is None or session is None:
            return
        if rest.error:
            self._report(rest.error)
        live, start = self._live, self._session_start
        if rest.params is not None and live is not None and start is not None \
                and len(live) > len(start.history):
            after = start.but(params={k: np.array(v, dtype=np.float64)  # own copies
                                      for k, v in rest.params.items()},
                              history=live.copy(), optimizer_state=rest.optimizer_state,
                              origin="trained")
            top = self._undo[-1] if self._undo else None
            if top is not None and top is self._session_entry and top.after is self._v:
                self._undo.pop()  # a resumed run extends its own entry
                before = top.before
            else:
                before = self._v
            steps = len(after.history) - len(before.history)
            self._session_entry = Change(f"Train {steps} step{'s' if steps != 1 else ''}",
                                         before, after, training=True)
            self._undo.append(self._session_entry)
            self._redo.clear()
            self._trim_undo()
            self._set(after, exp_changed=False)
            self.undo_changed.emit()
        self._live = None
        self.training_state_changed.emit(session.state)

    def stop_training(self) -> None:
        """Stop a session: what it did since its last rest is dropped."""
        if self.session is None:
            return
        self.session.stop()
        self.session = None
        self._live = None
        self.history_changed.emit(self._v.history)
        self.training_state_changed.emit(IDLE)

    def train(self, steps: int | None = None, cancel: Callable[[], bool] | None = None,
              on_snapshot: Callable[[Any], None] | None = None) -> Rest | None:
        """Train synchronously for ``steps`` (default ``training.steps``); returns where
        it came to rest.  ``cancel()`` is polled between steps; ``on_snapshot(snap)``
        sees every step.  Undoable as one edit."""
        self._rest_first()
        session = self.new_session(steps, cancel=cancel)
        session.start()
        self.training_state_changed.emit(session.state)

        def each(snap: Any) -> None:
            self.record([snap])
            if on_snapshot is not None:
                on_snapshot(snap)

        rest = session.drive(each)
        self.settle(rest)
        return rest


_MISSING = object()


def _leaves(doc: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted path: value}`` of every leaf of an experiment dict (list items by index)."""
    if isinstance(doc, Mapping):
        items: Iterable[tuple[Any, Any]] = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return {prefix: doc}
    out: dict[str, Any] = {}
    for k, v in items:
        if not prefix and k in _NOT_COMPARED:
            continue
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _same_number(a: Any, b: Any) -> bool:
    """1 and 1.0 are the same setting (bools are not numbers here)."""
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool)
            and not isinstance(b, bool) and a == b)


class _Row:
    """A snapshot's history row, with the step counted by the history itself."""

    def __init__(self, snap: Any, step: int) -> None:
        self._snap = snap
        self.step = step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._snap, name, None)


def _fresh_params(exp: Experiment) -> dict[str, np.ndarray]:
    if exp.weights is not None:
        return {k: np.array(v, dtype=np.float64) for k, v in exp.weights.items()}
    return init_params(exp.model, exp.init)


def _replace(exp: Experiment, **changes: Any) -> Experiment:
    new = copy.deepcopy(dataclasses.replace(exp, weights=None, **changes))
    new.weights = exp.weights
    return new


def _key(section: str, changes: Mapping[str, Any]) -> str | None:
    """The merge key of an edit of one field (``training.lr``); None for several."""
    return f"{section}.{next(iter(changes))}" if len(changes) == 1 else None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if dataclasses.is_dataclass(value):
        return type(value).__name__.removesuffix("Config").lower()
    return str(value)


def _max_seq_len(name: str, options: dict[str, Any]) -> int | None:
    from .tasks import task_shapes

    try:
        return task_shapes(name, options).get("max_seq_len")
    except UserError:
        return None


__all__ = ["MAX_BAND_SEEDS", "MAX_PINNED", "Change", "Lab", "Pinned", "ProbeJob", "Version",
           "backend_label", "layer_label",
           "probe_batch", "run_probe", "validate"]
