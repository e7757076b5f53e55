"""minGRU and minLSTM over a whole sequence as a scan, not a loop over time steps.

Their h_t = a_t ⊙ h_{t-1} + b_t is linear in h_{t-1}, with coefficients a_t, b_t that
come from the input alone (a = 1 − z, b = z ⊙ h̃ for a minGRU; a = f′, b = i′ ⊙ h̃ for a
minLSTM).  So all gates are computed for every step at once, and the recurrence — and
the backward one, dL/dh_t = dL/dh_t(from above) + a_{t+1} ⊙ dL/dh_{t+1} — runs as a
blocked scan (:func:`linear_scan`): the steps are cut into chunks of C ≈ √T (and a
tail of fewer than C, stepped one by one); a scan inside every chunk at once (C
vectorised steps over all chunks), then one pass over the chunks carries the state in
(T/C vectorised steps over C steps each).  That is about 2√T array operations instead
of T cell steps: on a CPU each step of the loop costs more in call overhead than in
arithmetic, on a GPU in kernel launches.

The results are those of the step loop up to rounding (the products are associated
differently); truncated BPTT cuts the coefficient where the loop cuts the carry, and
``frozen`` states enter where the loop takes them.  Arrays are time-major (T, B, H);
a reverse cell's processing order is the time axis read backwards.
"""

from __future__ import annotations

import math
from typing import Any

# Where the scan takes over from the loop (Network.scan None), from the measurements of
# benchmarks/bench_scan.py on a 2-core CPU (docs/architecture.md): with B·H = 32 numbers
# per step the scan was as fast from 8 steps on and 2× faster at 100, 11× at 10 000;
# at B·H = 1024 the two were within the noise of each other; at B·H = 16 384 the loop
# was 10–30 % faster (a step then is big enough to be memory-bound, and the scan makes
# more passes over memory).
SCAN_FROM_T = 16
SCAN_MAX_WIDTH = 2048  # B·H


def worth_scanning(T: int, B: int, H: int) -> bool:
    """Whether the scan is the faster path for T steps of B×H states (see above)."""
    return T >= SCAN_FROM_T and B * H <= SCAN_MAX_WIDTH


def linear_scan(xp: Any, a: Any, h0: Any, out: Any, chunk: int | None = None) -> Any:
    """``out[s] = a[s] ⊙ out[s−1] + b[s]`` for s = 0 … S−1, with ``out[−1] = h0``, where
    ``out`` holds b on entry: the scan runs in place, and ``a`` is used up (it holds
    running products afterwards).

    ``a``, ``out`` (S, B, H), any strides (reversed views run the recurrence backwards
    in time); ``h0`` (B, H).  Chunks of ``chunk`` steps (default ⌊√S⌋); the last S mod C
    steps, fewer than a chunk, are stepped one by one."""
    S = a.shape[0]
    C = chunk or max(1, math.isqrt(S))
    n = S // C
    whole = n * C
    A = a[:whole].reshape(n, C, *a.shape[1:])  # views: splitting the time axis
    Hl = out[:whole].reshape(n, C, *out.shape[1:])
    tmp = xp.empty((n, *a.shape[1:]), dtype=out.dtype)
    for c in range(1, C):  # every chunk's own scan from a zero state, all chunks at once
        xp.multiply(A[:, c], Hl[:, c - 1], out=tmp)
        Hl[:, c] += tmp
        A[:, c] *= A[:, c - 1]  # A[k, c] = ∏ a over chunk k up to c (cumprod is slow here)
    carry = h0
    part = xp.empty((C, *a.shape[1:]), dtype=out.dtype)
    for k in range(n):  # carry each chunk's incoming state through it, whole chunks
        xp.multiply(A[k], carry, out=part)
        Hl[k] += part
        carry = Hl[k, C - 1]
    if whole and not xp.may_share_memory(Hl, out):  # a reshape that had to copy
        out[:whole] = Hl.reshape(whole, *out.shape[1:])
    for s in range(whole, S):  # the tail: fewer steps than a chunk
        out[s] += a[s] * carry
        carry = out[s]
    return out


def _processing(arr: Any, reverse: bool) -> Any:
    """The view of a time-major array in a cell's processing order."""
    return arr[::-1] if reverse else arr


def forward(xp: Any, D: Any, xproj: Any, h_first: Any, frozen_h: Any = None,
            tbptt: int | None = None) -> None:
    """The forward pass of direction ``D`` (a minGRU/minLSTM ``core.network._Dir`` whose
    storage ``D.S`` is allocated) from its input projections ``xproj`` (G, T, B, H) and
    the state the first step processed starts from; ``frozen_h`` (T, B, H): the states
    that window starts take under truncated BPTT with window ``tbptt`` (or None)."""
    a = D.cell.scan_coefficients(xp, D.S, xproj, D.P)  # b goes into D.S["h"]
    aP, hP = _processing(a, D.reverse), _processing(D.S["h"], D.reverse)
    if frozen_h is not None and tbptt:
        fP = _processing(frozen_h, D.reverse)
        for s in range(tbptt, aP.shape[0], tbptt):  # a window start: a constant state
            hP[s] += aP[s] * fP[s - 1]
            aP[s] = 0.0
    linear_scan(xp, aP, h_first, hP)


def backward(xp: Any, D: Any, dH: Any, h_first: Any, tbptt: int | None) -> Any:
    """BPTT of direction ``D`` after :func:`forward`, from dL/dh_t from above ``dH``
    (T, B, H): fills the total dL/dh_t ``D.dh`` and dL/d(projections) ``D.dxp`` for every
    step; returns dL/d(the first step's starting state) (B, H)."""
    gP = {g: _processing(D.S["gates"][n], D.reverse)  # the trace's gates, processing order
          for n, g in enumerate(D.cell.GATES)}
    S = D.dh.shape[0]
    # In reversed processing order r = S−1−s: g_r = e_r + c_r g_{r−1}, c_r = a_{s+1}, the
    # keep factor ∂h_{s+1}/∂h_s (1 − z or f′), written straight into c.
    cR = xp.empty_like(D.dh)
    cR[0] = 0.0
    D.cell.keep_factor(xp, {g: a[1:][::-1] for g, a in gP.items()}, out=cR[1:])
    if tbptt:
        for s in range(tbptt, S, tbptt):  # the gradient from step s does not reach s−1
            cR[S - s] = 0.0
    first = D.cell.keep_factor(xp, {g: a[0] for g, a in gP.items()})  # ∂h_0/∂h_first
    D.dh[...] = dH
    dhP = _processing(D.dh, D.reverse)
    linear_scan(xp, cR, xp.zeros_like(h_first), dhP[::-1])
    # The local derivatives of every step at once, times dL/dh.
    for rows, h_prev, _ in D.prev_rows(slice(0, S), h_first, h_first):
        D.cell.scan_local(xp, D.S, rows, h_prev, D.dh, D.dxp, D.P)
    return first * dhP[0]
