"""LabState without a window: edits, weights policy, undo, training control."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses

import numpy as np
import pytest

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig, TrainingConfig
from core.init import init_params
from gui.state import IDLE, RUNNING, LabState, layer_label

WAIT_MS = 20_000


@pytest.fixture
def state(qtbot):
    exp = Experiment(model=ModelConfig(layers=[LayerConfig(cell="gru", hidden_size=6)]),
                     task=TaskConfig(name="sine", seq_len=12, batch_size=3),
                     training=TrainingConfig(steps=100_000))
    s = LabState(exp)
    yield s
    s.shutdown()


def test_scales_redraw_weights_reproducibly(state):
    original = {k: v.copy() for k, v in state.params.items()}
    assert state.set_scale("recurrent", 2.5)
    assert np.allclose(state.params["weight_hh_l0"], 2.5 * original["weight_hh_l0"])
    assert state.set_scale("recurrent", 1.0)
    assert all(np.array_equal(state.params[k], v) for k, v in original.items())
    assert state.can_undo and state.undo_text == "Recurrent scale 1"  # knobs are undoable
    # Both moves of the knob came within a second, as in a drag: one undo step, back to
    # where the drag began.
    assert state.undo() and not state.can_undo
    assert state.experiment.init.scales.recurrent == 1.0
    state.lab.merge_s = 0.0  # separate moves: separate steps
    assert state.set_scale("recurrent", 2.5) and state.set_scale("recurrent", 3.0)
    assert state.undo()
    assert np.allclose(state.params["weight_hh_l0"], 2.5 * original["weight_hh_l0"])


def test_refused_edit_reports_the_field_and_changes_nothing(state):
    errors = []
    state.error.connect(errors.append)
    before = state.experiment
    assert not state.set_training(teacher_forcing=1.5)
    assert not state.update_layer(0, peephole=True)
    assert state.experiment == before
    assert "training.teacher_forcing" in errors[0]
    assert "peephole" in errors[1]


def test_loaded_weights_are_used_until_an_edit_redraws(state):
    exp = dataclasses.replace(state.experiment)
    weights = {k: np.full_like(v, 0.01) for k, v in init_params(exp.model, exp.init).items()}
    exp.weights = weights
    assert state.load(exp)
    assert np.array_equal(state.params["weight_hh_l0"], weights["weight_hh_l0"])
    state.set_task(seq_len=20)  # keeps them
    assert np.array_equal(state.params["weight_hh_l0"], weights["weight_hh_l0"])
    state.set_init(seed=5)  # re-draws from the seed
    assert not np.array_equal(state.params["weight_hh_l0"], weights["weight_hh_l0"])


def test_undo_redo_of_architecture(state):
    assert state.insert_layer(1, LayerConfig(cell="lstm", hidden_size=4))
    assert state.update_layer(1, hidden_size=9)
    assert state.set_pattern("many_to_one")
    assert [layer_label(lay) for lay in state.experiment.model.layers] == ["GRU", "LSTM"]
    state.undo()
    assert state.experiment.model.pattern == "many_to_many"
    state.undo()
    assert state.experiment.model.layers[1].hidden_size == 4
    state.undo()
    assert len(state.experiment.model.layers) == 1
    state.redo()
    assert len(state.experiment.model.layers) == 2
    assert state.modified
    state.undo()
    assert not state.modified  # back where it was loaded


def test_settings_change_while_training_rests_then_continues(qtbot, state):
    state.train()
    qtbot.waitUntil(lambda: len(state.history["step"]) >= 3, timeout=WAIT_MS)
    assert state.set_training(lr=0.005)  # the weights come to rest for the edit …
    trained = {k: v.copy() for k, v in state.params.items()}
    steps = len(state.history["step"])
    assert state.undo_text == "Training: lr 0.005"
    # … and training carries on from them, with the new learning rate
    qtbot.waitUntil(lambda: state.training_state == RUNNING, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(state.history["step"]) >= steps + 3, timeout=WAIT_MS)
    state.pause()
    qtbot.waitUntil(lambda: state.at_rest, timeout=WAIT_MS)
    assert state.history["lr"][-1] == pytest.approx(0.005)
    assert state.history["step"] == list(range(1, len(state.history["step"]) + 1))
    assert not np.array_equal(state.params["weight_hh_l0"], trained["weight_hh_l0"])
    state.reset()
    assert state.training_state == IDLE
    assert state.history["step"] == []


def test_a_short_real_series_fits_the_window_to_it(state):
    state.set_task(seq_len=500)
    assert state.set_task("dataset", series="nile")
    exp = state.experiment
    assert exp.task.name == "dataset" and exp.task.seq_len < 500
    assert exp.model.output_size == 1
    state.undo()
    assert (state.experiment.task.name, state.experiment.task.seq_len) == ("sine", 500)


def test_a_cancelled_or_failed_probe_ends_the_early_result_it_showed(qtbot, state):
    """The Cancel button after the pass came: the Jacobian panel must not go on
    saying the products are being computed; nor after the analyses failed."""
    from core.jobs import Control

    for end in (state.cancel_probe, lambda: state.probe_runner.failed.emit("no memory")):
        job = state.lab.probe_job()
        early = []
        job.run(Control(on_early=early.append))
        state.probe_runner.early.emit(job, early[0])  # as the runner relays it
        assert state.result.pending == ("jacobian", "connectivity")
        end()
        assert state.result.pending == () and state.result.jacobian == {}
        assert state.result.arrays is early[0].arrays
