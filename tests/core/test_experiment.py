"""The experiment file: an optional task section, training.batch_size, exact round trips,
and the one table of ranges every numeric field is checked against."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import core
from core.errors import ConfigError
from core.experiment import (
    ARRAY_BATCH,
    Experiment,
    TaskConfig,
    TrainingConfig,
    experiment_from_dict,
    experiment_to_dict,
    training_batch_size,
)
from core.lessons import list_lessons, load_lesson
from core.limits import LIMITS, MAX_COUNT, MAX_HIDDEN, limit, markdown_table

SMALLEST = {"format": "gradlab-experiment", "version": 1,
            "model": {"input_size": 3, "output_size": 2,
                      "layers": [{"cell": "gru", "hidden_size": 4}]}}


def test_the_smallest_experiment_loads_without_a_task(tmp_path):
    path = tmp_path / "e.json"
    path.write_text(json.dumps(SMALLEST))
    exp = core.load_experiment(path)
    assert exp.task is None
    assert exp.model.input_size == 3 and exp.model.output_size == 2
    assert exp.training.batch_size is None


def test_no_task_round_trips_exactly():
    exp = experiment_from_dict(SMALLEST)
    doc = experiment_to_dict(exp)
    assert "task" not in doc
    again = experiment_from_dict(json.loads(json.dumps(doc)))
    assert again == exp and again.task is None
    assert experiment_to_dict(again) == doc
    assert experiment_from_dict(experiment_to_dict(Experiment())) == Experiment()


def test_a_null_task_is_no_task():
    assert experiment_from_dict({**SMALLEST, "task": None}).task is None


def test_a_task_still_has_to_fit_the_model():
    with pytest.raises(ConfigError, match=r"model\.input_size: the sine task has 1 input channel"):
        experiment_from_dict({**SMALLEST, "task": {"name": "sine"}})
    doc = {**SMALLEST, "model": {**SMALLEST["model"], "input_size": 1, "output_size": 1},
           "task": {"name": "sine", "seq_len": 20, "batch_size": 5, "noise": 0.1}}
    exp = experiment_from_dict(doc)
    assert exp.task == TaskConfig(name="sine", seq_len=20, batch_size=5, options={"noise": 0.1})
    assert experiment_to_dict(exp)["task"] == doc["task"]


def test_every_lesson_keeps_its_task():
    for name, _title in list_lessons():
        exp = load_lesson(name)
        assert exp.task is not None, name
        assert experiment_from_dict(experiment_to_dict(exp)) == exp, name


@pytest.mark.parametrize("value", [0, -2])
def test_training_batch_size_must_be_positive(value):
    with pytest.raises(ConfigError, match=r"training\.batch_size: must be between 1 and \d+ or null"):
        experiment_from_dict({**SMALLEST, "training": {"batch_size": value}})


def test_training_batch_size_is_ill_typed_by_name():
    with pytest.raises(ConfigError, match=r"training\.batch_size: expected an integer"):
        experiment_from_dict({**SMALLEST, "training": {"batch_size": "all"}})


def test_training_batch_size_rule():
    no_task = Experiment()
    assert training_batch_size(no_task, 10) == 10  # every given sequence
    assert training_batch_size(no_task, 10 * ARRAY_BATCH) == ARRAY_BATCH  # capped
    with_task = Experiment(task=TaskConfig(batch_size=7))
    assert training_batch_size(with_task) == 7
    assert training_batch_size(with_task, 1000) == 7  # given arrays: the task's size, as before
    chosen = Experiment(training=TrainingConfig(batch_size=3))
    assert training_batch_size(chosen, 1000) == 3
    assert training_batch_size(Experiment(task=TaskConfig(), training=TrainingConfig(
        batch_size=3))) == 3
    doc = experiment_to_dict(chosen)
    assert doc["training"]["batch_size"] == 3
    assert experiment_from_dict(doc) == chosen


# ----------------------------------------------------------------------------- ranges

SINE = {"format": "gradlab-experiment", "version": 1,
        "model": {"input_size": 1, "output_size": 1, "layers": [{"cell": "lstm", "hidden_size": 4},
                                                                 {"cell": "gru", "hidden_size": 3}]},
        "task": {"name": "sine", "seq_len": 20, "batch_size": 4}}


def _with(path: str, value):
    """SINE with the field at dotted ``path`` (``[k]`` is layer 1) set to ``value``."""
    doc = json.loads(json.dumps(SINE))
    parts = path.replace("[k]", ".1").split(".")
    obj = doc
    for part in parts[:-1]:
        obj = obj[int(part)] if part.isdigit() else obj.setdefault(part, {})
    obj[parts[-1]] = value
    return doc


def _outside(lim):
    """Values just outside each end of the range, and the bounds themselves when open."""
    step = 1 if lim.kind is int else max(abs(lim.hi - lim.lo) * 1e-6, 1e-9)
    values = [lim.lo - step, lim.hi + step]
    values += [lim.lo] if lim.lo_open else []
    values += [lim.hi] if lim.hi_open else []
    return values


def _inside(lim):
    values = [lim.hi if not lim.hi_open else lim.hi - (1 if lim.kind is int else 1e-6)]
    values += [lim.lo if not lim.lo_open else lim.lo + (1 if lim.kind is int else 1e-6)]
    return values


@pytest.mark.parametrize("path", sorted(LIMITS))
def test_every_field_refuses_values_outside_its_range_with_the_tables_words(path):
    lim = LIMITS[path]
    where = path.replace("[k]", "[1]")
    for value in _outside(lim):
        with pytest.raises(ConfigError) as err:
            experiment_from_dict(_with(path, value))
        assert str(err.value) == lim.message(value, where)
        assert str(err.value).startswith(f"{where}: must be {lim.rule()}")


@pytest.mark.parametrize("path", sorted(p for p in LIMITS if p != "model.input_size"
                                        and p != "model.output_size"))
def test_every_field_takes_the_ends_of_its_range(path):
    lim = LIMITS[path]
    for value in _inside(lim):
        exp = experiment_from_dict(_with(path, value))
        assert experiment_from_dict(experiment_to_dict(exp)) == exp


def test_the_sizes_and_counts_a_file_may_ask_for():
    assert limit("model.layers[k].hidden_size").hi == MAX_HIDDEN == 65_536
    assert limit("task.seq_len").hi == MAX_COUNT == 2**31 - 1
    assert limit("training.lr").rule() == "above 0 and at most 100"
    assert limit("training.momentum").rule() == "at least 0 and below 1"
    assert limit("init.forget_bias").rule() == "between -20 and 20"
    with pytest.raises(ConfigError, match=r"^training\.lr: must be above 0 and at most 100, got 0$"):
        experiment_from_dict(_with("training.lr", 0))
    assert experiment_from_dict(_with("training.lr", 1e-7)).training.lr == 1e-7
    with pytest.raises(ConfigError, match=r"^training\.clip\.max_norm: must be above 0 "):
        experiment_from_dict(_with("training.clip.max_norm", 0.0))
    with pytest.raises(ConfigError, match=r"^training\.tbptt: must be between 1 and \d+ or null, got 0$"):
        experiment_from_dict(_with("training.tbptt", 0))
    assert experiment_from_dict(_with("training.tbptt", None)).training.tbptt is None
    with pytest.raises(ConfigError, match=r"got 1\d{36}\.\.\.$"):
        experiment_from_dict(_with("task.seq_len", 10**400))  # a long number is cut short


def test_a_file_and_the_cli_refuse_with_the_same_words(tmp_path):
    from core.experiment import load_experiment_config

    path = tmp_path / "e.json"
    path.write_text(json.dumps(_with("init.scales.recurrent", 12.5)))
    with pytest.raises(ConfigError) as err:
        load_experiment_config(path)
    assert str(err.value) == f"{path}: " + limit("init.scales.recurrent").message(12.5)


def test_the_docs_show_the_table():
    text = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- ranges:start -->\n(.*?)\n<!-- ranges:end -->", text, re.S)
    assert found, "docs/formats.md has lost its ranges table"
    assert found.group(1).strip() == markdown_table()
