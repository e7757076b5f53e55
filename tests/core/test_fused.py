"""The fused GPU steps compute what the cells' NumPy steps compute.

The kernels' text runs here through NumPy (``Fused.numpy``), so their maths and the
way the cells call them are checked on every machine; on a GPU, test_backends runs
them compiled.
"""

from __future__ import annotations

import numpy as np
import pytest

import core.network
from core.cells import fused
from tests.core.helpers import network, small_data, small_model
from tests.core.test_gradients import check_gradients


@pytest.fixture
def twins(monkeypatch):
    """Networks on NumPy use the kernels' text, run by NumPy, as if on a GPU."""
    monkeypatch.setattr(core.network.Network, "_kernels",
                        lambda self: {k.name: k.numpy for k in fused.ALL})


def test_every_kernel_body_is_also_python():
    for k in fused.ALL:
        B, H = 3, 4
        rng = np.random.default_rng(0)
        args = [rng.normal(size=(B, H)) for _ in k.inputs] + [np.empty((B, H)) for _ in k.outputs]
        k.numpy(*args)
        assert all(np.all(np.isfinite(a)) for a in args[len(k.inputs):]), k.name


@pytest.mark.parametrize(("cell", "peep", "pattern", "bidir"), [
    ("lstm", False, "many_to_many", True),
    ("lstm", True, "many_to_one", True),
    ("lstm", True, "output_recurrence", False),
    ("gru", False, "many_to_many", True),
    ("gru", False, "output_recurrence", False),
    ("rnn", False, "many_to_one", False),
    ("cifg", False, "many_to_many", True),
    ("cifg", False, "output_recurrence", False),
    ("mingru", False, "many_to_one", True),
    ("mingru", False, "output_recurrence", False),
    ("minlstm", False, "many_to_many", True),
    ("minlstm", False, "output_recurrence", False),
])
def test_fused_steps_give_the_numpy_trace(twins, cell, peep, pattern, bidir, monkeypatch):
    model = small_model(cell, pattern, bidir, 2, peep)
    x, y = small_data(model, T=7, B=3)
    got = network(model).run(x, y, tbptt=3).to_arrays()
    monkeypatch.undo()
    want = network(model).run(x, y, tbptt=3).to_arrays()
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-14, err_msg=key)


@pytest.mark.parametrize(("cell", "peep"), [("lstm", False), ("lstm", True), ("gru", False),
                                           ("cifg", False), ("mingru", False),
                                           ("minlstm", False)])
def test_fused_steps_match_finite_differences(twins, cell, peep):
    model = small_model(cell, "many_to_many", True, 2, peep)
    check_gradients(network(model), *small_data(model, T=6))


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_fused_scan_kernels_give_the_numpy_trace(twins, cell, monkeypatch):
    """The whole-sequence kernels of the scan over time, as a GPU would run them."""
    model = small_model(cell, "many_to_many", True, 2)
    x, y = small_data(model, T=20, B=3)
    net = network(model)
    net.scan = True
    got = net.run(x, y, tbptt=6).to_arrays()
    monkeypatch.undo()
    slow = network(model, compiled=False)
    slow.scan = False
    want = slow.run(x, y, tbptt=6).to_arrays()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-11, atol=1e-14, err_msg=key)
