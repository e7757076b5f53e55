"""Small memory helpers: how much is available now, sizes in words, parameter counts.

The estimate of one forward + BPTT pass lives beside the engine
(:func:`core.network.estimate_trace_bytes`, :func:`core.network.check_memory`).
"""

from __future__ import annotations

import os

import numpy as np

from .experiment import ModelConfig
from .layout import param_shapes

FALLBACK_AVAILABLE = 8 * 1024**3


def available_memory() -> int:
    """Bytes of memory available now: Linux's MemAvailable (counts reclaimable cache),
    else free pages from ``os.sysconf``, else 8 GiB."""
    try:  # one unbuffered read: every core.trace asks, and a buffered text loop took 25 µs
        fd = os.open("/proc/meminfo", os.O_RDONLY)
        try:
            text = os.read(fd, 1 << 16)
        finally:
            os.close(fd)
        at = text.index(b"\nMemAvailable:") + 14
        return int(text[at:text.index(b"\n", at)].split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return FALLBACK_AVAILABLE


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``; any size, however large (an integer beyond the float
    range reads "more than 1e+308 B")."""
    try:
        n = float(n)
    except OverflowError:
        return "more than 1e+308 B"
    if n != n or abs(n) == float("inf"):
        return "more than 1e+308 B"
    if abs(n) >= 1024**5 * 10_000:
        return f"{n / 1024**4:.3g} TiB"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def param_count(model: ModelConfig) -> int:
    """Number of scalar parameters of ``model``."""
    return sum(int(np.prod(s, dtype=np.int64)) for s in param_shapes(model).values())
