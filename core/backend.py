"""Array backend: NumPy on the CPU or CuPy on a GPU, and the working dtype.

All maths in ``core`` is written once against ``backend.xp``; nothing else in
the package imports CuPy.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .cpu_share import CpuShare

DEVICES = ("auto", "numpy", "cupy")
DTYPES = ("float32", "float64")


class BackendError(RuntimeError):
    """The requested device cannot be used."""


@dataclass(frozen=True)
class Backend:
    """Where arrays live (``xp``) and in which precision (``dtype``)."""

    name: str  # "numpy" | "cupy"
    xp: ModuleType
    dtype: np.dtype
    reason: str  # why this backend was chosen, for `gradlab info` and the status bar
    blas: Any = field(default=None, repr=False, compare=False)  # threadpoolctl controller
    # On the CPU, run the cells' fused steps compiled (core.cells.native) when they build;
    # False keeps the NumPy steps (the benchmark's baseline, and the tests' second path).
    compiled: bool = True
    # With the compiled steps, run each direction's whole recurrence as one compiled loop
    # (core.cells.timeloop) where it can; False keeps the Python loop over the steps.
    time_loop: bool = True
    # The cores other processes leave free, for the BLAS thread policy (CPU only).
    share: CpuShare | None = field(default=None, repr=False, compare=False)

    # A pass whose largest product is below this many FLOPs runs on one BLAS thread
    # throughout: waking a second thread costs more than it saves, and its spinning
    # would take the core the window paints on (the lessons' models are this small).
    SMALL_PASS_FLOPS = 100_000_000
    # Within a larger pass, a step loop whose products are below this (about 15 µs on
    # one core) runs on one thread.  Measured with benchmarks/bench_core.py: at batch
    # 32 and hidden 128 a second thread already pays (5–10 % of the pass), and at batch
    # 64 and hidden 256 it takes a third off the pass.
    SMALL_PRODUCT_FLOPS = 1_000_000

    def whole_pass(self, largest_flops: float) -> contextlib.AbstractContextManager:
        """Context for a pass whose largest product is ``largest_flops``: one BLAS thread
        on the CPU when that is small; otherwise no more threads than the cores other
        processes leave free (:mod:`core.cpu_share`): a thread sharing a busy core stalls
        every product of the pass."""
        if self.blas is None or largest_flops < self.SMALL_PASS_FLOPS or self.share is None:
            return self._one_thread_below(largest_flops, self.SMALL_PASS_FLOPS)
        free = self.share.free_cores()
        if free >= self.share.cpus:
            return contextlib.nullcontext()
        pools = self.blas.select(user_api="blas")
        now = max((c.num_threads for c in pools.lib_controllers), default=1)
        if free >= now:
            return contextlib.nullcontext()
        return self.blas.limit(limits=free, user_api="blas")

    def step_loop(self, flops_per_step: float) -> contextlib.AbstractContextManager:
        """Context for a loop of small per-step products: one BLAS thread on the CPU."""
        return self._one_thread_below(flops_per_step, self.SMALL_PRODUCT_FLOPS)

    def _one_thread_below(self, flops: float, bar: float) -> contextlib.AbstractContextManager:
        if self.blas is None or flops >= bar:
            return contextlib.nullcontext()
        return _OneThread(self.blas)

    @property
    def kernels(self) -> dict[str, Any] | None:
        """The fused step kernels by name (core.cells.fused): CuPy's on a GPU, the
        compiled ones on the CPU, or None, when the cells run their NumPy steps."""
        if self.name == "cupy":
            from .cells.fused import kernels

            return kernels(self.xp)
        if not self.compiled:
            return None
        return _native().kernels()

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Copy or move ``a`` onto this backend in ``dtype`` (default: the working dtype)."""
        return self.xp.asarray(a, dtype=self.dtype if dtype is None else dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Bring ``a`` back to the host as a NumPy array."""
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)

    @property
    def label(self) -> str:
        base = f"{'CuPy' if self.name == 'cupy' else 'NumPy'} · {np.dtype(self.dtype).name}"
        return base + (" · compiled steps" if self.name == "numpy" and self.kernels else "")


@functools.cache
def _native() -> ModuleType:
    """core.cells.native, imported on first use (asked for several times a pass)."""
    from .cells import native

    return native


_ONE_THREAD = threading.local()  # .depth: one-thread limits open in this thread


class _OneThread:
    """One BLAS thread for a ``with`` block; within another such block of the same
    thread, nothing to do (a pass's step loops nest in the pass's own limit, and each
    threadpoolctl limit costs microseconds: a twentieth of a pass at batch 1)."""

    __slots__ = ("blas", "limit")

    def __init__(self, blas: Any):
        self.blas, self.limit = blas, None

    def __enter__(self) -> None:
        depth = getattr(_ONE_THREAD, "depth", 0)
        if depth == 0:
            self.limit = self.blas.limit(limits=1, user_api="blas")
        _ONE_THREAD.depth = depth + 1

    def __exit__(self, *exc: object) -> None:
        _ONE_THREAD.depth -= 1
        if self.limit is not None:
            limit, self.limit = self.limit, None
            limit.restore_original_limits()


@functools.cache
def _import_cupy() -> tuple[ModuleType | None, str]:
    """CuPy, or why it does not import, found out once: a failed import is not
    remembered by Python and searched for again (some 0.2 ms) on every call."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library failing to load
        return None, f"CuPy is not installed ({type(exc).__name__})"
    return cupy, ""


def probe_cupy() -> tuple[ModuleType | None, str]:
    """Return ``(cupy, reason)``: the module when it imports and sees a GPU, else None."""
    cupy, why = _import_cupy()
    if cupy is None:
        return None, why
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy imports but finds no GPU ({exc})"
    if n < 1:
        return None, "CuPy imports but finds no GPU"
    return cupy, f"CuPy sees {n} GPU{'s' if n > 1 else ''}"


def resolve_backend(device: str = "auto", dtype: str = "float32") -> Backend:
    """Pick the array module for ``device`` ∈ auto|numpy|cupy and ``dtype`` ∈ float32|float64.

    ``auto`` takes CuPy when it imports and sees a GPU, otherwise NumPy; the
    returned ``reason`` says which and why.  Asking for ``cupy`` without a GPU
    raises :class:`BackendError`.
    """
    if device not in DEVICES:
        raise BackendError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise BackendError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    dt = np.dtype(dtype)
    if device == "numpy":
        return Backend("numpy", np, dt, "NumPy requested", _blas_controller(), share=CpuShare())
    cupy, why = probe_cupy()
    if cupy is not None:
        return Backend("cupy", cupy, dt, f"{why}; using it" if device == "auto" else why)
    if device == "cupy":
        raise BackendError(f"device 'cupy' requested, but {why}")
    return Backend("numpy", np, dt, f"{why}; using NumPy", _blas_controller(),
                   share=CpuShare())


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    """The process's BLAS thread controller, built once: inspecting the loaded
    libraries costs milliseconds, which every probe used to pay."""
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController()
    except Exception:  # not installed, or an unknown BLAS: leave threads alone
        return None


def blas_pool_text(pool: dict[str, Any]) -> str:
    """One thread pool of threadpoolctl's ``threadpool_info()`` in words: library, version,
    the kernels OpenBLAS chose for this CPU (its ``architecture``) and the threads, e.g.
    ``openblas 0.3.31 (Haswell kernels, 2 threads)``."""
    name = " ".join(str(v) for v in (pool.get("internal_api"), pool.get("version")) if v)
    arch = pool.get("architecture")
    kernels = f"{arch} kernels, " if arch else ""
    return f"{name} ({kernels}{pool.get('num_threads')} threads)"


def backend_info() -> dict[str, Any]:
    """Versions, devices and the automatic choice, for ``gradlab info``."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [blas_pool_text(p) for p in threadpool_info()]
    except ImportError:
        pass
    from .cells import native, timeloop

    info["cpu_steps"] = native.status()
    info["cpu_time_loop"] = timeloop.status()
    cupy, why = probe_cupy()
    info["cupy"] = why
    if cupy is not None:
        info["cupy_version"] = cupy.__version__
        devices = []
        for i in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props["name"]
            devices.append(name.decode() if isinstance(name, bytes) else str(name))
        info["gpus"] = devices
    auto = resolve_backend("auto")
    info["auto"] = f"{auto.name} ({auto.reason})"
    return info
