"""Lesson presets: the loader in core.lessons and the explanation panel."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from core.errors import ConfigError
from core.lessons import LESSONS_DIR, ORDER, list_lessons, load_lesson

EXPECTED = {"vanishing_tanh", "exploding_clipping", "forget_gate", "gru_gates", "peephole",
            "bidirectional", "teacher_forcing", "sequence_to_one", "sigmoid_flattening",
            "one_weights_every_length", "coupled_gates", "input_only_gates"}


def test_every_lesson_is_listed_in_order_and_valid():
    names = [name for name, _title in list_lessons()]
    assert set(names) >= EXPECTED
    assert names[: len(ORDER)] == [n for n in ORDER if n in names]
    for name, title in list_lessons():
        exp = load_lesson(name)
        assert exp.title == title
        words = len(exp.description.split())
        assert 80 <= words <= 200, (name, words)
        raw = json.loads((LESSONS_DIR / f"{name}.json").read_text(encoding="utf-8"))
        assert (raw["format"], raw["version"]) == ("gradlab-experiment", 1)


def test_unknown_lesson_names_the_available_ones():
    with pytest.raises(ConfigError) as info:
        load_lesson("no_such_lesson")
    assert "no_such_lesson" in str(info.value)
    assert "vanishing_tanh" in str(info.value)


def test_lessons_set_up_what_they_explain():
    assert load_lesson("exploding_clipping").training.clip.mode == "none"
    assert load_lesson("exploding_clipping").init.scales.recurrent >= 3
    assert load_lesson("forget_gate").init.forget_bias >= 1
    assert load_lesson("peephole").model.layers[0].peephole
    assert load_lesson("bidirectional").model.layers[0].bidirectional
    assert load_lesson("teacher_forcing").model.pattern == "output_recurrence"
    assert load_lesson("sequence_to_one").model.pattern == "many_to_one"
    assert load_lesson("sigmoid_flattening").model.layers[0].activation == "sigmoid"
    assert load_lesson("gru_gates").model.layers[0].cell == "gru"
    assert load_lesson("coupled_gates").model.layers[0].cell == "cifg"
    assert load_lesson("coupled_gates").task.name == "adding"
    assert load_lesson("input_only_gates").model.layers[0].cell == "mingru"
    assert load_lesson("input_only_gates").task.name == "copy"


def test_lesson_panel_shows_title_and_description(qtbot):
    from gui.lessons import LessonPanel
    from gui.state import LabState

    state = LabState(load_lesson("forget_gate"))
    panel = LessonPanel(state)
    qtbot.addWidget(panel)
    assert "The forget gate keeps the gradient alive" in panel.text()
    assert "forget-gate bias" in panel.text()
    state.load(load_lesson("vanishing_tanh"))
    assert "Vanishing gradients" in panel.text()
    state.shutdown()


def test_lesson_text_keeps_its_scroll_position_while_knobs_move(qtbot):
    """Reading the lesson's "Try:" and nudging a knob: the text stays where the reader
    scrolled it (it is laid out again only when it changes)."""
    from gui.lessons import LessonPanel
    from gui.state import LabState

    state = LabState(load_lesson("peephole"))
    panel = LessonPanel(state)
    qtbot.addWidget(panel)
    panel.resize(300, 160)
    panel.show()
    qtbot.waitExposed(panel)
    bar = panel.browser.verticalScrollBar()
    assert bar.maximum() > 0
    bar.setValue(bar.maximum())
    state.set_scale("recurrent", 1.3)
    state.set_scale("recurrent", 0.8)
    assert bar.value() == bar.maximum() > 0
    state.load(load_lesson("vanishing_tanh"))  # another text starts at its top
    assert bar.value() == 0
    state.shutdown()


def test_two_lessons_have_a_one_click_compare_step():
    from core.lessons import lesson_pair

    pairs = {name: lesson_pair(name) for name, _title in list_lessons()}
    assert pairs["forget_gate"].path == "init.forget_bias"
    assert (pairs["forget_gate"].a, pairs["forget_gate"].b) == (0, 2)
    assert pairs["exploding_clipping"].path == "training.clip.mode"
    assert pairs["exploding_clipping"].train_steps > 0
    for name, pair in pairs.items():
        if pair is not None:
            assert "Compare:" in load_lesson(name).description, name


def test_the_compare_button_pins_a_and_keeps_b_live(qtbot, tmp_path):
    from gui.app import MainWindow

    from .test_files import dispose, wait_result

    win = MainWindow(settings=None, data_dir=tmp_path / "data")
    win.confirm_discard = lambda: True
    try:
        assert win.open_lesson("exploding_clipping")
        wait_result(qtbot, win)
        button = win.lesson_panel.compare_button
        assert button.isVisibleTo(win.lesson_panel) and "clipping" in button.text()
        button.click()
        qtbot.waitUntil(lambda: len(win.state.pinned) == 1, timeout=30000)
        wait_result(qtbot, win)
        pin = win.state.pinned[0]
        assert pin.experiment.training.clip.mode == "none"
        assert win.state.experiment.training.clip.mode == "norm"
        assert 0 < pin.steps <= 120 and not np.isfinite(pin.history["loss"][-1])
        assert win.state.differences(pin)[0] == "training.clip.mode none → norm"
        assert win.state.undo_text == "training.clip.mode norm"  # B is one undoable edit
        assert win.state.lab.history.column("loss").size == 0  # B is for the user to train
        assert win.open_lesson("vanishing_tanh")
        assert not win.lesson_panel.compare_button.isVisibleTo(win.lesson_panel)
    finally:
        dispose(win)
