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

Cells without recurrent weights (minGRU, minLSTM: ``HIDDEN_WEIGHTS`` False) run the
same loop with no product: the spec's ``w`` is -1, the forward step is the kernel alone
and the backward carry is the kernel's direct path, dL/dh_{t-1} = dh ⊙ (1 − z) or
dh ⊙ f′.  There it also outruns the scan over time (core.scan) at every size measured,
so the network takes the loop wherever it can run.

Weight gradients stay after the loop, one product over all steps, not on the idle core
during it.  Measured 2026-12-02 on 2 cores (load 0.2–0.4), a proxy of the backward
loop's products and the dW_hh product in float32, median of 7: with a second thread
taking dW over each finished chunk while the loop (GIL released) runs the next, both on
one BLAS thread, against the loop then dW on two BLAS threads — (B, H, T) = (32, 128,
200): 17.1 ms against 12.3 (the loop's per-step products lose more on one thread than
the overlap saves; at the default chunk the whole sequence is one chunk anyway);
(64, 256, 500): 142 ms against 147, within the noise (two BLAS threads already share
these products well); (1, 32, 100): 0.7 ms against 0.2 (a thread's start and hand-over
cost more than the pass).  On a machine whose other core is busy there is no idle core
to take.

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
# hp: the step's recurrent projection (B, G·H); gates, raw, c, tc, h, hn: the trace at t;
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
    "gradlab_cifg_forward": ("x0", "x1", "x2", "hp0", "hp1", "hp2", "prev_c",
                             "gates0", "gates1", "gates2", "c", "tc", "h"),
    "gradlab_mingru_forward": ("x0", "x1", "prev_h", "gates0", "gates1", "h"),
    "gradlab_minlstm_forward": ("x0", "x1", "x2", "prev_h", "gates0", "gates1", "gates2",
                                "raw0", "raw1", "h"),
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
    "gradlab_cifg_backward": ("dh", "dc_carry", "gates0", "gates1", "gates2", "tc", "prev_c",
                              "dc", "dx0", "dx1", "dx2", "dc_carry"),
    "gradlab_mingru_backward": ("dh", "gates0", "gates1", "prev_h", "dx0", "dx1", "direct"),
    "gradlab_minlstm_backward": ("dh", "gates0", "gates1", "gates2", "raw0", "raw1", "prev_h",
                                 "dx0", "dx1", "dx2", "direct"),
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
    "cifg": lambda P: ("gradlab_cifg_forward", "gradlab_cifg_backward"),
    "mingru": lambda P: ("gradlab_mingru_forward", "gradlab_mingru_backward"),
    "minlstm": lambda P: ("gradlab_minlstm_forward", "gradlab_minlstm_backward"),
}

# Modes of an argument: read or written at step t; the state before step t (from the
# initial-state pointer at the first step); a buffer or row that does not move.
AT_T, PREV, FIXED = 0, 1, 2
# Per argument: which array (an index into the arrays passed with the spec), the offset
# into it, the step per t and per row (bytes), the mode, and the array of the initial
# state (PREV only, else -1).
_ARG = 6

# The scalar header of a spec, before its arguments (see the C source below).  Fields
# naming an array hold its index in the arrays passed beside the spec (-1: none).
_FWD_HEAD = ("kernel", "f64", "nargs", "s0", "s1", "T", "reverse", "B", "H", "G", "gemm",
             "gemm64", "first", "narrays", "w", "hbuf", "h", "h_tstep", "h_rstep", "h_init",
             "bias")
_BWD_HEAD = ("kernel", "f64", "nargs", "s0", "s1", "T", "reverse", "B", "H", "G", "gemm",
             "gemm64", "first", "narrays", "w", "dhp", "dhp_tstep", "dH", "dH_tstep",
             "dH_bstep", "dh", "dh_tstep", "carry", "direct", "dc_carry", "cut")
_FIELDS = {head: {n: i for i, n in enumerate(head)} for head in (_FWD_HEAD, _BWD_HEAD)}


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

/* C = A op(B) + beta C, row-major CBLAS (101 row-major, 111 no transpose, 112
   transpose); beta is 0 or 1. */
static void gl_gemm(void *fn, int ilp64, int f64, int trans_b, npy_intp M, npy_intp N,
                    npy_intp K, const char *A, npy_intp lda, const char *Bm, npy_intp ldb,
                    char *C, npy_intp ldc, int beta) {
    int tb = trans_b ? 112 : 111;
    if (f64) {
        if (ilp64)
            ((gl_dgemm64)fn)(101, 111, tb, M, N, K, 1.0, (const double *)A, lda,
                             (const double *)Bm, ldb, (double)beta, (double *)C, ldc);
        else
            ((gl_dgemm32)fn)(101, 111, tb, (int32_t)M, (int32_t)N, (int32_t)K, 1.0,
                             (const double *)A, (int32_t)lda, (const double *)Bm,
                             (int32_t)ldb, (double)beta, (double *)C, (int32_t)ldc);
    } else {
        if (ilp64)
            ((gl_sgemm64)fn)(101, 111, tb, M, N, K, 1.0f, (const float *)A, lda,
                             (const float *)Bm, ldb, (float)beta, (float *)C, ldc);
        else
            ((gl_sgemm32)fn)(101, 111, tb, (int32_t)M, (int32_t)N, (int32_t)K, 1.0f,
                             (const float *)A, (int32_t)lda, (const float *)Bm,
                             (int32_t)ldb, (float)beta, (float *)C, (int32_t)ldc);
    }
}

#define GL_MAXARGS 32
#define GL_MAXARRAYS 64
#if F_kernel != 0 || B_kernel != 0 || F_f64 != 1 || B_f64 != 1 || F_nargs != 2 || \
    B_nargs != 2 || F_narrays != B_narrays
#error "gl_spec reads kernel, f64, nargs and narrays at the same places in both specs"
#endif

/* Check the spec (contiguous int64, header of `head` fields then 6 per argument) and
   the arrays beside it (a tuple of NumPy arrays, one float dtype); fill `data` with
   their data pointers.  Returns the spec, or NULL with an exception set. */
static const int64_t *gl_spec(PyObject *const *args, Py_ssize_t nargs, int head,
                              const int *array_fields, int nfields, const char *name,
                              char **data) {
    if (nargs != 2 || !PyArray_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_Format(PyExc_TypeError, "%s takes a spec and a tuple of arrays", name);
        return NULL;
    }
    PyArrayObject *sp = (PyArrayObject *)args[0];
    if (PyArray_TYPE(sp) != NPY_INT64 || !PyArray_IS_C_CONTIGUOUS(sp)) {
        PyErr_Format(PyExc_TypeError, "%s: spec must be contiguous int64", name);
        return NULL;
    }
    const int64_t *s = (const int64_t *)PyArray_DATA(sp);
    npy_intp n = PyArray_SIZE(sp);
    Py_ssize_t na = PyTuple_GET_SIZE(args[1]);
    int64_t nk = (int64_t)(sizeof gl_kernels_f32 / sizeof(gl_kernel));
    if (n < head || s[2] < 1 || s[2] > GL_MAXARGS || n != head + 6 * s[2] || s[0] < 0 ||
        s[0] >= nk || na > GL_MAXARRAYS || s[F_narrays] != na) {
        PyErr_Format(PyExc_ValueError, "%s: malformed spec", name);
        return NULL;
    }
    int type = s[1] ? NPY_FLOAT64 : NPY_FLOAT32;
    for (Py_ssize_t i = 0; i < na; ++i) {
        PyObject *a = PyTuple_GET_ITEM(args[1], i);
        if (!PyArray_Check(a) || PyArray_TYPE((PyArrayObject *)a) != type) {
            PyErr_Format(PyExc_TypeError, "%s: array %zd is not of the spec's dtype", name, i);
            return NULL;
        }
        data[i] = PyArray_BYTES((PyArrayObject *)a);
    }
    for (int i = 0; i < nfields; ++i)
        if (s[array_fields[i]] < -1 || s[array_fields[i]] >= na) {
            PyErr_Format(PyExc_ValueError, "%s: malformed spec (array index)", name);
            return NULL;
        }
    for (int64_t i = 0; i < s[2]; ++i) {
        const int64_t *a = s + head + 6 * i;
        if (a[0] < 0 || a[0] >= na || a[5] < -1 || a[5] >= na || (a[4] == 1 && a[5] < 0)) {
            PyErr_Format(PyExc_ValueError, "%s: malformed spec (argument %d)", name, (int)i);
            return NULL;
        }
    }
    return s;
}

static char *gl_at(char **data, int64_t i) { return i < 0 ? NULL : data[i]; }

/* The pointers of one step's kernel arguments. */
static void gl_pointers(const int64_t *args, int64_t nargs, char **data, npy_intp t,
                        npy_intp tp, int at_first, char **ptr, npy_intp *step) {
    for (int64_t i = 0; i < nargs; ++i) {
        const int64_t *a = args + 6 * i;
        char *base = data[a[0]] + a[1];
        step[i] = (npy_intp)a[3];
        if (a[4] == 0) ptr[i] = base + t * a[2];
        else if (a[4] == 1) ptr[i] = at_first ? data[a[5]] + a[1] : base + tp * a[2];
        else ptr[i] = base;
    }
}

static const int gl_fwd_arrays[] = {F_w, F_hbuf, F_h, F_h_init, F_bias};
static const int gl_bwd_arrays[] = {B_w, B_dhp, B_dH, B_dh, B_carry, B_direct, B_dc_carry};

static PyObject *py_gradlab_forward_loop(PyObject *self, PyObject *const *args,
                                         Py_ssize_t nargs) {
    char *data[GL_MAXARRAYS];
    const int64_t *s = gl_spec(args, nargs, F_HEAD, gl_fwd_arrays, 5, "gradlab_forward_loop",
                               data);
    if (s == NULL) return NULL;
    /* w = -1: a cell without recurrent weights (minGRU, minLSTM), no product */
    if ((s[F_w] >= 0 && s[F_hbuf] < 0) || (s[F_w] < 0 && s[F_bias] >= 0) || s[F_h] < 0 ||
        s[F_h_init] < 0) {
        PyErr_SetString(PyExc_ValueError, "gradlab_forward_loop: malformed spec (arrays)");
        return NULL;
    }
    int f64 = (int)s[F_f64];
    gl_kernel k = f64 ? gl_kernels_f64[s[F_kernel]] : gl_kernels_f32[s[F_kernel]];
    npy_intp T = s[F_T], B = s[F_B], H = s[F_H], G = s[F_G], item = f64 ? 8 : 4;
    int rev = (int)s[F_reverse];
    void *gemm = (void *)(intptr_t)s[F_gemm];
    const char *bias = gl_at(data, s[F_bias]), *w = gl_at(data, s[F_w]);
    const int64_t *a = s + F_HEAD;
    char *ptr[GL_MAXARGS];
    npy_intp step[GL_MAXARGS];
    Py_BEGIN_ALLOW_THREADS
    for (npy_intp st = s[F_s0]; st < s[F_s1]; ++st) {
        npy_intp t = rev ? T - 1 - st : st, tp = rev ? t + 1 : t - 1;
        int at_first = st == s[F_first];
        if (w) {
            const char *hprev = at_first ? data[s[F_h_init]] : data[s[F_h]] + tp * s[F_h_tstep];
            if (bias)  /* the biases, folded in here: the product adds onto them */
                for (npy_intp b = 0; b < B; ++b)
                    memcpy(data[s[F_hbuf]] + b * G * H * item, bias, (size_t)(G * H * item));
            gl_gemm(gemm, (int)s[F_gemm64], f64, 1, B, G * H, H, hprev, s[F_h_rstep] / item,
                    w, H, data[s[F_hbuf]], G * H, bias != NULL);
        }
        gl_pointers(a, s[F_nargs], data, t, tp, at_first, ptr, step);
        k(B, H, ptr, step);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_gradlab_backward_loop(PyObject *self, PyObject *const *args,
                                          Py_ssize_t nargs) {
    char *data[GL_MAXARRAYS];
    const int64_t *s = gl_spec(args, nargs, B_HEAD, gl_bwd_arrays, 7,
                               "gradlab_backward_loop", data);
    if (s == NULL) return NULL;
    /* w = -1: no recurrent weights, the direct path is the whole dL/dh_{t-1} */
    if ((s[B_w] >= 0 && s[B_dhp] < 0) || (s[B_w] < 0 && s[B_direct] < 0) || s[B_dH] < 0 ||
        s[B_dh] < 0 || s[B_carry] < 0) {
        PyErr_SetString(PyExc_ValueError, "gradlab_backward_loop: malformed spec (arrays)");
        return NULL;
    }
    int f64 = (int)s[B_f64];
    gl_kernel k = f64 ? gl_kernels_f64[s[B_kernel]] : gl_kernels_f32[s[B_kernel]];
    npy_intp T = s[B_T], B = s[B_B], H = s[B_H], G = s[B_G], item = f64 ? 8 : 4;
    int rev = (int)s[B_reverse];
    void *gemm = (void *)(intptr_t)s[B_gemm];
    const int64_t *a = s + B_HEAD;
    char *ptr[GL_MAXARGS];
    npy_intp step[GL_MAXARGS];
    char *carry = data[s[B_carry]], *direct = gl_at(data, s[B_direct]);
    char *dcc = gl_at(data, s[B_dc_carry]), *w = gl_at(data, s[B_w]);
    Py_BEGIN_ALLOW_THREADS
    for (npy_intp st = s[B_s1] - 1; st >= s[B_s0]; --st) {
        npy_intp t = rev ? T - 1 - st : st, tp = rev ? t + 1 : t - 1;
        /* the total dL/dh_t: from above (any strides) plus the carry from step t+1 */
        const char *above = data[s[B_dH]] + t * s[B_dH_tstep];
        char *dh = data[s[B_dh]] + t * s[B_dh_tstep];
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
        gl_pointers(a, s[B_nargs], data, t, tp, st == s[B_first], ptr, step);
        k(B, H, ptr, step);
        if (st == s[B_s0] && s[B_cut]) {  /* truncation: the state before is a constant */
            memset(carry, 0, (size_t)(B * H * item));
            if (dcc) memset(dcc, 0, (size_t)(B * H * item));
            continue;
        }
        if (!w) {  /* no W_hh: dh_{t-1} is the direct path alone */
            memcpy(carry, direct, (size_t)(B * H * item));
            continue;
        }
        /* dh_{t-1} = dL/d(projection)_t W_hh (+ the direct path) */
        gl_gemm(gemm, (int)s[B_gemm64], f64, 0, B, H, G * H,
                data[s[B_dhp]] + t * s[B_dhp_tstep], G * H, w, H, carry, H, 0);
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
    for sfx in ("f32", "f64"):
        names = ", ".join(f"{k.name}_{sfx}" for k in kernels)
        lines.append(f"static const gl_kernel gl_kernels_{sfx}[] = {{{names}}};")
    types, loops = C_SOURCE.split("#define GL_MAXARGS 32", 1)
    return types + "\n".join(lines) + "\n\n#define GL_MAXARGS 32" + loops


def method_table() -> str:
    """Lines of the extension's method table for the loop entries."""
    return "\n".join(f'    {{"{m}", (PyCFunction)(void (*)(void))py_{m}, METH_FASTCALL, NULL}},'
                     for m in METHODS)


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
    paths.sort(key=lambda path: "numpy" not in path)  # NumPy's own first, if several
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


class Unsuitable(Exception):
    """An array's layout the loop cannot address (the Python loop runs instead)."""


def _split(name: str) -> tuple[str, int]:
    """``"gates2"`` → ("gates", 2); ``"h"`` → ("h", 0)."""
    base = name.rstrip("0123456789")
    return base, int(name[len(base):] or 0)


@functools.cache
def _plan(kernel: str, forward: bool) -> tuple[tuple[str, int], ...]:
    """A kernel's arguments as (source, gate block) pairs."""
    return tuple(_split(n) for n in (FORWARD_ARGS if forward else BACKWARD_ARGS)[kernel])


class _Spec:
    """A loop's int64 spec and the arrays it points into (by index, never by address:
    the extension takes each array's data pointer itself).  Built for the first pass of
    each layout (a few microseconds per argument), then kept (:data:`_SPECS`)."""

    def __init__(self, head: tuple[str, ...], item: int):
        self.field = _FIELDS[head]
        self.head = [0] * len(head)
        self.args: list[int] = []
        self.item = item
        self.arrays: list[Any] = []
        self._index: dict[int, int] = {}

    def array(self, a: Any) -> int:
        """The index of ``a`` among the spec's arrays (added, its rows checked, once)."""
        i = self._index.get(id(a))
        if i is None:
            if a.ndim and a.shape[-1] > 1 and a.strides[-1] != self.item:
                raise Unsuitable(f"rows not contiguous: strides {a.strides}")
            i = self._index[id(a)] = len(self.arrays)
            self.arrays.append(a)
        return i

    def slot(self, a: Any) -> int:
        """A place of its own among the arrays for ``a``, which the caller swaps later
        (the state a chunk starts from): never shared with an equal array."""
        self.arrays.append(a)
        return len(self.arrays) - 1

    def set(self, name: str, value: int) -> None:
        self.head[self.field[name]] = value

    def arg(self, a: Any, offset: int, tstep: int, rstep: int, mode: int,
            init: int = -1) -> None:
        self.args += (self.array(a), offset, tstep, rstep, mode, init)

    def done(self) -> np.ndarray:
        self.set("narrays", len(self.arrays))
        self.set("nargs", len(self.args) // _ARG)
        return np.array(self.head + self.args, dtype=np.int64)


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
    order = _kernel_index()
    if names[0] not in order or names[1] not in order:
        return None
    return table, order[names[0]], order[names[1]]


@functools.cache
def _kernel_index() -> dict[str, int]:
    """Each kernel's place in the extension's tables (the order of fused.ALL)."""
    return {k.name: i for i, k in enumerate(fused.ALL)}


# Cells whose biases all add to the pre-activation, so that the forward loop can add
# them in the step (onto which the recurrent product accumulates) instead of in a pass
# over all steps' input projections.  Not GRU: r multiplies b_hn and not b_in; not
# minGRU/minLSTM, whose steps have no product to start from the biases.
FOLDS_BIAS = frozenset({"lstm", "rnn", "cifg"})


def folds_bias(backend: Any, cell: Any, P: dict) -> bool:
    """Whether the compiled forward loop will add this direction's biases itself."""
    return cell.NAME in FOLDS_BIAS and kernels_for(backend, cell, P) is not None


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


def _common(spec: _Spec, D: Any, T: int, B: int, kid: int, w: Any, dt: np.dtype) -> None:
    gemm = blas_gemm()
    assert not isinstance(gemm, str)
    head, f = spec.head, spec.field
    head[f["kernel"]] = kid
    head[f["f64"]] = int(dt == np.float64)
    head[f["T"]], head[f["B"]], head[f["H"]] = T, B, D.H
    head[f["reverse"]], head[f["G"]] = int(D.reverse), D.cell.BLOCKS
    head[f["gemm"]] = gemm[1] if dt == np.float64 else gemm[0]
    head[f["gemm64"]] = int(gemm[2])
    # No recurrent weights (minGRU, minLSTM): the loop runs the kernels alone.
    head[f["w"]] = -1 if w is None else spec.array(w)


def _state_arg(spec: _Spec, D: Any, base: str, g: int, init: int, rows: dict) -> bool:
    """An argument read from the trace or the step constants (``rows``: the prepared
    "peep" and "b_hn"; ``init``: the index of the array of the state before the first
    step); False if ``base`` is neither."""
    S = D.S
    if base in ("gates", "raw"):
        a = S[base]
        st = a.strides
        spec.arg(a, g * st[0], st[1], st[2], AT_T)
    elif base in ("c", "tc", "h", "hn"):
        a = S[base]
        spec.arg(a, 0, a.strides[0], a.strides[1], AT_T)
    elif base in ("prev_h", "prev_c"):
        a = S["h" if base == "prev_h" else "c"]
        if spec.arrays[init].strides[0] != a.strides[1]:
            raise Unsuitable("initial state rows")
        spec.arg(a, 0, a.strides[0], a.strides[1], PREV, init)
    elif base == "peep":
        a = rows["peep"]  # (3, H): rows p_i, p_f, p_o
        spec.arg(a, g * a.strides[0], 0, 0, FIXED)
    elif base == "b_hn":
        spec.arg(rows["b_hn"], 0, 0, 0, FIXED)
    else:
        return False
    return True


# Specs by layout (see _sources): what a direction's pass builds once and its next
# passes of the same shapes find.  A spec holds offsets, steps and array indices, never
# addresses, so it serves any arrays laid out the same way.
_SPECS: dict[tuple, tuple[np.ndarray, tuple[int, ...]]] = {}
_SPECS_MAX = 512


def _sources(D: Any, dt: np.dtype, W_hh: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """Every array a loop's spec may point into, in a fixed order: ``extra`` (the
    loop's own), the trace's arrays and the rows of the step constants."""
    S, P = D.S, D.P
    src = {"w": None if W_hh is None else np.ascontiguousarray(W_hh, dtype=dt)}
    src.update(extra)
    for k in ("gates", "raw", "c", "tc", "h", "hn"):
        src["S." + k] = S.get(k)
    src["peep"] = (None if P.get("peep") is None
                   else np.ascontiguousarray(P["peep"], dtype=dt))
    src["b_hn"] = (None if P.get("b_hn") is None
                   else np.ascontiguousarray(P["b_hn"], dtype=dt))
    return src


def _layout(kind: tuple, src: dict[str, Any]) -> tuple:
    """The key of a spec: the loop's scalars ``kind``, each source's shape and strides,
    and which sources are one array."""
    arrays = list(src.values())
    ids = [id(a) for a in arrays]
    return (kind, tuple(None if a is None else (a.shape, a.strides) for a in arrays),
            tuple(map(ids.index, ids)))


def _remember(key: tuple, spec: _Spec, src: dict[str, Any], slots: dict[int, str]) -> None:
    """Keep ``spec`` for ``key``, with where each of its arrays comes from (by position
    among the sources; ``slots``: array index → the source of a swapped slot)."""
    names = list(src)
    arrays = list(src.values())
    recipe = []
    for i, a in enumerate(spec.arrays):
        if i in slots:
            recipe.append(names.index(slots[i]))
            continue
        found = [j for j, b in enumerate(arrays) if b is a and names[j] not in slots.values()]
        if not found:
            return  # an array that is not a source: build this spec every time
        recipe.append(found[0])
    if len(_SPECS) >= _SPECS_MAX:
        _SPECS.clear()
    _SPECS[key] = (spec.done(), tuple(recipe))


def run_forward(net: Any, D: Any, xproj: Any, W_hh: Any, h_first: Any, c_first: Any,
                fz: Any, tbptt: int | None, bias: Any = None, chunk: int | None = None) -> bool:
    """The forward recurrence of direction ``D`` in compiled chunks; False (nothing
    done) when the compiled loop cannot run it.  ``xproj`` (G, T, B, H) holds the
    input projections, with the biases unless they are given as ``bias`` (G·H values,
    added in each step; :func:`folds_bias`), ``h_first``/``c_first`` (B, H) the initial
    state, ``fz`` the frozen trace of that layer (states at window starts) or None."""
    found = kernels_for(net.backend, D.cell, D.P)
    if found is None:
        return False
    table, kid, _ = found
    dt = np.dtype(net.backend.dtype)
    G, T, B, H = xproj.shape
    # The states each chunk starts from sit at fixed places among the arrays (the first
    # two): swapped per chunk.
    h0 = np.ascontiguousarray(h_first, dtype=dt)
    c0 = np.ascontiguousarray(c_first, dtype=dt)
    i_h0, i_c0 = 0, 1
    hbuf = None if W_hh is None else np.empty((B, G * H), dtype=dt)
    bias_row = None if bias is None else np.ascontiguousarray(bias, dtype=dt).reshape(G * H)
    src = _sources(D, dt, W_hh, {"h0": h0, "c0": c0, "hbuf": hbuf, "bias": bias_row,
                                 "xproj": xproj})
    key = _layout(("forward", kid, dt.str, T, B, H, G, D.reverse), src)
    known = _SPECS.get(key)
    if known is not None:
        values = known[0].copy()
        arrays = list(src.values())
        arrays = [arrays[j] for j in known[1]]
    else:
        spec = _forward_spec(D, kid, dt, src, T, B, H, G)
        if spec is None:
            return False
        _remember(key, spec, src, {i_h0: "h0", i_c0: "c0"})
        values = spec.done()
        arrays = spec.arrays
    field = _FIELDS[_FWD_HEAD]
    loop = table[METHODS[0]]
    chunk = chunk or chunk_steps(B, H, G)
    cut = tbptt if (fz is not None and tbptt) else None
    order = D.order(T)
    s0 = 0
    while s0 < T:
        s1 = min(T, s0 + chunk)
        if cut:
            s1 = min(s1, (s0 // cut + 1) * cut)
        if s0 > 0:  # the chunk starts from the state before it
            tp = order[s0 - 1]
            frozen = fz if (cut and s0 % cut == 0) else None  # frozen at a window start
            arrays[i_h0] = (frozen.h if frozen is not None else D.S["h"])[tp]
            if "c" in D.S:
                arrays[i_c0] = (frozen.c if frozen is not None else D.S["c"])[tp]
        values[field["first"]] = s0
        values[field["s0"]] = s0
        values[field["s1"]] = s1
        if net.control is not None:
            net.control.check()
        loop(values, tuple(arrays))
        s0 = s1
    return True


def _forward_spec(D: Any, kid: int, dt: np.dtype, src: dict[str, Any], T: int, B: int,
                  H: int, G: int) -> _Spec | None:
    """The forward loop's spec over the arrays ``src`` (see run_forward), or None when
    the loop cannot address them."""
    spec = _Spec(_FWD_HEAD, dt.itemsize)
    h0, c0, hbuf, xproj = src["h0"], src["c0"], src["hbuf"], src["xproj"]
    try:
        i_h0, i_c0 = spec.slot(h0), spec.slot(c0)  # 0 and 1, as run_forward swaps them
        _common(spec, D, T, B, kid, src["w"], dt)
        h = D.S["h"]
        if h0.strides[0] != h.strides[1] or c0.strides[0] != h.strides[1]:
            raise Unsuitable("initial state rows")
        f, head = spec.field, spec.head
        head[f["hbuf"]] = -1 if hbuf is None else spec.array(hbuf)
        head[f["h"]], head[f["h_tstep"]], head[f["h_rstep"]] = spec.array(h), *h.strides[:2]
        head[f["h_init"]] = i_h0
        head[f["bias"]] = -1 if src["bias"] is None else spec.array(src["bias"])
        xs = xproj.strides
        for base, g in _plan(fused.ALL[kid].name, True):
            if base == "x":
                spec.arg(xproj, g * xs[0], xs[1], xs[2], AT_T)
            elif base == "hp":
                if hbuf is None:
                    raise Unsuitable("a kernel of a recurrent product without W_hh")
                spec.arg(hbuf, g * H * dt.itemsize, 0, hbuf.strides[0], FIXED)
            elif not _state_arg(spec, D, base, g, i_h0 if base == "prev_h" else i_c0, src):
                raise Unsuitable(f"unknown forward argument {base!r}")
    except Unsuitable:
        return None
    return spec


def run_backward(net: Any, D: Any, dH: Any, W_hh: Any, tbptt: int | None, h_first: Any,
                 c_first: Any, chunk: int | None = None,
                 carry: tuple[Any, Any] | None = None) -> tuple[Any, Any] | None:
    """BPTT through direction ``D`` in compiled chunks, writing D.dh, D.dc and the
    gradient buffers D.dxp/D.dhp as the Python loop does; returns the carries
    (dL/dh_{-1}, dL/dc_{-1}) — the gradients of the initial state — or None when the
    compiled loop cannot run it (nothing written).  ``carry`` (dL/dh, dL/dc) (B, H):
    what arrives from beyond the last step (zeros if None)."""
    found = kernels_for(net.backend, D.cell, D.P)
    if found is None:
        return None
    table, _, kid = found
    dt = np.dtype(net.backend.dtype)
    T, B, H = dH.shape
    names = BACKWARD_ARGS[fused.ALL[kid].name]
    start = (None, None) if carry is None else carry
    carry = (np.zeros((B, H), dtype=dt) if start[0] is None
             else np.array(start[0], dtype=dt, order="C"))  # the loop writes into it
    dc_carry = None
    if D.cell.HAS_CELL_STATE:
        dc_carry = (np.zeros((B, H), dtype=dt) if start[1] is None
                    else np.array(start[1], dtype=dt, order="C"))
    direct = np.empty((B, H), dtype=dt) if "direct" in names else None
    h0, c0 = _state_rows(h_first, dt), _state_rows(c_first, dt)
    tm = D.dhp.transpose(1, 2, 0, 3)  # the time-major (T, B, G, H) memory behind it
    src = _sources(D, dt, W_hh, {"h0": h0, "c0": c0, "tm": tm, "dH": dH, "dh": D.dh,
                                 "dc": D.dc, "dxp": D.dxp, "dhp": D.dhp, "carry": carry,
                                 "direct": direct, "dc_carry": dc_carry})
    key = _layout(("backward", kid, dt.str, T, B, H, D.cell.BLOCKS, D.reverse,
                   tm.flags.c_contiguous), src)
    known = _SPECS.get(key)
    if known is not None:
        values = known[0].copy()
        arrays = list(src.values())
        arrays = tuple(arrays[j] for j in known[1])
    else:
        spec = _backward_spec(D, kid, dt, src, T, B, H)
        if spec is None:
            return None
        _remember(key, spec, src, {0: "h0", 1: "c0"})
        values = spec.done()
        arrays = tuple(spec.arrays)
    field = _FIELDS[_BWD_HEAD]
    loop = table[METHODS[1]]
    chunk = chunk or chunk_steps(B, H, D.cell.BLOCKS)
    s1 = T
    while s1 > 0:
        s0 = max(0, s1 - chunk)
        if tbptt:
            s0 = max(s0, ((s1 - 1) // tbptt) * tbptt)
        values[field["s0"]] = s0
        values[field["s1"]] = s1
        values[field["cut"]] = int(bool(tbptt) and s0 > 0 and s0 % tbptt == 0)
        if net.control is not None:
            net.control.check()
        loop(values, arrays)
        s1 = s0
    return carry, dc_carry


def _state_rows(a: Any, dt: np.dtype) -> Any:
    """A state (B, H) as the loop reads it: contiguous rows in ``dt``.  Rows that all
    repeat one (stride 0: covectors sharing one sample's states) stay a view, as the
    trace's arrays beside them do."""
    a = np.asarray(a)
    if a.dtype == dt and a.ndim == 2 and a.strides[1] == dt.itemsize and a.strides[0] == 0:
        return a
    return np.ascontiguousarray(a, dtype=dt)


def _backward_spec(D: Any, kid: int, dt: np.dtype, src: dict[str, Any], T: int, B: int,
                   H: int) -> _Spec | None:
    """The backward loop's spec over the arrays ``src`` (see run_backward), or None when
    the loop cannot address them."""
    item = dt.itemsize
    spec = _Spec(_BWD_HEAD, item)
    tm, dH, carry = src["tm"], src["dH"], src["carry"]
    direct, dc_carry = src["direct"], src["dc_carry"]
    try:
        i_h0, i_c0 = spec.slot(src["h0"]), spec.slot(src["c0"])  # 0 and 1
        _common(spec, D, T, B, kid, src["w"], dt)
        if not tm.flags.c_contiguous or D.dh.strides[1:] != (H * item, item):
            raise Unsuitable("gradient buffers not time-major")
        f, head = spec.field, spec.head
        head[f["dhp"]], head[f["dhp_tstep"]] = spec.array(tm), tm.strides[0]
        head[f["dH"]], head[f["dH_tstep"]], head[f["dH_bstep"]] = spec.array(dH), *dH.strides[:2]
        head[f["dh"]], head[f["dh_tstep"]] = spec.array(D.dh), D.dh.strides[0]
        head[f["carry"]] = spec.array(carry)
        head[f["direct"]] = -1 if direct is None else spec.array(direct)
        head[f["dc_carry"]] = -1 if dc_carry is None else spec.array(dc_carry)
        head[f["first"]] = 0
        for base, g in _plan(fused.ALL[kid].name, False):
            if base in ("dx", "dhp"):
                buf = D.dxp if base == "dx" else D.dhp
                st = buf.strides
                spec.arg(buf, g * st[0], st[1], st[2], AT_T)
            elif base in ("dh", "dc"):
                arr = D.dh if base == "dh" else D.dc
                spec.arg(arr, 0, arr.strides[0], arr.strides[1], AT_T)
            elif base in ("dc_carry", "direct"):
                spec.arg(dc_carry if base == "dc_carry" else direct, 0, 0, H * item, FIXED)
            elif not _state_arg(spec, D, base, g, i_h0 if base == "prev_h" else i_c0, src):
                raise Unsuitable(f"unknown backward argument {base!r}")
    except Unsuitable:
        return None
    return spec
