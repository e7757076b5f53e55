"""Pin a run in the window: the live run is drawn over the pinned one, with what differs."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from gui.app import MainWindow

from .test_files import dispose, wait_result


def lstm_experiment() -> Experiment:
    return Experiment(model=ModelConfig(input_size=2, output_size=1, pattern="many_to_one",
                                        layers=[LayerConfig(cell="lstm", hidden_size=6)]),
                      task=TaskConfig(name="adding", seq_len=15, batch_size=4))


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    settings = QSettings(str(tmp_path / "gradlab.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings, data_dir=tmp_path / "data")
    win.state.load(lstm_experiment())
    wait_result(qtbot, win)
    yield win
    dispose(win)


def gradients(win):
    return next(p for p in win.panels if p.name == "gradients")


def test_pin_then_edit_overlays_the_pinned_run(qtbot, window):
    panel = gradients(window)
    assert not window.unpin_action.isEnabled() and panel.pinned_curves == {}
    assert window.pin_action.shortcut().toString() == "Ctrl+P"
    window.pin_action.trigger()
    pinned = np.array(window.state.result.arrays["gradnorm.l0"], dtype=np.float64)
    assert [p.label for p in window.state.pinned] == ["A"]
    assert window.unpin_action.isEnabled()
    window.state.set_init(forget_bias=2.0)
    wait_result(qtbot, window)
    assert set(panel.pinned_curves) == {"A.l0"}
    curve = panel.pinned_curves["A.l0"]
    assert curve.isVisible() and curve.zValue() < panel.curves["h.l0"].zValue()
    np.testing.assert_allclose(curve.yData, pinned)
    assert curve.opts["pen"].color().alpha() < 255  # muted
    assert panel.pin_legend_texts == ["A: init.forget_bias 0 → 2"]
    legend = [label.text for _sample, label in panel._pin_legend.items]
    assert any("A: init.forget_bias 0 → 2" in text for text in legend)
    assert "pinned.A.gradnorm.l0" in panel.to_csv_table()


def test_unpin_removes_the_overlay(qtbot, window):
    panel = gradients(window)
    window.pin_run()
    window.state.set_init(forget_bias=1.0)
    wait_result(qtbot, window)
    assert panel.pinned_curves
    window.unpin_action.trigger()
    assert window.state.pinned == [] and panel.pinned_curves == {}
    assert panel.pin_legend_texts == [] and not panel._pin_legend.isVisible()
    assert not any(item.isVisible() for item in panel._pin_pool)


def test_pinned_runs_survive_save_and_open(qtbot, window, tmp_path):
    window.pin_run()
    window.state.set_init(forget_bias=2.0)
    wait_result(qtbot, window)
    path = tmp_path / "pins.gradlab"
    assert window.save_as(path)
    window.state.load(lstm_experiment())
    wait_result(qtbot, window)
    assert window.state.pinned == [] and gradients(window).pinned_curves == {}
    assert window.open_path(path)
    wait_result(qtbot, window)
    assert [p.label for p in window.state.pinned] == ["A"]
    assert gradients(window).pin_legend_texts == ["A: init.forget_bias 0 → 2"]
    assert set(gradients(window).pinned_curves) == {"A.l0"}
