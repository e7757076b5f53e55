"""LSTM cell, gate rows in the order i, f, g, o (PyTorch's), optional diagonal peepholes.

Forward (``a`` = pre-activations, ``xp + hp``)::

    i = σ(a_i + p_i ⊙ c_{t-1})     f = σ(a_f + p_f ⊙ c_{t-1})     g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    o = σ(a_o + p_o ⊙ c_t)         h_t = o ⊙ tanh(c_t)

Backward, read bottom to top against the forward::

    do = dh ⊙ tanh(c_t)
    dc = dc_next + dh ⊙ o ⊙ (1 − tanh²c_t)  [+ da_o ⊙ p_o]       total dL/dc_t
    di = dc ⊙ g      df = dc ⊙ c_{t-1}      dg = dc ⊙ i
    da = d(gate) ⊙ gate'      σ' = s(1 − s),  tanh' = 1 − s²
    dc_{t-1} = dc ⊙ f  [+ da_i ⊙ p_i + da_f ⊙ p_f]

All four gates are evaluated with one ``exp`` over all blocks (NumPy's exp is much
faster than its tanh): σ(a) = 1 / (1 + e^(−a)) and tanh(a) = 2σ(2a) − 1.  Written with
s = ½ on the sigmoid rows and s = 1 on the candidate row, ``gate = tanh(a·s)·s + (1 − s)``
for every row, so one rule serves the backward pass: ``gate' = s² − (gate − (1 − s))²``.

Arrays are gate-major — gates (4, T, B, H), so a step's (4, B, H) view is four
contiguous blocks — and every elementwise operation runs over contiguous memory.
"""

from __future__ import annotations

from typing import Any

NAME = "lstm"
BLOCKS = 4
GATES = ("i", "f", "g", "o")
HAS_CELL_STATE = True


def gate_scales(xp: Any, dtype: Any) -> tuple[Any, Any, Any]:
    """(s, 1 − s, s²), each (4, 1, 1): s = ½ for the sigmoid gates i, f, o and 1 for g."""
    s = xp.full((4, 1, 1), 0.5, dtype=dtype)
    s[2] = 1.0
    return s, 1.0 - s, s * s


def step_constants(xp: Any, dtype: Any) -> dict[str, Any]:
    """The constants ``forward`` and ``backward`` read from P."""
    s, shift, s2 = gate_scales(xp, dtype)
    return {"s": s, "shift": shift, "s2": s2, "neg2s": -2.0 * s}


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
    neg2s = P["neg2s"]
    xp.add(xpj, hpj, out=a)
    peep = P.get("peep")
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


def backward(xp: Any, S: dict, t: int, dh: Any, dc: Any, h_prev: Any, c_prev: Any,
             P: dict, dxp: Any, dhp: Any) -> tuple[Any, Any]:
    """Gate gradients dL/da_t (4, B, H) into ``dxp`` (``dhp`` is the same for an LSTM).

    ``dc`` (B, H) enters as the gradient carried from step t+1 and is updated in
    place to the total dL/dc_t.  Returns (None, dL/dc_{t-1}).
    """
    a, tc = S["gates"][:, t], S["tc"][t]
    i, f, g, o = a
    di, df, dg, do = dxp
    peep = P.get("peep")
    xp.multiply(dh, tc, out=do)                 # do = dh ⊙ tanh c
    xp.multiply(tc, tc, out=di)                 # (scratch) 1 − tanh² c
    xp.subtract(1.0, di, out=di)
    di *= o
    di *= dh
    dc += di                                    # dc += dh ⊙ o ⊙ (1 − tanh² c)
    if peep is not None:                        # o saw c_t through p_o
        xp.subtract(1.0, o, out=df)
        df *= o
        do *= df                                # da_o = do ⊙ σ'(o)
        dc += do * peep[2]
    xp.multiply(dc, g, out=di)                  # di = dc ⊙ g
    xp.multiply(dc, c_prev, out=df)             # df = dc ⊙ c_{t-1}
    xp.multiply(dc, i, out=dg)                  # dg = dc ⊙ i
    # Multiply by each gate's derivative, all rows at once: s² − (gate − shift)².
    s2, shift = P["s2"], P["shift"]
    n = 3 if peep is not None else 4
    tmp = a[:n] - shift[:n]
    tmp *= tmp
    xp.subtract(s2[:n], tmp, out=tmp)
    dxp[:n] *= tmp
    dc_prev = dc * f                            # dc_{t-1} = dc ⊙ f
    if peep is not None:
        dc_prev += di * peep[0]
        dc_prev += df * peep[1]
    if dhp is not dxp:
        dhp[...] = dxp
    return None, dc_prev
