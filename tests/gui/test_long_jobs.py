"""Long probes in the window: cancelled at once, superseded by a newer edit, never
holding up the exit; undo and redo from the keyboard."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig, TrainingConfig
from gui.app import MainWindow

WAIT_MS = 30_000


def big_experiment(hidden: int = 512) -> Experiment:
    """A probe of several seconds: every timestep is a (16, H) @ (H, 4H) product."""
    return Experiment(model=ModelConfig(layers=[LayerConfig(cell="lstm", hidden_size=hidden)]),
                      task=TaskConfig(name="sine", seq_len=400, batch_size=16))


def small_experiment() -> Experiment:
    return Experiment(model=ModelConfig(layers=[LayerConfig(cell="rnn", hidden_size=8)]),
                      task=TaskConfig(name="sine", seq_len=20, batch_size=4),
                      training=TrainingConfig(steps=100_000))


@pytest.fixture
def window(qtbot):
    win = MainWindow(settings=None)
    win.confirm_discard = lambda: True
    win.state.confirm_long_probe = lambda seconds: True  # no dialog in a test
    qtbot.addWidget(win)
    yield win
    win._closed = True
    win.state.shutdown()


def alive(win) -> list:
    return [t for t in win.state.probe_runner._threads if t.is_alive()]


def test_cancel_a_long_probe_within_half_a_second(qtbot, window):
    state = window.state
    assert state.load(big_experiment())
    assert state.lab.probe_seconds() > 2  # estimated long: progress and Cancel are shown
    qtbot.waitUntil(lambda: window.cancel_button.isVisibleTo(window), timeout=WAIT_MS)
    assert window.progress.maximum() == 1000
    t0 = time.perf_counter()
    window.cancel_button.click()
    assert not state.probe_runner.is_busy and not window.cancel_button.isVisibleTo(window)
    qtbot.waitUntil(lambda: not alive(window), timeout=5000)
    assert time.perf_counter() - t0 <= 0.5  # the worker itself stopped, not just the view
    assert state.result is None  # nothing of the cancelled probe is shown


def test_a_new_edit_supersedes_a_stale_probe(qtbot, window):
    state = window.state
    assert state.load(big_experiment())
    qtbot.waitUntil(lambda: state.probe_runner.is_busy and bool(alive(window)), timeout=WAIT_MS)
    qtbot.wait(200)  # the big probe is under way
    t0 = time.perf_counter()
    assert state.update_layer(0, hidden_size=32)  # back to a small model
    qtbot.waitUntil(lambda: state.result is not None, timeout=WAIT_MS)
    assert time.perf_counter() - t0 < 5  # it did not wait for the big one (tens of s)
    assert state.result.experiment.model.layers[0].hidden_size == 32
    qtbot.waitUntil(lambda: len(alive(window)) == 0, timeout=5000)


def test_quitting_mid_probe_does_not_block(qtbot):
    win = MainWindow(settings=None)
    win.confirm_discard = lambda: True
    win.state.confirm_long_probe = lambda seconds: True
    win.state.load(big_experiment())
    qtbot.waitUntil(lambda: bool(alive(win)), timeout=WAIT_MS)
    qtbot.wait(200)
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 <= 0.5
    qtbot.waitUntil(lambda: not alive(win), timeout=5000)


def test_estimated_very_long_probe_asks_first(qtbot, window):
    state = window.state
    asked = []
    state.confirm_long_probe = lambda seconds: asked.append(seconds) or False
    errors = []
    state.error.connect(errors.append)
    exp = big_experiment(hidden=4096)
    exp.task.seq_len = 2000
    assert state.load(exp)
    assert asked and asked[0] > 60
    assert not state.probe_runner.is_busy and "F5" in errors[-1]
    assert state.update_layer(0, hidden_size=16)  # a small model probes without asking
    assert len(asked) == 1
    qtbot.waitUntil(lambda: state.result is not None, timeout=WAIT_MS)


def shown(qtbot, win):
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    QTest.qWaitForWindowActive(win)


def test_undo_and_redo_keys_bring_back_trained_weights(qtbot, window, qtlog):
    state = window.state
    assert state.load(small_experiment())
    shown(qtbot, window)
    for _ in range(3):
        state.step()
        qtbot.waitUntil(lambda: state.at_rest and not state.trainer.running, timeout=WAIT_MS)
    trained = dict(state.params)
    steps = len(state.history["step"])
    assert steps == 3

    window.controls.scales["recurrent"].spin.setValue(1.5)  # a knob on a trained model
    assert not np.array_equal(state.params["weight_hh_l0"], trained["weight_hh_l0"])
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert all(state.params[k] is v for k, v in trained.items())  # the same arrays
    assert len(state.history["step"]) == steps
    assert window.controls.scales["recurrent"].spin.value() == pytest.approx(1.0)

    QTest.keyClick(window, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert state.experiment.init.scales.recurrent == pytest.approx(1.5)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert state.experiment.init.scales.recurrent == pytest.approx(1.5)

    state.update_layer(0, hidden_size=9)  # redraws: the trained weights are one undo away
    assert len(state.history["step"]) == 0
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert all(state.params[k] is v for k, v in trained.items())
    assert len(state.history["step"]) == steps
    assert not [r for r in qtlog.records if "Ambiguous" in r.message]


def test_own_data_from_two_npy_files_in_either_order(qtbot, window, tmp_path):
    from core.experiment import experiment_from_dict

    state = window.state
    exp = experiment_from_dict({"format": "gradlab-experiment", "version": 1,
                                "model": {"input_size": 3, "output_size": 2,
                                          "layers": [{"cell": "gru", "hidden_size": 4}]}})
    errors = []
    state.error.connect(errors.append)
    assert state.load(exp)
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert "no task section" in errors[-1]  # asks for the data by name
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5, 3)), rng.normal(size=(7, 5, 2))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    assert window.load_data_files([str(tmp_path / "y.npy"), str(tmp_path / "x.npy")])
    qtbot.waitUntil(lambda: state.result is not None, timeout=WAIT_MS)
    np.testing.assert_array_equal(state.result.x, x)
    assert state.result.arrays["gradnorm.l0"].shape == (7,)
    assert state.undo_text.startswith("Use data x.npy")
    assert not window.load_data_files([str(tmp_path / "x.npy")])  # one file is not enough
    assert "two .npy files" in window.banner.text()
    np.save(tmp_path / "bad.npy", rng.normal(size=(7, 5, 4)))
    assert not window.load_data_files([str(tmp_path / "bad.npy"), str(tmp_path / "y.npy")])
    assert state.data is not None and state.data[0] is not None  # the earlier data stays


def test_pausing_a_large_training_run_rests_within_half_a_second(qtbot, window):
    state = window.state
    exp = big_experiment(hidden=1024)
    exp.task.seq_len = 300
    exp.training.trace_every = exp.training.eval_every = 0
    assert state.load(exp)
    state.cancel_probe()
    state.train()
    qtbot.waitUntil(lambda: state.trainer.running, timeout=WAIT_MS)
    qtbot.wait(300)  # inside the first step (several seconds each at this size)
    t0 = time.perf_counter()
    state.pause()
    assert state.trainer.wait(5.0)
    assert time.perf_counter() - t0 <= 0.5
    assert state.at_rest and state.training_state in ("idle", "paused")


def test_space_trains_only_when_the_focused_widget_does_not_take_it(qtbot, window):
    state = window.state
    assert state.load(small_experiment())
    shown(qtbot, window)
    box = window.builder.canvas.bidirectional
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=5000)
    checked = box.isChecked()
    QTest.keyClick(box, Qt.Key.Key_Space)
    assert box.isChecked() != checked  # the check box took the key …
    assert state.training_state == "idle" and not state.trainer.running  # … not Train
    window.panels[0].setFocus()
    QTest.keyClick(window.panels[0], Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: state.training_state == "running", timeout=5000)
    state.pause()


def test_recovery_names_a_lesson_by_its_title(tmp_path):
    from core.document import Document
    from core.lessons import load_lesson
    from gui.files import Autosave

    saved = Autosave(tmp_path, run="a", pid=1)
    saved.write(Document(load_lesson("forget_gate")), None)
    entry, = Autosave(tmp_path, run="b").orphans(alive=lambda pid: False)
    assert entry.path is None and entry.title == load_lesson("forget_gate").title
