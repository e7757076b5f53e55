"""The Lab's builder edits without dead ends: a pattern or loss the task cannot have
brings a task that can (one undo step, with a notice), and the head's output size."""

from __future__ import annotations

import numpy as np
import pytest

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.lab import Lab
from core.tasks import TASK_NAMES, task_shapes


def listen(signal) -> list:
    seen: list = []
    signal.connect(seen.append)
    return seen


def adding_lab() -> Lab:
    """The adding task (many_to_one only, mse) with a small GRU."""
    return Lab(Experiment(model=ModelConfig(input_size=2, output_size=1, pattern="many_to_one",
                                            layers=[LayerConfig(cell="gru", hidden_size=4)]),
                          task=TaskConfig(name="adding", seq_len=12, batch_size=4)))


def own_data_lab(output_size: int = 1) -> Lab:
    return Lab(Experiment(model=ModelConfig(input_size=3, output_size=output_size,
                                            layers=[LayerConfig(cell="gru", hidden_size=4)])))


def test_tasks_for_lists_every_task_that_fits_in_registry_order():
    lab = adding_lab()
    assert lab.tasks_for("many_to_many", "mse") == ["sine", "mackey_glass", "dataset"]
    assert lab.tasks_for(loss="cross_entropy") == ["copy", "parity"]
    assert lab.tasks_for("many_to_one", "cross_entropy") == ["parity"]
    assert lab.tasks_for("output_recurrence", "cross_entropy") == []
    assert "csv" not in lab.tasks_for()  # it needs a file first
    for name in lab.tasks_for("many_to_many"):
        assert "many_to_many" in task_shapes(name)["patterns"]
    assert set(lab.tasks_for()) == set(TASK_NAMES) - {"csv"}


@pytest.mark.parametrize("pattern", ["many_to_many", "output_recurrence"])
def test_a_pattern_the_task_cannot_have_brings_a_task_that_can(pattern):
    lab = adding_lab()
    before = lab.experiment
    notices, errors = listen(lab.notice), listen(lab.error)
    assert lab.set_pattern(pattern) is False  # the plain edit is still refused
    errors.clear()
    assert lab.set_design(pattern=pattern)
    exp = lab.experiment
    assert not errors
    assert (exp.task.name, exp.model.pattern, exp.model.loss) == ("sine", pattern, "mse")
    assert (exp.model.input_size, exp.model.output_size) == (1, 1)
    assert exp.model.layers == before.model.layers
    assert notices and notices[-1].startswith("The adding task cannot have "
                                              f"{pattern.replace('_', ' ')}: the task is now sine")
    assert "Ctrl+Z" in notices[-1] and "Also fits: mackey_glass" in notices[-1]
    assert lab.undo_text.startswith(pattern.replace("_", " ").capitalize())
    assert lab.undo() and lab.experiment == before  # one step back
    assert not lab.can_undo


def test_a_pattern_the_task_has_changes_the_pattern_only():
    lab = Lab(Experiment(task=TaskConfig(seq_len=12, batch_size=4)))  # sine
    notices = listen(lab.notice)
    assert lab.set_design(pattern="many_to_one")
    assert (lab.experiment.task.name, lab.experiment.model.pattern) == ("sine", "many_to_one")
    assert not notices
    assert lab.set_design(pattern="many_to_one")  # nothing to do
    assert len(lab._undo) == 1


def test_cross_entropy_on_a_regression_task_switches_to_a_classification_task():
    lab = adding_lab()  # many_to_one
    notices = listen(lab.notice)
    assert lab.set_design(loss="cross_entropy")
    exp = lab.experiment
    assert (exp.task.name, exp.model.loss, exp.model.pattern) == ("parity", "cross_entropy",
                                                                   "many_to_one")
    assert exp.model.output_size == 2
    assert "the task is now parity" in notices[-1]
    result = lab.probe(jacobian=False, connectivity=False)  # it runs: classes in, a loss out
    assert result.x.shape[-1] == 1 and np.isfinite(result.arrays["loss"])
    assert lab.undo() and lab.experiment.task.name == "adding"


def test_a_loss_no_task_has_with_this_pattern_takes_the_tasks_pattern():
    lab = Lab(Experiment(model=ModelConfig(pattern="output_recurrence"),
                         task=TaskConfig(seq_len=12, batch_size=4)))
    notices = listen(lab.notice)
    assert lab.set_design(loss="cross_entropy")
    exp = lab.experiment
    assert exp.model.loss == "cross_entropy" and exp.task.name in ("copy", "parity")
    assert exp.model.pattern == task_shapes(exp.task.name)["default_pattern"]
    assert "pattern many to" in notices[-1]


def test_a_pattern_and_loss_no_task_has_together_are_refused():
    lab = Lab(Experiment(task=TaskConfig(seq_len=12, batch_size=4)))
    errors = listen(lab.error)
    before = lab.experiment
    assert not lab.set_design(pattern="output_recurrence", loss="cross_entropy")
    assert errors == ["model: no task can train a model with output recurrence with cross entropy"]
    assert lab.experiment == before and not lab.can_undo


def test_without_a_task_the_design_is_the_models_own():
    lab = own_data_lab(output_size=2)
    assert lab.set_design(pattern="many_to_one", loss="cross_entropy")
    assert lab.experiment.task is None
    assert (lab.experiment.model.pattern, lab.experiment.model.loss) == ("many_to_one",
                                                                         "cross_entropy")


def test_cross_entropy_without_a_task_needs_two_outputs_and_the_head_can_have_them():
    lab = own_data_lab(output_size=1)
    errors = listen(lab.error)
    assert not lab.set_design(loss="cross_entropy")
    assert errors[-1] == "model.output_size: cross_entropy needs at least 2 classes"
    assert lab.set_output_size(3)
    assert lab.experiment.model.output_size == 3
    assert lab.params["head.weight"].shape == (3, 4)
    assert lab.undo_text == "Output size 3"
    assert lab.set_design(loss="cross_entropy")
    assert not lab.set_output_size(1)
    assert errors[-1] == "model.output_size: cross_entropy needs at least 2 classes"
    assert lab.experiment.model.output_size == 3
    assert lab.undo() and lab.undo()
    assert lab.experiment.model.output_size == 1 and lab.experiment.model.loss == "mse"


@pytest.mark.parametrize(("value", "message"), [
    (0, "model.output_size: must be between 1 and 65536, got 0"),
    (70_000, "model.output_size: must be between 1 and 65536, got 70000"),
])
def test_an_output_size_outside_the_table_is_refused_with_its_words(value, message):
    lab = own_data_lab()
    errors = listen(lab.error)
    assert not lab.set_output_size(value)
    assert errors == [message] and lab.experiment.model.output_size == 1


def test_a_task_fixes_its_output_size():
    lab = adding_lab()
    errors = listen(lab.error)
    assert not lab.set_output_size(2)
    assert errors[-1].startswith("model.output_size: the adding task has 1 output")
    assert lab.set_output_size(1)  # what it already is


def test_given_arrays_must_fit_a_new_head_or_design():
    lab = own_data_lab(output_size=2)
    rng = np.random.default_rng(0)
    assert lab.set_data(rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4, 2)))
    errors = listen(lab.error)
    assert not lab.set_output_size(3)
    assert errors[-1].startswith("your arrays do not fit: target")
    assert not lab.set_design(pattern="many_to_one")  # (T, B, O) targets, not (B, O)
    assert lab.experiment.model.output_size == 2 and lab.experiment.model.pattern == "many_to_many"


@pytest.mark.parametrize("cell", ["cifg", "mingru", "minlstm"])
def test_every_new_cell_can_be_picked_and_probed_and_trained(cell):
    lab = adding_lab()
    lab.set_init(forget_bias=1.0)
    assert lab.update_layer(0, cell=cell)
    assert lab.experiment.model.layers[0].cell == cell
    shapes = {n: p.shape for n, p in lab.params.items()}
    assert ("weight_hh_l0" in shapes) == (cell == "cifg")
    assert shapes["weight_ih_l0"] == ({"cifg": 3, "mingru": 2, "minlstm": 3}[cell] * 4, 2)
    if cell != "mingru":  # the forget bias shifts the f rows (block 0)
        assert lab.params["bias_ih_l0"][:4].mean() > lab.params["bias_ih_l0"][4:8].mean()
    res = lab.probe(jacobian=True, connectivity=True)
    assert np.isfinite(res.arrays["gradnorm.l0"]).all()
    lab.train(5)
    assert len(lab.history) == 5
    assert all(np.isfinite(v).all() for v in lab.params.values())
