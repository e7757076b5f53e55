"""Fused elementwise steps for the CuPy backend: one GPU launch per step, not a dozen.

On NumPy each cell step is a handful of ufunc calls; on a GPU every call is a kernel
launch and a pass over memory, so there the cells hand the whole step to one
``cupy.ElementwiseKernel``.  Each kernel's body is plain arithmetic, written so that
it is also Python once the type word ``T`` and the semicolons are dropped:
:meth:`Fused.numpy` runs the very same text with NumPy, which is how the tests check
the kernels' maths against the cells' NumPy steps on any machine.

The arguments are arrays of one shape (B, H) — gate blocks are passed one by one — or
(H,) rows that broadcast (the peepholes).  An output may be the memory of an input (the
backward steps scale the local derivatives in place), so every body reads each input
before it writes any output that may share its memory.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Fused:
    """One fused step: input and output names (all of the working type T), the body,
    and which inputs are (H,) rows broadcast over the batch (the rest are all (B, H))."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    body: str
    rows: tuple[str, ...] = ()

    def cupy(self, cupy: Any) -> Any:
        """The compiled ``cupy.ElementwiseKernel``; call it with inputs then outputs."""
        return cupy.ElementwiseKernel(", ".join(f"T {n}" for n in self.inputs),
                                      ", ".join(f"T {n}" for n in self.outputs),
                                      self.body, self.name)

    def numpy(self, *arrays: Any) -> None:
        """The same body run with NumPy: inputs then outputs, as the kernel takes them."""
        n_in = len(self.inputs)
        env: dict[str, Any] = {"exp": np.exp, "tanh": np.tanh}
        env.update(zip(self.inputs, arrays[:n_in], strict=True))
        for statement in filter(None, (s.strip() for s in self.body.split(";"))):
            target, expr = (part.strip() for part in statement.split("=", 1))
            env[re.sub(r"^T\s+", "", target)] = eval(expr, {"__builtins__": {}}, env)
        for name, out in zip(self.outputs, arrays[n_in:], strict=True):
            out[...] = env[name]


_SIGMOID = "1 / (1 + exp(-({})))"

LSTM_FORWARD = Fused(
    "gradlab_lstm_forward",
    ("xi", "xf", "xg", "xo", "hi", "hf", "hg", "ho", "cp"),
    ("i", "f", "g", "o", "c", "tc", "h"),
    f"""
    i = {_SIGMOID.format("xi + hi")};
    f = {_SIGMOID.format("xf + hf")};
    g = tanh(xg + hg);
    o = {_SIGMOID.format("xo + ho")};
    c = f * cp + i * g;
    tc = tanh(c);
    h = o * tc;
    """)

LSTM_PEEPHOLE_FORWARD = Fused(
    "gradlab_lstm_peephole_forward",
    ("xi", "xf", "xg", "xo", "hi", "hf", "hg", "ho", "cp", "pi", "pf", "po"),
    ("i", "f", "g", "o", "c", "tc", "h"),
    f"""
    i = {_SIGMOID.format("xi + hi + pi * cp")};
    f = {_SIGMOID.format("xf + hf + pf * cp")};
    g = tanh(xg + hg);
    c = f * cp + i * g;
    o = {_SIGMOID.format("xo + ho + po * c")};
    tc = tanh(c);
    h = o * tc;
    """,
    rows=("pi", "pf", "po"))

# dc_t = dc_{t+1} ∂c_{t+1}/∂c_t + dh ∂h/∂c;  da = K dc (i, f, g) or K dh (o);
# dc_{t-1} = dc_t ∂c_t/∂c_{t-1}: the recurrent part of lstm.backward.
LSTM_BACKWARD = Fused(
    "gradlab_lstm_backward",
    ("dh", "p", "dcn", "ki", "kf", "kg", "ko", "fc"),
    ("dc", "dai", "daf", "dag", "dao", "dcp"),
    """
    T total = dcn + dh * p;
    dai = ki * total;
    daf = kf * total;
    dag = kg * total;
    dao = ko * dh;
    dcp = total * fc;
    dc = total;
    """)

GRU_FORWARD = Fused(
    "gradlab_gru_forward",
    ("xr", "xz", "xn", "hr", "hz", "hpn", "hprev"),
    ("r", "z", "n", "hn", "h"),
    f"""
    r = {_SIGMOID.format("xr + hr")};
    z = {_SIGMOID.format("xz + hz")};
    n = tanh(xn + r * hpn);
    hn = hpn;
    h = n + z * (hprev - n);
    """)

# d(xp) = dh K, d(hp) = dh K_h, and the direct dh_{t-1} = dh z: gru.backward.
GRU_BACKWARD = Fused(
    "gradlab_gru_backward",
    ("dh", "kr", "kz", "kn", "khn", "z"),
    ("dar", "daz", "dan", "dhr", "dhz", "dhn", "direct"),
    """
    T vr = kr * dh;
    T vz = kz * dh;
    T vn = kn * dh;
    T vhn = khn * dh;
    dar = vr;
    daz = vz;
    dan = vn;
    dhr = vr;
    dhz = vz;
    dhn = vhn;
    direct = dh * z;
    """)

RNN_TANH_FORWARD = Fused("gradlab_rnn_tanh_forward", ("x", "hp"), ("h",), "h = tanh(x + hp);")

RNN_SIGMOID_FORWARD = Fused("gradlab_rnn_sigmoid_forward", ("x", "hp"), ("h",),
                            f"h = {_SIGMOID.format('x + hp')};")

ALL = (LSTM_FORWARD, LSTM_PEEPHOLE_FORWARD, LSTM_BACKWARD, GRU_FORWARD, GRU_BACKWARD,
       RNN_TANH_FORWARD, RNN_SIGMOID_FORWARD)


@functools.cache
def kernels(cupy: Any) -> dict[str, Any]:
    """The compiled kernels, by name, built once per process (CuPy caches the code)."""
    return {k.name: k.cupy(cupy) for k in ALL}
