"""The experiment file: an optional task section, training.batch_size, exact round trips."""

from __future__ import annotations

import json

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
    with pytest.raises(ConfigError, match=r"training\.batch_size: must be at least 1"):
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
