"""Elman RNN cell: ``h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

``xp`` is the input projection of step t and ``hp`` the recurrent one, both (1, B, H)
(gate-major, like the gated cells, with one block).
The backward rule expresses φ' through the output h, so only h is stored.
"""

from __future__ import annotations

from typing import Any

NAME = "rnn"
BLOCKS = 1
GATES: tuple[str, ...] = ()
HIDDEN_WEIGHTS = True
HAS_CELL_STATE = False


def alloc(mem: Any, T: int, B: int, H: int, dtype: Any) -> dict[str, Any]:
    """Per-sequence storage: the hidden states h (T, B, H)."""
    return {"h": mem.empty((T, B, H), dtype)}


def forward(xp: Any, S: dict, t: int, xpj: Any, hpj: Any, h_prev: Any, c_prev: Any,
            P: dict) -> None:
    """h_t = φ(xp + hp), written into S["h"][t]."""
    h = S["h"][t]
    act = P["activation"]
    fused = P.get("fused")
    if fused is not None and act in ("tanh", "sigmoid"):  # one kernel (core.cells.fused)
        fused[f"gradlab_rnn_{act}_forward"](xpj[0], hpj[0], h)
        return
    xp.add(xpj[0], hpj[0], out=h)
    if act == "tanh":
        xp.tanh(h, out=h)
    elif act == "sigmoid":  # σ(a) = 1 / (1 + e^(−a))
        h *= -1.0
        xp.exp(h, out=h)
        h += 1.0
        xp.reciprocal(h, out=h)
    elif act == "relu":
        xp.maximum(h, 0, out=h)
    # linear: h = a


def _fused_backward(P: dict) -> Any:
    """The fused kernel for dL/da_t = dh ⊙ φ'(a_t), where there is one, else None."""
    fused = P.get("fused")
    act = P["activation"]
    if fused is None or act not in ("tanh", "sigmoid"):
        return None
    return fused[f"gradlab_rnn_{act}_backward"]


def factor_arrays(mem: Any, S: dict, P: dict, dxp: Any, dhp: Any, dc: Any) -> dict[str, Any]:
    """φ'(a_t) goes into ``dxp``, which the loop overwrites with the gradient; a fused
    kernel reads h from the trace ``S`` instead."""
    return {"S": S} if _fused_backward(P) is not None else {"k": dxp}


def local(xp: Any, S: dict, c: Any, h_prev: Any, c_prev: Any, P: dict, L: dict) -> None:
    """φ'(a_t) for the timesteps ``c`` at once, expressed through the output h (nothing
    to do with a fused kernel, which derives it in the step)."""
    if _fused_backward(P) is not None:
        return
    h = S["h"][c]
    k = L["k"][0, c]
    act = P["activation"]
    if act == "tanh":  # 1 − h²
        xp.multiply(h, h, out=k)
        xp.subtract(1.0, k, out=k)
    elif act == "sigmoid":  # h (1 − h)
        xp.subtract(1.0, h, out=k)
        k *= h
    elif act == "relu":  # 1[h > 0]
        k[...] = h > 0
    else:
        k[...] = 1.0


def backward(xp: Any, t: int, dh: Any, dc_next: Any, L: dict, P: dict, dxp: Any, dhp: Any,
             dc: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
    """dL/da_t = dh ⊙ φ'(a_t) into ``dxp`` (= ``dhp``, (1, B, H)).

    Returns (direct dL/dh_{t-1} not through W_hh, dL/dc_{t-1}): both None for an RNN.
    """
    kernel = _fused_backward(P)
    if kernel is not None:
        kernel(dh, L["S"]["h"][t], dxp[0])
        return None, None
    xp.multiply(L["k"][:, t], dh, out=dxp)
    return None, None
