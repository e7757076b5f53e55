"""A/B pairs (core.pairs): A runs from the same draw and batch, is pinned, B goes live."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from core.lab import Lab
from core.pairs import Pair, pair_from_dict


def test_a_is_pinned_from_the_same_draw_and_batch_and_b_is_one_undoable_edit():
    lab = Lab.from_preset("forget_gate")
    before = lab.probe()
    assert lab.compare_pair(Pair("init.forget_bias", 0, 1.5))
    pin = lab.pinned[0]
    a = pin.result
    live = lab.probe()
    np.testing.assert_array_equal(a.x, live.x)  # the same probe batch
    np.testing.assert_array_equal(a.x, before.x)
    assert pin.experiment.init.forget_bias == 0 and lab.experiment.init.forget_bias == 1.5
    assert lab.differences(pin) == ["init.forget_bias 0 → 1.5"]
    # only the forget-gate rows of bias_ih differ between A's weights and a fresh draw
    # of the live settings: the rest is the same draw
    fresh = Lab(pin.experiment).params
    for name, value in fresh.items():
        if name != "bias_ih_l0":
            np.testing.assert_array_equal(value, lab.params[name])
    assert lab.undo_text == "init.forget_bias 1.5"
    assert lab.undo() and lab.experiment.init.forget_bias == 2.0
    assert len(lab.pinned) == 1  # undo never unpins


def test_a_result_for_older_settings_is_not_applied():
    lab = Lab.from_preset("forget_gate")
    job = lab.pair_job(Pair("init.forget_bias", 0, 2))
    outcome = job.run()
    assert lab.set_init(seed=3)
    assert lab.apply_pair(job, outcome) is False and lab.pinned == []


def test_a_trained_a_keeps_its_history():
    lab = Lab.from_preset("exploding_clipping")
    assert lab.compare_pair(Pair("training.clip.mode", "none", "norm", train_steps=30))
    pin = lab.pinned[0]
    assert 0 < pin.steps <= 30 and pin.experiment.training.clip.mode == "none"
    assert len(lab.history) == 0  # B is the user's to train


@pytest.mark.parametrize("raw, words", [
    ({"path": "init.forget_bias", "values": [0]}, "two values"),
    ({"path": "init.forget_bias", "values": [0, 2], "extra": 1}, "expected an object"),
    ({"path": "init.forget_bias", "values": [0, 2], "train_steps": -1}, "train_steps"),
    ([], "expected an object"),
])
def test_a_bad_compare_step_is_named(raw, words):
    with pytest.raises(ConfigError, match=words):
        pair_from_dict(raw)


def test_set_path_refuses_an_unknown_path_and_changes_nothing():
    lab = Lab.from_preset("forget_gate")
    errors: list[str] = []
    lab.error.connect(errors.append)
    assert lab.set_path("init.no_such_field", 1) is False
    assert errors and "no_such_field" in errors[0] and not lab.can_undo
    with pytest.raises(ConfigError):
        lab.pair_job(Pair("init.forget_bias", "x", 2))
