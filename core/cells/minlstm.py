"""minLSTM (Feng et al. 2024, "Were RNNs all we needed?"): an LSTM without cell state
whose gates and candidate see only the input.  Rows f, i, h̃ of W_ih; no
hidden-to-hidden weights::

    f_t = σ(W_f x_t + b_f)     i_t = σ(W_i x_t + b_i)     h̃_t = W_h x_t + b_h
    f′ = f / (f + i)           i′ = i / (f + i)           (so f′ + i′ = 1)
    h_t = f′ ⊙ h_{t-1} + i′ ⊙ h̃_t

The step Jacobian ∂h_t/∂h_{t-1} is diag(f′_t).  The trace's gates ``f`` and ``i`` are
the normalised f′ and i′.

Backward, with the raw gates kept beside the normalised ones
(∂f′/∂a_f = f′ i′ (1 − f), ∂f′/∂a_i = −f′ i′ (1 − i), i′ = 1 − f′)::

    v = dh ⊙ (h_{t-1} − h̃) f′ i′
    da_f = v (1 − f)     da_i = −v (1 − i)     da_h = dh ⊙ i′     dh_{t-1} = dh ⊙ f′

``hp`` is None under hidden recurrence; with ``output_recurrence`` it is the fed-back
output's projection, added to ``xp``.  Storage: gates (3, T, B, H) = f′, i′, h̃ and the
raw σ's (2, T, B, H) = f, i.
"""

from __future__ import annotations

from typing import Any

from .fused import rows_of

NAME = "minlstm"
BLOCKS = 3
GATES = ("f", "i")
HAS_CELL_STATE = False
HIDDEN_WEIGHTS = False


def alloc(mem: Any, T: int, B: int, H: int, dtype: Any) -> dict[str, Any]:
    """Storage: gates (3, T, B, H) — f′, i′, h̃ —, raw (2, T, B, H) — σ(a_f), σ(a_i) —
    and h (T, B, H)."""
    return {"gates": mem.empty((3, T, B, H), dtype), "raw": mem.empty((2, T, B, H), dtype),
            "h": mem.empty((T, B, H), dtype)}


def forward(xp: Any, S: dict, t: int, xpj: Any, hpj: Any, h_prev: Any, c_prev: Any,
            P: dict) -> None:
    """One step from ``xpj`` (+ ``hpj`` when not None) (3, B, H); writes S[...][t]."""
    a, raw, h = S["gates"][:, t], S["raw"][:, t], S["h"][t]
    if hpj is not None:
        xp.add(xpj, hpj, out=a)
        xpj = a
    fused = P.get("fused")
    if fused is not None:  # the same step in one kernel (core.cells.fused)
        fused["gradlab_minlstm_forward"](*xpj, h_prev, *a, *raw, h)
        return
    xp.multiply(xpj[:2], -1.0, out=raw)         # σ(v) = 1 / (1 + e^(−v))
    xp.exp(raw, out=raw)
    raw += 1.0
    xp.reciprocal(raw, out=raw)
    fn, in_, hc = a
    if hc is not xpj[2]:
        hc[...] = xpj[2]
    xp.add(raw[0], raw[1], out=in_)             # (scratch) f + i
    xp.divide(raw[0], in_, out=fn)
    xp.subtract(1.0, fn, out=in_)
    xp.multiply(fn, h_prev, out=h)
    h += in_ * hc


def factor_arrays(mem: Any, S: dict, P: dict, dxp: Any, dhp: Any, dc: Any) -> dict[str, Any]:
    """K (3, T, B, H) in ``dxp`` (the loop overwrites it with the gradient); the direct
    ∂h_t/∂h_{t-1} is f′ itself.  With fused kernels the backward step reads ``S``."""
    if P.get("fused") is not None:
        return {"S": S}
    return {"k": dxp, "keep": S["gates"][0]}


def local(xp: Any, S: dict, c: Any, h_prev: Any, c_prev: Any, P: dict, L: dict) -> None:
    """For the timesteps ``c`` at once (``h_prev`` the h_{t-1} of each)::

        u = (h_{t-1} − h̃) f′ i′      K_f = u (1 − f)      K_i = −u (1 − i)      K_h = i′
    """
    if P.get("fused") is not None:
        return
    fn, in_, hc = S["gates"][:, c]
    f, i = S["raw"][:, c]
    Kf, Ki, Kh = L["k"][:, c]
    xp.subtract(h_prev, hc, out=Kh)             # (scratch) u
    Kh *= fn
    Kh *= in_
    xp.subtract(1.0, f, out=Kf)
    Kf *= Kh
    xp.subtract(i, 1.0, out=Ki)
    Ki *= Kh
    Kh[...] = in_


def backward(xp: Any, t: int, dh: Any, dc_next: Any, L: dict, P: dict, dxp: Any, dhp: Any,
             dc: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
    """dL/da_t = dh ⊙ K into ``dxp`` (= ``dhp``, (3, B, H)); returns (the whole
    dL/dh_{t-1} = dh ⊙ f′, None)."""
    fused = P.get("fused")
    if fused is not None:  # local and backward in one kernel (core.cells.fused)
        S = L["S"]
        direct = xp.empty_like(dh)
        fused["gradlab_minlstm_backward"](dh, *S["gates"][:, t], *S["raw"][:, t], h_prev,
                                          *dxp, direct)
        return direct, None
    xp.multiply(L["k"][:, t], dh, out=dxp)
    return dh * L["keep"][t], None


def keep_factor(xp: Any, gates: dict[str, Any], out: Any = None) -> Any:
    """The diagonal of ∂h_t/∂h_{t-1} from the trace's gates: f′ (T, B, H) (a copy in
    ``out`` when given, else the gate itself)."""
    if out is None:
        return gates["f"]
    out[...] = gates["f"]
    return out


def scan_coefficients(xp: Any, S: dict, xproj: Any, P: dict) -> Any:
    """Every step's gates at once from the input projections ``xproj`` (3, T, B, H), into
    S["gates"] and S["raw"], for h_t = a_t ⊙ h_{t-1} + b_t: b = i′ ⊙ h̃ into S["h"], and
    returns a = f′ (T, B, H), a new array (core.scan runs the recurrence)."""
    raw = S["raw"]
    fn, in_, hc = S["gates"]
    fused = P.get("fused")
    if fused is not None:  # one kernel over the whole sequence
        a = xp.empty_like(fn)
        fused["gradlab_minlstm_scan"](*xproj, fn, in_, hc, *raw, a, S["h"])
        return a
    xp.multiply(xproj[:2], -1.0, out=raw)
    xp.exp(raw, out=raw)
    raw += 1.0
    xp.reciprocal(raw, out=raw)
    xp.add(raw[0], raw[1], out=in_)
    xp.divide(raw[0], in_, out=fn)
    xp.subtract(1.0, fn, out=in_)
    hc[...] = xproj[2]
    xp.multiply(in_, hc, out=S["h"])
    return fn.copy()


def scan_local(xp: Any, S: dict, c: slice, h_prev: Any, dh: Any, dxp: Any, P: dict) -> None:
    """dL/d(projections) of the timesteps ``c`` at once, once the total dL/dh ``dh``
    (T, B, H) of every step is known: dxp[:, c] = K ⊙ dh[c] (``h_prev`` the h_{t-1} of
    each)."""
    fused = P.get("fused")
    if fused is not None:
        rows = rows_of(xp)
        fn, in_, hc = S["gates"][:, c]
        f, i = S["raw"][:, c]
        fused["gradlab_minlstm_scan_backward"](rows(dh[c]), rows(fn), rows(in_), rows(hc),
                                               rows(f), rows(i), rows(h_prev),
                                               *(rows(dxp[g, c]) for g in range(3)))
        return
    local(xp, S, c, h_prev, None, P, {"k": dxp})
    dxp[:, c] *= dh[c]
