"""The training loop: a generator of :class:`Snapshot`s, one per update.

Each step draws a minibatch (from the task, or from given arrays — the only data
of an experiment without a task), runs forward
and BPTT (truncated when ``training.tbptt`` is set; for ``output_recurrence`` a
per-step random mix of teacher forcing and free running), clips the gradients,
and applies the optimizer at the scheduled learning rate.  Every
``training.eval_every`` steps it measures the loss of a fixed validation batch
(free running), every ``training.trace_every`` steps it probes a fixed probe
batch, and the last snapshot carries both.

Randomness: the batch and teacher-forcing mask of update ``s`` come from
``default_rng([seed, 1, s])``, so a run is reproducible and a run resumed from
saved weights and optimizer state continues exactly as an uninterrupted one.

Exploding gradients stop training, they do not raise: a non-finite loss,
gradient or updated weight ends the run with a snapshot whose ``nonfinite``
says at which step, layer and timestep it began; the weights stay at the last
finite values (a non-finite update is never kept).

The Pascanu et al. (2013) Ω regulariser is not offered: the schema has no field for it.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import resolve_backend
from ..errors import DataError
from ..experiment import Experiment, training_batch_size
from ..init import init_params
from ..jobs import Control
from ..network import Network, check_memory
from ..probe import ProbeResult, probe
from ..tasks import NO_TASK, make_batch, probe_batch
from ..tracing import output_where, param_where
from ..userdata import check_arrays
from .clip import clip_gradients
from .optim import Optimizer, assign, make_optimizer, to_host
from .schedule import lr_at

STREAM_TRAIN, STREAM_VAL, STREAM_EVAL = 1, 2, 4
RATE_WINDOW = 20  # steps over which steps_per_s is measured


@dataclass
class Snapshot:
    """The state of training after one update (``step`` counts updates, from 1).

    ``loss`` is the minibatch loss before the update; ``val_loss`` (free-running
    loss of the fixed validation batch) and ``probe`` (a ProbeResult of the fixed
    probe batch) are measured after it, at their cadence, else None.
    ``params()`` and ``optimizer_state()`` return host copies of the current
    weights (float64) and optimizer state; call them from the thread that
    iterates, or after training has stopped.
    """

    step: int
    loss: float
    val_loss: float | None
    grad_norm_before: float
    grad_norm_after: float
    lr: float
    steps_per_s: float
    elapsed_s: float
    params: Callable[[], dict[str, np.ndarray]] = field(repr=False)
    optimizer_state: Callable[[], dict[str, np.ndarray]] = field(repr=False)
    probe: ProbeResult | None = field(default=None, repr=False)
    nonfinite: str | None = None
    done: bool = False


# ----------------------------------------------------------------------------- data


class _Data:
    """Minibatches from the task generator or from user arrays ``(X (T,N,D), Y)``.

    ``B`` sequences an update: :func:`core.experiment.training_batch_size`.
    """

    def __init__(self, exp: Experiment, data: tuple[Any, Any] | None, seed: int) -> None:
        self.exp = exp
        self.seed = seed
        self.y_axis = 0 if exp.model.pattern == "many_to_one" else 1
        if data is None:
            if exp.task is None:
                raise DataError(f"{NO_TASK}: give input and target arrays to train on "
                                "(train(exp, params, (x, y)))")
            self.X = self.Y = None
            self.B = training_batch_size(exp)
            return
        X, Y = np.asarray(data[0]), np.asarray(data[1])
        if X.ndim != 3 or X.shape[2] != exp.model.input_size:
            raise DataError(f"input: expected shape (T, B, {exp.model.input_size}), "
                            f"got {X.shape}")
        if Y.ndim <= self.y_axis or Y.shape[self.y_axis] != X.shape[1]:
            raise DataError(f"target: batch size does not match the input's {X.shape[1]} "
                            f"(target shape {Y.shape})")
        self.X, self.Y = check_arrays(exp.model, X, Y)
        self.B = training_batch_size(exp, X.shape[1])

    def _take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = self.Y[idx] if self.y_axis == 0 else self.Y[:, idx]
        return self.X[:, idx], y

    @property
    def T(self) -> int:
        """Timesteps of every batch."""
        return self.exp.task.seq_len if self.X is None else self.X.shape[0]

    def train(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.X is None:
            return make_batch(self.exp, rng, "train", self.B, self.exp.task.seq_len)
        N = self.X.shape[1]
        return self._take(rng.choice(N, size=self.B, replace=N < self.B))

    def val(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixed validation batch: ``batch`` sequences of the task's "val" split
        (every given sample when training on arrays)."""
        if self.X is None:
            rng = np.random.default_rng([self.seed, STREAM_VAL])
            return make_batch(self.exp, rng, "val", batch, self.exp.task.seq_len)
        return self._take(np.arange(self.X.shape[1]))

    def probe(self) -> tuple[np.ndarray, np.ndarray]:
        """The fixed probe batch: the one the lab, ``gradlab analyze`` and ``core.trace``
        show for the experiment (:func:`core.tasks.probe_batch`), or every given sample."""
        if self.X is None:
            return probe_batch(self.exp)
        return self._take(np.arange(self.X.shape[1]))


def _teacher_mask(exp: Experiment, rng: np.random.Generator, T: int) -> np.ndarray | None:
    """For ``output_recurrence``: mask[t] True feeds the target y_{t−1} into step t."""
    if exp.model.pattern != "output_recurrence":
        return None
    return rng.random(T) < exp.training.teacher_forcing


def _free_running(exp: Experiment, T: int) -> np.ndarray | None:
    return np.zeros(T, dtype=bool) if exp.model.pattern == "output_recurrence" else None


# ----------------------------------------------------------------------------- checks


def _first_nonfinite(arrays: Mapping[str, Any]) -> str | None:
    """Name of the first array holding a NaN or Inf (one cheap check, then a precise one)."""
    with np.errstate(all="ignore"):
        total = None
        for a in arrays.values():
            s = a.sum()
            total = s if total is None else total + s
        if total is None or math.isfinite(float(total)):
            return None
        for name, a in arrays.items():
            if not bool(np.all(np.isfinite(to_host(a)))):
                return name
    return None  # only the sum overflowed


def _largest(arrays: Mapping[str, Any]) -> str:
    """Name of the array with the largest magnitude."""
    with np.errstate(all="ignore"):
        return max(arrays, key=lambda k: float(np.max(np.abs(to_host(arrays[k])))))


def _kind(value: float) -> str:
    return "NaN" if value != value else "Inf"


def _host_params(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: to_host(v).astype(np.float64, copy=False) for k, v in params.items()}


class _Backup:
    """Copies of the parameters and optimizer state, to undo a non-finite update; taken
    again before every update into the same memory (:meth:`take`)."""

    def __init__(self, params: Mapping[str, Any], opt: Optimizer) -> None:
        self.targets = [*params.values(), *opt.arrays()]
        self.copies = [a.copy() for a in self.targets]
        self.t = opt.t

    def take(self, opt: Optimizer) -> None:
        for dst, src in zip(self.copies, self.targets, strict=True):
            dst[...] = src
        self.t = opt.t

    def restore(self, opt: Optimizer) -> None:
        for dst, src in zip(self.targets, self.copies, strict=True):
            assign(dst, src)
        opt.t = self.t


# ----------------------------------------------------------------------------- the loop


def _network(exp: Experiment, params: Mapping[str, Any]) -> Network:
    backend = resolve_backend(exp.backend.device, exp.backend.dtype)
    return Network(exp.model, _host_params(params), backend)


def _loss(net: Network, x: Any, y: Any, mask: np.ndarray | None) -> float:
    """Forward pass only: the loss of ``(x, y)``."""
    return float(net.run(x, y, teacher_mask=mask, need_backward=False).loss)


def train(exp: Experiment, params: Mapping[str, Any] | None = None,
          data: tuple[Any, Any] | None = None, *, steps: int | None = None,
          seed: int | None = None, probe_every: int | None = None,
          cancel: Callable[[], bool] | None = None,
          optimizer_state: Mapping[str, Any] | None = None,
          control: Control | None = None) -> Iterator[Snapshot]:
    """Train ``exp``'s model and yield a :class:`Snapshot` after every update.

    params: starting weights (PyTorch names); default ``exp.weights``, else a
        fresh :func:`core.init.init_params`.
    data: ``(X (T,N,D), Y)`` arrays to sample minibatches from along the batch axis
        (validation then uses all N); default: the task, which an experiment without
        a task does not have.  Minibatches hold
        :func:`~core.experiment.training_batch_size` sequences: ``training.batch_size``,
        else ``task.batch_size``, else all N up to ``ARRAY_BATCH``.
    steps: updates to run in this call; default ``training.steps`` less the
        updates already in ``optimizer_state``.
    seed: seed of the data stream; default ``init.seed``.
    probe_every: probe cadence in steps (default ``training.trace_every``; 0: never).
    cancel: polled before every step; when it returns True the generator ends.
    optimizer_state: from ``Snapshot.optimizer_state()`` to resume a run.
    control: a :class:`core.jobs.Control` checked before every step and within each
        step's forward pass and BPTT; once cancelled, the step in flight stops
        (raising :class:`core.jobs.Cancelled`) before it updates anything, so the
        weights stay those of the last snapshot.

    Raises :class:`~core.errors.UserError` before the first step for unusable
    data, weights or optimizer state, or sizes that would not fit in memory;
    after that, nothing: a non-finite value ends the run with a message.
    """
    tcfg = exp.training
    seed = exp.init.seed if seed is None else int(seed)
    source = _Data(exp, data, seed)
    val_batch = max(4 * source.B, 64) if source.X is None else source.X.shape[1]
    check_memory(exp.model, source.T, max(source.B, val_batch), exp.backend.dtype)
    if params is None:
        params = exp.weights if exp.weights is not None else init_params(exp.model, exp.init)
    net = _network(exp, params)
    opt = make_optimizer(tcfg, net.params)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    start = opt.t
    total = max(tcfg.steps - start, 0) if steps is None else max(int(steps), 0)
    probe_every = tcfg.trace_every if probe_every is None else probe_every
    eval_every = tcfg.eval_every
    xv, yv = source.val(val_batch) if eval_every > 0 else (None, None)
    xp_, yp_ = source.probe() if probe_every > 0 else (None, None)

    def fetch() -> dict[str, np.ndarray]:
        return _host_params(net.params)

    def run_probe() -> ProbeResult:
        with np.errstate(all="ignore"):
            return probe(exp, fetch(), xp_, yp_, backend=net.backend)

    def val_loss() -> float:
        with np.errstate(all="ignore"):
            return _loss(net, xv, yv, _free_running(exp, xv.shape[0]))

    backup: _Backup | None = None
    t0 = time.perf_counter()
    stamps: collections.deque[float] = collections.deque([t0], maxlen=RATE_WINDOW + 1)
    for i in range(total):
        if cancel is not None and cancel():
            return
        if control is not None:
            control.check()
        s = start + i  # 0-based index of this update
        n = s + 1
        lr = lr_at(tcfg, s)
        rng = np.random.default_rng([seed, STREAM_TRAIN, s])
        x, y = source.train(rng)
        mask = _teacher_mask(exp, rng, x.shape[0])
        problem = None
        loss = before = after = float("nan")
        try:
            with np.errstate(all="ignore"):
                net.control = control  # only here: nothing is updated yet
                try:
                    tr = net.run(x, y, tbptt=tcfg.tbptt, teacher_mask=mask,
                                 need_backward=True)
                finally:
                    net.control = None
                loss = float(tr.loss)
                before, after = clip_gradients(tr.grads, tcfg.clip)
        except (FloatingPointError, OverflowError) as exc:
            tr, problem = None, f"step {n}: arithmetic failed ({exc})"
        if problem is None and not (math.isfinite(loss) and math.isfinite(before)):
            where = getattr(tr, "nonfinite", None)
            if where:
                problem = f"step {n}: {where}"
            elif not math.isfinite(loss):
                problem = (f"step {n}: the loss became {_kind(loss)} although every state, "
                           f"output and dL/dh was finite ({output_where(tr)})")
            else:
                bad = _first_nonfinite(tr.grads)
                problem = (f"step {n}: the gradient of {param_where(tr, bad)} became "
                           f"{_kind(before)}" if bad else
                           f"step {n}: the global gradient norm became {_kind(before)} "
                           "although every gradient was finite (the sum of their squares "
                           f"overflowed; the largest is that of "
                           f"{param_where(tr, _largest(tr.grads))})")
        if problem is None:
            if backup is None:
                backup = _Backup(net.params, opt)
            else:
                backup.take(opt)
            with np.errstate(all="ignore"):
                opt.step(tr.grads, lr)
                bad = _first_nonfinite(net.params)
            if bad is not None:
                backup.restore(opt)
                problem = (f"step {n}: the update made {param_where(tr, bad)} non-finite "
                           "(NaN or Inf) although every gradient was finite: the optimizer's "
                           "step overflowed")
        now = time.perf_counter()
        stamps.append(now)
        rate = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-12)
        last = problem is not None or i == total - 1
        if problem is not None:
            problem += ("; training stopped and the last finite weights are kept "
                        "(try gradient clipping or a smaller learning rate)")
        vl = (val_loss() if eval_every > 0 and (n % eval_every == 0 or last) else None)
        pr = run_probe() if probe_every > 0 and (n % probe_every == 0 or last) else None
        yield Snapshot(step=n, loss=loss, val_loss=vl, grad_norm_before=before,
                       grad_norm_after=after, lr=lr, steps_per_s=rate,
                       elapsed_s=time.perf_counter() - t0, params=fetch,
                       optimizer_state=opt.state_dict, probe=pr, nonfinite=problem,
                       done=last)
        if problem is not None:
            return


def evaluation_batch(exp: Experiment, *, seq_len: int | None = None,
                     batch_size: int | None = None, seed: int | None = None,
                     split: str = "val") -> tuple[np.ndarray, np.ndarray]:
    """The batch :func:`evaluate` scores, ``(x (T,B,D), y)`` on the host: a batch of
    the task (DataError for an experiment without one: score given arrays with
    ``evaluate(..., data=(x, y))``)."""
    if exp.task is None:
        raise DataError(f"{NO_TASK}, so there is no batch to draw: give input and target "
                        "arrays (evaluate(exp, params, data=(x, y)))")
    seed = exp.init.seed if seed is None else int(seed)
    rng = np.random.default_rng([seed, STREAM_EVAL])
    return make_batch(exp, rng, split, batch_size or exp.task.batch_size,
                      seq_len or exp.task.seq_len)


def evaluate(exp: Experiment, params: Mapping[str, Any], *, seq_len: int | None = None,
             batch_size: int | None = None, seed: int | None = None,
             split: str = "val", data: tuple[Any, Any] | None = None) -> float:
    """Loss of ``params`` on a fresh batch of the task at any sequence length, or on
    given arrays ``data = (x, y)`` (checked; the other arguments then do not apply).

    The same weights serve every length; ``output_recurrence`` runs free.  The
    batch is :func:`evaluation_batch` with the same arguments (``split`` "val"
    reads the held-out part of a real series; generated tasks draw fresh data).
    """
    if data is not None:
        x, y = check_arrays(exp.model, *data)
    else:
        x, y = evaluation_batch(exp, seq_len=seq_len, batch_size=batch_size, seed=seed,
                                split=split)
    net = _network(exp, params)
    with np.errstate(all="ignore"):
        return _loss(net, x, y, _free_running(exp, x.shape[0]))
