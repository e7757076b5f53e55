"""Pinned runs: Lab.pin keeps a run to compare with, Lab.differences says what changed."""

from __future__ import annotations

import numpy as np
import pytest

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.lab import MAX_PINNED, Lab


def _lab() -> Lab:
    exp = Experiment(task=TaskConfig(name="adding", seq_len=12, batch_size=4))
    exp.model = ModelConfig(input_size=2, output_size=1, pattern="many_to_one",
                            layers=[LayerConfig(cell="lstm", hidden_size=4)])
    exp.training.steps = 3
    return Lab(exp)


@pytest.fixture
def lab() -> Lab:
    lab = _lab()
    lab.probe()
    return lab


def test_pin_keeps_the_version_result_and_curves(lab):
    events = []
    lab.pinned_changed.connect(lambda: events.append("pinned"))
    pin = lab.pin()
    assert pin is not None and pin.label == "A"
    assert pin.version is lab.version and pin.result is lab.result
    eig = {f"eig.weight_hh_l0.{g}.{p}" for g in "ifgo" for p in ("re", "im")}
    assert set(pin.curves) == {"gradnorm.l0", "jacobian.l0"} | eig
    np.testing.assert_array_equal(pin.curves["gradnorm.l0"],
                                  np.asarray(lab.result.arrays["gradnorm.l0"], np.float64))
    np.testing.assert_array_equal(pin.curves["jacobian.l0"], lab.result.jacobian["l0"])
    np.testing.assert_array_equal(pin.eigenvalues("weight_hh_l0", "f"),
                                  lab.result.spectra["weight_hh_l0"]["f"])
    assert pin.band("l0") is None  # pinned without a seed ensemble
    assert pin.history == {} and pin.steps == 0
    assert lab.pinned == [pin] and events == ["pinned"]


def test_differences_name_the_dotted_path_and_both_values(lab):
    pin = lab.pin()
    assert lab.differences(pin) == []
    lab.set_init(forget_bias=2.0)
    assert lab.differences(pin) == ["init.forget_bias 0 → 2"]
    lab.update_layer(0, cell="gru")
    assert lab.differences(pin) == ["model.layers.0.cell lstm → gru",
                                    "init.forget_bias 0 → 2"]


def test_differences_of_a_layer_only_one_side_has_and_of_training(lab):
    pin = lab.pin()
    lab.insert_layer(1, LayerConfig(cell="rnn", hidden_size=3))
    diffs = lab.differences(pin)
    assert "model.layers.1.cell – → rnn" in diffs
    assert "model.layers.1.hidden_size – → 3" in diffs
    lab.undo()
    lab.train(2)
    assert lab.differences(pin) == ["steps trained 0 → 2"]


def test_title_and_description_are_not_differences(lab):
    pin = lab.pin()
    lab.set_text(title="Another name", description="words")
    assert lab.differences(pin) == []


def test_a_trained_pin_keeps_its_loss_history():
    lab = _lab()
    lab.train(3)
    lab.probe()
    pin = lab.pin("trained")
    assert pin.label == "trained" and pin.steps == 3
    assert set(pin.history) == {"step", "loss", "val_loss"}
    np.testing.assert_array_equal(pin.history["loss"], lab.history.column("loss"))


def test_at_most_four_pins_the_oldest_dropped_with_a_notice(lab):
    notices = []
    lab.notice.connect(notices.append)
    pins = [lab.pin() for _ in range(MAX_PINNED)]
    assert [p.label for p in pins] == ["A", "B", "C", "D"]
    assert notices == []
    fifth = lab.pin()
    assert lab.pinned == [*pins[1:], fifth]
    assert fifth.label == "A"  # the letter freed by the dropped pin
    assert notices == [f"Unpinned A: at most {MAX_PINNED} pinned runs"]


def test_unpin(lab):
    a, b = lab.pin(), lab.pin()
    events = []
    lab.pinned_changed.connect(lambda: events.append(1))
    assert lab.unpin(0) and lab.pinned == [b]
    assert lab.unpin(b) and lab.pinned == []
    assert events == [1, 1]
    errors = []
    lab.error.connect(errors.append)
    assert not lab.unpin(3) and errors == ["no pinned run 3"]
    del a


def test_pinning_is_not_undoable_but_marks_the_document(lab, tmp_path):
    lab.save(tmp_path / "a.gradlab")
    assert not lab.modified
    lab.pin()
    assert lab.modified and not lab.can_undo
    lab.set_init(forget_bias=1.0)
    lab.undo()
    assert len(lab.pinned) == 1  # undo goes back over edits, never over a pin


def test_nothing_to_pin_before_a_probe_of_the_current_settings():
    lab = _lab()
    errors = []
    lab.error.connect(errors.append)
    assert lab.pin() is None and lab.pinned == []
    lab.probe()
    lab.set_init(forget_bias=1.0)  # the result shown is of the old settings
    assert lab.pin() is None
    assert len(errors) == 2 and "nothing to pin yet" in errors[0]
    lab.probe()
    assert lab.pin() is not None


def test_a_new_document_has_no_pins(lab):
    lab.pin()
    events = []
    lab.pinned_changed.connect(lambda: events.append(1))
    lab.replace(_lab().experiment)
    assert lab.pinned == [] and events == [1]


def test_pinned_runs_travel_in_the_document(lab, tmp_path):
    from core.archive import load_archive

    a = lab.pin()
    lab.set_init(forget_bias=2.0)
    lab.train(2)
    lab.probe()
    b = lab.pin("trained")
    path = tmp_path / "pins.gradlab"
    assert lab.save(path) and not lab.modified
    assert len(load_archive(path).pinned) == 2
    back = Lab.open(path)
    assert [p.label for p in back.pinned] == ["A", "trained"]
    assert not back.modified
    for old, new in zip([a, b], back.pinned, strict=True):
        assert new.version is None and new.result is None  # only the curves come back
        assert new.experiment == old.experiment
        assert set(new.curves) == set(old.curves)
        for key in old.curves:
            np.testing.assert_array_equal(new.curves[key], old.curves[key])
        assert set(new.history) == set(old.history)
        for key in old.history:
            np.testing.assert_array_equal(new.history[key], old.history[key])
    assert back.differences(back.pinned[0]) == ["init.forget_bias 0 → 2",
                                                "steps trained 0 → 2"]
    assert back.differences(back.pinned[1]) == []


def test_a_json_save_leaves_the_pins_out_and_says_so(lab, tmp_path):
    lab.pin()
    notices = []
    lab.notice.connect(notices.append)
    assert lab.save(tmp_path / "settings.json")
    assert lab.modified and "the pinned runs" in notices[0]
