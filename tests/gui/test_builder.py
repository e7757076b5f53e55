"""The architecture builder without dead ends: patterns and losses that bring a task
that can have them, the dense head's output size, refusals that go away, and typed
sizes that are never changed into others."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import core.lab
from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.layout import param_shapes
from gui.builder import BuilderPanel
from gui.state import LabState


def adding() -> Experiment:
    return Experiment(model=ModelConfig(input_size=2, pattern="many_to_one",
                                        layers=[LayerConfig(cell="gru", hidden_size=5)]),
                      task=TaskConfig(name="adding", seq_len=12, batch_size=3))


def own_data() -> Experiment:
    return Experiment(model=ModelConfig(input_size=3, output_size=1,
                                        layers=[LayerConfig(cell="gru", hidden_size=5)]))


def lazy_params(model, init):
    """Zeros of the right shapes: the pages of a large model are never touched."""
    return {k: np.zeros(shape) for k, shape in param_shapes(model).items()}


@pytest.fixture
def make(qtbot, monkeypatch):
    """``make(experiment)``: a builder on screen over a state that runs no probes."""
    states, panels = [], []  # kept alive for the test

    def build(exp: Experiment):
        s = LabState(exp)
        monkeypatch.setattr(s, "request_probe", lambda: None)
        panel = BuilderPanel(s)
        qtbot.addWidget(panel)
        panel.show()
        qtbot.waitExposed(panel)
        states.append(s)
        panels.append(panel)
        return panel.canvas, s

    yield build
    for s in states:
        s.shutdown()


def type_into(field, text: str) -> None:
    QTest.keyClick(field, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(field, text)
    QTest.keyClick(field, Qt.Key.Key_Return)


def choose(combo, data) -> None:
    combo.setCurrentIndex(combo.findData(data))


def card_text(canvas, start: str) -> str:
    """What a card shows, its fields' text included, in order."""
    card = next(c for c in canvas.stack.cards if c.label.text().startswith(start))
    row = card.layout()
    return " ".join(row.itemAt(i).widget().text() for i in range(row.count()))


@pytest.mark.parametrize("pattern", ["many_to_many", "output_recurrence"])
def test_every_pattern_on_the_adding_task_brings_a_task_that_has_it(make, pattern):
    canvas, state = make(adding())
    choose(canvas.pattern, pattern)
    exp = state.experiment
    assert (exp.task.name, exp.model.pattern) == ("sine", pattern)
    assert canvas.message.isVisible()
    assert canvas.message.text().startswith(f"The adding task cannot have "
                                            f"{pattern.replace('_', ' ')}: the task is now sine")
    assert "Not applied" not in canvas.message.text()
    assert "sine task" in canvas.stack.cards[0].label.text()
    state.undo()  # one step
    assert state.experiment.task.name == "adding" and state.experiment.model.pattern == "many_to_one"
    assert canvas.pattern.currentData() == "many_to_one"
    assert not canvas.message.isVisible()  # the architecture changed back: nothing stale


def test_a_refusal_goes_away_after_a_valid_choice(make):
    canvas, state = make(adding())
    canvas._delete(0)  # the only layer
    assert canvas.message.isVisible() and "at least one recurrent layer" in canvas.message.text()
    choose(canvas.pattern, "many_to_many")  # a valid choice that brings a task
    assert "Not applied" not in canvas.message.text()
    canvas._delete(0)
    assert "Not applied" in canvas.message.text()
    choose(canvas.pattern, "many_to_one")  # sine has it: nothing else to say
    assert state.experiment.model.pattern == "many_to_one"
    assert not canvas.message.isVisible()


def test_cross_entropy_on_the_loss_card_brings_a_classification_task(make):
    canvas, state = make(adding())
    choose(canvas.loss, "cross_entropy")
    exp = state.experiment
    assert (exp.task.name, exp.model.loss, exp.model.output_size) == ("parity", "cross_entropy", 2)
    assert "the task is now parity" in canvas.message.text()
    assert canvas.loss.currentData() == "cross_entropy"  # the rebuilt card
    assert "2 classes on the last step" in card_text(canvas, "<b>Dense head")
    assert "(set by the parity task)" in card_text(canvas, "<b>Dense head")
    assert canvas.outputs.value() == 2 and not canvas.outputs.isEnabled()
    state.undo()
    assert state.experiment.task.name == "adding" and canvas.loss.currentData() == "mse"


def test_the_cross_entropy_block_does_the_same(make):
    canvas, state = make(Experiment(task=TaskConfig(seq_len=12, batch_size=3)))  # sine
    assert canvas.add_block({"kind": "loss", "loss": "cross_entropy"})
    assert state.experiment.model.loss == "cross_entropy"
    assert state.experiment.task.name in state.lab.tasks_for(loss="cross_entropy")
    assert canvas.add_block({"kind": "loss", "loss": "mse"})
    assert state.experiment.model.loss == "mse"


def test_the_output_size_is_typed_on_the_head_card_on_your_own_data(make):
    canvas, state = make(own_data())
    assert canvas.outputs.isEnabled()
    type_into(canvas.outputs, "3")
    assert state.experiment.model.output_size == 3
    assert canvas.outputs.value() == 3 and "3 outputs" in card_text(canvas, "<b>Dense head")
    state.undo()
    assert state.experiment.model.output_size == 1 and canvas.outputs.value() == 1


@pytest.mark.parametrize(("text", "shown"), [("0", "got 0"), ("70000", "got 70000")])
def test_an_output_size_outside_the_table_stays_and_says_the_range(make, text, shown):
    canvas, state = make(own_data())
    type_into(canvas.outputs, text)
    assert state.experiment.model.output_size == 1
    assert canvas.outputs.text() == text and canvas.outputs.flagged
    assert canvas.outputs.message.isVisible()
    assert "must be between 1 and 65536" in canvas.outputs.message.text()
    assert shown in canvas.outputs.message.text()


def test_cross_entropy_on_your_own_data_says_how_to_get_there(make):
    canvas, state = make(own_data())
    choose(canvas.loss, "cross_entropy")
    assert state.experiment.model.loss == "mse"
    assert canvas.loss.currentData() == "mse"  # the card shows what is in effect
    text = canvas.message.text()
    assert "cross_entropy needs at least 2 classes" in text and "outputs to 2 or more" in text
    type_into(canvas.outputs, "2")
    assert not canvas.message.isVisible()  # a valid edit: the refusal is gone
    choose(canvas.loss, "cross_entropy")
    assert state.experiment.model.loss == "cross_entropy" and state.experiment.task is None
    type_into(canvas.outputs, "1")  # the lab refuses it: kept, with the lab's reason
    assert state.experiment.model.output_size == 2
    assert canvas.outputs.text() == "1" and canvas.outputs.flagged
    assert "cross_entropy needs at least 2 classes" in canvas.outputs.message.text()


def test_a_hidden_size_of_10000_is_10000(make, monkeypatch):
    monkeypatch.setattr(core.lab, "init_params", lazy_params)
    canvas, state = make(adding())
    type_into(canvas.hidden, "10000")
    assert state.experiment.model.layers[0].hidden_size == 10000  # not 1000, not 4096
    assert not canvas.hidden.flagged
    assert "10000 units" in canvas.stack.cards[1].label.text()
    state.undo()
    assert state.experiment.model.layers[0].hidden_size == 5 and canvas.hidden.value() == 5


def test_a_hidden_size_beyond_the_table_stays_typed_with_the_range(make):
    canvas, state = make(adding())
    type_into(canvas.hidden, "100000")
    assert state.experiment.model.layers[0].hidden_size == 5
    assert canvas.hidden.text() == "100000" and canvas.hidden.flagged
    assert canvas.hidden.message.isVisible()
    assert "must be between 1 and 65536; got 100000" in canvas.hidden.message.text()
    type_into(canvas.hidden, "7")
    assert state.experiment.model.layers[0].hidden_size == 7 and not canvas.hidden.flagged
    assert not canvas.hidden.message.isVisible()


def test_a_selected_palette_chip_keeps_its_label_readable(qtbot):
    from PySide6.QtGui import QColor

    from gui.palette import Palette

    palette = Palette()
    qtbot.addWidget(palette)
    palette.resize(330, 100)
    palette.show()
    qtbot.waitExposed(palette)
    palette.setCurrentRow(4)
    rect = palette.visualItemRect(palette.item(4)).adjusted(4, 4, -4, -4)  # inside the border
    image = palette.viewport().grab(rect).toImage()
    lum = [QColor(image.pixel(x, y)).lightness()
           for x in range(image.width()) for y in range(image.height())]
    fill = max(set(lum), key=lum.count)
    text = sum(abs(v - fill) > 80 for v in lum)
    assert text > 20  # the label stands out from the highlight: not a blank box


def test_a_layer_card_drags_from_its_centre(qtbot, monkeypatch):
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtGui import QDrag
    from PySide6.QtTest import QTest

    from core.experiment import LayerConfig
    from core.lessons import load_lesson
    from gui.builder import LAYER_MIME, BuilderPanel
    from gui.state import LabState

    state = LabState(load_lesson("vanishing_tanh"))
    assert state.insert_layer(1, LayerConfig(cell="gru", hidden_size=8))
    panel = BuilderPanel(state)
    qtbot.addWidget(panel)
    panel.resize(350, 600)
    panel.show()
    qtbot.waitExposed(panel)
    started = []
    monkeypatch.setattr(QDrag, "exec", lambda self, *a, **k: started.append(self.mimeData())
                        or Qt.DropAction.IgnoreAction)
    card = next(c for c in panel.canvas.stack.cards if c.index == 0)
    centre = card.rect().center()
    target = card.childAt(centre) or card  # what the mouse really hits there
    at = target.mapFrom(card, centre)
    QTest.mousePress(target, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at)
    QTest.mouseMove(target, at + QPoint(0, 30))
    QTest.mouseRelease(target, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       at + QPoint(0, 30))
    assert started and started[0].hasFormat(LAYER_MIME)  # a layer drag began
    state.shutdown()


@pytest.mark.parametrize(("label", "cell"), [("CIFG LSTM", "cifg"), ("minGRU", "mingru"),
                                             ("minLSTM", "minlstm")])
def test_the_new_cells_blocks_add_their_layers(make, label, cell):
    from gui.palette import BLOCKS

    canvas, state = make(adding())
    block = next(b for b in BLOCKS if b.label == label)
    assert canvas.add_block(block.spec)
    assert [layer.cell for layer in state.experiment.model.layers] == ["gru", cell]
    canvas.select(1)
    assert canvas.cell.currentData() == cell
    assert canvas.cell.currentText() != cell.upper()  # a readable name, e.g. "minGRU"
