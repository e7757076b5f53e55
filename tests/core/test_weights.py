"""Weights files: round trips, and every way a file can fail to match the model."""

from __future__ import annotations

import re

import numpy as np
import pytest
from safetensors.numpy import save_file

from core.errors import WeightsError
from core.experiment import InitConfig, LayerConfig, ModelConfig
from core.init import init_params
from core.layout import param_shapes
from core.weights import load_weights, save_weights


def _model(H: int = 4, bidirectional: bool = False) -> ModelConfig:
    return ModelConfig(input_size=2, output_size=3,
                       layers=[LayerConfig(cell="lstm", hidden_size=H,
                                           bidirectional=bidirectional),
                               LayerConfig(cell="gru", hidden_size=3)])


@pytest.fixture
def model() -> ModelConfig:
    return _model()


@pytest.fixture
def params(model: ModelConfig) -> dict[str, np.ndarray]:
    return init_params(model, InitConfig(seed=1))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_round_trip(tmp_path, model, params, suffix):
    path = tmp_path / f"w{suffix}"
    save_weights(path, params)
    back = load_weights(path, model)
    assert list(back) == list(param_shapes(model))
    for name, value in params.items():
        assert back[name].dtype == np.float64
        np.testing.assert_array_equal(back[name], value)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_float32_file_gives_float64_copies(tmp_path, model, params):
    path = tmp_path / "w.safetensors"
    save_file({k: v.astype(np.float32) for k, v in params.items()}, str(path))
    back = load_weights(path, model)
    assert all(a.dtype == np.float64 and a.flags.writeable for a in back.values())
    np.testing.assert_allclose(back["weight_hh_l0"], params["weight_hh_l0"], rtol=1e-6)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_missing_name_is_listed(tmp_path, model, params, suffix):
    path = tmp_path / f"w{suffix}"
    del params["weight_hh_l1"], params["head.bias"]
    save_weights(path, params)
    with pytest.raises(WeightsError, match=r"missing weight_hh_l1, head\.bias") as err:
        load_weights(path, model)
    assert str(path) in str(err.value)


def test_unexpected_name_is_listed(tmp_path, model, params):
    path = tmp_path / "w.safetensors"
    params["weight_hh_l2"] = np.zeros((3, 3))
    save_weights(path, params)
    with pytest.raises(WeightsError, match=r"unexpected weight_hh_l2") as err:
        load_weights(path, model)
    assert "missing" not in str(err.value)


def test_prefixed_state_dict_gets_a_hint(tmp_path, model, params):
    path = tmp_path / "w.safetensors"
    save_weights(path, {("rnn." + k if not k.startswith("head") else k): v
                        for k, v in params.items()})
    with pytest.raises(WeightsError, match=r"prefix 'rnn\.'"):
        load_weights(path, model)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_wrong_shape(tmp_path, params, suffix):
    path = tmp_path / f"w{suffix}"
    save_weights(path, params)  # saved for H = 4
    with pytest.raises(WeightsError,
                       match=r"weight_ih_l0: expected shape \(32, 2\), got \(16, 2\)"):
        load_weights(path, _model(H=8))


def test_pickled_npz_is_refused(tmp_path, model, params):
    path = tmp_path / "w.npz"
    params["weight_hh_l0"] = np.array([{"evil": 1}], dtype=object)
    np.savez(path, **params)  # numpy pickles object arrays on write
    with pytest.raises(WeightsError, match="holds pickled objects, which are never loaded"):
        load_weights(path, model)


def test_plain_pickle_with_npz_suffix_is_refused(tmp_path, model):
    path = tmp_path / "w.npz"
    path.write_bytes(b"\x80\x04\x95" + b"\x00" * 20)  # how a pickle stream starts
    with pytest.raises(WeightsError, match="pickled objects"):
        load_weights(path, model)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_truncated_file(tmp_path, model, params, suffix):
    path = tmp_path / f"w{suffix}"
    save_weights(path, params)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"corrupt|truncated|not a readable") as err:
        load_weights(path, model)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_garbage_file(tmp_path, model, suffix):
    path = tmp_path / f"w{suffix}"
    path.write_bytes(b"this is not a weights file at all")
    with pytest.raises(WeightsError, match=re.escape(path.name)):
        load_weights(path, model)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_non_finite_value_names_the_parameter(tmp_path, model, params, suffix):
    path = tmp_path / f"w{suffix}"
    params["bias_hh_l1"][2] = np.nan
    params["bias_hh_l1"][3] = np.inf
    save_weights(path, params)
    with pytest.raises(WeightsError, match=r"bias_hh_l1: holds 2 non-finite values"):
        load_weights(path, model)


def test_non_numeric_dtype(tmp_path, model, params):
    path = tmp_path / "w.npz"
    params["head.bias"] = np.array(["a", "b", "c"])
    np.savez(path, **params)
    with pytest.raises(WeightsError, match=r"head\.bias: dtype <U1 is not a real number"):
        load_weights(path, model)


def test_missing_file_and_unknown_suffix(tmp_path, model):
    with pytest.raises(WeightsError, match="no such file"):
        load_weights(tmp_path / "nope.safetensors", model)
    with pytest.raises(WeightsError, match=r"unknown weights format '\.pt'"):
        load_weights(tmp_path / "w.pt", model)
    with pytest.raises(WeightsError, match="unknown weights format"):
        save_weights(tmp_path / "w.pth", {})


def test_too_large_for_memory_is_refused_before_reading(tmp_path, model, monkeypatch):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x00" * 1000)
    monkeypatch.setattr("core.weights.available_memory", lambda: 1000)
    with pytest.raises(WeightsError, match="memory available"):
        load_weights(path, model)


def test_failed_save_keeps_the_old_file(tmp_path, params):
    path = tmp_path / "w.npz"
    save_weights(path, params)
    before = path.read_bytes()
    with pytest.raises(WeightsError):
        save_weights(path, {**params, "bad": np.array(["x"])})
    assert path.read_bytes() == before


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_new_cells_round_trip_without_hidden_weights(tmp_path, suffix):
    model = ModelConfig(input_size=2, output_size=1,
                        layers=[LayerConfig(cell="mingru", hidden_size=4, bidirectional=True),
                                LayerConfig(cell="minlstm", hidden_size=3),
                                LayerConfig(cell="cifg", hidden_size=2)])
    params = init_params(model, InitConfig(seed=2))
    assert params["weight_ih_l0"].shape == (8, 2) and params["weight_ih_l1"].shape == (9, 8)
    assert params["weight_hh_l2"].shape == (6, 2)
    assert not any(n.startswith(("weight_hh_l0", "weight_hh_l1", "bias_hh_l0", "bias_hh_l1"))
                   for n in params)
    path = tmp_path / f"w{suffix}"
    save_weights(path, params)
    back = load_weights(path, model)
    for name, value in params.items():
        np.testing.assert_array_equal(back[name], value)


def test_hidden_weights_for_a_mingru_get_a_hint(tmp_path):
    model = ModelConfig(input_size=2, output_size=1,
                        layers=[LayerConfig(cell="mingru", hidden_size=4)])
    params = init_params(model, InitConfig(seed=2))
    params["weight_hh_l0"] = np.zeros((8, 4))
    path = tmp_path / "w.npz"
    save_weights(path, params)
    with pytest.raises(WeightsError, match=r"unexpected weight_hh_l0 .*no weight_hh / bias_hh"):
        load_weights(path, model)
