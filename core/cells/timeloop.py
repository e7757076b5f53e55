"""The compiled time loop: a direction's whole recurrence, forward or back, as one call.

With the fused steps alone (:mod:`core.cells.native`), each timestep still cost Python
a product call, a kernel call and a dozen array views: about 3 µs a step against
0.3 µs of arithmetic at batch 1, hidden 32.  Here the loop over t itself is C, in the
same extension as the kernels: each step one (B, H)@(H, G·H) product through the BLAS
NumPy loaded (its ``cblas_sgemm``/``cblas_dgemm``, found with threadpoolctl and
called through its address), then the cell's fused kernel, with no Python in between
and the GIL released.

The loop is table-driven, so that a cell joins by naming its kernels: every argument
of a kernel is described by where it lives — an array read or written at step t, the
state of the step before (or the initial state), or a fixed buffer or row — with its
strides taken from the NumPy arrays themselves (:data:`FORWARD_ARGS`,
:data:`BACKWARD_ARGS`, :data:`KERNELS`).  Truncated BPTT, states frozen at window
starts and cancellation are handled in Python between chunks of steps.

Nothing here is required: without the compiled steps, without a CBLAS in NumPy's
BLAS library, or for a cell or activation without kernels (ReLU and linear RNNs), the
network runs its Python step loop, which stays the reference.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from . import fused

# How each kernel's arguments are found, in the kernel's order (inputs, then outputs).
# A trailing digit is a gate block.  x: the input projection (G, T, B, H) at t;
# hp: the step's recurrent projection (B, G·H); gates, c, tc, h, hn: the trace at t;
# prev_h, prev_c: the state the step started from; peep, b_hn: (H,) rows;
# dh: the total dL/dh_t, which the loop first sums; dc: dL/dc_t; dx, dhp: the gradient
# buffers at t; dc_carry: dL/dc carried between steps; direct: GRU's direct dL/dh_{t-1}.
FORWARD_ARGS: dict[str, tuple[str, ...]] = {
    "gradlab_lstm_forward": ("x0", "x1", "x2", "x3", "hp0", "hp1", "hp2", "hp3", "prev_c",
                             "gates0", "gates1", "gates2", "gates3", "c", "tc", "h"),
    "gradlab_lstm_peephole_forward": ("x0", "x1", "x2", "x3", "hp0", "hp1", "hp2", "hp3",
                                      "prev_c", "peep0", "peep1", "peep2",
                                      "gates0", "gates1", "gates2", "gates3", "c", "tc", "h"),
    "gradlab_gru_forward": ("x0", "x1", "x2", "hp0", "hp1", "hp2", "prev_h", "b_hn",
                            "gates0", "gates1", "gates2", "hn", "h"),
    "gradlab_rnn_tanh_forward": ("x0", "hp0", "h"),
    "gradlab_rnn_sigmoid_forward": ("x0", "hp0", "h"),
}
BACKWARD_ARGS: dict[str, tuple[str, ...]] = {
    "gradlab_lstm_backward": ("dh", "dc_carry", "gates0", "gates1", "gates2", "gates3", "tc",
                              "prev_c", "dc", "dx0", "dx1", "dx2", "dx3", "dc_carry"),
    "gradlab_lstm_peephole_backward": ("dh", "dc_carry", "gates0", "gates1", "gates2",
                                       "gates3", "tc", "prev_c", "peep0", "peep1", "peep2",
                                       "dc", "dx0", "dx1", "dx2", "dx3", "dc_carry"),
    "gradlab_gru_backward": ("dh", "gates0", "gates1", "gates2", "hn", "prev_h",
                             "dx0", "dx1", "dx2", "dhp0", "dhp1", "dhp2", "direct"),
    "gradlab_rnn_tanh_backward": ("dh", "h", "dx0"),
    "gradlab_rnn_sigmoid_backward": ("dh", "h", "dx0"),
}


def _lstm(P: dict) -> tuple[str, str]:
    if P.get("peep") is None:
        return "gradlab_lstm_forward", "gradlab_lstm_backward"
    return "gradlab_lstm_peephole_forward", "gradlab_lstm_peephole_backward"


def _rnn(P: dict) -> tuple[str, str] | None:
    act = P["activation"]
    if act not in ("tanh", "sigmoid"):
        return None  # ReLU and linear have no fused kernels: the Python loop runs them
    return f"gradlab_rnn_{act}_forward", f"gradlab_rnn_{act}_backward"


# Per cell: its step constants P → (forward kernel, backward kernel), or None.
KERNELS: dict[str, Callable[[dict], tuple[str, str] | None]] = {
    "lstm": _lstm,
    "gru": lambda P: ("gradlab_gru_forward", "gradlab_gru_backward"),
    "rnn": _rnn,
}

# Modes of an argument: read or written at step t; the state before step t (from the
# initial-state pointer at the first step); a buffer or row that does not move.
AT_T, PREV, FIXED = 0, 1, 2
_ARG = 5  # base, step per t, step per row, mode, initial pointer (all bytes or ints)

# The scalar header of a spec, before its arguments (see the C source below).
_FWD_HEAD = ("kernel", "f64", "nargs", "s0", "s1", "T", "reverse", "B", "H", "G", "gemm",
             "gemm64", "w", "hbuf", "first", "h_base", "h_tstep", "h_rstep", "h_init")
_BWD_HEAD = ("kernel", "f64", "nargs", "s0", "s1", "T", "reverse", "B", "H", "G", "gemm",
             "gemm64", "w", "first", "dhp_base", "dhp_tstep", "dH_base", "dH_tstep",
             "dH_bstep", "dh_base", "dh_tstep", "carry", "direct", "dc_carry", "cut")
FWD = {n: i for i, n in enumerate(_FWD_HEAD)}
BWD = {n: i for i, n in enumerate(_BWD_HEAD)}

C_SOURCE = r"""
/* ---- the compiled time loop (core/cells/timeloop.py) ---- */
typedef void (*gl_kernel)(npy_intp, npy_intp, char **, const npy_intp *);
typedef void (*gl_sgemm32)(int, int, int, int32_t, int32_t, int32_t, float, const float *,
                           int32_t, const float *, int32_t, float, float *, int32_t);
typedef void (*gl_sgemm64)(int, int, int, int64_t, int64_t, int64_t, float, const float *,
                           int64_t, const float *, int64_t, float, float *, int64_t);
typedef void (*gl_dgemm32)(int, int, int, int32_t, int32_t, int32_t, double, const double *,
                           int32_t, const double *, int32_t, double, double *, int32_t);
typedef void (*gl_dgemm64)(int, int, int, int64_t, int64_t, int64_t, double, const double *,
                           int64_t, const double *, int64_t, double, double *, int64_t);

/* C = A op(B), row-major CBLAS: op(B) = B^T when trans_b. */
static void gl_gemm(const int64_t *spec, int f64, int trans_b, npy_intp M, npy_intp N,
                    npy_intp K, const char *A, npy_intp lda, const char *Bm, npy_intp ldb,
                    char *C, npy_intp ldc, int gemm_at, int gemm64_at) {
    void *fn = (void *)(intptr_t)spec[gemm_at];
    int tb = trans_b ? 112 : 111;
    if (f64) {
        if (spec[gemm64_at])
            ((gl_dgemm64)fn)(101, 111, tb, M, N, K, 1.0, (const double *)A, lda,
                             (const double *)Bm, ldb, 0.0, (double *)C, ldc);
        else
            ((gl_dgemm32)fn)(101, 111, tb, (int32_t)M, (int32_t)N, (int32_t)K, 1.0,
                             (const double *)A, (int32_t)lda, (const double *)Bm,
                             (int32_t)ldb, 0.0, (double *)C, (int32_t)ldc);
    } else {
        if (spec[gemm64_at])
            ((gl_sgemm64)fn)(101, 111, tb, M, N, K, 1.0f, (const float *)A, lda,
                             (const float *)Bm, ldb, 0.0f, (float *)C, ldc);
        else
            ((gl_sgemm32)fn)(101, 111, tb, (int32_t)M, (int32_t)N, (int32_t)K, 1.0f,
                             (const float *)A, (int32_t)lda, (const float *)Bm,
                             (int32_t)ldb, 0.0f, (float *)C, (int32_t)ldc);
    }
}

/* The pointers of one step's kernel arguments: `args` holds 5 int64 per argument. */
static void gl_pointers(const int64_t *args, int64_t nargs, npy_intp t, npy_intp tp,
                        int at_first, char **ptr, npy_intp *step) {
    for (int64_t i = 0; i < nargs; ++i) {
        const int64_t *a = args + 5 * i;
        char *base = (char *)(intptr_t)a[0];
        step[i] = (npy_intp)a[2];
        if (a[3] == 0) ptr[i] = base + t * a[1];
        else if (a[3] == 1) ptr[i] = at_first ? (char *)(intptr_t)a[4] : base + tp * a[1];
        else ptr[i] = base;
    }
}

#define GL_MAXARGS 32

static PyObject *py_gradlab_forward_loop(PyObject *self, PyObject *arg) {
    /* spec (int64): the header _FWD_HEAD, then 5 values per kernel argument */
    if (!PyArray_Check(arg) || PyArray_TYPE((PyArrayObject *)arg) != NPY_INT64 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)arg)) {
        PyErr_SetString(PyExc_TypeError, "gradlab_forward_loop: spec must be contiguous int64");
        return NULL;
    }
    const int64_t *s = (const int64_t *)PyArray_DATA((PyArrayObject *)arg);
    npy_intp n = PyArray_SIZE((PyArrayObject *)arg);
    int64_t nargs = s[F_nargs], kid = s[F_kernel], nk = (int64_t)(sizeof gl_kernels_f32 / sizeof(gl_kernel));
    if (nargs < 1 || nargs > GL_MAXARGS || n != F_HEAD + 5 * nargs || kid < 0 || kid >= nk) {
        PyErr_SetString(PyExc_ValueError, "gradlab_forward_loop: malformed spec");
        return NULL;
    }
    int f64 = (int)s[F_f64];
    gl_kernel k = f64 ? gl_kernels_f64[kid] : gl_kernels_f32[kid];
    npy_intp s0 = s[F_s0], s1 = s[F_s1], T = s[F_T], B = s[F_B], H = s[F_H], G = s[F_G];
    int rev = (int)s[F_reverse];
    npy_intp item = f64 ? 8 : 4;
    const int64_t *args = s + F_HEAD;
    char *ptr[GL_MAXARGS];
    npy_intp step[GL_MAXARGS];
    Py_BEGIN_ALLOW_THREADS
    for (npy_intp st = s0; st < s1; ++st) {
        npy_intp t = rev ? T - 1 - st : st, tp = rev ? t + 1 : t - 1;
        int at_first = st == s[F_first];
        const char *hprev = at_first ? (const char *)(intptr_t)s[F_h_init]
                                     : (const char *)(intptr_t)s[F_h_base] + tp * s[F_h_tstep];
        gl_gemm(s, f64, 1, B, G * H, H, hprev, s[F_h_rstep] / item, (const char *)(intptr_t)s[F_w], H,
                (char *)(intptr_t)s[F_hbuf], G * H, F_gemm, F_gemm64);
        gl_pointers(args, nargs, t, tp, at_first, ptr, step);
        k(B, H, ptr, step);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_gradlab_backward_loop(PyObject *self, PyObject *arg) {
    /* spec (int64): the header _BWD_HEAD, then 5 values per kernel argument */
    if (!PyArray_Check(arg) || PyArray_TYPE((PyArrayObject *)arg) != NPY_INT64 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)arg)) {
        PyErr_SetString(PyExc_TypeError, "gradlab_backward_loop: spec must be contiguous int64");
        return NULL;
    }
    const int64_t *s = (const int64_t *)PyArray_DATA((PyArrayObject *)arg);
    npy_intp n = PyArray_SIZE((PyArrayObject *)arg);
    int64_t nargs = s[B_nargs], kid = s[B_kernel], nk = (int64_t)(sizeof gl_kernels_f32 / sizeof(gl_kernel));
    if (nargs < 1 || nargs > GL_MAXARGS || n != B_HEAD + 5 * nargs || kid < 0 || kid >= nk) {
        PyErr_SetString(PyExc_ValueError, "gradlab_backward_loop: malformed spec");
        return NULL;
    }
    int f64 = (int)s[B_f64];
    gl_kernel k = f64 ? gl_kernels_f64[kid] : gl_kernels_f32[kid];
    npy_intp s0 = s[B_s0], s1 = s[B_s1], T = s[B_T], B = s[B_B], H = s[B_H], G = s[B_G];
    int rev = (int)s[B_reverse];
    const int64_t *args = s + B_HEAD;
    char *ptr[GL_MAXARGS];
    npy_intp step[GL_MAXARGS];
    char *carry = (char *)(intptr_t)s[B_carry], *direct = (char *)(intptr_t)s[B_direct];
    char *dcc = (char *)(intptr_t)s[B_dc_carry];
    npy_intp item = f64 ? 8 : 4;
    Py_BEGIN_ALLOW_THREADS
    for (npy_intp st = s1 - 1; st >= s0; --st) {
        npy_intp t = rev ? T - 1 - st : st, tp = rev ? t + 1 : t - 1;
        /* the total dL/dh_t: from above (any strides) plus the carry from step t+1 */
        const char *above = (const char *)(intptr_t)s[B_dH_base] + t * s[B_dH_tstep];
        char *dh = (char *)(intptr_t)s[B_dh_base] + t * s[B_dh_tstep];
        for (npy_intp b = 0; b < B; ++b) {
            if (f64) {
                const double *u = (const double *)(above + b * s[B_dH_bstep]);
                const double *v = (const double *)carry + b * H;
                double *w = (double *)dh + b * H;
                for (npy_intp j = 0; j < H; ++j) w[j] = u[j] + v[j];
            } else {
                const float *u = (const float *)(above + b * s[B_dH_bstep]);
                const float *v = (const float *)carry + b * H;
                float *w = (float *)dh + b * H;
                for (npy_intp j = 0; j < H; ++j) w[j] = u[j] + v[j];
            }
        }
        gl_pointers(args, nargs, t, tp, st == s[B_first], ptr, step);
        k(B, H, ptr, step);
        if (st == s0 && s[B_cut]) {  /* truncation: the state before is a constant */
            memset(carry, 0, (size_t)(B * H * item));
            if (dcc) memset(dcc, 0, (size_t)(B * H * item));
            continue;
        }
        /* dh_{t-1} = dL/d(projection)_t W_hh (+ the direct path) */
        gl_gemm(s, f64, 0, B, H, G * H, (const char *)(intptr_t)s[B_dhp_base] + t * s[B_dhp_tstep], G * H,
                (const char *)(intptr_t)s[B_w], H, carry, H, B_gemm, B_gemm64);
        if (direct) {
            if (f64) {
                double *c = (double *)carry; const double *d = (const double *)direct;
                for (npy_intp i = 0; i < B * H; ++i) c[i] += d[i];
            } else {
                float *c = (float *)carry; const float *d = (const float *)direct;
                for (npy_intp i = 0; i < B * H; ++i) c[i] += d[i];
            }
        }
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
"""

METHODS = ("gradlab_forward_loop", "gradlab_backward_loop")


def source(kernels: tuple[fused.Fused, ...] = fused.ALL) -> str:
    """The loop's C text, placed after the kernels in the extension's source: the
    spec's field positions, the kernel tables (in the order of ``kernels``) and the two
    loop entries."""
    lines = [f"#define F_{n} {i}" for i, n in enumerate(_FWD_HEAD)]
    lines += [f"#define B_{n} {i}" for i, n in enumerate(_BWD_HEAD)]
    lines += [f"#define F_HEAD {len(_FWD_HEAD)}", f"#define B_HEAD {len(_BWD_HEAD)}"]
    head, rest = C_SOURCE.split("#define GL_MAXARGS 32", 1)
    for sfx in ("f32", "f64"):
        names = ", ".join(f"{k.name}_{sfx}" for k in kernels)
        lines.append(f"static const gl_kernel gl_kernels_{sfx}[] = {{{names}}};")
    return head + "\n".join(lines) + "\n\n#define GL_MAXARGS 32" + rest


def method_table() -> str:
    """Lines of the extension's method table for the loop entries."""
    return "\n".join(f'    {{"{m}", (PyCFunction)py_{m}, METH_O, NULL}},' for m in METHODS)


# ----------------------------------------------------------------------------- BLAS

# CBLAS names by library, with whether their integers are 64-bit: NumPy's own OpenBLAS
# (symbols prefixed, ILP64), then plain ones.
_GEMM_NAMES = (("scipy_cblas_{p}gemm64_", True), ("cblas_{p}gemm64_", True),
               ("cblas_{p}gemm", False))


@functools.cache
def blas_gemm() -> tuple[int, int, bool] | str:
    """(address of sgemm, of dgemm, 64-bit integers) in the BLAS NumPy loaded, or a
    sentence saying why there is none."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl is not installed"
    paths = [p["filepath"] for p in threadpool_info() if p.get("user_api") == "blas"]
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pattern, ilp64 in _GEMM_NAMES:
            try:
                s = getattr(lib, pattern.format(p="s"))
                d = getattr(lib, pattern.format(p="d"))
            except AttributeError:
                continue
            addr = [ctypes.cast(f, ctypes.c_void_p).value for f in (s, d)]
            return addr[0], addr[1], ilp64
    return f"no CBLAS gemm in {', '.join(map(os.path.basename, paths)) or 'any loaded BLAS'}"


# ----------------------------------------------------------------------------- driving


def _ptr(a: Any) -> int:
    return a.__array_interface__["data"][0]


class _Spec:
    """The int64 spec handed to a loop: its header, then each argument's 5 values."""

    def __init__(self, head: dict[str, int], nargs: int):
        self.head = head
        self.a = np.zeros(len(head) + _ARG * nargs, dtype=np.int64)
        self.keep: list[Any] = []  # every array a pointer was taken from stays alive
        self.names: tuple[str, ...] = ()  # the kernel's arguments
        self.h_rstep = 0  # row step of the hidden states, in bytes

    def set(self, name: str, value: int) -> None:
        self.a[self.head[name]] = value

    def arg(self, i: int, base: int, tstep: int, rstep: int, mode: int, init: int = 0) -> None:
        j = len(self.head) + _ARG * i
        self.a[j:j + _ARG] = (base, tstep, rstep, mode, init)

    def init(self, i: int, ptr: int) -> None:
        self.a[len(self.head) + _ARG * i + 4] = ptr


class Unsuitable(Exception):
    """An array's layout the loop cannot address (the Python loop runs instead)."""


def _rows(a: Any, item: int) -> int:
    """The row step in bytes of a (B, H) array whose rows are contiguous."""
    if a.ndim != 2 or (a.shape[1] > 1 and a.strides[1] != item):
        raise Unsuitable(f"rows not contiguous: strides {a.strides}")
    return a.strides[0]


def _seq(a: Any, item: int) -> tuple[int, int]:
    """(step per t, row step) in bytes of a (T, B, H) array with contiguous rows."""
    if a.ndim != 3 or (a.shape[2] > 1 and a.strides[2] != item):
        raise Unsuitable(f"rows not contiguous: strides {a.strides}")
    return a.strides[0], a.strides[1]


def kernels_for(backend: Any, cell: Any, P: dict) -> tuple[dict[str, Any], int, int] | None:
    """(the compiled table, forward kernel index, backward kernel index) when the compiled
    time loop can run this direction on ``backend``, else None."""
    if backend.name != "numpy" or not getattr(backend, "time_loop", True):
        return None
    table = backend.kernels
    if table is None or METHODS[0] not in table or isinstance(blas_gemm(), str):
        return None
    pick = KERNELS.get(cell.NAME)
    names = pick(P) if pick is not None else None
    if names is None or names[0] not in FORWARD_ARGS or names[1] not in BACKWARD_ARGS:
        return None
    order = [k.name for k in fused.ALL]
    if names[0] not in order or names[1] not in order:
        return None
    return table, order.index(names[0]), order.index(names[1])


def status() -> str:
    """Whether the compiled time loop can run here, and if not, why."""
    from . import native

    table = native.kernels()
    if table is None:
        return f"no compiled time loop ({native.status()})"
    if METHODS[0] not in table:
        return "no compiled time loop in the built extension"
    gemm = blas_gemm()
    if isinstance(gemm, str):
        return f"no compiled time loop: {gemm}"
    return "compiled time loop (C, NumPy's BLAS)"


def chunk_steps(B: int, H: int, G: int) -> int:
    """Steps per compiled call: about 20 ms of products at 50 GFLOP/s (between calls a
    cancelled pass stops), at most 256."""
    return max(1, min(256, int(1e9 // max(1.0, 2.0 * B * H * G * H))))


def run_forward(net: Any, D: Any, xproj: Any, W_hh: Any, h_first: Any, c_first: Any,
                fz: Any, tbptt: int | None, chunk: int | None = None) -> bool:
    """The forward recurrence of direction ``D`` in compiled chunks; False (nothing
    done) when the compiled loop cannot run it.  ``xproj`` (G, T, B, H) holds the
    input projections with the biases, ``h_first``/``c_first`` (B, H) the initial
    state, ``fz`` the frozen trace of that layer (states at window starts) or None."""
    found = kernels_for(net.backend, D.cell, D.P)
    if found is None:
        return False
    table, kid, _ = found
    try:
        spec = _forward_spec(net, D, xproj, W_hh, h_first, c_first, kid)
    except Unsuitable:
        return False
    loop = table[METHODS[0]]
    G, T, B, H = xproj.shape
    chunk = chunk or chunk_steps(B, H, G)
    S = D.S
    cut = tbptt if (fz is not None and tbptt) else None
    s0 = 0
    h0, c0 = h_first, c_first
    while s0 < T:
        s1 = min(T, s0 + chunk)
        if cut:
            s1 = min(s1, (s0 // cut + 1) * cut)
        if s0 > 0:
            tp = D.order(T)[s0 - 1]
            if cut and s0 % cut == 0:  # a constant at the window start
                h0 = fz.h[tp]
                c0 = fz.c[tp] if fz.c is not None else c_first
            else:
                h0 = S["h"][tp]
                c0 = S["c"][tp] if "c" in S else c_first
        _set_first(spec, net, h0, c0, s0)
        spec.set("s0", s0)
        spec.set("s1", s1)
        if net.control is not None:
            net.control.check()
        loop(spec.a)
        s0 = s1
    return True


def _set_first(spec: _Spec, net: Any, h0: Any, c0: Any, s0: int) -> None:
    """Point the loop's first step (``s0``) at the states ``h0``/``c0`` it starts from."""
    dt = np.dtype(net.backend.dtype)
    item = dt.itemsize
    h0 = np.ascontiguousarray(h0, dtype=dt)
    c0 = np.ascontiguousarray(c0, dtype=dt)
    spec.keep += [h0, c0]
    if _rows(h0, item) != spec.h_rstep:
        raise Unsuitable("initial state rows")
    spec.set("first", s0)
    spec.set("h_init", _ptr(h0))
    for i, name in enumerate(spec.names):
        if name == "prev_h":
            spec.init(i, _ptr(h0))
        elif name == "prev_c":
            spec.init(i, _ptr(c0))


def _common(spec: _Spec, net: Any, D: Any, T: int, B: int, kid: int, W_hh: Any,
            gemm: tuple[int, int, bool]) -> None:
    dt = np.dtype(net.backend.dtype)
    spec.set("kernel", kid)
    spec.set("f64", int(dt == np.float64))
    spec.set("T", T)
    spec.set("reverse", int(D.reverse))
    spec.set("B", B)
    spec.set("H", D.H)
    spec.set("G", D.cell.BLOCKS)
    spec.set("gemm", gemm[1] if dt == np.float64 else gemm[0])
    spec.set("gemm64", int(gemm[2]))
    W = np.ascontiguousarray(W_hh, dtype=dt)
    spec.keep.append(W)
    spec.set("w", _ptr(W))


def _forward_spec(net: Any, D: Any, xproj: Any, W_hh: Any, h_first: Any, c_first: Any,
                  kid: int) -> _Spec:
    dt = np.dtype(net.backend.dtype)
    item = dt.itemsize
    G, T, B, H = xproj.shape
    names = FORWARD_ARGS[fused.ALL[kid].name]
    spec = _Spec(FWD, len(names))
    spec.names = names
    _common(spec, net, D, T, B, kid, W_hh, blas_gemm())
    spec.set("nargs", len(names))
    hbuf = np.empty((B, G * H), dtype=dt)
    spec.keep += [hbuf, xproj]
    spec.set("hbuf", _ptr(hbuf))
    S = D.S
    h_t, h_r = _seq(S["h"], item)
    spec.set("h_base", _ptr(S["h"]))
    spec.set("h_tstep", h_t)
    spec.set("h_rstep", h_r)
    spec.h_rstep = h_r
    for i, name in enumerate(names):
        base, g = name.rstrip("0123456789"), name[len(name.rstrip("0123456789")):]
        g = int(g) if g else 0
        if base == "x":
            a = xproj[g]
            ts, rs = _seq(a, item)
            spec.arg(i, _ptr(a), ts, rs, AT_T)
        elif base == "hp":
            a = hbuf[:, g * H:(g + 1) * H]
            spec.arg(i, _ptr(a), 0, _rows(a, item), FIXED)
        elif base in ("prev_h", "prev_c"):
            a = S["h" if base == "prev_h" else "c"]
            ts, rs = _seq(a, item)
            if rs != h_r:
                raise Unsuitable("state rows")
            spec.arg(i, _ptr(a), ts, rs, PREV)
        elif base in ("gates", "c", "tc", "h", "hn"):
            a = S[base][g] if base == "gates" else S[base]
            ts, rs = _seq(a, item)
            spec.arg(i, _ptr(a), ts, rs, AT_T)
        elif base in ("peep", "b_hn"):
            a = D.P[base][g] if base == "peep" else D.P[base]
            a = np.ascontiguousarray(a, dtype=dt)
            spec.keep.append(a)
            spec.arg(i, _ptr(a), 0, 0, FIXED)
        else:
            raise Unsuitable(f"unknown forward argument {name!r}")
    _set_first(spec, net, h_first, c_first, 0)
    return spec


def run_backward(net: Any, D: Any, dH: Any, W_hh: Any, tbptt: int | None, h_first: Any,
                 c_first: Any, chunk: int | None = None) -> tuple[Any, Any] | None:
    """BPTT through direction ``D`` in compiled chunks, writing D.dh, D.dc and the
    gradient buffers D.dxp/D.dhp as the Python loop does; returns the carries
    (dL/dh_{-1}, dL/dc_{-1}) — the gradients of the initial state — or None when the
    compiled loop cannot run it (nothing written)."""
    found = kernels_for(net.backend, D.cell, D.P)
    if found is None:
        return None
    table, _, kid = found
    try:
        spec, carry, dc_carry = _backward_spec(net, D, dH, W_hh, h_first, c_first, kid)
    except Unsuitable:
        return None
    loop = table[METHODS[1]]
    T, B, H = dH.shape
    chunk = chunk or chunk_steps(B, H, D.cell.BLOCKS)
    s1 = T
    while s1 > 0:
        s0 = max(0, s1 - chunk)
        if tbptt:
            s0 = max(s0, ((s1 - 1) // tbptt) * tbptt)
        spec.set("s0", s0)
        spec.set("s1", s1)
        spec.set("cut", int(bool(tbptt) and s0 > 0 and s0 % tbptt == 0))
        if net.control is not None:
            net.control.check()
        loop(spec.a)
        s1 = s0
    return carry, dc_carry


def _backward_spec(net: Any, D: Any, dH: Any, W_hh: Any, h_first: Any, c_first: Any,
                   kid: int) -> tuple[_Spec, Any, Any]:
    dt = np.dtype(net.backend.dtype)
    item = dt.itemsize
    T, B, H = dH.shape
    names = BACKWARD_ARGS[fused.ALL[kid].name]
    spec = _Spec(BWD, len(names))
    spec.names = names
    _common(spec, net, D, T, B, kid, W_hh, blas_gemm())
    spec.set("nargs", len(names))
    S = D.S
    carry = np.zeros((B, H), dtype=dt)
    dc_carry = np.zeros((B, H), dtype=dt) if D.cell.HAS_CELL_STATE else None
    direct = np.empty((B, H), dtype=dt) if "direct" in names else None
    spec.keep += [carry, dc_carry, direct, dH]
    spec.set("carry", _ptr(carry))
    spec.set("direct", 0 if direct is None else _ptr(direct))
    spec.set("dc_carry", 0 if dc_carry is None else _ptr(dc_carry))
    spec.set("first", 0)
    tm = D.dhp.transpose(1, 2, 0, 3)  # the time-major (T, B, G, H) memory behind it
    if not tm.flags.c_contiguous:
        raise Unsuitable("gradient buffer not time-major")
    spec.set("dhp_base", _ptr(tm))
    spec.set("dhp_tstep", tm.strides[0])
    ts, bs = _seq(dH, item)
    spec.set("dH_base", _ptr(dH))
    spec.set("dH_tstep", ts)
    spec.set("dH_bstep", bs)
    ts, rs = _seq(D.dh, item)
    if rs != H * item:
        raise Unsuitable("dL/dh rows")
    spec.set("dh_base", _ptr(D.dh))
    spec.set("dh_tstep", ts)
    h0 = np.ascontiguousarray(h_first, dtype=dt)
    c0 = np.ascontiguousarray(c_first, dtype=dt)
    spec.keep += [h0, c0]
    for i, name in enumerate(names):
        base, g = name.rstrip("0123456789"), name[len(name.rstrip("0123456789")):]
        g = int(g) if g else 0
        if base in ("dx", "dhp"):
            a = (D.dxp if base == "dx" else D.dhp)[g]
            ts, rs = _seq(a, item)
            spec.arg(i, _ptr(a), ts, rs, AT_T)
        elif base == "dh":
            spec.arg(i, _ptr(D.dh), D.dh.strides[0], H * item, AT_T)
        elif base == "dc":
            ts, rs = _seq(D.dc, item)
            spec.arg(i, _ptr(D.dc), ts, rs, AT_T)
        elif base == "dc_carry":
            spec.arg(i, _ptr(dc_carry), 0, H * item, FIXED)
        elif base == "direct":
            spec.arg(i, _ptr(direct), 0, H * item, FIXED)
        elif base in ("prev_h", "prev_c"):
            a = S["h" if base == "prev_h" else "c"]
            init = h0 if base == "prev_h" else c0
            ts, rs = _seq(a, item)
            if rs != _rows(init, item):
                raise Unsuitable("state rows")
            spec.arg(i, _ptr(a), ts, rs, PREV, _ptr(init))
        elif base in ("gates", "c", "tc", "h", "hn"):
            a = S[base][g] if base == "gates" else S[base]
            ts, rs = _seq(a, item)
            spec.arg(i, _ptr(a), ts, rs, AT_T)
        elif base in ("peep", "b_hn"):
            a = D.P[base][g] if base == "peep" else D.P[base]
            a = np.ascontiguousarray(a, dtype=dt)
            spec.keep.append(a)
            spec.arg(i, _ptr(a), 0, 0, FIXED)
        else:
            raise Unsuitable(f"unknown backward argument {name!r}")
    return spec, carry, dc_carry
