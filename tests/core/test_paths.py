"""Dotted experiment paths (core.paths): reading, changing with the field's type,
errors that name the path, ``PATH=V1,V2`` and fitting a layer to a new cell."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.experiment import (
    Experiment,
    LayerConfig,
    ModelConfig,
    Scales,
    TaskConfig,
    experiment_to_dict,
)
from core.lessons import load_lesson
from core.paths import (
    fit_layer,
    format_value,
    get_path,
    parse_value,
    parse_vary,
    with_path,
    with_paths,
)


def two_layers() -> Experiment:
    model = ModelConfig(input_size=1, output_size=1, layers=[
        LayerConfig(cell="lstm", hidden_size=4, peephole=True),
        LayerConfig(cell="rnn", hidden_size=3, activation="relu")])
    return Experiment(model=model, task=TaskConfig(name="sine", seq_len=10, batch_size=2))


# ----------------------------------------------------------------------------- reading


def test_get_path_reads_fields_sections_and_list_items():
    exp = two_layers()
    assert get_path(exp, "model.layers.0.cell") == "lstm"
    assert get_path(exp, "model.layers.1.activation") == "relu"
    assert get_path(exp, "init.scales.recurrent") == 1.0
    assert get_path(exp, "training.clip.mode") == "norm"
    assert get_path(exp, "training.tbptt") is None
    assert get_path(exp, "task.seq_len") == 10
    assert isinstance(get_path(exp, "init.scales"), Scales)
    assert get_path(exp, "model.layers.1") is exp.model.layers[1]


def test_a_task_field_left_out_reads_as_its_default():
    exp = load_lesson("forget_gate")  # the adding task; "placement" is not in the file
    assert "placement" not in exp.task.options
    assert get_path(exp, "task.placement") is not None


# ----------------------------------------------------------------------------- changing


def test_with_path_changes_one_field_and_leaves_the_original_alone():
    exp = load_lesson("forget_gate")
    before = experiment_to_dict(exp)
    new = with_path(exp, "init.forget_bias", "0")
    assert new.init.forget_bias == 0.0 and isinstance(new.init.forget_bias, float)
    assert experiment_to_dict(exp) == before
    assert with_path(exp, "init.forget_bias", 0.5).init.forget_bias == 0.5  # a Python value
    rest = experiment_to_dict(new)
    rest["init"]["forget_bias"] = exp.init.forget_bias
    assert rest == before  # nothing else changed


@pytest.mark.parametrize(("path", "text", "expected"), [
    ("init.forget_bias", "2", 2.0),
    ("init.forget_bias", "-1.5e-1", -0.15),
    ("init.seed", "7", 7),
    ("init.seed", "1e1", 10),  # an integral number for an integer field
    ("init.scales.recurrent", "1.25", 1.25),
    ("model.layers.0.bidirectional", "true", True),
    ("model.layers.0.bidirectional", "False", False),
    ("training.tbptt", "null", None),
    ("training.tbptt", "None", None),
    ("training.tbptt", "5", 5),
    ("training.clip.mode", "value", "value"),
    ("model.layers.0.cell", "gru", "gru"),
    ("title", "2", "2"),  # a text field keeps the text
    ("task.seq_len", "30", 30),
])
def test_text_is_parsed_to_the_fields_type(path, text, expected):
    new = with_path(two_layers(), path, text)
    value = get_path(new, path)
    assert value == expected
    assert type(value) is type(expected)


def test_a_task_field_follows_the_type_of_its_default():
    exp = load_lesson("forget_gate")
    default = get_path(exp, "task.placement")
    assert parse_value(exp, "task.placement", str(default)) == default
    assert parse_value(exp, "task.seq_len", "50") == 50


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("path", "value", "message"), [
    ("init.forgt_bias", "1",
     "init.forgt_bias: no such field (expected one of forget_bias, scales, scheme, seed)"),
    ("model.layers.2.cell", "gru", "model.layers.2: no such index (model.layers has 2: 0…1)"),
    ("model.layers.first.cell", "gru", "model.layers.first: model.layers is a list"),
    ("init.seed.x", "1", "init.seed.x: no such field (init.seed is a whole number, not a section)"),
    ("model.layers", "1", "model.layers: a list, not a field; vary a field of one entry, "
                          "e.g. model.layers.0.cell"),
    ("init", "1", "init: a section, not a field; vary one of its fields "
                  "(forget_bias, scales, scheme, seed)"),
    ("task.nosie", "1", "task.nosie: no such field (expected one of "),
    ("init..seed", "1", "init..seed: empty part in the path"),
    ("format", "1", "format: no such field"),
    ("init.forget_bias", "abc", "init.forget_bias: expected a number, got 'abc'"),
    ("init.forget_bias", "50", "init.forget_bias: must be between -20 and 20, got 50"),
    ("init.seed", "2.5", "init.seed: expected an integer, got 2.5"),
    ("model.layers.0.cell", "gruu", "model.layers.0.cell: 'gruu' is not one of rnn, lstm, gru"),
    ("model.layers.0.bidirectional", "yes", "model.layers.0.bidirectional: expected true or false"),
    ("training.clip.mode", "sometimes", "training.clip.mode: 'sometimes' is not one of"),
])
def test_errors_name_the_path(path, value, message):
    with pytest.raises(ConfigError) as info:
        with_path(two_layers(), path, value)
    assert str(info.value).startswith(message), str(info.value)


def test_an_experiment_without_a_task_has_no_task_fields():
    exp = two_layers()
    exp.task = None
    with pytest.raises(ConfigError, match=r"^task\.seq_len: this experiment has no task section"):
        with_path(exp, "task.seq_len", "5")


def test_a_change_that_breaks_another_field_names_the_assignment():
    exp = load_lesson("forget_gate")  # the adding task: two input channels
    with pytest.raises(ConfigError) as info:
        with_path(exp, "model.input_size", "3")
    assert str(info.value).startswith("model.input_size: the adding task has 2 input channels")
    with pytest.raises(ConfigError) as info:
        with_paths(two_layers(), [("model.layers.0.cell", "gru"),
                                  ("model.layers.0.peephole", "true")])
    assert str(info.value).startswith(
        "model.layers.0.cell=gru, model.layers.0.peephole=true: model.layers[0].peephole:")


# ----------------------------------------------------------------------------- fitting a layer


def test_a_new_cell_turns_off_what_it_cannot_have_and_says_so():
    exp = two_layers()
    gru, notes = with_paths(exp, [("model.layers.0.cell", "gru")])
    assert gru.model.layers[0].cell == "gru" and gru.model.layers[0].peephole is False
    assert notes == ["model.layers.0: peephole off (only an lstm has peepholes)"]
    lstm, notes = with_paths(exp, [("model.layers.1.cell", "lstm")])
    assert lstm.model.layers[1].activation == "tanh"
    assert notes == ["model.layers.1: activation tanh, not relu (only an rnn takes an "
                     "activation; lstm gates are fixed)"]
    same, notes = with_paths(exp, [("model.layers.0.cell", "lstm")])
    assert same.model.layers[0].peephole is True and notes == []  # an lstm keeps its peepholes
    rnn, notes = with_paths(exp, [("model.layers.1.cell", "rnn")])
    assert rnn.model.layers[1].activation == "relu" and notes == []


def test_fit_layer_leaves_fields_set_on_purpose():
    layer = {"cell": "gru", "peephole": True, "activation": "relu"}
    assert fit_layer(dict(layer), keep=("peephole", "activation")) == []
    fitted = dict(layer)
    notes = fit_layer(fitted)
    assert fitted == {"cell": "gru", "peephole": False, "activation": "tanh"}
    assert len(notes) == 2
    fine = {"cell": "lstm", "peephole": True, "activation": "tanh"}
    assert fit_layer(fine) == [] and fine["peephole"] is True


def test_a_grid_over_the_cell_of_a_peephole_lesson_validates():
    exp = load_lesson("peephole")
    for cell in ("rnn", "lstm", "gru"):
        new, notes = with_paths(exp, [("model.layers.0.cell", cell)])
        assert new.model.layers[0].cell == cell
        assert new.model.layers[0].peephole is (cell == "lstm")
        assert bool(notes) is (cell != "lstm")


# ----------------------------------------------------------------------------- PATH=V1,V2


def test_parse_vary():
    assert parse_vary("init.forget_bias=0,2") == ("init.forget_bias", ["0", "2"])
    assert parse_vary(" model.layers.0.cell = rnn, lstm ,gru") == (
        "model.layers.0.cell", ["rnn", "lstm", "gru"])
    assert parse_vary("training.tbptt=null") == ("training.tbptt", ["null"])


@pytest.mark.parametrize(("text", "message"), [
    ("init.forget_bias", "expected PATH=V1,V2"),
    ("=0,2", "expected PATH=V1,V2"),
    ("init.forget_bias=", "init.forget_bias: expected values after '='"),
    ("init.forget_bias=0,,2", "init.forget_bias: expected values after '='"),
    ("init.forget_bias=1,2,1", "init.forget_bias: the value 1 is given twice"),
    ("init..x=1", "init..x: empty part"),
])
def test_parse_vary_errors(text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_vary(text)


def test_format_value():
    assert [format_value(v) for v in (2.0, 0.5, 1e-5, 3, True, None, "lstm")] == [
        "2", "0.5", "1e-05", "3", "true", "null", "lstm"]
