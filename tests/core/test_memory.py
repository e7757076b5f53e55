"""core.memory: the memory available now, read the fast way."""

from __future__ import annotations

import os

import pytest

from core.memory import available_memory


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="Linux's /proc/meminfo")
def test_available_memory_is_linux_memavailable():
    def slow() -> int:
        with open("/proc/meminfo", encoding="ascii") as fh:
            line = next(ln for ln in fh if ln.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024

    before, got, after = slow(), available_memory(), slow()
    # The figure moves as other processes run: it must lie near both readings around it.
    assert min(before, after) - 64 * 1024**2 <= got <= max(before, after) + 64 * 1024**2
    assert got % 1024 == 0 and got > 0
