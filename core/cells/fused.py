"""Fused elementwise steps: each cell step, forward or back, as one kernel, not a dozen
array operations.

In plain NumPy a cell step is a dozen ufunc calls, each a pass over memory; on a GPU
each would be a kernel launch.  So the cells hand the whole step to one kernel: a
``cupy.ElementwiseKernel`` on a GPU, or the same text compiled as C for the CPU
(:mod:`core.cells.native`).  Each body is plain arithmetic, written so that it is also
Python once the type word ``T`` and the semicolons are dropped: :meth:`Fused.numpy`
runs the very same text with NumPy, which is how the tests check the kernels' maths
against the cells' NumPy steps on any machine.

The backward kernels do in one step what the NumPy path splits in two (``local`` for
all steps at once, then ``backward``): there, elementwise work costs memory passes,
not calls, so it is cheaper to derive each step's factors where they are used.

The arguments are arrays of one shape (B, H) — gate blocks are passed one by one — or
(H,) rows that broadcast (the peepholes).  Every body reads each input before it writes
any output, so an output may share an input's memory.
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

# One step of BPTT through an LSTM, both parts of lstm.local and lstm.backward at once:
# the local derivatives from the forward values, then the recurrence
#   dc_t = dc_{t+1} ∂c_{t+1}/∂c_t + dh_t ∂h_t/∂c_t,  da = K dc (i, f, g) or K dh (o),
#   dc_{t-1} = dc_t ∂c_t/∂c_{t-1}.
LSTM_BACKWARD = Fused(
    "gradlab_lstm_backward",
    ("dh", "dcn", "i", "f", "g", "o", "tc", "cp"),
    ("dc", "dai", "daf", "dag", "dao", "dcp"),
    """
    T total = dcn + dh * (o * (1 - tc * tc));
    dai = total * (g * (i * (1 - i)));
    daf = total * (cp * (f * (1 - f)));
    dag = total * (i * (1 - g * g));
    dao = dh * (tc * (o * (1 - o)));
    dcp = total * f;
    dc = total;
    """)

# With peepholes o also sees c_t, and i and f see c_{t-1}: two more paths between cells.
LSTM_PEEPHOLE_BACKWARD = Fused(
    "gradlab_lstm_peephole_backward",
    ("dh", "dcn", "i", "f", "g", "o", "tc", "cp", "pi", "pf", "po"),
    ("dc", "dai", "daf", "dag", "dao", "dcp"),
    """
    T ko = tc * (o * (1 - o));
    T ki = g * (i * (1 - i));
    T kf = cp * (f * (1 - f));
    T total = dcn + dh * (o * (1 - tc * tc) + ko * po);
    dai = total * ki;
    daf = total * kf;
    dag = total * (i * (1 - g * g));
    dao = dh * ko;
    dcp = total * (f + ki * pi + kf * pf);
    dc = total;
    """,
    rows=("pi", "pf", "po"))

GRU_FORWARD = Fused(
    "gradlab_gru_forward",
    ("xr", "xz", "xn", "hr", "hz", "hpn", "hprev", "bn"),
    ("r", "z", "n", "hn", "h"),
    f"""
    r = {_SIGMOID.format("xr + hr")};
    z = {_SIGMOID.format("xz + hz")};
    hn = hpn + bn;
    n = tanh(xn + r * hn);
    h = n + z * (hprev - n);
    """,
    rows=("bn",))

# One step of BPTT through a GRU (gru.local and gru.backward at once): d(xp) = dh K,
# d(hp) = dh K_h, and the direct dh_{t-1} = dh z.
GRU_BACKWARD = Fused(
    "gradlab_gru_backward",
    ("dh", "r", "z", "n", "hn", "hprev"),
    ("dar", "daz", "dan", "dhr", "dhz", "dhn", "direct"),
    """
    T vn = dh * ((1 - z) * (1 - n * n));
    T vr = vn * (hn * (r * (1 - r)));
    T vz = dh * ((hprev - n) * (z * (1 - z)));
    T vd = dh * z;
    dar = vr;
    daz = vz;
    dan = vn;
    dhr = vr;
    dhz = vz;
    dhn = vn * r;
    direct = vd;
    """)

RNN_TANH_FORWARD = Fused("gradlab_rnn_tanh_forward", ("x", "hp"), ("h",), "h = tanh(x + hp);")

RNN_SIGMOID_FORWARD = Fused("gradlab_rnn_sigmoid_forward", ("x", "hp"), ("h",),
                            f"h = {_SIGMOID.format('x + hp')};")

# dL/da_t = dh φ'(a_t), with φ' expressed through the output h.
RNN_TANH_BACKWARD = Fused("gradlab_rnn_tanh_backward", ("dh", "h"), ("da",),
                          "da = dh * (1 - h * h);")

RNN_SIGMOID_BACKWARD = Fused("gradlab_rnn_sigmoid_backward", ("dh", "h"), ("da",),
                             "da = dh * (h * (1 - h));")

CIFG_FORWARD = Fused(
    "gradlab_cifg_forward",
    ("xf", "xg", "xo", "hf", "hg", "ho", "cp"),
    ("f", "g", "o", "c", "tc", "h"),
    f"""
    f = {_SIGMOID.format("xf + hf")};
    g = tanh(xg + hg);
    o = {_SIGMOID.format("xo + ho")};
    c = f * cp + (1 - f) * g;
    tc = tanh(c);
    h = o * tc;
    """)

# One step of BPTT through a CIFG (cifg.local and cifg.backward at once).
CIFG_BACKWARD = Fused(
    "gradlab_cifg_backward",
    ("dh", "dcn", "f", "g", "o", "tc", "cp"),
    ("dc", "daf", "dag", "dao", "dcp"),
    """
    T total = dcn + dh * (o * (1 - tc * tc));
    daf = total * ((cp - g) * (f * (1 - f)));
    dag = total * ((1 - f) * (1 - g * g));
    dao = dh * (tc * (o * (1 - o)));
    dcp = total * f;
    dc = total;
    """)

MINGRU_FORWARD = Fused(
    "gradlab_mingru_forward",
    ("az", "ah", "hprev"),
    ("z", "hc", "h"),
    f"""
    z = {_SIGMOID.format("az")};
    hc = ah;
    h = hprev + z * (ah - hprev);
    """)

# One step of BPTT through a minGRU: d(xp) and the whole dh_{t-1} = dh (1 − z).
MINGRU_BACKWARD = Fused(
    "gradlab_mingru_backward",
    ("dh", "z", "hc", "hprev"),
    ("daz", "dah", "direct"),
    """
    T vz = dh * ((hc - hprev) * (z * (1 - z)));
    T vh = dh * z;
    T vd = dh * (1 - z);
    daz = vz;
    dah = vh;
    direct = vd;
    """)

# minLSTM's gates from the projections, as the forward step and the scan both take them:
# the normalised f′ = σ(af)/(σ(af)+σ(ai)), i′ = 1 − f′ and the raw σs kept for BPTT.
_MINLSTM_GATES = f"""
    T sf = {_SIGMOID.format("af")};
    T si = {_SIGMOID.format("ai")};
    T nf = sf / (sf + si);
    T ni = 1 - nf;
    T hh = ah;
    fn = nf;
    fi = ni;
    hc = hh;
    rf = sf;
    ri = si;
"""

MINLSTM_FORWARD = Fused(
    "gradlab_minlstm_forward",
    ("af", "ai", "ah", "hprev"),
    ("fn", "fi", "hc", "rf", "ri", "h"),
    _MINLSTM_GATES + """
    h = nf * hprev + ni * hh;
    """)

# One step of BPTT through a minLSTM, from the normalised gates f′, i′ and the raw f, i.
MINLSTM_BACKWARD = Fused(
    "gradlab_minlstm_backward",
    ("dh", "fn", "fi", "hc", "rf", "ri", "hprev"),
    ("daf", "dai", "dah", "direct"),
    """
    T v = dh * ((hprev - hc) * (fn * fi));
    T vf = v * (1 - rf);
    T vi = v * (ri - 1);
    T vh = dh * fi;
    T vd = dh * fn;
    daf = vf;
    dai = vi;
    dah = vh;
    direct = vd;
    """)

# The scan over time (core.scan), whole sequences at once: the gates of every step and
# the coefficients of h_t = a ⊙ h_{t-1} + b; then, once dL/dh_t is known for every step,
# dL/d(projections) (the backward kernels without the recurrent part).
MINGRU_SCAN = Fused(
    "gradlab_mingru_scan",
    ("az", "ah"),
    ("z", "hc", "a", "b"),
    f"""
    T sz = {_SIGMOID.format("az")};
    z = sz;
    hc = ah;
    a = 1 - sz;
    b = sz * ah;
    """)

MINGRU_SCAN_BACKWARD = Fused(
    "gradlab_mingru_scan_backward",
    ("dh", "z", "hc", "hprev"),
    ("daz", "dah"),
    """
    T vz = dh * ((hc - hprev) * (z * (1 - z)));
    T vh = dh * z;
    daz = vz;
    dah = vh;
    """)

MINLSTM_SCAN = Fused(
    "gradlab_minlstm_scan",
    ("af", "ai", "ah"),
    ("fn", "fi", "hc", "rf", "ri", "a", "b"),
    _MINLSTM_GATES + """
    a = nf;
    b = ni * hh;
    """)

MINLSTM_SCAN_BACKWARD = Fused(
    "gradlab_minlstm_scan_backward",
    ("dh", "fn", "fi", "hc", "rf", "ri", "hprev"),
    ("daf", "dai", "dah"),
    """
    T v = dh * ((hprev - hc) * (fn * fi));
    T vf = v * (1 - rf);
    T vi = v * (ri - 1);
    T vh = dh * fi;
    daf = vf;
    dai = vi;
    dah = vh;
    """)

ALL = (LSTM_FORWARD, LSTM_PEEPHOLE_FORWARD, LSTM_BACKWARD, LSTM_PEEPHOLE_BACKWARD,
       GRU_FORWARD, GRU_BACKWARD, RNN_TANH_FORWARD, RNN_SIGMOID_FORWARD, RNN_TANH_BACKWARD,
       RNN_SIGMOID_BACKWARD, CIFG_FORWARD, CIFG_BACKWARD, MINGRU_FORWARD, MINGRU_BACKWARD,
       MINLSTM_FORWARD, MINLSTM_BACKWARD, MINGRU_SCAN, MINGRU_SCAN_BACKWARD, MINLSTM_SCAN,
       MINLSTM_SCAN_BACKWARD)


def rows_of(xp: Any) -> Any:
    """A function viewing an (n, B, H) array as (n·B, H) rows, never a copy (what the
    compiled kernels take for a gate's block of a wider array)."""
    def rows(a: Any) -> Any:
        out = a.reshape(-1, a.shape[-1])
        if not xp.may_share_memory(out, a):  # pragma: no cover - splits always view
            raise ValueError("rows_of: the array cannot be viewed as rows")
        return out
    return rows


@functools.cache
def kernels(cupy: Any) -> dict[str, Any]:
    """The compiled kernels, by name, built once per process (CuPy caches the code)."""
    return {k.name: k.cupy(cupy) for k in ALL}
