"""Large host buffers reused from one pass to the next.

A fresh NumPy array of many megabytes is new memory: the kernel zeroes each page the
first time it is written, and in a forward + BPTT pass that page-fault work cost as
much as the elementwise maths.  A :class:`Workspace` keeps the memory of the large
arrays a pass allocated and hands it out again to the next pass of the same shapes
(training steps, truncated-BPTT windows, benchmark repeats).

Memory is only handed out again once nothing refers to it any more.  Each buffer is a
NumPy byte array seen through a ``ctypes`` object, and the array handed out is built on
that object, so every slice or reshape of it refers back to the array handed out
(NumPy collapses chains of views only as far as the first base that is not an array);
a weak reference to it returns the buffer to the pool when the last view is gone.  The
memory itself is NumPy's, so ``tracemalloc`` and NumPy's huge-page advice see it as usual.  A trace the
caller still holds therefore keeps its memory; a new pass gets other buffers.

Buffers not used by the latest pass are released when it ends (:meth:`Workspace.pass_`),
so an idle network holds at most one pass's memory.  CuPy has its own memory pool:
there the workspace just calls ``cupy.empty``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

# Below this size an array comes from the ordinary allocator: its heap memory is
# already reused without faults, and the bookkeeping would cost more than it saves.
MIN_POOLED_BYTES = 1 << 18


class Workspace:
    """``empty``/``zeros`` like the array module's, backed by reusable buffers on NumPy."""

    def __init__(self, xp: Any):
        self.xp = xp
        self._pooled = xp is np
        self._lock = threading.Lock()
        self._free: dict[int, list[tuple[Any, int]]] = {}  # size -> [(buffer, pass it came back in)]
        self._lent: dict[int, weakref.ref] = {}  # keeps the callbacks alive
        # Filled by the weak-reference callbacks, which may run inside any allocation
        # (a garbage collection), even one made while the lock is held: they only append.
        self._returned: list[tuple[Any, int, int]] = []
        self._pass = 0

    def empty(self, shape: tuple[int, ...] | int, dtype: Any) -> Any:
        """An uninitialised array of ``shape`` and ``dtype``."""
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = math.prod(shape) * dtype.itemsize
        if not self._pooled or nbytes < MIN_POOLED_BYTES:
            return self.xp.empty(shape, dtype=dtype)
        with self._lock:
            buf, size = self._take(nbytes)
        if buf is None:
            buf, size = (ctypes.c_char * nbytes).from_buffer(np.empty(nbytes, np.uint8)), nbytes
        arr = np.ndarray(shape, dtype=dtype, buffer=buf)
        # The callback holds the workspace only weakly: a network dropped with its
        # workspace frees the pooled memory at once, not at the next cyclic collection
        # (a probe's connectivity buffers outlived it into the next probe).
        ref = weakref.ref(arr, functools.partial(_give_back_to, weakref.ref(self), buf, size))
        with self._lock:
            self._lent[id(ref)] = ref
        return arr

    def _take(self, nbytes: int) -> tuple[Any, int]:
        """The smallest free buffer of ``nbytes`` up to twice that, or (None, 0).

        Not only an exact fit: the arrays of neighbouring layers differ a little in
        size, and a pass should reuse what an earlier layer let go, as malloc would.
        On a miss, the buffers let go during this pass are released: malloc would have
        returned them to the system, and a pass must not need more memory than it
        would without the workspace.  Those from earlier passes stay for the requests
        they were kept for.
        """
        self._drain()
        fits = [n for n, bufs in self._free.items() if bufs and nbytes <= n <= 2 * nbytes]
        if fits:
            size = min(fits)
            return self._free[size].pop()[0], size
        self._free = {n: kept for n, bufs in self._free.items()
                      if (kept := [(b, p) for b, p in bufs if p < self._pass])}
        return None, 0

    def zeros(self, shape: tuple[int, ...] | int, dtype: Any) -> Any:
        arr = self.empty(shape, dtype)
        arr[...] = 0
        return arr

    def empty_like(self, a: Any) -> Any:
        return self.empty(a.shape, a.dtype)

    def _give_back(self, ref: weakref.ref, buf: Any, nbytes: int) -> None:
        """Called when the last view of a lent array is gone: its buffer is free again.
        Takes no lock (see ``_returned``)."""
        self._lent.pop(id(ref), None)
        self._returned.append((buf, nbytes, self._pass))

    def _drain(self) -> None:
        """Move the buffers that came back into the pool; called with the lock held."""
        while self._returned:
            buf, nbytes, stamp = self._returned.pop()
            self._free.setdefault(nbytes, []).append((buf, stamp))

    @contextlib.contextmanager
    def pass_(self) -> Iterator[None]:
        """Around one pass: afterwards, free buffers the pass did not use are released.

        A buffer that came back during the pass (or after it, from a trace dropped
        later) is stamped with the pass's number; one still stamped with an older
        number sat unused in the pool throughout.
        """
        with self._lock:
            self._pass += 1
            start = self._pass
        try:
            yield
        finally:
            with self._lock:
                self._drain()
                self._free = {n: kept for n, bufs in self._free.items()
                              if (kept := [(b, p) for b, p in bufs if p >= start])}

    @property
    def held_bytes(self) -> int:
        """Bytes of free buffers the pool keeps for the next pass."""
        with self._lock:
            self._drain()
            return sum(n * len(bufs) for n, bufs in self._free.items())


def _give_back_to(pool: weakref.ref, buf: Any, nbytes: int, ref: weakref.ref) -> None:
    """A lent array's weak-reference callback: its buffer goes back to the workspace,
    if that is still alive (else the buffer is simply freed with the array)."""
    workspace = pool()
    if workspace is not None:
        workspace._give_back(ref, buf, nbytes)
