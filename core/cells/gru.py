"""GRU cell, gate rows in the order r, z, n (PyTorch's).

Forward (``xp`` = W_ih x_t + b_ih (+ b_hr, b_hz folded in), ``hp`` = W_hh h_{t-1}, and
the step adds ``P["b_hn"]``: hp_n = W_hn h_{t-1} + b_hn)::

    r = σ(xp_r + hp_r)        z = σ(xp_z + hp_z)
    n = tanh(xp_n + r ⊙ hp_n)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

Backward: every gradient of a step is dh_t times a local derivative that needs only
the forward pass, so :func:`local` computes those for many timesteps at once and
:func:`backward` only multiplies (a fused kernel does both in one step)::

    da_n = dh ⊙ (1 − z)(1 − n²)       da_z = dh ⊙ (h_{t-1} − n) z(1 − z)
    da_r = da_n ⊙ hp_n ⊙ r(1 − r)     dh_{t-1} (direct) = dh ⊙ z
    d(xp) = [da_r, da_z, da_n]        d(hp) = [da_r, da_z, da_n ⊙ r]

Arrays are gate-major — gates (3, T, B, H), a step's (3, B, H) view is three
contiguous blocks.
"""

from __future__ import annotations

from typing import Any

NAME = "gru"
BLOCKS = 3
GATES = ("r", "z", "n")
HIDDEN_WEIGHTS = True
HAS_CELL_STATE = False


def alloc(mem: Any, T: int, B: int, H: int, dtype: Any) -> dict[str, Any]:
    """Storage: gates (3, T, B, H), h (T, B, H) and hp_n = W_hn h_{t-1} + b_hn (T, B, H)."""
    return {
        "gates": mem.empty((3, T, B, H), dtype),
        "h": mem.empty((T, B, H), dtype),
        "hn": mem.empty((T, B, H), dtype),
    }


def forward(xp: Any, S: dict, t: int, xpj: Any, hpj: Any, h_prev: Any, c_prev: Any,
            P: dict) -> None:
    """One step from ``xpj``, ``hpj`` (3, B, H); writes S["gates"][:, t], S["hn"][t], S["h"][t]."""
    a, h, hn = S["gates"][:, t], S["h"][t], S["hn"][t]
    fused = P.get("fused")
    if fused is not None:  # the same step in one kernel (core.cells.fused)
        fused["gradlab_gru_forward"](*xpj, *hpj, h_prev, P["b_hn"], *a, hn, h)
        return
    rz = a[:2]
    xp.add(xpj[:2], hpj[:2], out=rz)
    rz *= -1.0                                  # σ(v) = 1 / (1 + e^(−v))
    xp.exp(rz, out=rz)
    rz += 1.0
    xp.reciprocal(rz, out=rz)
    r, z, n = a
    xp.add(hpj[2], P["b_hn"], out=hn)
    xp.multiply(r, hn, out=n)
    n += xpj[2]
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h)               # h = n + z ⊙ (h_{t-1} − n)
    h *= z
    h += n


def factor_arrays(mem: Any, S: dict, P: dict, dxp: Any, dhp: Any, dc: Any) -> dict[str, Any]:
    """Where :func:`local` puts the local derivatives: ∂h/∂a in ``dxp``, ∂h/∂(hp) in
    ``dhp`` (the loop overwrites both with the gradients); the direct ∂h_t/∂h_{t-1} is z.
    With fused kernels the backward step reads the forward trace ``S`` itself."""
    if P.get("fused") is not None:
        return {"S": S}
    return {"kx": dxp, "kh": dhp, "z": S["gates"][1]}


def local(xp: Any, S: dict, c: Any, h_prev: Any, c_prev: Any, P: dict, L: dict) -> None:
    """The derivatives that need only the forward pass, for the timesteps ``c`` at once
    (``h_prev`` the h_{t-1} of each)::

        K_n = ∂h/∂a_n = (1 − z)(1 − n²)        ∂h/∂(hp_n) = K_n ⊙ r
        K_z = ∂h/∂a_z = (h_{t-1} − n) σ'(z)
        K_r = ∂h/∂a_r = K_n ⊙ hp_n ⊙ σ'(r)

    Nothing to do with fused kernels: their backward step derives these itself.
    """
    if P.get("fused") is not None:
        return
    r, z, n = S["gates"][:, c]
    hn = S["hn"][c]
    Kr, Kz, Kn = L["kx"][:, c]
    Hr, Hz, Hn = L["kh"][:, c]
    xp.subtract(1.0, z, out=Kz)                 # (scratch) 1 − z
    xp.multiply(n, n, out=Kn)
    xp.subtract(1.0, Kn, out=Kn)
    Kn *= Kz                                    # K_n = (1 − z)(1 − n²)
    Kz *= z                                     # σ'(z) = z(1 − z)
    xp.subtract(h_prev, n, out=Hz)              # (scratch) h_{t-1} − n
    Kz *= Hz
    xp.multiply(Kn, r, out=Hn)
    xp.subtract(1.0, r, out=Kr)
    Kr *= r
    Kr *= hn
    Kr *= Kn
    Hr[...] = Kr
    Hz[...] = Kz


def backward(xp: Any, t: int, dh: Any, dc_next: Any, L: dict, P: dict, dxp: Any, dhp: Any,
             dc: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
    """One step back from the total dL/dh_t ``dh``: d(xp) = dh ⊙ ∂h/∂a into ``dxp``,
    d(hp) = dh ⊙ ∂h/∂(hp) into ``dhp`` (3, B, H); returns (direct dL/dh_{t-1} = dh ⊙ z,
    None).  ``h_prev`` is the h_{t-1} the step started from (read by the fused kernels,
    which derive the factors themselves)."""
    fused = P.get("fused")
    if fused is not None:  # local and backward in one kernel (core.cells.fused)
        S = L["S"]
        direct = xp.empty_like(dh)
        fused["gradlab_gru_backward"](dh, *S["gates"][:, t], S["hn"][t], h_prev, *dxp, *dhp,
                                      direct)
        return direct, None
    xp.multiply(L["kx"][:, t], dh, out=dxp)
    xp.multiply(L["kh"][:, t], dh, out=dhp)
    return dh * L["z"][t], None
