"""One estimate of the memory and time a run will take, checked before anything large.

:func:`estimate` adds up what a probe or a training run holds at its peak:

- ``parameters`` — the session's float64 copy; while the weights are drawn, three
  float64 copies (the draw, the session's, a version's) before anything else exists;
- ``data`` — the batch (input and target, float64);
- ``trace`` — one forward + BPTT pass with full traces in the run's dtype
  (:func:`core.network.estimate_trace_bytes`: states, gates, dL/dh, gradient
  buffers, parameters and their gradients);
- ``eigenvalues`` — float64 copies of float32 parameters and LAPACK's work on the
  largest recurrent block;
- ``jacobian`` — the H covectors carried back through a chunk of steps of the
  largest layer, with the chunk's (H, H) products copied to float64 for their norms
  (:data:`core.analysis.JACOBIAN_CHUNK_BYTES` in all);
- ``connectivity`` — the (T_out, T) float64 map and the pass over one chunk of
  copies of a sample;
- ``training`` — the optimizer's slots, the copy that undoes a non-finite update,
  the latest training pass (alive while the validation pass and the probe run), the
  states the validation batch's forward pass leaves in the network's workspace for the
  next one, and, when training probes, the previous probe's arrays, still shown while
  the next probe runs;
- ``writing`` — the buffer through which NumPy writes a compressed ``.npz`` member.

The analyses run one after another, so the peak is the largest of them on top of
what the pass keeps.  :func:`check` raises :class:`~core.errors.MemoryLimitError`
with one sentence — "needs about X GiB; the limit is Y GiB, 80 % of the Z GiB free
now" — naming the largest part.  A test holds the estimate within 25 % of peaks
measured with tracemalloc, for every analysis option.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cells import CELLS
from .errors import MemoryLimitError
from .experiment import Experiment, ModelConfig
from .layout import INPUT_ONLY
from .memory import available_memory, format_bytes, param_count
from .network import estimate_trace_bytes

# The share of the memory free now that one run may plan to use.
FRACTION = 0.8
# Connectivity runs its backward passes over this many copies of a sample at once
# (core.analysis.connectivity's ``chunk``).
CONNECTIVITY_CHUNK = 64
# Rates of the time model, each measured on a 2-core machine (OpenBLAS, SkylakeX) and
# taken at about half what one core did alone, for a loaded machine (2026-12-02):
# - a pass's batched products in float64 (measured 4e10 to 1e11 FLOP/s in float32 on two
#   cores; float32 counts twice as fast, as SIMD lanes hold twice as many);
FLOPS_PER_S = 2e10
# - the Jacobian's Python loop of (H, H) products (measured near 1e10);
SMALL_FLOPS_PER_S = 5e9
# - the fixed cost of one cell step (measured near 4 µs) and bytes through memory (each
#   array of a pass written and read a few times);
STEP_S = 10e-6
BYTES_PER_S = 4e9
# - LAPACK's eigenvalues of an n × n block: about 10 n³ FLOPs (Hessenberg reduction and
#   QR sweeps), measured at 1e10 to 4e10 FLOP/s from n = 256 to 2048 (1.6 to 4.1 s a
#   4096 block alone, a minute under load), plus a cost in n² that dominates small n;
EIG_FLOPS_PER_S = 2e10
EIG_N2_S = 2e-7
# - zlib behind a compressed .npz: 35 MB/s measured on trace arrays;
WRITE_BYTES_PER_S = 30e6
# - what every command pays whatever its size: reading its files, drawing the weights,
#   writing and renaming its outputs.
RUN_S = 0.1
_SLOTS = {"sgd": 1, "rmsprop": 1, "adam": 2}  # optimizer state per parameter (sgd: momentum)

_WHAT = {"parameters": "the parameters", "data": "the batch",
         "trace": "the forward pass and BPTT", "eigenvalues": "the eigenvalues",
         "jacobian": "the Jacobian products", "connectivity": "the connectivity map",
         "training": "the optimizer state and validation",
         "writing": "writing the files"}


@dataclass
class Estimate:
    """Bytes a run needs at its peak, by part, and a rough time in seconds."""

    parts: dict[str, int] = field(default_factory=dict)
    peak: int = 0
    seconds: float = 0.0
    T: int = 0
    B: int = 0

    @property
    def largest(self) -> str:
        """The part that needs the most memory."""
        return max(self.parts, key=lambda k: self.parts[k]) if self.parts else "trace"


def _largest_hidden(model: ModelConfig) -> int:
    return max(layer.hidden_size for layer in model.layers)


def _jacobian_bytes(model: ModelConfig, T: int, item: int) -> int:
    """H covectors carried back through a chunk of steps, the chunk's (H, H) products
    in float64 with their Gram matrices (core.analysis.covector_step_bytes; a scaled
    copy too only for products beyond 1e±140, which float32 never makes), and the
    sample's gates and states (T, H) that the covectors share; the norms."""
    from .analysis import JACOBIAN_CHUNK_BYTES, covector_step_bytes

    if model.pattern == "output_recurrence":
        return 0
    worst = 0
    for layer in model.layers:
        H, G = layer.hidden_size, CELLS[layer.cell].BLOCKS
        shared = (G + 4) * T * H * item
        if layer.cell in INPUT_ONLY:  # diagonal Jacobians: products of the gates
            worst = max(worst, 2 * shared)
            continue
        step = covector_step_bytes(layer.cell, H, item)
        chunk = max(1, min(T, JACOBIAN_CHUNK_BYTES // step))
        worst = max(worst, chunk * step + shared + 3 * H * H * item)
    return worst + 8 * T


def _connectivity_bytes(model: ModelConfig, T: int, dtype: str) -> int:
    T_out = T if model.pattern != "many_to_one" else 1
    seeds = T_out * model.output_size
    n = min(CONNECTIVITY_CHUNK, seeds)
    bidirectional = any(layer.bidirectional for layer in model.layers)
    return (8 * T_out * T  # the map
            + 120 * seeds  # the (t, o) pairs, Python objects
            + 8 * T * n * (model.input_size + model.output_size) * 2  # inputs, seeds, dL/dx
            # one chunk's pass; a bidirectional stack also keeps its concatenated inputs
            + _trace_bytes(model, T, n, dtype) * (5 if bidirectional else 4) // 4)


def _trace_bytes(model: ModelConfig, T: int, B: int, dtype: str) -> int:
    """:func:`core.network.estimate_trace_bytes`: one pass with full traces."""
    return estimate_trace_bytes(model, T, B, dtype)


def _stored_bytes(model: ModelConfig, T: int, B: int, item: int, backward: bool) -> int:
    """The per-step arrays a pass keeps: every direction's states and gates
    (:data:`core.network._STORED`), with ``backward`` also its dL/dh (and dL/dc) — what a
    forward-only pass leaves in the workspace, or a probe's arrays."""
    from .network import _STORED

    units = 0
    for layer in model.layers:
        cell = CELLS[layer.cell]
        per = _STORED[layer.cell] + ((2 if cell.HAS_CELL_STATE else 1) if backward else 0)
        units += (2 if layer.bidirectional else 1) * per * layer.hidden_size
    return units * T * B * item


def _eigen_bytes(model: ModelConfig, item: int) -> int:
    """Float64 copies of the parameters (none when they are float64 already) and
    LAPACK's copy and work on the largest block."""
    H = _largest_hidden(model)
    return (8 * param_count(model) if item != 8 else 0) + 3 * 8 * H * H


def _step_calls(model: ModelConfig, T: int) -> float:
    """Cell steps one pass takes (forward and backward, every layer and direction)."""
    return 2.0 * T * sum(2 if layer.bidirectional else 1 for layer in model.layers)


def _pass_seconds(model: ModelConfig, T: int, B: int, dtype: str) -> float:
    """A pass: its FLOPs, its steps' fixed cost and its traffic through memory."""
    rate = FLOPS_PER_S * (1 if dtype == "float64" else 2)
    return (_flops(model, T, B)[0] / rate + _step_calls(model, T) * STEP_S
            + 3 * _trace_bytes(model, T, B, dtype) / BYTES_PER_S)


def _flops(model: ModelConfig, T: int, B: int) -> tuple[float, float]:
    """(pass, Jacobian products) FLOPs; the eigenvalues' time is :func:`eigen_seconds`,
    the connectivity map's as passes over chunks of copies (:func:`_probe_seconds`)."""
    passes = jac = 0.0
    d_in = model.input_size
    for layer in model.layers:
        H, G = layer.hidden_size, CELLS[layer.cell].BLOCKS
        dirs = 2 if layer.bidirectional else 1
        passes += dirs * 6.0 * T * B * G * H * (d_in + H)
        jac += dirs * T * 4.0 * float(H) ** 3 * G
        d_in = H * dirs
    return passes, jac


def eigen_seconds(model: ModelConfig) -> float:
    """The eigenvalue problems :func:`core.analysis.spectra` solves: every gate block of
    every recurrent matrix, or the output loop's blocks of an ``output_recurrence``."""
    seconds = 0.0
    for k, layer in enumerate(model.layers):
        if model.pattern == "output_recurrence":
            if k > 0 or len(model.layers) > 1:
                continue
        elif layer.cell in INPUT_ONLY:
            continue
        n = float(layer.hidden_size)
        blocks = CELLS[layer.cell].BLOCKS * (2 if layer.bidirectional else 1)
        seconds += blocks * (10.0 * n ** 3 / EIG_FLOPS_PER_S + EIG_N2_S * n * n)
    return seconds


def _probe_seconds(m: ModelConfig, T: int, B: int, dtype: str, spectra: bool, jacobian: bool,
                   connectivity: bool) -> float:
    jac = _flops(m, T, B)[1]
    seconds = _pass_seconds(m, T, B, dtype) + (eigen_seconds(m) if spectra else 0.0)
    if jacobian and m.pattern != "output_recurrence":  # a Python loop of small products
        seconds += jac / SMALL_FLOPS_PER_S + 1.5 * _step_calls(m, T) * STEP_S
    if connectivity:
        T_out = T if m.pattern != "many_to_one" else 1
        seeds = T_out * m.output_size
        n = min(CONNECTIVITY_CHUNK, seeds)
        seconds += -(-seeds // n) * _pass_seconds(m, T, n, dtype)
    return seconds


def estimate(exp: Experiment, T: int, B: int, *, jacobian: bool = False,
             connectivity: bool = False, spectra: bool = True, training_steps: int = 0,
             train_batch: int | None = None, val_batch: int = 0,
             writes: bool = False) -> Estimate:
    """The memory peak and time of a probe on ``B`` sequences of ``T`` steps (with the
    analyses asked for), or with ``training_steps`` > 0 of a training run: batches of
    ``train_batch`` sequences, a validation batch of ``val_batch`` and a probe of ``B``."""
    m, dtype = exp.model, exp.backend.dtype
    item = 8 if dtype == "float64" else 4
    P = param_count(m)
    parts = {"parameters": 8 * P,
             "data": 8 * T * B * (m.input_size + m.output_size) * 2,
             "trace": _trace_bytes(m, T, B, dtype)}
    after = {"eigenvalues": _eigen_bytes(m, item) if spectra else 0,
             "jacobian": _jacobian_bytes(m, T, item) if jacobian else 0,
             "connectivity": _connectivity_bytes(m, T, dtype) if connectivity else 0}
    seconds = _probe_seconds(m, T, B, dtype, spectra, jacobian, connectivity)
    if training_steps > 0:
        Bt = train_batch or B
        slots = _SLOTS.get(exp.training.optimizer, 2)
        state = (2 * slots + 1) * item * P  # the slots, and the copy that undoes an update
        train_trace = _trace_bytes(m, T, Bt, dtype)  # alive through validation and probe
        val = _stored_bytes(m, T, val_batch, item, backward=False) if val_batch else 0
        shown = _stored_bytes(m, T, B, item, backward=True) if jacobian or connectivity else 0
        parts["training"] = state + train_trace + max(val, 0) + shown
        parts["data"] += 8 * T * max(Bt, val_batch) * (m.input_size + m.output_size) * 2
        # a probe every trace_every steps and after the last, which is the final probe
        every = max(exp.training.trace_every, 1)
        probes = -(-training_steps // every) if jacobian or connectivity else 1
        seconds += (training_steps * _pass_seconds(m, T, Bt, dtype)
                    + (training_steps // max(exp.training.eval_every, 1) + 1)
                    * _pass_seconds(m, T, val_batch, dtype) / 2 + (probes - 1) * seconds)
    if writes:  # NumPy writes an .npz member through a buffer of up to 16 MiB, zlib beside it
        H = _largest_hidden(m)
        parts["writing"] = min(16 * 1024**2, T * B * H * 8) + 2 * 1024**2
        # trace.npz (every per-step array and the parameters' gradients), compressed
        written = _stored_bytes(m, T, B, item, backward=True) + item * P
        seconds += written / WRITE_BYTES_PER_S + RUN_S
    # Drawing the weights briefly holds three float64 copies (the draw, the session's
    # copy, the copy a Version keeps) before anything else exists.
    peak = max(sum(parts.values()) + max(after.values()), 3 * 8 * P)
    parts.update({k: v for k, v in after.items() if v})
    return Estimate(parts=parts, peak=int(peak), seconds=seconds, T=T, B=B)


def check(est: Estimate, label: str = "", fraction: float = FRACTION) -> Estimate:
    """``est`` when it fits in ``fraction`` of the memory free now; else
    :class:`MemoryLimitError`, one sentence starting with ``label``."""
    have = available_memory()
    if est.peak <= fraction * have:
        return est
    prefix = f"{label}: " if label else ""
    raise MemoryLimitError(
        f"{prefix}this run needs about {format_bytes(est.peak)} (T={est.T}, batch={est.B}; "
        f"most for {_WHAT[est.largest]}); the limit is {format_bytes(fraction * have)}, "
        f"{100 * fraction:.0f} % of the {format_bytes(have)} of memory free now; use a "
        "smaller hidden size, sequence length or batch"
        + (", or leave out that analysis" if est.largest in ("jacobian", "connectivity")
           else ""))


__all__ = ["Estimate", "check", "eigen_seconds", "estimate"]
