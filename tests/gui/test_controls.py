"""The control panel and the architecture builder on an experiment without a task, and
typed values: taken exactly, or kept in the field with the allowed range under it."""

from __future__ import annotations

import copy
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFocusEvent, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.limits import limit
from gui.builder import BuilderPanel
from gui.controls import INVALID_BASE, OWN_DATA, ControlPanel
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
    assert control.spin.value() == s.experiment.init.scales.recurrent  # exactly, not rounded
    s.shutdown()


def test_an_edit_repaints_only_the_fields_it_changed(qtbot):
    """Showing the lab's values after an edit leaves alone the fields that show them
    already: Qt repaints a spin box on every setValue, even of the value it holds."""
    from collections import Counter

    from PySide6.QtCore import QObject

    s = LabState(with_task())
    panel = ControlPanel(s)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    fields = {"lr": panel.lr, "seed": panel.seed, "forget bias": panel.forget_bias,
              "steps": panel.steps, "seq_len": panel.seq_len,
              "input scale": panel.scales["input"].spin,
              "recurrent scale": panel.scales["recurrent"].spin}
    painted: Counter = Counter()

    class Spy(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                painted[obj.objectName()] += 1
            return False

    spy = Spy()
    for name, field in fields.items():
        for widget in (field, field.lineEdit()):
            widget.setObjectName(name)
            widget.installEventFilter(spy)
    qtbot.wait(50)
    painted.clear()
    slider = panel.scales["recurrent"].slider
    slider.setValue(slider.value() + 9)
    qtbot.waitUntil(lambda: painted["recurrent scale"] > 0)
    qtbot.wait(50)
    assert {name for name, n in painted.items() if n} == {"recurrent scale"}
    # A field whose text is not its value's (typed, not entered) is set again.
    panel.lr.lineEdit().setText("0.5")
    panel.sync(s.experiment)
    assert panel.lr.lineEdit().text() == panel.lr.textFromValue(s.experiment.training.lr)
    s.shutdown()


# ----------------------------------------------------------------------------- typed values

def lstm_on_sine() -> Experiment:
    return Experiment(model=ModelConfig(layers=[LayerConfig(cell="lstm", hidden_size=5)]),
                      task=TaskConfig(name="sine", seq_len=12, batch_size=3))


@pytest.fixture
def shown(qtbot, monkeypatch):
    """A control panel on a small LSTM, on screen, that runs no probes."""
    s = LabState(lstm_on_sine())
    monkeypatch.setattr(s, "request_probe", lambda: None)
    panel = ControlPanel(s)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    yield panel, s
    s.shutdown()


def type_into(field, text: str) -> None:
    """Select what the field shows, type ``text`` key by key, press Enter."""
    QTest.keyClick(field, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(field, text)
    QTest.keyClick(field, Qt.Key.Key_Return)


def flagged_with(field, *words: str) -> bool:
    text = field.message.text()
    tinted = field.palette().color(QPalette.ColorRole.Base).name() == INVALID_BASE
    return (field.flagged and field.message.isVisible() and field.property("invalid") and tinted
            and all(w in text for w in words))


def test_every_number_field_takes_its_range_from_the_table(shown):
    panel, _ = shown
    for field, path in [(panel.lr, "training.lr"), (panel.forget_bias, "init.forget_bias"),
                        (panel.seed, "init.seed"), (panel.seq_len, "task.seq_len"),
                        (panel.batch, "task.batch_size"), (panel.tbptt, "training.tbptt"),
                        (panel.teacher, "training.teacher_forcing"),
                        (panel.steps, "training.steps"),
                        (panel.clip_value, "training.clip.max_norm"),
                        *[(panel.scales[f].spin, f"init.scales.{f}") for f in panel.scales]]:
        assert field.limit is limit(path), path
        assert f"Allowed: {limit(path).rule()}" in field.toolTip(), path


def test_a_learning_rate_in_scientific_notation_goes_through_and_undoes(shown):
    panel, state = shown
    type_into(panel.lr, "1e-7")
    assert state.experiment.training.lr == 1e-7  # not clamped to a minimum, not rounded
    assert panel.lr.text() == "1e-07" and not panel.lr.flagged
    assert not panel.lr.message.isVisible()
    state.undo()
    assert state.experiment.training.lr == 0.001 and panel.lr.text() == "0.001"


@pytest.mark.parametrize(("text", "words"), [("0", ["above 0", "at most 100", "got 0"]),
                                             ("1e3", ["at most 100", "got 1000"]),
                                             ("-1e-7", ["above 0", "got -1e-07"])])
def test_a_learning_rate_outside_the_table_stays_typed_and_says_the_range(shown, text, words):
    panel, state = shown
    type_into(panel.lr, text)
    assert state.experiment.training.lr == 0.001
    assert flagged_with(panel.lr, "Not applied: must be", *words)
    assert panel.lr.text() != "0.001"  # what was typed is still there
    assert not state.can_undo


def test_a_recurrent_scale_of_10_is_taken_and_12_is_refused_at_the_field(shown):
    panel, state = shown
    control = panel.scales["recurrent"]
    type_into(control.spin, "10")
    assert state.experiment.init.scales.recurrent == 10.0
    assert control.slider.value() == control.slider.maximum()  # the slider's end (4)
    assert not control.spin.flagged
    type_into(control.spin, "12")
    assert state.experiment.init.scales.recurrent == 10.0
    assert flagged_with(control.spin, "between 0 and 10", "got 12")
    assert control.spin.text().startswith("12")
    control.slider.setValue(500)  # the slider is a valid choice: the message goes
    assert not control.spin.flagged and not control.spin.message.isVisible()
    state.undo()
    state.undo()
    assert state.experiment.init.scales.recurrent == 1.0


def test_a_clip_threshold_of_zero_is_refused_and_a_valid_one_clears_the_message(shown):
    panel, state = shown
    type_into(panel.clip_value, "0")
    assert state.experiment.training.clip.max_norm == 1.0
    assert flagged_with(panel.clip_value, "above 0", "got 0")
    assert panel.clip_value.text() == "0"
    type_into(panel.clip_value, "0.25")
    assert state.experiment.training.clip.max_norm == 0.25
    assert not panel.clip_value.flagged and not panel.clip_value.message.isVisible()
    assert not panel.clip_value.property("invalid")
    assert panel.clip_value.palette().color(QPalette.ColorRole.Base).name() != INVALID_BASE
    state.undo()
    assert state.experiment.training.clip.max_norm == 1.0 and panel.clip_value.text() == "1"


def test_a_forget_bias_of_100_is_refused_not_clamped(shown):
    panel, state = shown
    type_into(panel.forget_bias, "100")
    assert state.experiment.init.forget_bias == 0.0
    assert flagged_with(panel.forget_bias, "between -20 and 20", "got 100")
    assert panel.forget_bias.text() == "100"
    type_into(panel.forget_bias, "2")
    assert state.experiment.init.forget_bias == 2.0 and not panel.forget_bias.flagged
    state.undo()
    assert state.experiment.init.forget_bias == 0.0


def test_a_refused_value_stays_while_other_edits_happen(shown):
    panel, state = shown
    type_into(panel.forget_bias, "100")
    type_into(panel.seed, "7")
    assert state.experiment.init.seed == 7
    assert panel.forget_bias.text() == "100" and panel.forget_bias.flagged
    state.undo()  # the seed; the lab's forget bias is still what it was
    assert panel.forget_bias.flagged
    type_into(panel.forget_bias, "1.5")
    state.undo()  # now the field's own value changes: it shows the lab's again
    assert panel.forget_bias.text() == "0" and not panel.forget_bias.flagged


def test_a_value_the_lab_refuses_stays_in_the_field_with_the_labs_reason(shown):
    panel, state = shown
    assert state.set_task("adding")
    type_into(panel.seq_len, "1")
    assert state.experiment.task.seq_len == 12
    assert flagged_with(panel.seq_len, "task.seq_len: the adding task needs at least 2 steps")
    assert panel.seq_len.text() == "1"
    assert state.set_task("sine")  # where 1 step is enough …
    assert panel.seq_len.flagged and panel.seq_len.text() == "1"
    type_into(panel.seq_len, "1")  # … the same value typed again goes through
    assert state.experiment.task.seq_len == 1 and not panel.seq_len.flagged
    type_into(panel.seq_len, "30")
    assert state.experiment.task.seq_len == 30 and not panel.seq_len.flagged


def test_half_a_number_or_one_too_big_for_the_field_is_kept_and_flagged(shown):
    panel, state = shown
    type_into(panel.lr, "1e")
    assert flagged_with(panel.lr, "'1e' is not a number")
    assert panel.lr.text() == "1e" and state.experiment.training.lr == 0.001
    type_into(panel.seq_len, "3000000000")
    assert flagged_with(panel.seq_len, "between 1 and 2147483647", "got 3000000000")
    assert panel.seq_len.text() == "3000000000" and state.experiment.task.seq_len == 12
    QTest.keyClick(panel.batch, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(panel.batch, "9999999999")  # no Enter: flagged as it is typed
    assert flagged_with(panel.batch, "between 1 and 2147483647")
    QApplication.sendEvent(panel.batch, QFocusEvent(QEvent.Type.FocusOut))
    assert panel.batch.text() == "9999999999" and panel.batch.flagged  # leaving keeps it
    assert state.experiment.task.batch_size == 3


def test_truncated_bptt_off_is_the_value_below_its_range(shown):
    panel, state = shown
    assert panel.tbptt.text() == "off (full BPTT)"
    type_into(panel.tbptt, "5")
    assert state.experiment.training.tbptt == 5
    type_into(panel.tbptt, "-3")
    assert flagged_with(panel.tbptt, "between 1 and", "or 0 for full BPTT", "got -3")
    assert state.experiment.training.tbptt == 5
    type_into(panel.tbptt, "0")
    assert state.experiment.training.tbptt is None and panel.tbptt.text() == "off (full BPTT)"
    QTest.keyClick(panel.tbptt, Qt.Key.Key_Up)
    assert state.experiment.training.tbptt == 1
    QTest.keyClick(panel.tbptt, Qt.Key.Key_Down)
    assert state.experiment.training.tbptt is None


def test_arrow_keys_stop_at_the_ends_of_the_range(shown):
    panel, state = shown
    type_into(panel.forget_bias, "20")
    QTest.keyClick(panel.forget_bias, Qt.Key.Key_Up)
    assert state.experiment.init.forget_bias == 20.0 and not panel.forget_bias.flagged
    QTest.keyClick(panel.lr, Qt.Key.Key_Down)  # adaptive: a tenth of the value's decade
    assert state.experiment.training.lr == 0.0009
    QTest.keyClick(panel.lr, Qt.Key.Key_Up)
    assert state.experiment.training.lr == 0.00091
    type_into(panel.teacher, "1")
    assert not panel.teacher.isEnabled()  # only output recurrence feeds targets back
    type_into(panel.clip_value, "1000000")
    QTest.keyClick(panel.clip_value, Qt.Key.Key_Up)
    assert state.experiment.training.clip.max_norm == 1e6 and not panel.clip_value.flagged
    type_into(panel.clip_value, "0.5")
    for _ in range(6):  # adaptive: down by a tenth of the value's decade, 0.01 here
        QTest.keyClick(panel.clip_value, Qt.Key.Key_Down)
    assert state.experiment.training.clip.max_norm == 0.44


def test_knobs_without_effect_on_the_cells_say_so(shown):
    panel, state = shown
    exp = copy.deepcopy(state.experiment)
    forget_tip = panel.forget_bias.toolTip()
    exp.model.layers = [LayerConfig(cell="mingru", hidden_size=8)]
    panel.sync(exp)
    assert not panel.forget_bias.isEnabled()
    assert panel.forget_bias.toolTip().startswith("No effect: minGRU cells have no forget gate")
    assert not panel.scales["recurrent"].isEnabled()
    assert "no hidden-to-hidden weights" in panel.scales["recurrent"].slider.toolTip()
    exp.model.layers = [LayerConfig(cell="cifg", hidden_size=8)]
    panel.sync(exp)
    assert panel.forget_bias.isEnabled() and panel.scales["recurrent"].isEnabled()
    assert panel.forget_bias.toolTip() == forget_tip
