"""minGRU (Feng et al. 2024, "Were RNNs all we needed?"): a GRU whose gate and
candidate see only the input.  Rows z, h̃ of W_ih; no hidden-to-hidden weights::

    z_t = σ(W_z x_t + b_z)        h̃_t = W_h x_t + b_h
    h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

h_t is linear in h_{t-1} with coefficients that do not depend on h: the step Jacobian
∂h_t/∂h_{t-1} is diag(1 − z_t), and ‖∂h_T/∂h_t‖ is read off the gates (∏ (1 − z)).
That is also why the whole forward and backward can run as a scan over time
(core.scan).

Backward (no W_hh, so the whole dL/dh_{t-1} is the direct path)::

    da_z = dh ⊙ (h̃ − h_{t-1}) σ'(z)     da_h = dh ⊙ z     dh_{t-1} = dh ⊙ (1 − z)

``hp`` is None under hidden recurrence (there is no recurrent projection); with
``output_recurrence`` it is the fed-back output's projection, added to ``xp``.
Storage is gate-major, gates (2, T, B, H) = z, h̃; only z is a gate of the trace.
"""

from __future__ import annotations

from typing import Any

from .fused import rows_of

NAME = "mingru"
BLOCKS = 2
GATES = ("z",)
HAS_CELL_STATE = False
HIDDEN_WEIGHTS = False


def alloc(mem: Any, T: int, B: int, H: int, dtype: Any) -> dict[str, Any]:
    """Storage: gates (2, T, B, H) — z and the candidate h̃ — and h (T, B, H)."""
    return {"gates": mem.empty((2, T, B, H), dtype), "h": mem.empty((T, B, H), dtype)}


def forward(xp: Any, S: dict, t: int, xpj: Any, hpj: Any, h_prev: Any, c_prev: Any,
            P: dict) -> None:
    """One step from ``xpj`` (+ ``hpj`` when not None) (2, B, H); writes S[...][t]."""
    a, h = S["gates"][:, t], S["h"][t]
    if hpj is not None:
        xp.add(xpj, hpj, out=a)
        xpj = a
    fused = P.get("fused")
    if fused is not None:  # the same step in one kernel (core.cells.fused)
        fused["gradlab_mingru_forward"](*xpj, h_prev, *a, h)
        return
    z, hc = a
    xp.multiply(xpj[0], -1.0, out=z)            # σ(v) = 1 / (1 + e^(−v))
    xp.exp(z, out=z)
    z += 1.0
    xp.reciprocal(z, out=z)
    if hc is not xpj[1]:
        hc[...] = xpj[1]
    xp.subtract(hc, h_prev, out=h)              # h = h_{t-1} + z ⊙ (h̃ − h_{t-1})
    h *= z
    h += h_prev


def factor_arrays(mem: Any, S: dict, P: dict, dxp: Any, dhp: Any, dc: Any) -> dict[str, Any]:
    """K (2, T, B, H) in ``dxp`` (the loop overwrites it with the gradient); the direct
    ∂h_t/∂h_{t-1} = 1 − z comes from z itself.  With fused kernels the backward step
    reads the forward trace ``S``."""
    if P.get("fused") is not None:
        return {"S": S}
    return {"k": dxp, "z": S["gates"][0]}


def local(xp: Any, S: dict, c: Any, h_prev: Any, c_prev: Any, P: dict, L: dict) -> None:
    """For the timesteps ``c`` at once (``h_prev`` the h_{t-1} of each)::

        K_z = (h̃ − h_{t-1}) σ'(z)      K_h = z
    """
    if P.get("fused") is not None:
        return
    z, hc = S["gates"][:, c]
    Kz, Kh = L["k"][:, c]
    xp.subtract(1.0, z, out=Kh)                 # (scratch) 1 − z
    xp.subtract(hc, h_prev, out=Kz)
    Kz *= z
    Kz *= Kh
    Kh[...] = z


def backward(xp: Any, t: int, dh: Any, dc_next: Any, L: dict, P: dict, dxp: Any, dhp: Any,
             dc: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
    """dL/da_t = dh ⊙ K into ``dxp`` (= ``dhp``, (2, B, H)); returns (the whole
    dL/dh_{t-1} = dh ⊙ (1 − z), None)."""
    fused = P.get("fused")
    if fused is not None:  # local and backward in one kernel (core.cells.fused)
        S = L["S"]
        direct = xp.empty_like(dh)
        fused["gradlab_mingru_backward"](dh, *S["gates"][:, t], h_prev, *dxp, direct)
        return direct, None
    xp.multiply(L["k"][:, t], dh, out=dxp)
    direct = 1.0 - L["z"][t]
    direct *= dh
    return direct, None


def keep_factor(xp: Any, gates: dict[str, Any], out: Any = None) -> Any:
    """The diagonal of ∂h_t/∂h_{t-1} from the trace's gates: 1 − z (T, B, H), into
    ``out`` when given."""
    return xp.subtract(1.0, gates["z"], out=out)


def scan_coefficients(xp: Any, S: dict, xproj: Any, P: dict) -> Any:
    """Every step's gates at once from the input projections ``xproj`` (2, T, B, H), into
    S["gates"], for h_t = a_t ⊙ h_{t-1} + b_t: b = z ⊙ h̃ into S["h"], and returns
    a = 1 − z (T, B, H), a new array (core.scan runs the recurrence)."""
    z, hc = S["gates"]
    fused = P.get("fused")
    if fused is not None:  # one kernel over the whole sequence
        a = xp.empty_like(z)
        fused["gradlab_mingru_scan"](xproj[0], xproj[1], z, hc, a, S["h"])
        return a
    xp.multiply(xproj[0], -1.0, out=z)
    xp.exp(z, out=z)
    z += 1.0
    xp.reciprocal(z, out=z)
    hc[...] = xproj[1]
    xp.multiply(z, hc, out=S["h"])
    return 1.0 - z


def scan_local(xp: Any, S: dict, c: slice, h_prev: Any, dh: Any, dxp: Any, P: dict) -> None:
    """dL/d(projections) of the timesteps ``c`` at once, once the total dL/dh ``dh``
    (T, B, H) of every step is known: dxp[:, c] = K ⊙ dh[c] (``h_prev`` the h_{t-1} of
    each)."""
    fused = P.get("fused")
    if fused is not None:
        rows = rows_of(xp)
        z, hc = S["gates"][:, c]
        fused["gradlab_mingru_scan_backward"](rows(dh[c]), rows(z), rows(hc), rows(h_prev),
                                              rows(dxp[0, c]), rows(dxp[1, c]))
        return
    local(xp, S, c, h_prev, None, P, {"k": dxp})
    dxp[:, c] *= dh[c]

