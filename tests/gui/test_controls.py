"""The control panel and the architecture builder on an experiment without a task."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from gui.builder import BuilderPanel
from gui.controls import OWN_DATA, ControlPanel
from gui.state import LabState


def with_task() -> Experiment:
    return Experiment(model=ModelConfig(layers=[LayerConfig(cell="gru", hidden_size=5)]),
                      task=TaskConfig(name="sine", seq_len=12, batch_size=3))


def without_task() -> Experiment:
    return Experiment(model=ModelConfig(input_size=3, output_size=2,
                                        layers=[LayerConfig(cell="gru", hidden_size=5)]))


@pytest.fixture
def state(qtbot):
    s = LabState(without_task())
    yield s
    s.shutdown()


def test_the_data_group_shows_your_own_data_and_back(qtbot, state):
    panel = ControlPanel(state)
    qtbot.addWidget(panel)
    assert panel.task.currentText() == OWN_DATA and panel.task.currentData() is None
    assert not panel.task.isEnabled()
    assert not panel.seq_len.isEnabled() and not panel.batch.isEnabled()
    assert panel.task.findData("sine") >= 0
    assert state.load(with_task())
    assert panel.task.currentData() == "sine" and panel.task.isEnabled()
    assert panel.seq_len.value() == 12 and panel.batch.isEnabled()
    assert panel.task.findData(None) < 0  # no stale "your own data" entry to pick
    assert state.load(without_task())
    assert panel.task.currentText() == OWN_DATA and not panel.task.isEnabled()
    assert [panel.task.itemData(i) for i in range(panel.task.count())].count(None) == 1


def test_the_builder_names_the_data(qtbot, state):
    builder = BuilderPanel(state)
    qtbot.addWidget(builder)
    assert "your own data" in builder.canvas.stack.cards[0].label.text()
    assert "3 features" in builder.canvas.stack.cards[0].label.text()
    assert state.load(with_task())
    assert "sine task" in builder.canvas.stack.cards[0].label.text()


def test_a_slider_move_is_not_echoed_back_into_the_slider(qtbot):
    from gui.controls import ControlPanel

    s = LabState(without_task())
    panel = ControlPanel(s)
    qtbot.addWidget(panel)
    control = panel.scales["recurrent"]
    moved = []
    s.experiment_changed.connect(lambda exp: moved.append(control.slider.value()))
    for pos in (218, 224, 231):  # a drag, where a rounded value maps back elsewhere
        control.slider.setValue(pos)
        assert control.slider.value() == pos  # the state's echo left the slider alone
    assert moved == [218, 224, 231]
    assert control.spin.value() == pytest.approx(round(s.experiment.init.scales.recurrent, 2))
    s.shutdown()
