"""The workspace reuses a pass's large buffers, but never memory something still reads."""

import gc

import numpy as np

from core.workspace import MIN_POOLED_BYTES, Workspace
from tests.core.helpers import network, small_data, small_model

N = MIN_POOLED_BYTES // 4  # float32 elements in the smallest pooled array


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_a_dropped_array_gives_its_memory_to_the_next_request():
    ws = Workspace(np)
    with ws.pass_():
        a = ws.empty((2, N), np.float32)
        where = address(a)
        del a
        b = ws.empty((N, 2), np.float32)  # same size, other shape
        assert address(b) == where


def test_memory_a_view_still_reads_is_not_handed_out():
    ws = Workspace(np)
    with ws.pass_():
        a = ws.empty((4, N), np.float32)
        a[...] = 7.0
        view = a[1:3].reshape(-1)[::2]  # a view of a view: still keeps the buffer
        del a
        gc.collect()
        b = ws.empty((4, N), np.float32)
        b[...] = -1.0
        assert np.all(view == 7.0)
        assert not np.shares_memory(view, b)
        del view, b
        c = ws.empty((4, N), np.float32)
        assert c.shape == (4, N)


def test_buffers_a_pass_did_not_use_are_released_after_it():
    ws = Workspace(np)
    with ws.pass_():
        a, b = ws.empty((N,), np.float32), ws.empty((3 * N,), np.float32)
        del a, b
    assert ws.held_bytes == 4 * N * 4
    with ws.pass_():
        ws.empty((N,), np.float32)  # takes the small buffer back; the large one sits unused
    assert ws.held_bytes == N * 4


def test_a_miss_releases_what_this_pass_let_go():
    """The pass needs no more memory than without the workspace: a buffer let go during
    the pass that cannot serve a new request is released, not kept beside the new one."""
    ws = Workspace(np)
    with ws.pass_():
        ws.empty((N,), np.float32)
        assert ws.held_bytes == N * 4
        big = ws.empty((5 * N,), np.float32)  # too large for the free buffer: a miss
        assert ws.held_bytes == 0
        del big


def test_small_arrays_come_from_the_ordinary_allocator():
    ws = Workspace(np)
    with ws.pass_():
        a = ws.empty((4,), np.float64)
    assert a.base is None and ws.held_bytes == 0
    z = ws.zeros((2, N), np.float32)
    assert z.shape == (2, N) and not z.any()


def test_a_kept_trace_is_not_overwritten_by_the_next_pass():
    model = small_model("lstm", "many_to_many", False, 2, H=64, D=3, O=2)
    net = network(model, "float32")
    x1, y1 = small_data(model, T=150, B=16, seed=1)
    x2, y2 = small_data(model, T=150, B=16, seed=2)
    first = net.run(x1.astype(np.float32), y1)
    before = first.to_arrays()
    for _ in range(3):  # passes of the same shapes, which reuse every free buffer
        second = net.run(x2.astype(np.float32), y2)
    after = first.to_arrays()
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert not np.allclose(second.layers["l0"].h, first.layers["l0"].h)


def test_repeated_passes_reuse_the_same_memory():
    import tracemalloc

    model = small_model("gru", "many_to_many", False, 1, H=64, D=3, O=2)
    net = network(model, "float32")
    x, y = small_data(model, T=150, B=16)
    x = x.astype(np.float32)
    tracemalloc.start()
    try:
        net.run(x, y)  # the trace is dropped at once: its memory goes back to the pool
        first = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0]
        net.run(x, y)
        growth = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
    assert growth < 0.1 * first, (growth, first)  # the second pass maps no new buffers


def test_an_array_freed_by_the_garbage_collector_under_the_lock_does_not_hang():
    """Arrays in reference cycles die inside a garbage collection, which can start in
    any allocation, even one the workspace makes while holding its lock."""
    ws = Workspace(np)

    class Cycle:
        pass

    with ws.pass_():
        holder = Cycle()
        holder.me = holder
        holder.array = ws.empty((N,), np.float32)
        del holder
        with ws._lock:
            gc.collect()  # the callback runs here, with the lock taken
        assert ws.held_bytes == N * 4


def test_a_dropped_workspace_frees_its_pool_at_once_not_at_a_collection():
    """A probe's network and its pooled buffers go when the probe ends, not whenever the
    cyclic collector runs (they once lived on into the next training step's probe)."""
    import tracemalloc

    gc.disable()
    tracemalloc.start()
    try:
        ws = Workspace(np)
        with ws.pass_():
            a = ws.empty((64, N), np.float32)
            kept = ws.empty((4, N), np.float32)  # an array the caller keeps
            del a
        assert ws.held_bytes >= 64 * N * 4
        del ws
        held = tracemalloc.get_traced_memory()[0]
        assert held < 16 * N * 4, held  # the pool is gone; the kept array stays usable
        kept[...] = 1.0
        assert float(kept.sum()) == kept.size
    finally:
        tracemalloc.stop()
        gc.enable()
