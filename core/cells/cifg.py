"""LSTM with coupled input and forget gates (CIFG), gate rows in the order f, g, o.

The input gate is not learnt: it is 1 − f, so the cell forgets exactly as much as it
writes (colah's "coupled forget and input gates").

Forward (``a`` = pre-activations, ``xp + hp``)::

    f = σ(a_f)     g = tanh(a_g)     o = σ(a_o)
    c_t = f ⊙ c_{t-1} + (1 − f) ⊙ g
    h_t = o ⊙ tanh(c_t)

Backward, split as the LSTM's (:func:`local` off the step loop, :func:`backward` the
recurrence; a fused kernel does both in one step, core.cells.fused)::

    dc_t = dc_{t+1} ⊙ f_{t+1} + dh_t ⊙ o (1 − tanh² c_t)          total dL/dc_t
    da_f = dc_t ⊙ (c_{t-1} − g) σ'(f)     da_g = dc_t ⊙ (1 − f)(1 − g²)
    da_o = dh_t ⊙ tanh(c_t) σ'(o)         dc_{t-1} (direct) = dc_t ⊙ f

Arrays are gate-major: gates (3, T, B, H).
"""

from __future__ import annotations

from typing import Any

NAME = "cifg"
BLOCKS = 3
GATES = ("f", "g", "o")
HAS_CELL_STATE = True
HIDDEN_WEIGHTS = True


def step_constants(xp: Any, dtype: Any) -> dict[str, Any]:
    """−2s per gate row (3, 1, 1): σ(a) = 1 / (1 + e^(−2s·a)), s = ½ on the sigmoid rows
    f, o and s = 1 on the candidate g, whose tanh(a) = 2σ(2a) − 1."""
    neg2s = xp.full((3, 1, 1), -1.0, dtype=dtype)
    neg2s[1] = -2.0
    return {"neg2s_cifg": neg2s}


def alloc(mem: Any, T: int, B: int, H: int, dtype: Any) -> dict[str, Any]:
    """Storage: gates (3, T, B, H), h, c and tanh(c) (T, B, H)."""
    return {
        "gates": mem.empty((3, T, B, H), dtype),
        "h": mem.empty((T, B, H), dtype),
        "c": mem.empty((T, B, H), dtype),
        "tc": mem.empty((T, B, H), dtype),
    }


def forward(xp: Any, S: dict, t: int, xpj: Any, hpj: Any, h_prev: Any, c_prev: Any,
            P: dict) -> None:
    """One step from pre-activations ``xpj + hpj`` (3, B, H); writes S[...][t]."""
    a = S["gates"][:, t]
    c, tc, h = S["c"][t], S["tc"][t], S["h"][t]
    fused = P.get("fused")
    if fused is not None:  # the same step in one kernel (core.cells.fused)
        fused["gradlab_cifg_forward"](*xpj, *hpj, c_prev, *a, c, tc, h)
        return
    xp.add(xpj, hpj, out=a)
    a *= P["neg2s_cifg"]
    xp.exp(a, out=a)
    a += 1.0
    xp.reciprocal(a, out=a)
    f, g, o = a
    g *= 2.0
    g -= 1.0
    xp.subtract(c_prev, g, out=c)               # c = g + f ⊙ (c_{t-1} − g)
    c *= f
    c += g
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=h)


def factor_arrays(mem: Any, S: dict, P: dict, dxp: Any, dhp: Any, dc: Any) -> dict[str, Any]:
    """K (3, T, B, H) in ``dxp`` and ∂h/∂c in ``dc`` (the loop overwrites both with the
    gradients); ∂c_t/∂c_{t-1} is the forget gate itself.  With fused kernels the
    backward step reads the forward trace ``S``."""
    if P.get("fused") is not None:
        return {"S": S}
    return {"k": dxp, "p": dc, "f": S["gates"][0]}


def local(xp: Any, S: dict, c: Any, h_prev: Any, c_prev: Any, P: dict, L: dict) -> None:
    """The derivatives that need only the forward pass, for the timesteps ``c`` at once::

        K_f = (c_{t-1} − g) σ'(f)   ∂c_t/∂a_f       K_g = (1 − f)(1 − g²)   ∂c_t/∂a_g
        K_o = tanh c σ'(o)          ∂h_t/∂a_o       p   = o (1 − tanh² c)   ∂h_t/∂c_t
    """
    if P.get("fused") is not None:
        return
    f, g, o = S["gates"][:, c]
    tc = S["tc"][c]
    Kf, Kg, Ko = L["k"][:, c]
    xp.subtract(1.0, f, out=Kg)                 # (scratch) 1 − f
    xp.multiply(Kg, f, out=Kf)
    Kf *= c_prev - g
    Kg *= 1.0 - g * g
    xp.subtract(1.0, o, out=Ko)
    Ko *= o
    Ko *= tc
    p = L["p"][c]
    xp.multiply(tc, tc, out=p)
    xp.subtract(1.0, p, out=p)
    p *= o


def backward(xp: Any, t: int, dh: Any, dc_next: Any, L: dict, P: dict, dxp: Any, dhp: Any,
             dc: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
    """One step back from the total dL/dh_t ``dh`` and the dL/dc_t carried from t+1::

        dc_t = dc_next + dh ⊙ p      da_f, da_g = dc_t ⊙ K_f, dc_t ⊙ K_g      da_o = dh ⊙ K_o

    writes dL/da_t (3, B, H) into ``dxp`` (= ``dhp``) and the total dL/dc_t into ``dc``;
    returns (None, dL/dc_{t-1} = dc_t ⊙ f)."""
    fused = P.get("fused")
    if fused is not None:  # local and backward in one kernel (core.cells.fused)
        S = L["S"]
        dc_prev = xp.empty_like(dc)
        fused["gradlab_cifg_backward"](dh, dc_next, *S["gates"][:, t], S["tc"][t], c_prev, dc,
                                       *dxp, dc_prev)
        return None, dc_prev
    K = L["k"][:, t]
    xp.multiply(dh, L["p"][t], out=dc)
    dc += dc_next
    xp.multiply(K[:2], dc, out=dxp[:2])
    xp.multiply(K[2], dh, out=dxp[2])
    return None, dc * L["f"][t]
