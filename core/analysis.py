"""Analysis of a network and its trace: spectra, Jacobian products, connectivity.

- :func:`spectra` — eigenvalues of every recurrent matrix, whole and per gate block.
- :func:`jacobian_norms` — ‖∂h_last/∂h_t‖₂ for every t, where ``last`` is the final
  step a cell processes (T−1 forward, 0 for a reverse cell).  The network's own
  backward pass carries the H rows of an identity matrix back at once, as its
  batch, so each step is one vector–Jacobian product of H covectors.
- :func:`connectivity` — ‖∂o_t/∂x_s‖ (Frobenius) for every output step t and input
  step s: one backward pass over a batch of copies of a sample, each copy seeded
  with one output coordinate.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .cells import CELLS
from .diagonal import keep_factors, keep_jacobian_norms
from .experiment import ModelConfig
from .jobs import Control
from .layout import INPUT_ONLY, ROW_BLOCKS, directions
from .network import Network
from .tracing import Trace


def spectra(model: ModelConfig, params: dict[str, Any],
            control: Control | None = None) -> tuple[dict, dict]:
    """Eigenvalues and spectral radii of the recurrent matrices.

    Returns ``({name: {block: complex eigenvalues}}, {name: spectral radius})``;
    blocks are the gates (i, f, g, o / r, z, n) or ``"h"`` for an RNN, and the
    radius is the largest over the blocks.  For ``output_recurrence`` with one
    layer, the loop ``weight_oh_l0 · head.weight`` (H×H per block) is reported
    as ``"loop_l0"``: the linearised output-to-hidden recurrence.  minGRU and minLSTM
    layers have no recurrent matrix and are left out here; their step Jacobian is
    diagonal and read off the gates (:func:`core.diagonal.step_jacobian_spectra`).
    """
    eigs: dict[str, dict[str, np.ndarray]] = {}
    radius: dict[str, float] = {}
    host = {k: np.asarray(v.get() if hasattr(v, "get") else v, dtype=np.float64)
            for k, v in params.items()}
    for k, layer in enumerate(model.layers):
        H = layer.hidden_size
        names = ROW_BLOCKS[layer.cell]
        for d in directions(layer):
            if layer.cell in INPUT_ONLY and model.pattern != "output_recurrence":
                continue  # no W_hh: see core.diagonal
            if model.pattern == "output_recurrence":
                if k > 0 or len(model.layers) > 1:
                    continue
                W = host["weight_oh_l0"] @ host["head.weight"]
                name = "loop_l0"
            else:
                name = f"weight_hh_l{k}{d}"
                W = host[name]
            blocks = {}
            for n, g in enumerate(names):
                if control is not None:
                    control.check()
                block = W[n * H:(n + 1) * H]
                blocks[g] = (_eigvals(block, control) if np.all(np.isfinite(block))
                             else np.full(H, np.nan, dtype=complex))
            eigs[name] = blocks
            radius[name] = float(max(np.max(np.abs(e)) for e in blocks.values()))
    return eigs, radius


# From this size on an eigenvalue problem (some 0.05 s and more; a minute at 4096 on a
# loaded machine) runs in a thread of its own and is waited for in short slices, so
# that a cancel or Ctrl-C ends it promptly: LAPACK itself cannot be interrupted.
CANCELLABLE_EIG = 384


def _eigvals(block: np.ndarray, control: Control | None) -> np.ndarray:
    if block.shape[0] < CANCELLABLE_EIG:
        return np.linalg.eigvals(block)
    from .jobs import run_cancellable

    return run_cancellable(lambda: np.linalg.eigvals(block), control)


JACOBIAN_CHUNK_BYTES = 16 * 2**20  # matrices held for one batched norm call


# Matrices from which the spectral norms are shared with a second thread: LAPACK and
# the batched products release the GIL, and a probe's host is mostly idle meanwhile.
SPLIT_NORMS_WORK = 100 * 32**3  # n · H³: some 2 ms in one thread


def _spectral_norms(m: np.ndarray) -> np.ndarray:
    """‖M‖₂ of each of ``m`` (n, H, H) float64, the two halves of a large batch in two
    threads (see :func:`_spectral_norms_1`)."""
    n = len(m)
    if n < 2 or n * m.shape[1] ** 3 < SPLIT_NORMS_WORK:
        return _spectral_norms_1(m)
    half = n // 2
    second: list[np.ndarray] = []

    def run() -> None:
        with np.errstate(all="ignore"):
            second.append(_spectral_norms_1(m[half:]))

    helper = threading.Thread(target=run, name="gradlab-norms", daemon=True)
    helper.start()
    first = _spectral_norms_1(m[:half])
    helper.join()
    if not second:  # the helper failed (it cannot, short of memory): do its half here
        second.append(_spectral_norms_1(m[half:]))
    return np.concatenate([first, second[0]])


def _spectral_norms_1(m: np.ndarray) -> np.ndarray:
    """‖M‖₂ of each of ``m`` (n, H, H) float64: inf where M holds an infinity (a
    product that overflowed), NaN where it holds a NaN.

    ‖M‖₂ is the square root of the largest eigenvalue of M Mᵀ, which a symmetric
    eigensolver finds to full relative precision in float64 (the largest eigenvalue is
    the best-conditioned one) in some 70 % of a singular value decomposition's time.
    Where some M's largest magnitude s lies outside 1e±140 (float64 products after
    thousands of steps), every M is first divided by its s, so that the squares neither
    underflow nor overflow: ‖M‖₂ = s · ‖M / s‖₂.  Float32 products never need it.
    """
    s = np.max(np.abs(m), axis=(1, 2))  # NaN where M holds one, inf where an infinity
    out = s.copy()  # 0, inf and NaN stand as they are
    ok = np.flatnonzero(np.isfinite(s) & (s > 0))
    if ok.size:
        if ok.size < len(m):
            m, s = m.take(ok, axis=0), s[ok]
        if s.min() > _SAFE_SQUARE[0] and s.max() < _SAFE_SQUARE[1]:
            s = np.ones_like(s)  # the squares fit: no scaled copy
        else:
            m = m / s[:, None, None]
        top = np.linalg.eigvalsh(m @ m.transpose(0, 2, 1))[:, -1]
        out[ok] = s * np.sqrt(np.maximum(top, 0.0))
    return out


_SAFE_SQUARE = (1e-140, 1e140)  # largest magnitudes whose squares float64 holds exactly


def jacobian_norms(net: Network, trace: Trace, sample: int = 0) -> dict[str, np.ndarray]:
    """{layer key: (T,) ‖∂h_last/∂h_t‖₂} for one batch element of a finished trace.

    Only for hidden-to-hidden recurrence (``output_recurrence`` has none: empty dict).
    """
    if net.model.pattern == "output_recurrence":
        return {}
    out: dict[str, np.ndarray] = {}
    for k, layer in enumerate(net.model.layers):
        for d in directions(layer):
            key = f"l{k}{d}"
            L = trace.layers[key]
            if layer.cell in INPUT_ONLY:  # diagonal step Jacobians, read off the gates
                gates = {g: net.backend.to_numpy(a[:, sample]) for g, a in L.gates.items()}
                out[key] = keep_jacobian_norms(keep_factors(layer.cell, gates), bool(d))
            else:
                out[key] = _covector_norms(net, key, layer.cell, bool(d), L, sample)
    return out


def covector_step_bytes(cell: str, H: int, item: int) -> int:
    """Bytes :func:`jacobian_norms` holds per step of a chunk: the backward pass's
    buffers for H covectors (the gate blocks' gradients, dL/dh and, with a cell state,
    dL/dc; the states are views of the sample's) and the step's (H, H) product in
    float64 with its Gram matrix."""
    c = CELLS[cell]
    grads = c.BLOCKS * (2 if cell == "gru" else 1) + (2 if c.HAS_CELL_STATE else 1)
    return H * H * (item * grads + 2 * 8)


def _covector_norms(net: Network, key: str, cell_name: str, reverse: bool, L: Any,
                    sample: int) -> np.ndarray:
    """‖∂h_last/∂h_t‖₂ of one direction: BPTT of the H rows of an identity matrix at
    once, the batch of a backward pass (:meth:`Network.carry_back`) whose dL/dh_t are
    the rows of ∂h_last/∂h_t, from the last step to the first in chunks of bounded
    memory (the carries pass from one chunk to the next)."""
    xp, dt = net.xp, net.backend.dtype
    cell = CELLS[cell_name]
    T, _, H = L.h.shape
    order = range(T - 1, -1, -1) if reverse else range(T)
    one = slice(sample, sample + 1)
    h, c = L.h[:, one], (None if L.c is None else L.c[:, one])  # (T, 1, H)
    # The state each step started from (zeros before the first), for GRU's hp_n.
    prev_h = xp.zeros_like(h)
    if reverse:
        prev_h[:-1] = h[1:]
    else:
        prev_h[1:] = h[:-1]
    item = np.dtype(dt).itemsize
    chunk = max(1, min(T, JACOBIAN_CHUNK_BYTES // covector_step_bytes(cell_name, H, item)))
    norms = np.empty(T)
    carry = (xp.eye(H, dtype=dt), None if c is None else xp.zeros((H, H), dtype=dt))

    def rows(a: Any) -> Any:
        """(…, 1, H) → (…, H, H): a step's row for every covector, a view (stride 0)."""
        return xp.broadcast_to(a, (*a.shape[:-2], H, H))

    tc = None if c is None else xp.tanh(c)
    hn = None
    if cell_name == "gru":  # hp_n = W_hn h_{t-1} + b_hn, recomputed
        W, b = net.params["weight_hh_" + key], net.params["bias_hh_" + key]
        hn = prev_h @ W[2 * H:].T + b[2 * H:]
    gates = xp.stack([L.gates[g][:, one] for g in cell.GATES]) if cell.GATES else None
    s1 = T  # steps are taken in the order s = 0 … T−1; chunks go from the last back
    while s1 > 0:
        if net.control is not None:
            net.control.report((T - s1) / T)
        s0 = max(0, s1 - chunk)
        ts = slice(T - s1, T - s0) if reverse else slice(s0, s1)  # the chunk's times
        S: dict[str, Any] = {"h": rows(h[ts])}
        if c is not None:
            S["c"], S["tc"] = rows(c[ts]), rows(tc[ts])
        if gates is not None:
            S["gates"] = rows(gates[:, ts])
        if hn is not None:
            S["hn"] = rows(hn[ts])
        if s0 == 0:  # zeros before the first step
            h_before = c_before = xp.zeros((1, H), dtype=dt)
        else:
            tp = order[s0 - 1]
            h_before, c_before = h[tp], (None if c is None else c[tp])
        first = (rows(h_before), None if c is None else rows(c_before))
        dh, dh_before, dc_before = net.carry_back(key, S, first, carry)
        carry = (dh_before, dc_before)
        host = np.asarray(net.backend.to_numpy(dh), dtype=np.float64)
        norms[ts] = _spectral_norms(host)
        s1 = s0
    return norms


def connectivity(net: Network, x: Any, y: Any = None, sample: int = 0,
                 teacher_mask: Any = None, chunk: int = 64) -> np.ndarray:
    """(T_out, T_in) array of ‖∂o_t/∂x_s‖ for batch element ``sample``.

    T_out is T for sequence outputs and 1 for ``many_to_one``.
    """
    m = net.model
    x = np.asarray(net.backend.to_numpy(net.backend.asarray(x)))
    T = x.shape[0]
    O = m.output_size
    seq = m.pattern != "many_to_one"
    T_out = T if seq else 1
    seeds = [(t, o) for t in range(T_out) for o in range(O)]
    result = np.zeros((T_out, T))
    xs = x[:, sample:sample + 1]
    ys = None
    if y is not None and m.pattern == "output_recurrence":
        ys = np.asarray(y)[:, sample:sample + 1]
    for lo in range(0, len(seeds), chunk):
        if net.control is not None:
            net.control.report(lo / len(seeds))
        part = seeds[lo:lo + chunk]
        n = len(part)  # memory: checked for the whole map before (core.estimate)
        xb = np.repeat(xs, n, axis=1)
        yb = np.repeat(ys, n, axis=1) if ys is not None else None
        seed = np.zeros((T, n, O) if seq else (n, O))
        for j, (t, o) in enumerate(part):
            if seq:
                seed[t, j, o] = 1.0
            else:
                seed[j, o] = 1.0
        tr = net.run(xb, yb, d_output=seed, teacher_mask=teacher_mask, input_grad=True,
                     param_grads=False)
        dx = net.backend.to_numpy(tr.dx)  # (T_in, n, D)
        sq = (dx ** 2).sum(axis=-1)  # (T_in, n)
        for j, (t, _o) in enumerate(part):
            result[t] += sq[:, j]
        del tr, dx, sq  # before the next chunk's pass: one chunk's trace alive at a time
    return np.sqrt(result)
