"""GRU cell, gate rows in the order r, z, n (PyTorch's).

Forward (``xp`` = W_ih x_t + b_ih (+ b_hr, b_hz folded in), ``hp`` = W_hh h_{t-1} + b_hh)::

    r = σ(xp_r + hp_r)        z = σ(xp_z + hp_z)
    n = tanh(xp_n + r ⊙ hp_n)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

Backward::

    dn = dh ⊙ (1 − z)          dz = dh ⊙ (h_{t-1} − n)       dh_{t-1} (direct) = dh ⊙ z
    da_n = dn ⊙ (1 − n²)       dr = da_n ⊙ hp_n
    da_r = dr ⊙ r(1 − r)       da_z = dz ⊙ z(1 − z)
    d(xp) = [da_r, da_z, da_n]       d(hp) = [da_r, da_z, da_n ⊙ r]

Arrays are gate-major — gates (3, T, B, H), a step's (3, B, H) view is three
contiguous blocks.
"""

from __future__ import annotations

from typing import Any

NAME = "gru"
BLOCKS = 3
GATES = ("r", "z", "n")
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
    rz = a[:2]
    xp.add(xpj[:2], hpj[:2], out=rz)
    rz *= -1.0                                  # σ(v) = 1 / (1 + e^(−v))
    xp.exp(rz, out=rz)
    rz += 1.0
    xp.reciprocal(rz, out=rz)
    r, z, n = a
    hn[...] = hpj[2]
    xp.multiply(r, hn, out=n)
    n += xpj[2]
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h)               # h = n + z ⊙ (h_{t-1} − n)
    h *= z
    h += n


def backward(xp: Any, S: dict, t: int, dh: Any, dc: Any, h_prev: Any, c_prev: Any,
             P: dict, dxp: Any, dhp: Any) -> tuple[Any, Any]:
    """d(xp) into ``dxp`` and d(hp) into ``dhp`` (3, B, H).

    Returns (direct dL/dh_{t-1} = dh ⊙ z, None).
    """
    a, hn = S["gates"][:, t], S["hn"][t]
    r, z, n = a
    dar, daz, dan = dxp
    xp.subtract(h_prev, n, out=daz)             # dz = dh ⊙ (h_{t-1} − n)
    daz *= dh
    tmp = 1.0 - z
    xp.multiply(dh, tmp, out=dan)               # dn = dh ⊙ (1 − z)
    xp.multiply(n, n, out=tmp)
    xp.subtract(1.0, tmp, out=tmp)
    dan *= tmp                                  # da_n = dn ⊙ (1 − n²)
    xp.multiply(dan, hn, out=dar)               # dr = da_n ⊙ hp_n
    xp.subtract(1.0, r, out=tmp)
    tmp *= r
    dar *= tmp                                  # da_r = dr ⊙ σ'(r)
    xp.subtract(1.0, z, out=tmp)
    tmp *= z
    daz *= tmp                                  # da_z = dz ⊙ σ'(z)
    dhp[:2] = dxp[:2]
    xp.multiply(dan, r, out=dhp[2])             # d(hp_n) = da_n ⊙ r
    return dh * z, None
