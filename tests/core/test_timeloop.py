"""The compiled time loop against the Python loop over t with the same compiled steps:
every trace array, on every cell it serves, with truncation, frozen window starts,
initial states, reverse directions, chunked calls and cancellation.  (The
finite-difference and PyTorch-parity tests run on all three CPU paths too.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.cells import timeloop
from core.jobs import Cancelled, Control
from tests.core.helpers import network, small_data, small_model
from tests.core.test_native import compiled_kernels


@pytest.fixture(autouse=True)
def _needs_the_loop():
    compiled_kernels()
    if not timeloop.status().startswith("compiled time loop"):
        pytest.fail(timeloop.status())


def counting(monkeypatch) -> dict[str, int]:
    """Count the directions the compiled loop ran, forward and back."""
    calls = {"forward": 0, "backward": 0}
    fwd, bwd = timeloop.run_forward, timeloop.run_backward

    def run_forward(*a, **k):
        done = fwd(*a, **k)
        calls["forward"] += bool(done)
        return done

    def run_backward(*a, **k):
        done = bwd(*a, **k)
        calls["backward"] += done is not None
        return done

    monkeypatch.setattr(timeloop, "run_forward", run_forward)
    monkeypatch.setattr(timeloop, "run_backward", run_backward)
    return calls


def both(model, dtype, **run):
    """(compiled loop trace, Python loop trace) arrays of the same network and data."""
    x, y = small_data(model, T=run.pop("T", 11), B=run.pop("B", 3))
    fast = network(model, dtype).run(x, y, input_grad=True, **run)
    slow = network(model, dtype, time_loop=False).run(x, y, input_grad=True, **run)
    return fast, slow


def assert_close(fast, slow, dtype):
    got, want = fast.to_arrays(), slow.to_arrays()
    assert got.keys() == want.keys()
    tol = 1e-12 if dtype == "float64" else 2e-5
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=tol, atol=tol, err_msg=key)
    for key in slow.dh0:
        np.testing.assert_allclose(fast.dh0[key], slow.dh0[key], rtol=tol, atol=tol)


CASES = [("lstm", False, "tanh"), ("lstm", True, "tanh"), ("gru", False, "tanh"),
         ("rnn", False, "tanh"), ("rnn", False, "sigmoid"), ("cifg", False, "tanh"),
         ("mingru", False, "tanh"), ("minlstm", False, "tanh")]


def test_every_cell_with_kernels_is_in_the_loops_table():
    from core.cells import CELLS

    assert set(timeloop.KERNELS) == set(CELLS)


@pytest.mark.parametrize(("cell", "peep", "act"), CASES)
@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("tbptt", [None, 4])
def test_the_loop_gives_the_python_loops_trace(monkeypatch, cell, peep, act, pattern, dtype,
                                               tbptt):
    calls = counting(monkeypatch)
    model = small_model(cell, pattern, bidirectional=True, depth=2, peephole=peep,
                        activation=act, D=3, H=6)
    fast, slow = both(model, dtype, tbptt=tbptt)
    assert calls == {"forward": 4, "backward": 4}  # two layers, two directions each
    assert_close(fast, slow, dtype)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "cifg", "mingru", "minlstm"])
def test_frozen_window_starts_initial_states_and_small_chunks(monkeypatch, cell):
    model = small_model(cell, "many_to_many", bidirectional=True, D=2, H=5)
    x, y = small_data(model, T=13, B=2)
    rng = np.random.default_rng(5)
    cell_state = cell in ("lstm", "cifg")
    initial = {k: (rng.normal(size=(2, 5)), rng.normal(size=(2, 5)) if cell_state else None)
               for k in ("l0", "l0_reverse")}
    for start in (initial, None):  # given initial states, and zeros for both h and c
        results = []
        for time_loop in (True, False):
            net = network(model, "float64", time_loop=time_loop)
            net.scan = False  # minGRU/minLSTM: the step loops, not the scan (core.scan)
            frozen = net.run(x * 1.5, y, tbptt=3)  # other states at the window starts
            results.append(net.run(x, y, tbptt=3, frozen=frozen, initial=start))
        assert_close(*results, "float64")
    # Chunks of one and of five steps give the same as one call over all steps.
    chunked = []
    for chunk in (1, 5, 256):
        fwd, bwd = timeloop.run_forward, timeloop.run_backward
        monkeypatch.setattr(timeloop, "run_forward",
                            lambda *a, c=chunk, f=fwd, **k: f(*a, chunk=c, **k))
        monkeypatch.setattr(timeloop, "run_backward",
                            lambda *a, c=chunk, b=bwd, **k: b(*a, chunk=c, **k))
        net = network(model, "float64")
        net.scan = False
        chunked.append(net.run(x, y, tbptt=4, initial=initial))
        monkeypatch.setattr(timeloop, "run_forward", fwd)
        monkeypatch.setattr(timeloop, "run_backward", bwd)
    assert_close(chunked[0], chunked[2], "float64")
    assert_close(chunked[1], chunked[2], "float64")


def test_cells_without_kernels_and_other_backends_keep_the_python_loop(monkeypatch):
    calls = counting(monkeypatch)
    for act in ("relu", "linear"):
        model = small_model("rnn", activation=act)
        fast, slow = both(model, "float64")
        assert_close(fast, slow, "float64")
    assert calls == {"forward": 0, "backward": 0}
    model = small_model("lstm")
    x, y = small_data(model)
    network(model, compiled=False).run(x, y)
    network(model, time_loop=False).run(x, y)
    assert calls == {"forward": 0, "backward": 0}
    network(model).run(x, y)
    assert calls == {"forward": 1, "backward": 1}


def test_a_cancelled_pass_stops_between_chunks(monkeypatch):
    model = small_model("gru", H=4)
    x, y = small_data(model, T=40, B=2)
    net = network(model, "float64")
    control = Control()
    net.control = control
    calls = []
    fwd = timeloop.run_forward

    def spy(*a, **k):
        calls.append(1)
        control.cancel()  # as if the user cancelled while this direction ran
        return fwd(*a, chunk=8, **k)

    monkeypatch.setattr(timeloop, "run_forward", spy)
    with pytest.raises(Cancelled):
        net.run(x, y)
    assert calls == [1]


def test_a_malformed_spec_is_refused_not_run():
    table = compiled_kernels()
    loop = table[timeloop.METHODS[0]]
    with pytest.raises(TypeError, match="a spec and a tuple of arrays"):
        loop(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="malformed spec"):
        loop(np.zeros(3, dtype=np.int64), ())
    with pytest.raises(TypeError, match="contiguous int64"):
        loop(np.zeros(40, dtype=np.float64), ())
    # A well-formed spec of one argument, then each kind of damage.
    spec = np.zeros(len(timeloop._FWD_HEAD) + timeloop._ARG, dtype=np.int64)
    field = {n: i for i, n in enumerate(timeloop._FWD_HEAD)}
    spec[field["nargs"]], spec[field["narrays"]] = 1, 1
    arrays = (np.zeros((2, 2), np.float32),)
    loop(spec, arrays)  # s0 = s1 = 0: no step runs
    bad = spec.copy()
    bad[field["w"]] = 5  # an array that is not there
    with pytest.raises(ValueError, match="array index"):
        loop(bad, arrays)
    bad = spec.copy()
    bad[len(timeloop._FWD_HEAD)] = 3  # an argument in an array that is not there
    with pytest.raises(ValueError, match="argument 0"):
        loop(bad, arrays)
    with pytest.raises(TypeError, match="not of the spec's dtype"):
        loop(spec, (np.zeros((2, 2)),))


def test_large_sizes_agree_in_float32(monkeypatch):
    """Batch and width where the products go through BLAS's blocked kernels."""
    calls = counting(monkeypatch)
    model = dataclasses.replace(small_model("lstm", D=40, H=48))
    fast, slow = both(model, "float32", T=30, B=17)
    assert calls["forward"] == 1
    got, want = fast.to_arrays(), slow.to_arrays()
    for key in want:  # sums of 48 terms in another order: relative to the values' scale
        scale = max(1.0, float(np.abs(want[key]).max()))
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5 * scale, err_msg=key)


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru", "cifg", "mingru"])
def test_biases_are_added_once_whichever_loop_runs(monkeypatch, cell):
    """LSTM, CIFG and RNN biases go to the compiled loop's steps, not the input
    projection; should the loop then decline a direction, the Python loop gets them
    instead."""
    model = small_model(cell, "many_to_many", bidirectional=True, D=3, H=6)
    folds = cell in ("lstm", "rnn", "cifg")
    assert timeloop.folds_bias(network(model).backend, *_cell_and_constants(cell)) == folds
    fast, slow = both(model, "float64")
    assert_close(fast, slow, "float64")
    monkeypatch.setattr(timeloop, "run_forward", lambda *a, **k: False)  # the loop declines
    declined, slow = both(model, "float64")
    assert_close(declined, slow, "float64")


def _cell_and_constants(cell: str):
    from core.cells import CELLS

    return CELLS[cell], {"activation": "tanh"}


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("tbptt", [None, 5])
def test_cells_without_recurrent_weights_loop_where_the_scan_does_not(monkeypatch, cell, tbptt):
    """minGRU and minLSTM take the compiled loop (no product in it) where the scan is not
    the faster path, and give the scan's trace where both can run."""
    calls = counting(monkeypatch)
    model = small_model(cell, "many_to_many", bidirectional=True, depth=2, D=3, H=6)
    x, y = small_data(model, T=40, B=2)
    traces = {}
    for path in ("loop", "scan", "python"):
        net = network(model, "float64", time_loop=path != "python")
        net.scan = path == "scan"
        traces[path] = net.run(x, y, tbptt=tbptt, input_grad=True)
    assert calls == {"forward": 4, "backward": 4}  # the loop's run only: two layers × two
    assert_close(traces["loop"], traces["python"], "float64")
    got, want = traces["loop"].to_arrays(), traces["scan"].to_arrays()
    for key in want:  # the scan associates its products otherwise: rounding apart
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-11, err_msg=key)


def test_a_spec_is_built_once_per_layout_and_serves_later_passes(monkeypatch):
    """The second pass of the same shapes takes the kept spec with its own arrays; a
    pass of other shapes, or with initial states (h0 and c0 no longer one array),
    builds its own; every trace equals the Python loop's."""
    built = []
    for name in ("_forward_spec", "_backward_spec"):
        real = getattr(timeloop, name)
        monkeypatch.setattr(timeloop, name,
                            lambda *a, r=real, n=name, **k: built.append(n) or r(*a, **k))
    monkeypatch.setattr(timeloop, "_SPECS", {})
    model = small_model("lstm", "many_to_many", bidirectional=True, D=3, H=5)
    net = network(model, "float64")
    slow = network(model, "float64", time_loop=False)
    rng = np.random.default_rng(2)
    for T, B, initial in ((7, 2, False), (7, 2, False), (9, 2, False), (7, 3, False),
                          (7, 2, True), (7, 2, False)):
        x, y = small_data(model, T=T, B=B, seed=T + B)
        start = ({k: (rng.normal(size=(B, 5)), rng.normal(size=(B, 5)))
                  for k in ("l0", "l0_reverse")} if initial else None)
        before = len(built)
        assert_close(net.run(x, y, initial=start), slow.run(x, y, initial=start), "float64")
        if (T, B, initial) == (7, 2, False) and before:
            assert len(built) == before  # kept from the first pass
        else:
            assert len(built) == before + 4  # two directions, forward and back
