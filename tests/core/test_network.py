"""Behaviour of the network beyond raw gradients: directions, feedback, dtypes, states."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis import connectivity, jacobian_norms, spectra
from core.backend import resolve_backend
from core.cells import native
from core.errors import DataError, MemoryLimitError, WeightsError
from core.experiment import LayerConfig, ModelConfig
from core.init import init_params
from core.network import Network, check_memory, estimate_trace_bytes
from tests.core.helpers import network, numeric_grad, rel_error, small_data, small_model
from tests.core.test_native import compiled_kernels

CELLS = [("rnn", False), ("lstm", False), ("lstm", True), ("gru", False), ("cifg", False),
         ("mingru", False), ("minlstm", False)]


@pytest.mark.parametrize(("cell", "peep"), CELLS)
def test_reverse_direction_reads_the_sequence_backwards(cell, peep):
    bi = small_model(cell, bidirectional=True, peephole=peep)
    net = network(bi)
    x, y = small_data(bi, T=7)
    tr = net.run(x, y)
    # The reverse cell, taken on its own, is a forward cell run on the reversed sequence.
    uni = small_model(cell, peephole=peep)
    params = {n.replace("_reverse", ""): v for n, v in net.params.items()
              if n.endswith("_reverse") or n.startswith("head")}
    params["head.weight"] = params["head.weight"][:, :3]
    rev = Network(uni, params, net.backend).run(x[::-1].copy(), y)
    np.testing.assert_allclose(tr.layers["l0_reverse"].h, rev.layers["l0"].h[::-1], atol=1e-12)
    # Its state at t = T−1 has read x_{T−1} only: changing x_0 leaves it alone.
    x2 = x.copy()
    x2[0] += 1.0
    tr2 = net.run(x2, y)
    np.testing.assert_allclose(tr2.layers["l0_reverse"].h[-1], tr.layers["l0_reverse"].h[-1])
    assert not np.allclose(tr2.layers["l0_reverse"].h[0], tr.layers["l0_reverse"].h[0])
    assert not np.allclose(tr2.layers["l0"].h[-1], tr.layers["l0"].h[-1])


def test_many_to_one_reads_pytorch_h_n():
    model = small_model("gru", "many_to_one", bidirectional=True)
    net = network(model)
    x, y = small_data(model)
    tr = net.run(x, y)
    final = np.concatenate([tr.layers["l0"].h[-1], tr.layers["l0_reverse"].h[0]], axis=-1)
    W, b = net.params["head.weight"], net.params["head.bias"]
    np.testing.assert_allclose(tr.output, final @ W.T + b)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_teacher_forcing_feeds_the_target_and_free_running_the_output(cell):
    model = small_model(cell, "output_recurrence")
    net = network(model)
    x, y = small_data(model, T=6)
    forced = net.run(x, y, teacher_mask=np.ones(6, bool))
    np.testing.assert_array_equal(forced.feed[0], 0.0)
    np.testing.assert_array_equal(forced.feed[1:], y[:-1])
    free = net.run(x, y, teacher_mask=np.zeros(6, bool))
    np.testing.assert_array_equal(free.feed[1:], free.output[:-1])
    assert not np.allclose(free.output, forced.output)
    # The target never enters a free-running forward pass.
    other = net.run(x, y + 5.0, teacher_mask=np.zeros(6, bool))
    np.testing.assert_array_equal(other.output, free.output)


def test_cross_entropy_feedback_is_one_hot_target_or_softmax():
    model = small_model("rnn", "output_recurrence", loss="cross_entropy", O=3)
    net = network(model)
    x, y = small_data(model)
    forced = net.run(x, y)
    np.testing.assert_array_equal(forced.feed[1:], np.eye(3)[y[:-1]])
    free = net.run(x, y, teacher_mask=np.zeros(5, bool))
    np.testing.assert_allclose(free.feed[1:].sum(-1), 1.0)


@pytest.mark.parametrize(("cell", "peep"), CELLS)
@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one", "output_recurrence"])
def test_float32_agrees_with_float64(cell, peep, pattern):
    model = small_model(cell, pattern, bidirectional=pattern != "output_recurrence",
                        depth=2, peephole=peep, H=8)
    x, y = small_data(model, T=20, B=4)
    t64 = network(model, "float64").run(x, y)
    t32 = network(model, "float32").run(x, y)
    assert t32.output.dtype == np.float32
    np.testing.assert_allclose(t32.loss, t64.loss, rtol=1e-5)
    for name, g in t64.grads.items():
        scale = np.abs(g).max() + 1e-3
        np.testing.assert_allclose(t32.grads[name], g, atol=2e-5 * scale, rtol=1e-4, err_msg=name)
    for key, L in t64.layers.items():
        np.testing.assert_allclose(t32.layers[key].h, L.h, atol=2e-6)
        np.testing.assert_allclose(t32.layers[key].dh, L.dh, atol=2e-5 * (np.abs(L.dh).max() + 1e-3))


@pytest.mark.parametrize(("cell", "peep"), CELLS)
def test_gradient_of_the_initial_state(cell, peep):
    model = small_model(cell, peephole=peep)
    net = network(model)
    x, y = small_data(model)
    rng = np.random.default_rng(0)
    h0 = rng.normal(size=(2, 3))
    c0 = rng.normal(size=(2, 3)) if cell == "lstm" else None
    tr = net.run(x, y, initial={"l0": (h0, c0)})
    idx = [(b, j) for b in range(2) for j in range(3)]

    def f():
        return net.run(x, y, need_backward=False, initial={"l0": (h0, c0)}).loss

    assert rel_error(np.array([tr.dh0["l0"][i] for i in idx]), numeric_grad(f, h0, idx)) < 1e-6
    if c0 is not None:
        assert rel_error(np.array([tr.dc0["l0"][i] for i in idx]), numeric_grad(f, c0, idx)) < 1e-6
    # The parameter gradients see the initial state too.
    for name, p in net.params.items():
        sel = [tuple(np.unravel_index(k, p.shape)) for k in range(min(p.size, 5))]
        assert rel_error(np.array([tr.grads[name][i] for i in sel]), numeric_grad(f, p, sel)) < 1e-6


@pytest.mark.parametrize(("cell", "peep"), CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("steps", ["loop", "compiled", "numpy"])
@pytest.mark.parametrize("chunked", [False, True])
def test_jacobian_norms_match_finite_differences(monkeypatch, cell, peep, reverse, steps,
                                                 chunked):
    """‖∂h_last/∂h_t‖₂, with ∂h_last/∂h_t built column by column from perturbed restarts;
    on every CPU path of the backward pass that carries the covectors, in one chunk of
    steps or in chunks of 4 and 2 (the carries handed from one to the next)."""
    from core import analysis
    from core.cells import timeloop

    if steps != "numpy":
        compiled_kernels()
    model = small_model(cell, bidirectional=reverse, peephole=peep, H=4)
    net = network(model, compiled=steps != "numpy", time_loop=steps == "loop")
    x, y = small_data(model, T=6, B=1)
    tr = net.run(x, y)
    key = "l0_reverse" if reverse else "l0"
    if chunked:
        monkeypatch.setattr(analysis, "JACOBIAN_CHUNK_BYTES",
                            4 * analysis.covector_step_bytes(cell, 4, 8))
    loops = []
    run_backward = timeloop.run_backward
    monkeypatch.setattr(timeloop, "run_backward",
                        lambda *a, **k: loops.append(r := run_backward(*a, **k)) or r)
    norms = jacobian_norms(net, tr)[key]
    if cell not in ("mingru", "minlstm"):  # diagonal Jacobians: read off the gates
        ran = [r is not None for r in loops]
        directions = 2 if reverse else 1  # the reverse cell's model is bidirectional
        assert ran == [steps == "loop"] * (directions * (2 if chunked else 1))
    L = tr.layers[key]
    T, H = 6, 4
    # A one-direction network holding just this cell, restarted from state (h_t, c_t).
    uni = small_model(cell, peephole=peep, H=4)
    sfx = "_reverse" if reverse else ""
    params = {n.replace(sfx, "") if sfx else n: v for n, v in net.params.items()
              if (n.endswith(sfx) if sfx else not n.endswith("_reverse"))
              and not n.startswith("head")}
    params["head.weight"] = np.zeros((2, H))
    params["head.bias"] = np.zeros(2)
    sub = Network(uni, params, net.backend)
    for t in range(T - 1):
        rest = x[t + 1:] if not reverse else x[:T - 1 - t][::-1].copy()
        tt = t if not reverse else T - 1 - t
        J = np.empty((H, H))
        for j in range(H):
            def last(h0j, j=j, tt=tt, rest=rest):
                h0 = L.h[tt].copy()
                h0[0, j] = h0j
                c0 = None if L.c is None else L.c[tt]
                return sub.run(rest, None, initial={"l0": (h0, c0)}).layers["l0"].h[-1, 0]
            e = 1e-6
            J[:, j] = (last(L.h[tt][0, j] + e) - last(L.h[tt][0, j] - e)) / (2 * e)
        np.testing.assert_allclose(norms[tt], np.linalg.norm(J, 2), rtol=1e-6)
    last_t = 0 if reverse else T - 1
    assert norms[last_t] == pytest.approx(1.0)


@pytest.mark.parametrize("split", [False, True])
def test_spectral_norms_keep_tiny_huge_and_overflowed_products(split, monkeypatch):
    """The Jacobian panel's ‖M‖₂: equal to the SVD's for ordinary matrices, exact for
    products far below or above what their squares could hold, and inf / NaN (not an
    error from the eigensolver) for a product that overflowed or went NaN; the same
    when a large batch is shared with a second thread."""
    import threading

    from core import analysis
    from core.analysis import _spectral_norms

    threads = []
    one = analysis._spectral_norms_1

    def spy(m):
        threads.append((threading.current_thread().name, len(m)))
        return one(m)

    monkeypatch.setattr(analysis, "_spectral_norms_1", spy)
    if split:  # these small matrices stand for a large batch
        monkeypatch.setattr(analysis, "SPLIT_NORMS_WORK", 1)
    m = np.random.default_rng(1).standard_normal((7, 5, 5))
    want = np.linalg.norm(m, 2, axis=(1, 2))
    np.testing.assert_allclose(_spectral_norms(m), want, rtol=1e-13)
    m[2] *= 1e-200
    m[3] *= 1e200
    m[4] = 0.0
    m[5, 1, 1] = np.inf
    m[6, 0, 3] = np.nan
    got = _spectral_norms(m)
    np.testing.assert_allclose(got[:4], [want[0], want[1], want[2] * 1e-200, want[3] * 1e200],
                               rtol=1e-13)
    assert got[4] == 0.0 and got[5] == np.inf and np.isnan(got[6])
    halves = sorted(threads[-2:]) if split else threads[-1:]
    assert halves == ([("MainThread", 3), ("gradlab-norms", 4)] if split
                      else [("MainThread", 7)])


@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one", "output_recurrence"])
@pytest.mark.parametrize(("cell", "peep"), CELLS)
def test_a_pass_without_weight_gradients_gives_the_same_state_and_input_gradients(
        cell, peep, pattern):
    """``param_grads=False`` (the connectivity map's passes) skips only the weight
    gradients: dL/dx, dL/dh_t and the loss are those of the full pass."""
    model = small_model(cell, pattern, bidirectional=pattern != "output_recurrence",
                        depth=2, peephole=peep)
    net = network(model)
    x, y = small_data(model, T=6)
    full = net.run(x, y, input_grad=True, tbptt=4)
    lean = net.run(x, y, input_grad=True, tbptt=4, param_grads=False)
    assert lean.grads == {} and set(full.grads) == set(net.params)
    assert lean.loss == full.loss
    np.testing.assert_array_equal(lean.dx, full.dx)
    for key, layer in full.layers.items():
        np.testing.assert_array_equal(lean.layers[key].dh, layer.dh)


@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one", "output_recurrence"])
def test_connectivity_matches_finite_differences(pattern):
    model = small_model("lstm", pattern, O=2, D=2)
    net = network(model)
    x, y = small_data(model, T=5, B=2)
    mask = np.array([True, False, False, True, False]) if pattern == "output_recurrence" else None
    conn = connectivity(net, x, y, sample=1, teacher_mask=mask, chunk=3)
    T_out = 5 if pattern != "many_to_one" else 1
    assert conn.shape == (T_out, 5)
    xs = x.copy()
    e = 1e-6
    J = np.zeros((T_out, 2, 5, 2))  # (t, o, s, d)
    for s in range(5):
        for d in range(2):
            outs = []
            for sign in (1, -1):
                xs[s, 1, d] = x[s, 1, d] + sign * e
                out = net.run(xs, y, teacher_mask=mask, need_backward=False).output
                outs.append(out[:, 1] if pattern != "many_to_one" else out[1][None])
            xs[s, 1, d] = x[s, 1, d]
            J[:, :, s, d] = (outs[0] - outs[1]) / (2 * e)
    np.testing.assert_allclose(conn, np.sqrt((J ** 2).sum(axis=(1, 3))), rtol=1e-5, atol=1e-9)
    if pattern == "many_to_many":  # causal: no output depends on a later input
        assert np.all(np.triu(conn, 1) == 0)


def test_spectral_radius_of_an_rnn():
    model = ModelConfig(input_size=1, output_size=1, layers=[LayerConfig(cell="rnn", hidden_size=6)])
    params = init_params(model, __import__("core.experiment", fromlist=["InitConfig"]).InitConfig())
    eigs, radius = spectra(model, params)
    assert radius["weight_hh_l0"] == pytest.approx(np.abs(np.linalg.eigvals(params["weight_hh_l0"])).max())
    assert set(eigs["weight_hh_l0"]) == {"h"}


def test_bad_shapes_are_named():
    model = small_model("lstm")
    net = network(model)
    x, y = small_data(model)
    with pytest.raises(DataError, match=r"\(T, B, D\)"):
        net.run(x[0], y)
    with pytest.raises(DataError, match="input_size = 2"):
        net.run(x[..., :1], y)
    with pytest.raises(DataError, match="target: expected shape"):
        net.run(x, y[0])
    with pytest.raises(WeightsError, match="weight_hh_l0: expected shape"):
        p = dict(net.params)
        p["weight_hh_l0"] = p["weight_hh_l0"][:, :2]
        Network(model, p, net.backend)
    with pytest.raises(WeightsError, match="missing parameter"):
        p = dict(net.params)
        del p["bias_ih_l0"]
        Network(model, p, net.backend)


def test_memory_estimate_refuses_before_allocating():
    model = small_model("lstm", H=20_000)
    with pytest.raises(MemoryLimitError, match="needs about"):
        check_memory(model, 10_000, 512)
    assert estimate_trace_bytes(model, 10, 2, "float64") == 2 * estimate_trace_bytes(model, 10, 2, "float32")


def test_exploding_run_reports_where_it_began():
    model = ModelConfig(input_size=1, output_size=1,
                        layers=[LayerConfig(cell="rnn", hidden_size=8, activation="linear")])
    net = network(model, scale=30.0)
    x, y = small_data(model, T=400, B=2)
    tr = net.run(x, y)
    msg = tr.nonfinite
    assert msg is not None and "hidden state h of layer l0 (forward direction)" in msg
    step = int(msg.rsplit(" ", 1)[-1])
    assert msg.endswith(f"became {'Inf' if np.isinf(tr.layers['l0'].h[step]).any() else 'NaN'} "
                        f"at timestep {step}")
    assert np.all(np.isfinite(tr.layers["l0"].h[:step]))
    assert not np.all(np.isfinite(tr.layers["l0"].h[step]))
    assert network(model).run(x, y).nonfinite is None


def float32_rnn(model: ModelConfig, **scales: float) -> Network:
    """A float32 network whose weights of each name prefix are scaled as given."""
    net = network(model, dtype="float32")
    for name in net.params:
        for prefix, factor in scales.items():
            if name.startswith(prefix) or name == prefix:
                net.params[name] *= factor
    return net


def test_a_reverse_cell_that_overflows_is_named_with_its_own_first_step():
    """The reverse cell runs from T−1 down: its first non-finite step is the highest t."""
    model = small_model("rnn", bidirectional=True, activation="linear", H=6)
    net = float32_rnn(model, weight_hh_l0_reverse=40.0)
    x, y = small_data(model, T=60, B=2)
    tr = net.run(x, y)
    h = tr.layers["l0_reverse"].h
    bad = np.flatnonzero(~np.isfinite(h).reshape(60, -1).all(axis=1))
    assert np.isfinite(tr.layers["l0"].h).all()  # the forward cell stayed finite
    assert tr.nonfinite.startswith("the hidden state h of layer l0 (reverse direction) became")
    assert tr.nonfinite.endswith(f"at timestep {bad.max()}")
    assert np.isfinite(h[bad.max() + 1:]).all()


def test_a_gate_that_breaks_first_is_the_one_named():
    """inf − inf in the forget gate's biases: the gate is NaN before c and h are."""
    model = small_model("lstm", D=2, H=4)
    net = network(model, dtype="float32")
    net.params["bias_ih_l0"][4:8] = np.inf  # rows of the forget gate f
    net.params["bias_hh_l0"][4:8] = -np.inf
    x, y = small_data(model, T=6, B=2)
    tr = net.run(x, y)
    assert np.isnan(tr.layers["l0"].gates["f"][0]).all()
    assert np.isfinite(tr.layers["l0"].gates["i"][0]).all()
    assert tr.nonfinite == "the forget gate f of layer l0 (forward direction) became NaN at timestep 0"


def test_an_overflowing_output_names_the_output_and_then_dh():
    model = small_model("rnn", H=5, O=1)
    x, y = small_data(model, T=12, B=2)
    # Head weights of 1e19: the outputs (about 1e19) are finite, their squares are not.
    tr = float32_rnn(model, **{"head.weight": 1e19 / 0.3}).run(x, y)
    assert np.isfinite(tr.output).all() and np.isinf(tr.loss)
    msg = tr.nonfinite
    assert msg.startswith("the loss became Inf: the squared errors of outputs as large as")
    assert "add up past the float32 range" in msg
    t = int(np.abs(tr.output).reshape(12, -1).max(axis=1).argmax())
    assert f"the largest in the output at timestep {t}, read from layer l0" in msg
    if np.isfinite(tr.layers["l0"].dh).all():
        assert msg.endswith("every state and every dL/dh stayed finite")
    else:
        bad = np.flatnonzero(~np.isfinite(tr.layers["l0"].dh).reshape(12, -1).all(axis=1))
        assert msg.endswith(f"then the gradient dL/dh of layer l0 (forward direction) became "
                            f"{'NaN' if np.isnan(tr.layers['l0'].dh[bad.max()]).any() else 'Inf'} "
                            f"at timestep {bad.max()}")
    # Saturated states times head weights of 3e38: the outputs themselves overflow.
    net = float32_rnn(model, weight_ih_l0=100.0)
    net.params["head.weight"][...] = 3e38
    tr = net.run(x, y)
    first = int(np.flatnonzero(~np.isfinite(tr.output).reshape(12, -1).all(axis=1))[0])
    assert tr.nonfinite.startswith(f"the output at timestep {first}, read from layer l0 "
                                   "(forward direction) became")
    assert tr.nonfinite.endswith("while every state before it was finite")


def test_a_many_to_one_readout_names_the_last_states():
    model = small_model("gru", pattern="many_to_one", bidirectional=True, H=4, O=1)
    x, y = small_data(model, T=9, B=2)
    net = float32_rnn(model, weight_ih_l0=100.0, weight_ih_l0_reverse=100.0)
    net.params["head.weight"][...] = 3e38
    tr = net.run(x, y)
    assert tr.nonfinite.startswith("the read-out of layer l0's last states "
                                   "(timestep 8 forward and 0 reverse) became")


def test_a_gradient_that_breaks_in_a_finite_forward_pass_is_found_in_bptt_order():
    """dL/dh of the top layer is computed first, each direction against its own order."""
    from core.tracing import find_nonfinite

    model = small_model("rnn", bidirectional=True, depth=2, H=3)
    net = network(model)
    x, y = small_data(model, T=8, B=2)
    tr = net.run(x, y)
    assert find_nonfinite(tr) is None
    tr.layers["l0"].dh[2, 0, 0] = np.nan
    tr.layers["l1_reverse"].dh[[3, 5], 1, 1] = np.inf
    # l1 is computed before l0; its reverse cell's BPTT runs from t = 0 up: first t = 3
    assert find_nonfinite(tr) == ("with every forward value finite, the gradient dL/dh of "
                                  "layer l1 (reverse direction) became Inf at timestep 3")
    tr.layers["l1_reverse"].dh[...] = 0.0
    assert find_nonfinite(tr).endswith("layer l0 (forward direction) became NaN at timestep 2")


def test_a_probe_without_a_target_is_not_called_non_finite():
    from core.experiment import Experiment
    from core.probe import probe

    model = small_model("rnn")
    exp = Experiment(model=model)
    x, _ = small_data(model)
    assert probe(exp, init_params(model, exp.init), x, None).nonfinite is None


def test_backend_resolution():
    be = resolve_backend("numpy", "float64")
    assert be.name == "numpy" and be.dtype == np.float64
    auto = resolve_backend("auto")
    assert auto.reason


@pytest.mark.parametrize("steps", ["compiled", "numpy"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "peephole", "gru", "cifg", "mingru", "minlstm"])
@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one", "output_recurrence"])
@pytest.mark.parametrize(("bidirectional", "depth"), [(False, 1), (True, 2), (False, 3)])
def test_memory_estimate_matches_measured_peak(cell, pattern, bidirectional, depth, steps):
    """The estimate that refuses impossible runs is within 25 % of the measured peak, with
    the compiled steps and with the NumPy ones (which keep more factors)."""
    import tracemalloc

    if bidirectional and pattern == "output_recurrence":
        pytest.skip("refused by the schema")
    peep = cell == "peephole"
    model = small_model("lstm" if peep else cell, pattern, bidirectional, depth, peep,
                        H=64, D=4, O=2)
    net = network(model, "float32", compiled=steps == "compiled")
    kernels = net.backend.kernels  # built (or found) before measuring, not counted in it
    assert kernels is None if steps == "numpy" else kernels is native.kernels()
    x, y = small_data(model, T=200, B=16)
    x = x.astype(np.float32)
    tracemalloc.start()
    try:
        net.run(x, y).to_arrays()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = estimate_trace_bytes(model, 200, 16, "float32")
    assert 0.75 <= estimate / peak <= 1.25, (estimate, peak)


def test_output_recurrence_refuses_initial_states():
    model = small_model("gru", "output_recurrence")
    x, y = small_data(model)
    h0 = np.zeros((x.shape[1], model.layers[0].hidden_size))
    with pytest.raises(DataError, match="carries no hidden state"):
        network(model).run(x, y, initial={"l0": (h0, None)})


@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one", "output_recurrence"])
def test_input_gradient_only_when_asked(pattern):
    model = small_model("lstm", pattern, depth=2)
    x, y = small_data(model, T=6, B=3)
    net = network(model)
    plain, full = net.run(x, y), net.run(x, y, input_grad=True)
    assert plain.dx is None and full.dx.shape == x.shape
    for name in full.grads:
        np.testing.assert_array_equal(plain.grads[name], full.grads[name], err_msg=name)


@pytest.mark.parametrize(("B", "H", "T", "one_thread"), [(16, 32, 100, True), (64, 256, 4, False)])
def test_small_passes_stay_on_one_blas_thread(monkeypatch, B, H, T, one_thread):
    """A lesson-sized pass never wakes a second BLAS thread (its spinning would take
    the core the window paints on); a large one uses them all in its step loop."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas") < 2:
        pytest.skip("BLAS runs on one thread here anyway")
    import core.cells.lstm as lstm
    import core.network
    from core.cells import timeloop
    from core.cpu_share import CpuShare

    seen = []

    def watch(module, name):
        real = getattr(module, name)

        def watched(*args):
            seen.append(max(p["num_threads"] for p in threadpoolctl.threadpool_info()
                            if p["user_api"] == "blas"))
            return real(*args)

        monkeypatch.setattr(module, name, watched)

    watch(lstm, "forward")  # the step loop in Python
    watch(timeloop, "run_forward")  # the compiled step loop
    watch(core.network, "project")  # the input projection of all steps
    # Whatever other processes run meanwhile: the policy for a busy machine has its test.
    monkeypatch.setattr(CpuShare, "free_cores", lambda self: self.cpus)
    model = small_model("lstm", "many_to_many", D=H, H=H)
    x, y = small_data(model, T=T, B=B)
    network(model, "float32").run(x.astype(np.float32), y)
    assert seen and all((n == 1) == one_thread for n in seen), seen
