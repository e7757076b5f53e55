"""A probe: one forward pass and BPTT on a fixed batch, plus the analysis the lab plots."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .analysis import CANCELLABLE_EIG, jacobian_norms, spectra
from .analysis import connectivity as connectivity_map
from .backend import Backend, resolve_backend
from .cells import CELLS
from .diagnosis import Diagnosis, diagnose
from .diagonal import step_jacobian_spectra
from .estimate import check as check_estimate
from .estimate import estimate
from .experiment import Experiment
from .jobs import Control
from .layout import INPUT_ONLY
from .network import Network

# A conservative rate for the cost estimate: what a 2-core laptop sustains on the
# small products of a probe (the bulk products run faster; the per-step ones slower).
FLOPS_PER_S = 5e9


@dataclass
class ProbeResult:
    """Everything the lab shows for one batch; arrays are NumPy, on the host."""

    experiment: Experiment
    x: np.ndarray  # (T, B, D)
    y: np.ndarray | None
    arrays: dict[str, np.ndarray]  # trace.npz keys (SPEC §3)
    spectra: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    spectral_radius: dict[str, float] = field(default_factory=dict)
    jacobian: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (T,)
    connectivity: np.ndarray | None = None  # (T_out, T_in)
    nonfinite: str | None = None
    elapsed_s: float = 0.0
    backend_label: str = ""
    teacher_mask: np.ndarray | None = None
    # vanishing / exploding / underflow per layer key (core.diagnosis); None: not made
    diagnosis: Diagnosis | None = None
    # the same settings over a seed ensemble (core.compare.SeedBand), when asked for
    seed_band: Any = None
    seed_note: str = ""  # why a band asked for was not drawn
    # analyses still being computed ("jacobian", "connectivity"): an early result,
    # handed out before them (core.jobs.Control.early); () once complete
    pending: tuple[str, ...] = ()


def teacher_mask_for(exp: Experiment, T: int, seed: int | None = None) -> np.ndarray | None:
    """Per-step teacher-forcing choices (T,) for ``output_recurrence``, else None."""
    if exp.model.pattern != "output_recurrence":
        return None
    ratio = exp.training.teacher_forcing
    rng = np.random.default_rng(exp.init.seed if seed is None else seed)
    return rng.random(T) < ratio


def probe(exp: Experiment, params: dict[str, Any], x: Any, y: Any, *, jacobian: bool = True,
          connectivity: bool = True, tbptt: int | str | None = "experiment",
          teacher_mask: Any = None, backend: Backend | None = None,
          control: Control | None = None) -> ProbeResult:
    """Forward + BPTT on ``x`` (T, B, D), ``y``; with spectra and, on request, the
    Jacobian-product norms and the connectivity map.

    ``tbptt`` defaults to the experiment's training window.  Raises
    :class:`~core.errors.MemoryLimitError` before allocating a pass that cannot fit.
    ``control`` (:class:`core.jobs.Control`) is checked every few timesteps; a
    cancelled probe raises :class:`core.jobs.Cancelled`.  Progress is reported in
    stages: the pass, the spectra, the Jacobian products, the connectivity map.  A
    control that takes early results is handed the result without those two (their
    names in ``pending``) as soon as the pass and the spectra are done.
    """
    start = time.perf_counter()
    be = backend or resolve_backend(exp.backend.device, exp.backend.dtype)
    T, B = int(np.shape(x)[0]), int(np.shape(x)[1])
    check_estimate(estimate(replace(exp, backend=replace(exp.backend,
                                                         dtype=np.dtype(be.dtype).name)),
                            T, B, jacobian=jacobian, connectivity=connectivity))
    window = exp.training.tbptt if tbptt == "experiment" else tbptt
    if teacher_mask is None:
        teacher_mask = teacher_mask_for(exp, T)
    net = Network(exp.model, params, be)
    net.control = control
    shares = _stage_shares(exp, T, B, jacobian, connectivity)
    edges = np.concatenate([[0.0], np.cumsum(shares)])
    if control is not None:
        control.stage(edges[0], edges[1], "forward pass and BPTT")
    tr = net.run(x, y, tbptt=window, teacher_mask=teacher_mask)
    bad = tr.nonfinite
    if control is not None:
        control.stage(edges[1], edges[2], "eigenvalues")
    # Small blocks on one BLAS thread (a spinning second thread on a busy machine made
    # 128 x 128 problems take seconds).  Large ones keep the threads as they are: they
    # run in a thread of their own that a cancel abandons (core.jobs.run_cancellable),
    # and the thread count must not change under a call still running.
    largest = max((layer.hidden_size for layer in exp.model.layers), default=1)
    with (be.whole_pass(10.0 * float(largest) ** 3) if largest < CANCELLABLE_EIG
          else contextlib.nullcontext()):
        eigs, radius = spectra(exp.model, net.params, control)
    arrays = tr.to_arrays()
    diag_eigs, diag_radius = step_jacobian_spectra(exp.model, arrays)  # minGRU/minLSTM
    eigs.update(diag_eigs)
    radius.update(diag_radius)
    res = ProbeResult(experiment=exp, x=np.asarray(x), y=None if y is None else np.asarray(y),
                      arrays=arrays, spectra=eigs, spectral_radius=radius,
                      nonfinite=bad, backend_label=be.label, teacher_mask=teacher_mask)
    res.diagnosis = diagnose(res.arrays, exp.model.pattern, tbptt=window)
    pending = tuple(name for name, asked in (("jacobian", jacobian),
                                             ("connectivity", connectivity)) if asked)
    if bad is None and pending and control is not None and control.wants_early:
        control.early(replace(res, pending=pending, elapsed_s=time.perf_counter() - start))
    if bad is None:
        # Small products throughout: one BLAS thread (see Backend.step_loop).
        with np.errstate(all="ignore"), be.step_loop(0.0):
            if jacobian:
                if control is not None:
                    control.stage(edges[2], edges[3], "Jacobian products")
                res.jacobian = jacobian_norms(net, tr)
            if connectivity:
                if control is not None:
                    control.stage(edges[3], edges[4], "connectivity map")
                res.connectivity = connectivity_map(net, x, y, teacher_mask=teacher_mask)
    res.elapsed_s = time.perf_counter() - start
    return res


def _stage_flops(exp: Experiment, T: int, B: int, jacobian: bool,
                 connectivity: bool) -> tuple[float, float, float, float]:
    """Rough FLOPs of a probe's four stages: the pass (forward and BPTT), the
    eigenvalues, the Jacobian products and the connectivity map."""
    m = exp.model
    passes = eig = jac = 0.0
    d_in = m.input_size
    for layer in m.layers:
        H, G = layer.hidden_size, CELLS[layer.cell].BLOCKS
        dirs = 2 if layer.bidirectional else 1
        if layer.cell in INPUT_ONLY:  # no W_hh: no eigenvalues, diagonal Jacobians
            passes += dirs * 6.0 * T * B * G * H * d_in
            jac += dirs * T * H
            d_in = H * dirs
            continue
        passes += dirs * 6.0 * T * B * G * H * (d_in + H)  # forward ×1, backward ×2
        eig += dirs * G * 10.0 * H**3
        jac += dirs * T * 2.0 * H * H * G * H * 2  # H covectors through a step, ×2 rules
        d_in = H * dirs
    per_sample = passes / max(B, 1)
    t_out = T if m.pattern != "many_to_one" else 1
    conn = per_sample * t_out * m.output_size
    return passes, eig, (jac if jacobian else 0.0), (conn if connectivity else 0.0)


def _stage_shares(exp: Experiment, T: int, B: int, jacobian: bool,
                  connectivity: bool) -> np.ndarray:
    flops = np.array(_stage_flops(exp, T, B, jacobian, connectivity), dtype=np.float64)
    return flops / max(float(flops.sum()), 1.0)


def probe_seconds(exp: Experiment, T: int, B: int, *, jacobian: bool = True,
                  connectivity: bool = True) -> float:
    """A rough, deliberately pessimistic estimate of a probe's time in seconds, for
    deciding whether to show progress or ask before starting."""
    return float(sum(_stage_flops(exp, T, B, jacobian, connectivity))) / FLOPS_PER_S
