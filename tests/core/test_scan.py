"""The minGRU/minLSTM scan over time gives the step loop's trace, gradients included."""

from __future__ import annotations

import numpy as np
import pytest

from core.scan import SCAN_FROM_T, SCAN_MAX_WIDTH, linear_scan
from tests.core.helpers import network, small_data, small_model
from tests.core.test_gradients import check_gradients


@pytest.mark.parametrize("T", [1, 2, 7, 16, 17, 100])
@pytest.mark.parametrize("chunk", [None, 1, 3, 1000])
def test_linear_scan_is_the_recurrence(T, chunk):
    rng = np.random.default_rng(T)
    a, b = rng.uniform(0, 1.2, size=(T, 2, 3)), rng.normal(size=(T, 2, 3))
    h0 = rng.normal(size=(2, 3))
    want, h = np.empty_like(b), h0
    for t in range(T):
        h = a[t] * h + b[t]
        want[t] = h
    got = b.copy()
    assert linear_scan(np, a.copy(), h0, got, chunk) is got  # in place
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    back = b.copy()  # reversed views run it backwards in time
    linear_scan(np, a.copy()[::-1], h0, back[::-1], chunk)
    h = h0
    for t in range(T - 1, -1, -1):
        h = a[t] * h + b[t]
        np.testing.assert_allclose(back[t], h, rtol=1e-12, atol=1e-14)


def _runs(model, x, y, tbptt, dtype="float64", compiled=True, **kw):
    out = []
    for scan in (True, False):
        net = network(model, dtype, compiled=compiled)
        net.scan = scan
        out.append(net.run(x, y, tbptt=tbptt, input_grad=True, **kw).to_arrays())
    return out


@pytest.mark.parametrize("steps", ["compiled", "numpy"])
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one"])
@pytest.mark.parametrize("tbptt", [None, 3])
def test_scan_and_loop_give_the_same_trace(cell, pattern, tbptt, steps):
    model = small_model(cell, pattern, True, 2, H=5)
    x, y = small_data(model, T=23, B=3)
    scanned, looped = _runs(model, x, y, tbptt, compiled=steps == "compiled")
    assert scanned.keys() == looped.keys()
    for key in looped:
        np.testing.assert_allclose(scanned[key], looped[key], rtol=1e-11, atol=1e-14, err_msg=key)


def test_scan_and_loop_agree_in_float32_over_a_long_sequence():
    model = small_model("mingru", "many_to_one", False, 1, H=8)
    x, y = small_data(model, T=2000, B=2)
    scanned, looped = _runs(model, x.astype(np.float32), y, None, "float32")
    for key in ("h.l0", "dh.l0", "grad.weight_ih_l0", "grad.bias_ih_l0"):
        scale = np.abs(looped[key]).max()
        np.testing.assert_allclose(scanned[key], looped[key], rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=key)


@pytest.mark.parametrize("steps", ["compiled", "numpy"])
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("tbptt", [None, 2])
def test_scan_gradients_match_finite_differences(cell, tbptt, steps):
    model = small_model(cell, "many_to_many", True, 2)
    net = network(model, compiled=steps == "compiled")
    net.scan = True
    check_gradients(net, *small_data(model, T=6), tbptt=tbptt)


def test_initial_state_gradients_through_the_scan():
    model = small_model("minlstm", "many_to_many", True, 1, H=3)
    x, y = small_data(model, T=20)
    rng = np.random.default_rng(4)
    initial = {k: (rng.normal(size=(2, 3)), None) for k in ("l0", "l0_reverse")}
    got = []
    for scan in (True, False):
        net = network(model)
        net.scan = scan
        got.append(net.run(x, y, initial=initial))
    for key in ("l0", "l0_reverse"):
        np.testing.assert_allclose(got[0].dh0[key], got[1].dh0[key], rtol=1e-11)


def test_the_scan_is_chosen_from_the_threshold_on(monkeypatch):
    import core.scan

    model = small_model("mingru", "many_to_many", H=3)
    net = network(model, time_loop=False)  # the compiled time loop outruns the scan
    calls = []
    real = core.scan.forward
    monkeypatch.setattr(core.scan, "forward",
                        lambda *args, **kw: calls.append(args[2].shape[1]) or real(*args, **kw))
    for T in (SCAN_FROM_T - 1, SCAN_FROM_T):
        net.run(*small_data(model, T=T))
    assert calls == [SCAN_FROM_T]
    net.scan = False
    net.run(*small_data(model, T=SCAN_FROM_T))
    assert calls == [SCAN_FROM_T]
    net.scan = None  # a wide batch: the loop
    net.run(*small_data(model, T=SCAN_FROM_T, B=SCAN_MAX_WIDTH // 3 + 1))
    assert calls == [SCAN_FROM_T]
    from core.cells import timeloop

    network(model).run(*small_data(model, T=100))
    if timeloop.status().startswith("compiled time loop"):
        assert calls == [SCAN_FROM_T]  # the compiled time loop runs it: never the scan
    else:
        assert calls == [SCAN_FROM_T, 100]
