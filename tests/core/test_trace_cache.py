"""core.trace reuses an experiment's backend, initial weights and workspace: results stay
those of a fresh network, bit for bit, whatever changes between calls."""

from __future__ import annotations

import copy
import ctypes
import dataclasses

import numpy as np
import pytest

import core
from core.backend import resolve_backend
from core.errors import DataError, WeightsError
from core.experiment import Experiment, InitConfig, LayerConfig, ModelConfig
from core.init import init_params
from core.network import Network
from core.probe import teacher_mask_for
from core.trace_cache import TraceCache, cache_of
from core.userdata import check_arrays
from core.workspace import MIN_POOLED_BYTES


def experiment(cell: str = "lstm", H: int = 48, dtype: str = "float32", **model) -> Experiment:
    m = ModelConfig(input_size=3, output_size=2,
                    layers=[LayerConfig(cell=cell, hidden_size=H)], **model)
    exp = Experiment(model=m, init=InitConfig(seed=4))
    exp.backend.device, exp.backend.dtype = "numpy", dtype
    return exp


def data(exp: Experiment, T: int = 60, B: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, exp.model.input_size))
    if exp.model.pattern == "many_to_one":
        return x, rng.normal(size=(B, exp.model.output_size))
    return x, rng.normal(size=(T, B, exp.model.output_size))


def fresh(exp: Experiment, x, y) -> dict[str, np.ndarray]:
    """What core.trace returned before it kept anything: a new network every call."""
    params = exp.weights if exp.weights is not None else init_params(exp.model, exp.init)
    net = Network(exp.model, params, resolve_backend(exp.backend.device, exp.backend.dtype))
    x, y = check_arrays(exp.model, x, y)
    mask = teacher_mask_for(exp, x.shape[0])
    return net.run(x, y, tbptt=exp.training.tbptt, teacher_mask=mask).to_arrays()


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def poison(cache: TraceCache) -> int:
    """Fill every free buffer the workspace keeps with NaN bytes: a pass that read memory
    it did not write would show it.  Returns how many buffers were poisoned."""
    ws = cache._workspace
    if ws is None:
        return 0
    with ws._lock:
        ws._drain()
        bufs = [b for kept in ws._free.values() for b, _ in kept]
    for b in bufs:
        ctypes.memset(ctypes.addressof(b), 0xFF, ctypes.sizeof(b))
    return len(bufs)


def addresses(out: dict[str, np.ndarray]) -> set[int]:
    return {a.__array_interface__["data"][0] for a in out.values() if a.nbytes >= MIN_POOLED_BYTES}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_repeated_calls_are_bit_identical_and_reuse_memory(cell):
    exp = experiment(cell)
    x, y = data(exp)
    want = fresh(exp, x, y)
    first = core.trace(exp, x, y)
    same(first, want)
    kept = {k: v.copy() for k, v in first.items()}
    assert cache_of(exp).held_bytes > 0  # the pass's working arrays are kept for the next
    assert poison(cache_of(exp)) > 0
    second = core.trace(exp, x, y)
    same(second, want)
    same(first, kept)  # a result the caller holds is never written over
    lent = addresses(first) | addresses(second)
    del first, second
    assert poison(cache_of(exp)) > 0
    third = core.trace(exp, x, y)
    same(third, want)
    assert addresses(third) and addresses(third) <= lent  # the same memory, reused


def test_changed_shapes_dtype_model_weights_and_init_are_never_served_stale():
    exp = experiment("lstm")
    steps = []  # (what changed, the experiment and the arrays for the next call)
    steps.append(("first call", exp, *data(exp)))
    steps.append(("longer T", exp, *data(exp, T=57)))
    steps.append(("smaller batch", exp, *data(exp, T=57, B=24)))
    steps.append(("back to the first shape", exp, *data(exp)))
    for _label, e, x, y in steps:
        poison(cache_of(e))
        same(core.trace(e, x, y), fresh(e, x, y))

    exp.backend.dtype = "float64"  # in place
    x, y = data(exp)
    out = core.trace(exp, x, y)
    assert out["h.l0"].dtype == np.float64
    same(out, fresh(exp, x, y))
    exp.backend.dtype = "float32"
    poison(cache_of(exp))
    same(core.trace(exp, x, y), fresh(exp, x, y))

    exp.model.layers[0].hidden_size = 11  # the model edited in place
    poison(cache_of(exp))
    out = core.trace(exp, x, y)
    assert out["h.l0"].shape == (60, 32, 11)
    same(out, fresh(exp, x, y))
    exp.model = dataclasses.replace(exp.model, layers=[LayerConfig(cell="gru", hidden_size=9,
                                                                   bidirectional=True)])
    poison(cache_of(exp))
    same(core.trace(exp, x, y), fresh(exp, x, y))

    exp.init.seed = 7  # no weights: a new initialisation
    before = core.trace(exp, x, y)
    same(before, fresh(exp, x, y))
    exp.init.scales.recurrent = 2.0
    after = core.trace(exp, x, y)
    same(after, fresh(exp, x, y))
    assert not np.array_equal(before["h.l0"], after["h.l0"])

    exp.weights = {k: v.copy() for k, v in init_params(exp.model, InitConfig(seed=1)).items()}
    same(core.trace(exp, x, y), fresh(exp, x, y))
    exp.weights["weight_hh_l0"] *= 1.5  # weights edited in place
    same(core.trace(exp, x, y), fresh(exp, x, y))
    exp.weights["weight_hh_l0"] = exp.weights["weight_hh_l0"][:3]  # a bad shape is still caught
    with pytest.raises(WeightsError, match="weight_hh_l0: expected shape"):
        core.trace(exp, x, y)


@pytest.mark.parametrize("pattern", ["many_to_one", "output_recurrence"])
def test_other_patterns_and_truncation_stay_bit_identical(pattern):
    exp = experiment("gru", pattern=pattern)
    exp.training.tbptt = 7
    exp.training.teacher_forcing = 0.5
    for T in (30, 30, 12):
        x, y = data(exp, T=T)
        poison(cache_of(exp))
        same(core.trace(exp, x, y), fresh(exp, x, y))


def test_a_model_change_drops_the_old_workspace_and_a_copy_starts_empty():
    exp = experiment("rnn")
    x, y = data(exp)
    core.trace(exp, x, y)
    cache = cache_of(exp)
    ws = cache._workspace
    core.trace(exp, x, y)
    assert cache._workspace is ws
    exp.model.layers[0].cell = "gru"
    core.trace(exp, x, y)
    assert cache._workspace is not ws
    twin = copy.deepcopy(exp)
    assert cache_of(twin) is not cache and cache_of(twin)._workspace is None
    assert cache_of(dataclasses.replace(exp)) is not cache
    cache.release()
    assert cache.held_bytes == 0 and cache._workspace is None
    same(core.trace(exp, x, y), fresh(exp, x, y))


def test_arrays_are_checked_in_the_working_dtype_with_the_same_results():
    """core.trace checks x and y straight into its dtype: float32, float64 and integer
    inputs give what the float64 route gave, and a value float32 cannot hold is refused."""
    exp = experiment("gru")
    x, y = data(exp)
    want = fresh(exp, x, y)
    same(core.trace(exp, x.astype(np.float32), y.astype(np.float32)),
         fresh(exp, x.astype(np.float32), y.astype(np.float32)))
    same(core.trace(exp, x, y), want)
    xi = np.rint(x * 3).astype(np.int16)
    same(core.trace(exp, xi, y), fresh(exp, xi, y))
    x[3, 1, 2] = 1e39  # finite in float64, infinite in float32: named, never cast
    with pytest.raises(DataError, match=r"input: 1 value\(s\) beyond .*float32.*\[3, 1, 2\]"):
        core.trace(exp, x, y)
    exp.backend.dtype = "float64"  # refused there too: a later switch to float32 is safe
    with pytest.raises(DataError, match=r"\[3, 1, 2\]"):
        core.trace(exp, x, y)


def test_free_memory_is_read_again_before_the_passes_could_take_5_percent(monkeypatch):
    from core import network
    from core.errors import MemoryLimitError

    free = {"bytes": 10**12, "reads": 0}

    def available() -> int:
        free["reads"] += 1
        return free["bytes"]

    monkeypatch.setattr(network, "available_memory", available)
    exp = experiment("rnn", H=8)
    x, y = data(exp, T=10, B=2)
    need = network.estimate_trace_bytes(exp.model, 10, 2, "float32")
    core.trace(exp, x, y)
    reads = free["reads"]
    for _ in range(5):
        core.trace(exp, x, y)
    assert free["reads"] == reads  # well within 5 % of a terabyte: not read again
    free["bytes"] = 30 * need  # 5 % of it is a pass and a half
    core.trace(exp, x, y)  # still within the budget of the last reading
    cache_of(exp)._budget = 0  # as after passes that took 5 % of the last reading
    core.trace(exp, x, y)  # read again: 30 passes' worth free, so it runs
    assert free["reads"] > reads
    free["bytes"] = need  # now one pass takes it all: the next check refuses
    with pytest.raises(MemoryLimitError, match="needs about"):
        for _ in range(3):
            core.trace(exp, x, y)
    big_x, big_y = data(exp, T=10, B=64)  # 32 times the memory
    free["bytes"] = 40 * need
    core.trace(exp, x, y)  # the failed check left no budget: read again, 2 passes' worth
    free["bytes"] = 10 * need  # a pass larger than the budget is always checked
    with pytest.raises(MemoryLimitError, match="needs about"):
        core.trace(exp, big_x, big_y)


def test_calls_from_two_threads_at_once_get_their_own_results():
    import threading

    exp = experiment("lstm")
    inputs = [data(exp, seed=s) for s in range(4)]
    want = [fresh(exp, x, y) for x, y in inputs]
    got: dict[int, list] = {0: [], 1: []}

    def work(n: int) -> None:
        for _ in range(5):
            for x, y in inputs:
                got[n].append(core.trace(exp, x, y))

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    # Overlapping passes on two threads can leave the BLAS on the thread count one of them
    # found (threadpoolctl restores per limit, and the count is process-wide): put the
    # process's count back for the tests after this one.
    blas = pytest.importorskip("threadpoolctl").ThreadpoolController()
    saved = blas.limit(limits=None, user_api="blas")
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        saved.restore_original_limits()
    for n in (0, 1):
        assert len(got[n]) == 20
        for i, out in enumerate(got[n]):
            same(out, want[i % 4])
