"""Every analytic gradient against central finite differences in float64.

Cells × patterns × directions × depths × full and truncated BPTT; parameters and
inputs; with the compiled CPU steps and with the plain NumPy ones.  Truncated BPTT is
the gradient of the loss in which the states carried across a window boundary are
constants, so the finite differences run with those states frozen at their unperturbed
values (``frozen=``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.core.helpers import (
    network,
    numeric_grad,
    rel_error,
    sample_indices,
    small_data,
    small_model,
)
from tests.core.test_native import compiled_kernels
from tests.core.test_timeloop import counting

CELLS = [
    ("rnn", "tanh", False),
    ("rnn", "relu", False),
    ("rnn", "sigmoid", False),
    ("rnn", "linear", False),
    ("lstm", "tanh", False),
    ("lstm", "tanh", True),  # peephole
    ("gru", "tanh", False),
    ("cifg", "tanh", False),
    ("mingru", "tanh", False),
    ("minlstm", "tanh", False),
]
PATTERNS = ["many_to_many", "many_to_one", "output_recurrence"]
TOL = 1e-6


def _cases():
    for (cell, act, peep), pattern, bidir, depth, tbptt in itertools.product(
            CELLS, PATTERNS, (False, True), (1, 2), (None, 2)):
        if bidir and pattern == "output_recurrence":
            continue  # refused by the schema: no hidden recurrence to reverse
        yield pytest.param(cell, act, peep, pattern, bidir, depth, tbptt,
                           id=f"{cell}-{act}{'-peep' if peep else ''}-{pattern}-"
                              f"{'bi' if bidir else 'uni'}-d{depth}-tbptt{tbptt}")


def check_gradients(net, x, y, tbptt=None, teacher_mask=None, per_param=8, seed=0, eps=1e-4):
    rng = np.random.default_rng(seed)
    kw = {"tbptt": tbptt, "teacher_mask": teacher_mask}
    base = net.run(x, y, input_grad=True, **kw)
    assert np.isfinite(base.loss)
    frozen = base if tbptt else None

    def loss():
        return net.run(x, y, need_backward=False, frozen=frozen, **kw).loss

    assert set(base.grads) == set(net.params)
    for name, p in net.params.items():
        idx = sample_indices(p.shape, per_param, rng)
        num = numeric_grad(loss, p, idx, eps)
        ana = np.array([base.grads[name][i] for i in idx])
        assert rel_error(ana, num) <= TOL, f"{name}: analytic {ana} vs numeric {num}"
    xc = np.array(x, dtype=np.float64)
    idx = sample_indices(xc.shape, 12, rng)

    def loss_x():
        return net.run(xc, y, need_backward=False, frozen=frozen, **kw).loss

    num = numeric_grad(loss_x, xc, idx, eps)
    ana = np.array([base.dx[i] for i in idx])
    assert rel_error(ana, num) <= TOL, f"dL/dx: analytic {ana} vs numeric {num}"
    return base


@pytest.mark.parametrize("steps", ["loop", "compiled", "numpy"])
@pytest.mark.parametrize(("cell", "act", "peep", "pattern", "bidir", "depth", "tbptt"), list(_cases()))
def test_gradients_match_finite_differences(monkeypatch, cell, act, peep, pattern, bidir, depth,
                                            tbptt, steps):
    """On every CPU path: the compiled time loop (core.cells.timeloop), the compiled
    steps in the Python loop over t (core.cells.native), and the NumPy steps."""
    if steps != "numpy":
        compiled_kernels()
    calls = counting(monkeypatch)
    model = small_model(cell, pattern, bidir, depth, peep, act)
    net = network(model, compiled=steps != "numpy", time_loop=steps == "loop")
    x, y = small_data(model, T=6)
    mask = None
    if pattern == "output_recurrence":
        mask = np.array([True, False, True, False, False, True])  # teacher-forcing mix
    # ReLU has a kink at 0: a small step keeps the differences on one side of it.
    check_gradients(net, x, y, tbptt=tbptt, teacher_mask=mask, eps=1e-6 if act == "relu" else 1e-4)
    # The path named is the path taken: every direction of a hidden recurrence with
    # kernels runs the compiled loop, and no other path reaches it.
    looped = (steps == "loop" and pattern != "output_recurrence"
              and act in ("tanh", "sigmoid"))
    dirs = depth * (2 if bidir else 1)
    assert calls["backward"] == (dirs if looped else 0)
    assert calls["forward"] >= (dirs if looped else 0)
    assert looped or calls["forward"] == 0


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "cifg", "mingru", "minlstm"])
def test_cross_entropy_gradients(cell, pattern):
    model = small_model(cell, pattern, bidirectional=pattern != "output_recurrence",
                        loss="cross_entropy", O=3)
    net = network(model)
    x, y = small_data(model)
    mask = np.array([True, False, False, True, False]) if pattern == "output_recurrence" else None
    check_gradients(net, x, y, teacher_mask=mask)


@pytest.mark.parametrize("mask", [[True] * 5, [False] * 5])
def test_output_recurrence_free_running_and_forced(mask):
    model = small_model("gru", "output_recurrence", depth=2)
    check_gradients(network(model), *small_data(model), teacher_mask=np.array(mask), tbptt=3)


def test_truncation_changes_the_gradient_only_beyond_the_window():
    model = small_model("rnn", "many_to_one")
    net = network(model, scale=1.5)
    x, y = small_data(model, T=8)
    full, cut = net.run(x, y), net.run(x, y, tbptt=3)
    dh_full, dh_cut = full.layers["l0"].dh, cut.layers["l0"].dh
    # Windows in time order: [0,3) [3,6) [6,8); the loss reads h_7 only.
    np.testing.assert_allclose(dh_cut[6:], dh_full[6:])
    assert np.all(dh_cut[:6] == 0)
    assert np.abs(dh_full[:6]).sum() > 0



@pytest.mark.parametrize("steps", ["loop", "compiled", "numpy"])
@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "minlstm"])
def test_one_input_and_one_output(cell, pattern, steps):
    """D = 1 and O = 1 (the sine task's sizes): the input projection and dL/d(features)
    are outer products, computed without a matrix product."""
    if steps != "numpy":
        compiled_kernels()
    model = small_model(cell, pattern, True, 2, D=1, O=1)
    net = network(model, compiled=steps != "numpy", time_loop=steps == "loop")
    x, y = small_data(model, T=6)
    check_gradients(net, x, y)
