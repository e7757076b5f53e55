"""A probe: one forward pass and BPTT on a fixed batch, plus the analysis the lab plots."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .analysis import connectivity as connectivity_map
from .analysis import jacobian_norms, spectra
from .backend import Backend, resolve_backend
from .experiment import Experiment
from .network import Network, check_memory


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


def teacher_mask_for(exp: Experiment, T: int, seed: int | None = None) -> np.ndarray | None:
    """Per-step teacher-forcing choices (T,) for ``output_recurrence``, else None."""
    if exp.model.pattern != "output_recurrence":
        return None
    ratio = exp.training.teacher_forcing
    rng = np.random.default_rng(exp.init.seed if seed is None else seed)
    return rng.random(T) < ratio


def probe(exp: Experiment, params: dict[str, Any], x: Any, y: Any, *, jacobian: bool = True,
          connectivity: bool = True, tbptt: int | str | None = "experiment",
          teacher_mask: Any = None, backend: Backend | None = None) -> ProbeResult:
    """Forward + BPTT on ``x`` (T, B, D), ``y``; with spectra and, on request, the
    Jacobian-product norms and the connectivity map.

    ``tbptt`` defaults to the experiment's training window.  Raises
    :class:`~core.errors.MemoryLimitError` before allocating a pass that cannot fit.
    """
    start = time.perf_counter()
    be = backend or resolve_backend(exp.backend.device, exp.backend.dtype)
    T, B = int(np.shape(x)[0]), int(np.shape(x)[1])
    check_memory(exp.model, T, B, np.dtype(be.dtype).name)
    window = exp.training.tbptt if tbptt == "experiment" else tbptt
    if teacher_mask is None:
        teacher_mask = teacher_mask_for(exp, T)
    net = Network(exp.model, params, be)
    tr = net.run(x, y, tbptt=window, teacher_mask=teacher_mask)
    bad = tr.nonfinite
    eigs, radius = spectra(exp.model, net.params)
    res = ProbeResult(experiment=exp, x=np.asarray(x), y=None if y is None else np.asarray(y),
                      arrays=tr.to_arrays(), spectra=eigs, spectral_radius=radius,
                      nonfinite=bad, backend_label=be.label, teacher_mask=teacher_mask)
    if bad is None:
        # Small products throughout: one BLAS thread (see Backend.step_loop).
        with np.errstate(all="ignore"), be.step_loop(0.0):
            if jacobian:
                res.jacobian = jacobian_norms(net, tr)
            if connectivity:
                res.connectivity = connectivity_map(net, x, y, teacher_mask=teacher_mask)
    res.elapsed_s = time.perf_counter() - start
    return res
