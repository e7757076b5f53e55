"""Initialisation schemes, the weight-scale knobs and the forget-gate bias."""

from __future__ import annotations

import numpy as np
import pytest

from core.experiment import InitConfig, LayerConfig, ModelConfig, Scales
from core.init import init_params
from core.layout import param_shapes


def model(cell: str = "lstm", H: int = 8, bidirectional: bool = False,
          pattern: str = "many_to_many") -> ModelConfig:
    return ModelConfig(input_size=3, output_size=2, pattern=pattern,
                       layers=[LayerConfig(cell=cell, hidden_size=H, bidirectional=bidirectional,
                                           peephole=cell == "lstm"),
                               LayerConfig(cell=cell, hidden_size=H)])


@pytest.mark.parametrize("scheme", ["uniform", "normal", "orthogonal", "identity", "xavier"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_scheme_gives_every_parameter_its_shape(scheme, cell):
    m = model(cell, bidirectional=True)
    params = init_params(m, InitConfig(scheme=scheme))
    assert {n: p.shape for n, p in params.items()} == param_shapes(m)
    assert all(p.dtype == np.float64 and np.all(np.isfinite(p)) for p in params.values())


def test_seed_reproduces_and_changes_weights():
    m = model()
    a, b = init_params(m, InitConfig(seed=1)), init_params(m, InitConfig(seed=1))
    c = init_params(m, InitConfig(seed=2))
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["weight_hh_l0"], c["weight_hh_l0"])


def test_uniform_matches_pytorch_bounds():
    H = 16
    params = init_params(model("lstm", H), InitConfig(scheme="uniform"))
    bound = 1 / np.sqrt(H)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert np.abs(params[name]).max() <= bound
        assert np.abs(params[name]).max() > 0.8 * bound  # really spread over the range
    assert np.abs(params["head.weight"]).max() <= 1 / np.sqrt(H)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_orthogonal_and_identity_recurrent_blocks(cell):
    H = 6
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    ortho = init_params(model(cell, H), InitConfig(scheme="orthogonal"))["weight_hh_l0"]
    ident = init_params(model(cell, H), InitConfig(scheme="identity"))["weight_hh_l0"]
    for g in range(G):
        block = ortho[g * H:(g + 1) * H]
        np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-12)
        np.testing.assert_array_equal(ident[g * H:(g + 1) * H], np.eye(H))


def test_scales_multiply_each_family():
    m = model("gru")
    base = init_params(m, InitConfig(seed=4))
    scaled = init_params(m, InitConfig(seed=4, scales=Scales(input=2.0, recurrent=0.5, output=3.0)))
    np.testing.assert_allclose(scaled["weight_ih_l1"], 2.0 * base["weight_ih_l1"])
    np.testing.assert_allclose(scaled["weight_hh_l0"], 0.5 * base["weight_hh_l0"])
    np.testing.assert_allclose(scaled["head.weight"], 3.0 * base["head.weight"])
    np.testing.assert_array_equal(scaled["bias_hh_l0"], base["bias_hh_l0"])


def test_output_recurrence_feedback_takes_the_recurrent_scale():
    m = ModelConfig(input_size=1, output_size=2, pattern="output_recurrence",
                    layers=[LayerConfig(cell="rnn", hidden_size=4)])
    base = init_params(m, InitConfig(seed=0))
    scaled = init_params(m, InitConfig(seed=0, scales=Scales(recurrent=2.5)))
    np.testing.assert_allclose(scaled["weight_oh_l0"], 2.5 * base["weight_oh_l0"])


def test_forget_bias_is_added_to_the_forget_rows_only():
    H = 5
    m = model("lstm", H, bidirectional=True)
    base = init_params(m, InitConfig(seed=3))
    biased = init_params(m, InitConfig(seed=3, forget_bias=1.5))
    for name in ("bias_ih_l0", "bias_ih_l0_reverse", "bias_ih_l1"):
        diff = biased[name] - base[name]
        np.testing.assert_allclose(diff[H:2 * H], 1.5)
        np.testing.assert_array_equal(np.delete(diff, np.s_[H:2 * H]), 0.0)
    np.testing.assert_array_equal(biased["bias_hh_l0"], base["bias_hh_l0"])
