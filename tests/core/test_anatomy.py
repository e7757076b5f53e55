"""core.anatomy: learn, forget, remember and use add up on a real probe."""

from __future__ import annotations

import numpy as np
import pytest

from core.anatomy import PARTS, has_anatomy, lstm_anatomy, previous_cell_state
from core.experiment import BackendConfig, Experiment, LayerConfig, ModelConfig, TaskConfig
from core.init import init_params
from core.lab import run_probe
from core.layout import layer_keys


def probe(pattern: str = "many_to_many", cell: str = "lstm", dtype: str = "float32"):
    bidirectional = pattern != "output_recurrence"  # that pattern refuses reverse cells
    layers = [LayerConfig(cell=cell, hidden_size=8, bidirectional=bidirectional,
                          peephole=cell == "lstm" and k == 1) for k in range(2)]
    model = ModelConfig(input_size=1, output_size=1, layers=layers, pattern=pattern)
    exp = Experiment(model=model, task=TaskConfig(name="sine", seq_len=30, batch_size=4),
                     backend=BackendConfig(device="numpy", dtype=dtype))
    exp.init.forget_bias = 1.0  # a forget gate well open, so the kept part is large
    return run_probe(exp, init_params(model, exp.init), None, jacobian=False,
                     connectivity=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parts_add_up_on_every_layer_and_direction(dtype):
    r = probe(dtype=dtype)
    keys = [key for _k, _s, key in layer_keys(r.experiment.model)]
    assert keys == ["l0", "l0_reverse", "l1", "l1_reverse"]
    for key in keys:
        parts = lstm_anatomy(r.arrays, key)
        assert tuple(parts) == PARTS
        shape = r.arrays[f"h.{key}"].shape
        assert all(p.shape == shape and p.dtype == np.float64 for p in parts.values())
        np.testing.assert_allclose(parts["remember"], parts["forget"] + parts["learn"],
                                   rtol=0, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(parts["use"], r.arrays[f"h.{key}"], rtol=0, atol=1e-6,
                                   err_msg=key)
        assert np.abs(parts["forget"]).max() > 0.1  # something is really kept


def test_first_step_processed_starts_from_zero():
    r = probe()
    fwd, rev = lstm_anatomy(r.arrays, "l0"), lstm_anatomy(r.arrays, "l0_reverse")
    assert np.all(fwd["forget"][0] == 0) and np.abs(fwd["forget"][-1]).max() > 0
    assert np.all(rev["forget"][-1] == 0) and np.abs(rev["forget"][0]).max() > 0
    np.testing.assert_allclose(rev["remember"][-1], rev["learn"][-1], atol=1e-6)
    # the reverse cell read in forward order does not add up: the order matters
    c = r.arrays["c.l0_reverse"].astype(np.float64)
    wrong = r.arrays["gate.f.l0_reverse"] * previous_cell_state(c, reverse=False)
    assert np.abs(c - wrong - rev["learn"]).max() > 1e-2


def test_output_recurrence_carries_no_cell_state():
    r = probe("output_recurrence")
    for key in ("l0", "l1"):
        parts = lstm_anatomy(r.arrays, key, carry=False)
        assert not parts["forget"].any()
        np.testing.assert_allclose(parts["remember"], parts["learn"], atol=1e-6)
        np.testing.assert_allclose(parts["use"], r.arrays[f"h.{key}"], atol=1e-6)


def test_other_cells_are_refused_by_name():
    r = probe(cell="gru")
    assert not has_anatomy(r.arrays, "l0")
    with pytest.raises(ValueError, match="l0"):
        lstm_anatomy(r.arrays, "l0")


def test_a_cifg_has_the_anatomy_with_the_input_gate_coupled():
    r = probe(cell="cifg", dtype="float64")
    for key in ("l0", "l0_reverse", "l1", "l1_reverse"):
        assert f"gate.i.{key}" not in r.arrays and has_anatomy(r.arrays, key)
        parts = lstm_anatomy(r.arrays, key)
        np.testing.assert_allclose(parts["remember"], parts["forget"] + parts["learn"],
                                   rtol=0, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(parts["use"], r.arrays[f"h.{key}"], rtol=0, atol=1e-12)
        f, g = r.arrays[f"gate.f.{key}"], r.arrays[f"gate.g.{key}"]
        np.testing.assert_allclose(parts["learn"], (1 - f) * g, rtol=1e-12)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_cells_without_a_cell_state_have_no_anatomy(cell):
    r = probe(cell=cell)
    assert not has_anatomy(r.arrays, "l0")
