"""Lesson presets: the loader in core.lessons and the explanation panel."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
