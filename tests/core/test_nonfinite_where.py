"""Every non-finite stop names the step, the layer, the direction, the timestep and the
first parameter or quantity that went non-finite."""

from __future__ import annotations

import re

import numpy as np
import pytest

from core.experiment import (
    BackendConfig,
    ClipConfig,
    Experiment,
    InitConfig,
    LayerConfig,
    ModelConfig,
    TaskConfig,
    TrainingConfig,
)
from core.tracing import param_place, param_where
from core.training import loop
from core.training.loop import train
from tests.core.helpers import network, small_data, small_model

PLACE = r"(layer l\d+ \((forward|reverse) direction\)|the head)"


def small(**training) -> Experiment:
    return Experiment(model=ModelConfig(layers=[LayerConfig(cell="lstm", hidden_size=8)]),
                      init=InitConfig(seed=3),
                      task=TaskConfig(name="sine", seq_len=12, batch_size=4),
                      training=TrainingConfig(steps=3, eval_every=0, trace_every=0,
                                              **training),
                      backend=BackendConfig(device="numpy", dtype="float32"))


def test_param_place():
    assert param_place("weight_hh_l1_reverse") == "layer l1 (reverse direction)"
    assert param_place("weight_peep_l0") == "layer l0 (forward direction)"
    assert param_place("weight_oh_l0") == "layer l0 (forward direction)"
    assert param_place("head.bias") == "the head"


def test_param_where_names_the_step_of_the_largest_contribution():
    model = small_model("gru", bidirectional=True, depth=2)
    net = network(model)
    x, y = small_data(model, T=7)
    tr = net.run(x, y)
    for name in ("weight_hh_l1_reverse", "bias_ih_l0"):
        key = name.rsplit("_", 2)[-1] if not name.endswith("reverse") else "l1_reverse"
        dh = np.abs(np.asarray(tr.layers[key].dh)).reshape(7, -1).max(axis=1)
        text = param_where(tr, name)
        assert text.startswith(f"{name} of {param_place(name)}, ")
        assert text.endswith(f"whose largest contribution came at timestep {int(dh.argmax())},")


def test_an_overflowing_output_names_its_timestep_layer_and_direction():
    model = small_model("lstm")
    net = network(model, dtype="float32")
    net.params["head.weight"][...] = 3e38  # states stay within tanh's range; outputs overflow
    net.params["head.bias"][...] = 3e38
    x, y = small_data(model, T=6)
    with np.errstate(all="ignore"):
        tr = net.run(x, y)
    assert re.fullmatch(r"the output at timestep 0, read from layer l0 \(forward direction\) "
                        r"became (Inf|NaN) while every state before it was finite",
                        tr.nonfinite)


def test_an_overflowing_update_names_parameter_layer_direction_and_timestep():
    exp = small(optimizer="sgd", lr=1e38, clip=ClipConfig(mode="none"))
    X = np.zeros((12, 4, 1))
    Y = np.full((12, 4, 1), 1000.0)
    (snap,) = list(train(exp, data=(X, Y), probe_every=0))
    assert re.match(rf"step 1: the update made \S+ of {PLACE}, whose largest contribution came "
                    r"at timestep \d+, non-finite", snap.nonfinite), snap.nonfinite


def test_an_overflowing_gradient_norm_names_the_largest_gradient(monkeypatch):
    monkeypatch.setattr(loop, "clip_gradients", lambda grads, clip: (float("inf"),
                                                                   float("inf")))
    (snap,) = list(train(small(), probe_every=0))
    assert re.match(rf"step 1: the global gradient norm became Inf although every gradient "
                    rf"was finite \(the sum of their squares overflowed; the largest is that of "
                    rf"\S+ of {PLACE}, whose largest contribution came at timestep \d+,\)",
                    snap.nonfinite), snap.nonfinite


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_exploding_runs_always_name_step_layer_direction_and_timestep(cell):
    """Runs that diverge in different ways: every message has all five parts."""
    exp = Experiment(
        model=ModelConfig(layers=[LayerConfig(cell=cell, hidden_size=16,
                                              activation="relu" if cell == "rnn" else "tanh")]),
        init=InitConfig(seed=1),
        task=TaskConfig(name="sine", seq_len=60, batch_size=4),
        training=TrainingConfig(optimizer="sgd", lr=100.0, steps=40, eval_every=0,
                                trace_every=0, clip=ClipConfig(mode="none")),
        backend=BackendConfig(device="numpy", dtype="float32"))
    exp.init.scales.recurrent = 6.0
    exp.init.scales.output = 10.0
    snaps = list(train(exp, probe_every=0))
    msg = snaps[-1].nonfinite
    assert msg is not None, "the run was meant to diverge"
    assert msg.startswith(f"step {snaps[-1].step}: ")
    assert re.search(r"timestep \d+", msg) and re.search(PLACE, msg), msg
    assert re.search(r"(h|c|gate|candidate|output|loss|gradient|update)", msg)
