"""The fused steps compiled for the CPU: each kernel of :mod:`core.cells.fused` as C.

NumPy spends most of a small recurrent step in its float32 ``exp`` and ``tanh`` and in
the dozen ufunc calls a gate update takes.  Here the same kernel text that CuPy compiles
for a GPU is turned into one C loop per kernel (inputs loaded, the body, outputs
stored), built once per machine with the system's C compiler into a small Python
extension, and cached.  float32 uses the short polynomial ``exp`` and ``tanh`` below,
which the compiler vectorises (within 3e-7 of the exact values, relative, tanh near 0
included); float64 uses the C library's.

Nothing here is required: with no compiler or no Python headers, a failed build,
``GRADLAB_COMPILED=0`` in the environment, or a build whose results disagree with the
kernels' NumPy twins, the cells keep their NumPy steps and :func:`status` says why.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from . import fused, timeloop

_C_TYPES = {"f32": "float", "f64": "double"}

_PRELUDE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x in float32: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial
   (Cephes' expf coefficients), 2^n put in the exponent bits (as 2^127 * 2 for n = 128).
   Branch-free, so loops over it vectorise.  0 below the smallest normal float, inf
   above the largest; NaN stays NaN (the clamps compare, they do not min/max). */
static inline float gl_exp_f32(float x) {
    float y = x < -87.33654f ? -87.33654f : x;
    y = y > 88.72283f ? 88.72283f : y;
    float n = __builtin_rintf(y * 1.44269504088896341f);
    float r = y - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float top = n > 127.0f ? 2.0f : 1.0f;
    n = n > 127.0f ? 127.0f : n;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float e = p * scale * top;
    e = x < -87.33654f ? 0.0f : e;
    e = x > 88.72283f ? INFINITY : e;
    return e;
}

/* tanh in float32: an odd polynomial near 0 (Cephes' tanhf), 1 - 2/(e^2|x| + 1) beyond. */
static inline float gl_tanh_f32(float x) {
    float ax = x < 0.0f ? -x : x;
    float z = x * x;
    float small = x + x * z * ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                                 - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                               - 3.33332819422e-1f);
    float big = 1.0f - 2.0f / (gl_exp_f32(2.0f * ax) + 1.0f);
    big = x < 0.0f ? -big : big;
    return ax < 0.625f ? small : big;
}

#define gl_exp_f64 exp
#define gl_tanh_f64 tanh

/* Check a kernel's arguments and take their data pointers and row steps: NumPy arrays
   of one float dtype, outputs writeable; every array of one shape, (B, H) rows of
   contiguous elements (any row step, so a gate's block of a wider array will do) or
   C-contiguous, except the rows (marked '1' in `rows`): 1-D, the last dimension's
   length, broadcast over B. */
static int gather(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t nin,
                  Py_ssize_t nout, const char *rows, const char *name, char **ptr,
                  npy_intp *step, npy_intp *B, npy_intp *H, int *f64) {
    if (nargs != nin + nout) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd arrays, got %zd", name, nin + nout,
                     nargs);
        return -1;
    }
    PyArrayObject *first = NULL;
    int type = -1;
    for (Py_ssize_t i = 0; i < nargs; ++i) {
        if (!PyArray_Check(args[i])) {
            PyErr_Format(PyExc_TypeError, "%s: argument %zd is not a NumPy array", name, i);
            return -1;
        }
        PyArrayObject *a = (PyArrayObject *)args[i];
        int t = PyArray_TYPE(a);
        if (type < 0) type = t;
        if (t != type || (t != NPY_FLOAT32 && t != NPY_FLOAT64)) {
            PyErr_Format(PyExc_TypeError, "%s: arrays must all be float32 or all float64",
                         name);
            return -1;
        }
        if (i >= nin && !PyArray_ISWRITEABLE(a)) {
            PyErr_Format(PyExc_ValueError, "%s: output %zd is read-only", name, i);
            return -1;
        }
        if (rows[i] == '0' && first == NULL) first = a;
    }
    if (first == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: no full-size array", name);
        return -1;
    }
    int nd = PyArray_NDIM(first);
    npy_intp size = PyArray_SIZE(first);
    npy_intp h = nd ? PyArray_DIM(first, nd - 1) : 1;
    npy_intp item = PyArray_ITEMSIZE(first);
    int flat = 1;  /* every array C-contiguous, no rows: one loop over all elements */
    for (Py_ssize_t i = 0; i < nargs; ++i) {
        PyArrayObject *a = (PyArrayObject *)args[i];
        ptr[i] = PyArray_BYTES(a);
        step[i] = 0;
        if (rows[i] == '1') {
            flat = 0;
            if (PyArray_NDIM(a) != 1 || PyArray_DIM(a, 0) != h ||
                (h > 1 && PyArray_STRIDE(a, 0) != item)) {
                PyErr_Format(PyExc_ValueError, "%s: argument %zd must be one contiguous row "
                             "of %zd", name, i, (Py_ssize_t)h);
                return -1;
            }
            continue;
        }
        if (PyArray_NDIM(a) != nd ||
            !PyArray_CompareLists(PyArray_DIMS(a), PyArray_DIMS(first), nd)) {
            PyErr_Format(PyExc_ValueError, "%s: argument %zd has the wrong shape", name, i);
            return -1;
        }
        int contiguous = PyArray_IS_C_CONTIGUOUS(a);
        flat &= contiguous;
        if (contiguous) {
            step[i] = h * item;
        } else if (nd == 2 && (h <= 1 || PyArray_STRIDE(a, 1) == item)) {
            step[i] = PyArray_STRIDE(a, 0);
        } else {
            PyErr_Format(PyExc_ValueError, "%s: argument %zd must be (B, H) with contiguous "
                         "rows", name, i);
            return -1;
        }
    }
    if (flat) {
        *B = 1;
        *H = size;
    } else {
        *H = h;
        *B = h ? size / h : 0;
    }
    *f64 = type == NPY_FLOAT64;
    return 0;
}
"""

_EPILOGUE = r"""
static PyMethodDef methods[] = {
%(table)s
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "%(module)s", NULL, -1, methods};

PyMODINIT_FUNC PyInit_%(module)s(void) {
    import_array();
    return PyModule_Create(&module);
}
"""


def _loop(k: fused.Fused, suffix: str) -> str:
    """One kernel as a C function over B rows of H elements, for ``suffix`` f32|f64."""
    ct = _C_TYPES[suffix]
    names = k.inputs + k.outputs
    body = re.sub(r"\bT\b", ct, k.body)
    body = re.sub(r"\b(exp|tanh)\(", rf"gl_\1_{suffix}(", body)
    if suffix == "f32":
        body = re.sub(r"(?<![\w.])(\d+\.\d*(?:[eE][-+]?\d+)?)(?![\w.])", r"\1f", body)
    lines = [f"static void {k.name}_{suffix}(npy_intp B, npy_intp H, char **ptr, "
             "const npy_intp *step) {",
             "    for (npy_intp b = 0; b < B; ++b) {"]
    for n, name in enumerate(names):
        const = "const " if name in k.inputs else ""
        lines.append(f"        {const}{ct} *p_{name} = ({const}{ct} *)(ptr[{n}] + b * step[{n}]);")
    lines += ["#pragma GCC ivdep", "        for (npy_intp j = 0; j < H; ++j) {"]
    lines += [f"            const {ct} {name} = p_{name}[j];" for name in k.inputs]
    lines.append(f"            {ct} {', '.join(k.outputs)};")
    lines += [f"            {s.strip()};" for s in body.split(";") if s.strip()]
    lines += [f"            p_{name}[j] = {name};" for name in k.outputs]
    lines += ["        }", "    }", "}"]
    return "\n".join(lines)


def _wrapper(k: fused.Fused) -> str:
    """The Python-callable entry of one kernel: check, release the GIL, run."""
    names = k.inputs + k.outputs
    rows = "".join("1" if n in k.rows else "0" for n in names)
    return f"""
static PyObject *py_{k.name}(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {{
    char *ptr[{len(names)}];
    npy_intp step[{len(names)}], B, H;
    int f64;
    if (gather(args, nargs, {len(k.inputs)}, {len(k.outputs)}, "{rows}", "{k.name}", ptr,
               step, &B, &H, &f64) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (f64) {k.name}_f64(B, H, ptr, step); else {k.name}_f32(B, H, ptr, step);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}}"""


def source(module: str, kernels: tuple[fused.Fused, ...] = fused.ALL) -> str:
    """The C source of the extension ``module`` holding ``kernels``."""
    parts = [_PRELUDE]
    for k in kernels:
        parts += [_loop(k, "f32"), _loop(k, "f64"), _wrapper(k)]
    parts.append(timeloop.source(kernels))  # the time loop over these kernels
    table = "\n".join(f'    {{"{k.name}", (PyCFunction)(void (*)(void))py_{k.name}, '
                      f"METH_FASTCALL, NULL}}," for k in kernels)
    table += "\n" + timeloop.method_table()
    parts.append(_EPILOGUE % {"table": table, "module": module})
    return "\n".join(parts)


def cache_dir() -> Path:
    """Where built kernels are kept: $GRADLAB_CACHE_DIR, else the user's cache folder
    (``~/.cache/gradlab`` on Linux)."""
    if os.environ.get("GRADLAB_CACHE_DIR"):
        return Path(os.environ["GRADLAB_CACHE_DIR"])
    try:
        import platformdirs
    except ImportError:  # core alone, without the app's dependencies
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "gradlab"
    return Path(platformdirs.user_cache_dir("gradlab", "GradientFlowLab"))


def _compiler() -> list[str]:
    """The C compiler command: $CC when set, else the one Python was built with, if this
    machine has it, else the first of cc, gcc and clang found."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    built_with = shlex.split(sysconfig.get_config_var("CC") or "")
    for cmd in (built_with, ["cc"], ["gcc"], ["clang"]):
        if cmd and shutil.which(cmd[0]):
            return cmd
    return ["cc"]


def _build(folder: Path, module: str, src: str) -> Path:
    """Compile ``src`` into ``folder`` as the extension ``module``; returns its path.
    Raises RuntimeError with the compiler's message when it cannot."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (module + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    if target.exists():
        return target
    includes = ["-I", sysconfig.get_paths()["include"], "-I", np.get_include()]
    flags = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math"]
    if sys.platform == "darwin":
        flags += ["-undefined", "dynamic_lookup"]
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        c_file = Path(tmp) / f"{module}.c"
        c_file.write_text(src)
        out = Path(tmp) / target.name
        errors = []
        for arch in (["-march=native"], []):  # tuned for this CPU, else generic
            cmd = _compiler() + flags + arch + includes + [str(c_file), "-o", str(out), "-lm"]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(f"no C compiler ({exc})") from exc
            if done.returncode == 0:
                os.replace(out, target)  # atomic: a parallel build finds a whole file
                return target
            errors.append(done.stderr.strip().splitlines()[-1:] or ["(no message)"])
        raise RuntimeError(f"the C compiler failed: {errors[-1][0]}")


def _import(path: Path, module: str) -> Any:
    loader = importlib.machinery.ExtensionFileLoader(module, str(path))
    spec = importlib.util.spec_from_file_location(module, path, loader=loader)
    ext = importlib.util.module_from_spec(spec)
    loader.exec_module(ext)
    return ext


def self_check(table: dict[str, Any], kernels: tuple[fused.Fused, ...] = fused.ALL) -> None:
    """Run every compiled kernel against its NumPy twin on random data, in both dtypes;
    raises RuntimeError naming the first that disagrees."""
    rng = np.random.default_rng(0)
    for k in kernels:
        for dtype, rtol in ((np.float32, 1e-5), (np.float64, 1e-13)):
            B, H = 3, 37  # an odd width: vector bodies and their scalar tails both run
            shape = {n: (H,) if n in k.rows else (B, H) for n in k.inputs + k.outputs}
            ins = [rng.uniform(-4, 4, size=shape[n]).astype(dtype) for n in k.inputs]
            want = [np.empty(shape[n], dtype) for n in k.outputs]
            got = [np.empty(shape[n], dtype) for n in k.outputs]
            k.numpy(*ins, *want)
            table[k.name](*ins, *got)
            for name, g, w in zip(k.outputs, got, want, strict=True):
                if not np.allclose(g, w, rtol=rtol, atol=rtol):
                    raise RuntimeError(f"{k.name} ({np.dtype(dtype).name}) disagrees with "
                                       f"its NumPy twin in {name!r}")


def _cpu() -> str:
    """What this processor is, for the cache key: a build tuned with -march=native must
    not be loaded on another CPU sharing the same home folder (it could crash there)."""
    try:
        with open("/proc/cpuinfo") as f:
            wanted = ("model name", "flags", "features", "cpu implementer", "cpu part")
            lines = {ln.split(":")[0].strip().lower(): ln for ln in f if ":" in ln}
        return "".join(lines.get(k, "") for k in wanted) or platform.processor()
    except OSError:
        return platform.processor()


def module_name() -> str:
    """The extension's name: a hash of everything its build depends on (the kernels'
    source, NumPy, Python, the processor and the compiler), so that any change builds
    a new one beside the old."""
    key = hashlib.sha256("\0".join([source("m"), np.__version__, sys.version,
                                    platform.machine(), _cpu(),
                                    " ".join(_compiler())]).encode())
    return f"_gradlab_steps_{key.hexdigest()[:16]}"


def _build_and_check(folder: Path, module: str) -> dict[str, Any]:
    """Build (or find) the extension in ``folder``, import it and check it; a cached
    file that fails to load or to check is built again once."""
    path = _build(folder, module, source(module))
    try:
        return _load_checked(path, module)
    except Exception:
        path.unlink(missing_ok=True)  # damaged or stale: build a fresh one
    return _load_checked(_build(folder, module, source(module)), module)


def _load_checked(path: Path, module: str) -> dict[str, Any]:
    """The kernels of the extension at ``path``, once they pass :func:`self_check`."""
    ext = _import(path, module)
    table = {k.name: getattr(ext, k.name) for k in fused.ALL}
    self_check(table)
    table.update({m: getattr(ext, m) for m in timeloop.METHODS})
    return table


_LOCK = threading.Lock()


@functools.cache
def _load_once() -> tuple[dict[str, Any] | None, str]:
    if os.environ.get("GRADLAB_COMPILED", "1").strip().lower() in ("0", "no", "off", "false"):
        return None, "compiled steps off (GRADLAB_COMPILED=0)"
    module = module_name()
    try:
        try:
            table = _build_and_check(cache_dir(), module)
        except OSError:  # the cache folder is not writable: build in a temporary one
            user = getattr(os, "getuid", lambda: 0)()
            table = _build_and_check(Path(tempfile.gettempdir()) / f"gradlab-{user}", module)
    except Exception as exc:  # any failure leaves the NumPy steps in place
        return None, f"compiled steps unavailable: {exc}"
    return table, "compiled steps (C)"


def _load() -> tuple[dict[str, Any] | None, str]:
    with _LOCK:  # the GUI thread and a worker may ask first at the same moment
        return _load_once()


def kernels() -> dict[str, Any] | None:
    """The compiled kernels by name, called like CuPy's (inputs, then outputs), or None
    when they cannot be used here.  Built on first call, then cached on disk."""
    return _load()[0]


def status() -> str:
    """Whether the compiled steps are in use, and if not, why."""
    return _load()[1]


if __name__ == "__main__":  # python -m core.cells.native: build now, say what is used
    print(status())
