"""LSTM cell, gate rows in the order i, f, g, o (PyTorch's), optional diagonal peepholes.

Forward (``a`` = pre-activations, ``xp + hp``)::

    i = σ(a_i + p_i ⊙ c_{t-1})     f = σ(a_f + p_f ⊙ c_{t-1})     g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    o = σ(a_o + p_o ⊙ c_t)         h_t = o ⊙ tanh(c_t)

Backward, in two parts.  :func:`local` takes every derivative that needs only the
forward pass — for many timesteps at once, off the step loop — and :func:`backward`
does the part that is a recurrence, one step at a time (a fused kernel does both in
one step, core.cells.fused)::

    dc_t  = dc_{t+1} ⊙ ∂c_{t+1}/∂c_t + dh_t ⊙ ∂h_t/∂c_t           total dL/dc_t
    da_i = dc_t ⊙ g σ'(i)    da_f = dc_t ⊙ c_{t-1} σ'(f)    da_g = dc_t ⊙ i (1 − g²)
    da_o = dh_t ⊙ tanh(c_t) σ'(o)
    ∂h_t/∂c_t = o (1 − tanh² c_t) [+ tanh(c_t) σ'(o) p_o]
    ∂c_t/∂c_{t-1} = f [+ g σ'(i) p_i + c_{t-1} σ'(f) p_f]

All four gates are evaluated with one ``exp`` over all blocks (NumPy's exp is much
faster than its tanh): σ(a) = 1 / (1 + e^(−a)) and tanh(a) = 2σ(2a) − 1.

Arrays are gate-major — gates (4, T, B, H), so a step's (4, B, H) view is four
contiguous blocks — and every elementwise operation runs over contiguous memory.
"""

from __future__ import annotations

from typing import Any

NAME = "lstm"
BLOCKS = 4
GATES = ("i", "f", "g", "o")
HIDDEN_WEIGHTS = True
HAS_CELL_STATE = True


def step_constants(xp: Any, dtype: Any) -> dict[str, Any]:
    """The constants ``forward`` reads from P: −2s per gate row (4, 1, 1), where
    σ(a) = 1 / (1 + e^(−2s·a)) with s = ½ on the sigmoid rows and s = 1 on the candidate
    row, whose tanh(a) = 2σ(2a) − 1."""
    neg2s = xp.full((4, 1, 1), -1.0, dtype=dtype)
    neg2s[2] = -2.0
    return {"neg2s": neg2s}


def alloc(mem: Any, T: int, B: int, H: int, dtype: Any) -> dict[str, Any]:
    """Storage: gates (4, T, B, H) — each gate's whole trace one contiguous block —,
    h, c and tanh(c) (T, B, H)."""
    return {
        "gates": mem.empty((4, T, B, H), dtype),
        "h": mem.empty((T, B, H), dtype),
        "c": mem.empty((T, B, H), dtype),
        "tc": mem.empty((T, B, H), dtype),
    }


def _activate(xp: Any, a: Any, neg2s: Any, candidate: bool) -> None:
    """In place: a ← σ(a) on the sigmoid rows, and tanh(a) = 2σ(2a) − 1 on the candidate
    row a[2] when ``candidate``; ``neg2s`` is −2s per row (−1, or −2 for the candidate)."""
    a *= neg2s
    xp.exp(a, out=a)
    a += 1.0
    xp.reciprocal(a, out=a)
    if candidate:
        g = a[2]
        g *= 2.0
        g -= 1.0


def forward(xp: Any, S: dict, t: int, xpj: Any, hpj: Any, h_prev: Any, c_prev: Any,
            P: dict) -> None:
    """One step from pre-activations ``xpj + hpj`` (4, B, H); writes S[...][t]."""
    a = S["gates"][:, t]
    c, tc, h = S["c"][t], S["tc"][t], S["h"][t]
    peep = P.get("peep")
    fused = P.get("fused")
    if fused is not None:  # the same step in one kernel (core.cells.fused)
        if peep is None:
            fused["gradlab_lstm_forward"](*xpj, *hpj, c_prev, *a, c, tc, h)
        else:
            fused["gradlab_lstm_peephole_forward"](*xpj, *hpj, c_prev, *peep, *a, c, tc, h)
        return
    neg2s = P["neg2s"]
    xp.add(xpj, hpj, out=a)
    if peep is None:
        _activate(xp, a, neg2s, True)
    else:
        a[0] += peep[0] * c_prev
        a[1] += peep[1] * c_prev
        _activate(xp, a[:3], neg2s[:3], True)
    i, f, g, o = a
    xp.multiply(f, c_prev, out=c)
    c += i * g
    if peep is not None:
        o += peep[2] * c
        _activate(xp, o, neg2s[3], False)
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=h)


def factor_arrays(mem: Any, S: dict, P: dict, dxp: Any, dhp: Any, dc: Any) -> dict[str, Any]:
    """Where :func:`local` puts the local derivatives of every step: K (4, T, B, H) in
    ``dxp`` and ∂h/∂c in ``dc`` (the loop overwrites both with the gradients), and
    ∂c_t/∂c_{t-1}: the forget gate itself, or with peepholes a buffer of its own.
    With fused kernels the backward step reads the forward trace ``S`` itself."""
    if P.get("fused") is not None:
        return {"S": S}
    f = S["gates"][1] if P.get("peep") is None else mem.empty(S["c"].shape, S["c"].dtype)
    return {"k": dxp, "p": dc, "f": f}


def local(xp: Any, S: dict, c: Any, h_prev: Any, c_prev: Any, P: dict, L: dict) -> None:
    """The derivatives that need only the forward pass, for the timesteps ``c`` at once
    (``c_prev`` the c_{t-1} of each; σ'(i) = i (1 − i) for a sigmoid gate i)::

        K_i = g σ'(i)          ∂c_t/∂a_i          K_f = c_{t-1} σ'(f)   ∂c_t/∂a_f
        K_g = i (1 − g²)       ∂c_t/∂a_g          K_o = tanh c σ'(o)    ∂h_t/∂a_o
        p   = o (1 − tanh² c)  [+ K_o p_o]        ∂h_t/∂c_t
        f'  = f  [+ K_i p_i + K_f p_f]            ∂c_t/∂c_{t-1}

    Nothing to do with fused kernels: their backward step derives these itself.
    """
    if P.get("fused") is not None:
        return
    i, f, g, o = S["gates"][:, c]
    tc = S["tc"][c]
    Ki, Kf, Kg, Ko = L["k"][:, c]
    xp.subtract(1.0, i, out=Ki)
    Ki *= i
    Ki *= g
    xp.subtract(1.0, f, out=Kf)
    Kf *= f
    Kf *= c_prev
    xp.multiply(g, g, out=Kg)
    xp.subtract(1.0, Kg, out=Kg)
    Kg *= i
    xp.subtract(1.0, o, out=Ko)
    Ko *= o
    Ko *= tc
    p = L["p"][c]
    xp.multiply(tc, tc, out=p)
    xp.subtract(1.0, p, out=p)
    p *= o
    peep = P.get("peep")
    if peep is not None:                        # o saw c_t, i and f saw c_{t-1}
        p += Ko * peep[2]
        fc = L["f"][c]
        xp.multiply(Ki, peep[0], out=fc)
        fc += Kf * peep[1]
        fc += f


def backward(xp: Any, t: int, dh: Any, dc_next: Any, L: dict, P: dict, dxp: Any, dhp: Any,
             dc: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
    """One step back, from the total dL/dh_t ``dh`` and the dL/dc_t carried from step t+1::

        dc_t = dc_next + dh ⊙ p
        da_i, da_f, da_g = dc_t ⊙ K_i, dc_t ⊙ K_f, dc_t ⊙ K_g          da_o = dh ⊙ K_o
        dc_{t-1} = dc_t ⊙ f'

    writes dL/da_t (4, B, H) into ``dxp`` (``dhp`` is the same for an LSTM) and the total
    dL/dc_t into ``dc``; returns (None, dL/dc_{t-1}).  ``c_prev`` is the c_{t-1} the
    step started from (read by the fused kernels, which derive the factors themselves).
    """
    fused = P.get("fused")
    if fused is not None:  # local and backward in one kernel (core.cells.fused)
        S = L["S"]
        dc_prev = xp.empty_like(dc)
        gates, tc = S["gates"][:, t], S["tc"][t]
        peep = P.get("peep")
        if peep is None:
            fused["gradlab_lstm_backward"](dh, dc_next, *gates, tc, c_prev, dc, *dxp, dc_prev)
        else:
            fused["gradlab_lstm_peephole_backward"](dh, dc_next, *gates, tc, c_prev, *peep, dc,
                                                    *dxp, dc_prev)
        return None, dc_prev
    K = L["k"][:, t]
    xp.multiply(dh, L["p"][t], out=dc)
    dc += dc_next
    xp.multiply(K[:3], dc, out=dxp[:3])
    xp.multiply(K[3], dh, out=dxp[3])
    return None, dc * L["f"][t]
