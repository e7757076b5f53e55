"""Comparing runs (core.compare): variants over seed ensembles, shared data and initial
weights, the band rule, the long-form table and its metadata."""

from __future__ import annotations

import csv
import io
import json
import warnings

import numpy as np
import pytest

from core.compare import (
    BAND_MINMAX,
    BAND_PERCENTILE,
    COLUMNS,
    HISTORY_KEYS,
    CompareResult,
    compare,
    shared_weights,
    variants,
)
from core.errors import ConfigError, UserError
from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig, TrainingConfig
from core.init import init_params
from core.jobs import Cancelled, Control
from core.lessons import load_lesson
from core.paths import with_path, with_paths


def small(cell: str = "lstm", layers: int = 1, H: int = 5, T: int = 12, B: int = 3,
          pattern: str = "many_to_many", seed: int = 0) -> Experiment:
    model = ModelConfig(input_size=1, output_size=1, pattern=pattern,
                        layers=[LayerConfig(cell=cell, hidden_size=H + k) for k in range(layers)])
    exp = Experiment(model=model, task=TaskConfig(name="sine", seq_len=T, batch_size=B),
                     training=TrainingConfig(lr=0.01))
    exp.init.seed = seed
    exp.backend.device = "numpy"
    return exp


def read_rows(result: CompareResult) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(result.to_csv())))


# ----------------------------------------------------------------------------- the lesson


@pytest.fixture(scope="module")
def forget_gate() -> CompareResult:
    return compare(load_lesson("forget_gate"), [("init.forget_bias", ["0", "2"])], seeds=3)


def test_the_forget_bias_keeps_the_gradient_alive(forget_gate):
    r = forget_gate
    assert [v.label for v in r.variants] == ["init.forget_bias=0", "init.forget_bias=2"]
    assert r.band == BAND_MINMAX
    ratios = {}
    for v in r.variants:
        mean, low, high = r.stats(v.label, "gradnorm.l0")
        assert mean.shape == (100,)
        assert np.all(low <= mean) and np.all(mean <= high)
        assert np.all(low < high)  # three seeds differ
        ratios[v.label] = mean[0] / mean[-1]
    assert ratios["init.forget_bias=2"] > 1e6 * ratios["init.forget_bias=0"]


def test_the_table_is_long_form(forget_gate):
    rows = read_rows(forget_gate)
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 2 * 100
    first = rows[0]
    assert (first["variant"], first["key"], first["t"]) == ("init.forget_bias=0", "gradnorm.l0", "0")
    mean, low, high = forget_gate.stats("init.forget_bias=0", "gradnorm.l0")
    assert [float(first[c]) for c in ("mean", "low", "high")] == [mean[0], low[0], high[0]]
    assert [int(r["t"]) for r in rows[:100]] == list(range(100))
    for r in rows:
        assert float(r["low"]) <= float(r["mean"]) <= float(r["high"])


def test_curves_are_one_row_per_seed(forget_gate):
    a = forget_gate.curves["init.forget_bias=2"]["gradnorm.l0"]
    assert a.shape == (3, 100) and a.dtype == np.float64
    assert forget_gate.seed_values("init.forget_bias=2") == [0, 1, 2]
    assert not np.allclose(a[0], a[1])
    assert [(r.variant, r.seed) for r in forget_gate.runs] == [
        ("init.forget_bias=0", 0), ("init.forget_bias=2", 0), ("init.forget_bias=0", 1),
        ("init.forget_bias=2", 1), ("init.forget_bias=0", 2), ("init.forget_bias=2", 2)]


def test_runs_with_the_same_seed_see_the_same_data(forget_gate):
    by = {(r.variant, r.seed): r.x for r in forget_gate.runs}
    for seed in range(3):
        assert np.array_equal(by["init.forget_bias=0", seed], by["init.forget_bias=2", seed])
    assert not np.array_equal(by["init.forget_bias=0", 0], by["init.forget_bias=0", 1])


def test_metadata_says_how_the_band_was_made(forget_gate, tmp_path):
    forget_gate.write_json(tmp_path / "compare.json")
    meta = json.loads((tmp_path / "compare.json").read_text(encoding="utf-8"))
    assert meta["band"] == "min-max"
    assert "minimum and maximum over 3 seeds" in meta["band_note"]
    assert meta["seeds"] == 3 and meta["train_steps"] == 0
    assert meta["vary"] == [{"path": "init.forget_bias", "values": ["0", "2"]}]
    v = meta["variants"][1]
    assert v["label"] == "init.forget_bias=2" and v["changes"] == {"init.forget_bias": 2.0}
    assert v["seeds"] == [0, 1, 2] and v["keys"] == ["gradnorm.l0"]
    assert "bias_ih_l0" not in meta["variants"][0]["shared_weights"]
    assert "weight_hh_l0" in meta["variants"][0]["shared_weights"]
    assert meta["base"]["init"]["forget_bias"] == 2.0


# ----------------------------------------------------------------------------- shared weights


def test_varying_the_forget_bias_changes_only_the_forget_gate_biases():
    base = load_lesson("forget_gate")
    draw = init_params(base.model, base.init)
    variant = with_path(base, "init.forget_bias", 0.0)
    params, shared = shared_weights(base, draw, variant)
    H = base.model.layers[0].hidden_size
    assert set(params) == set(draw)
    for name in draw:
        if name != "bias_ih_l0":
            assert params[name] is draw[name], name
    assert shared == [n for n in draw if n != "bias_ih_l0"]
    b, b0 = params["bias_ih_l0"], draw["bias_ih_l0"]
    assert np.array_equal(np.delete(b, np.s_[H:2 * H]), np.delete(b0, np.s_[H:2 * H]))
    assert np.allclose(b[H:2 * H], b0[H:2 * H] - 2.0)


def test_a_new_cell_shares_the_layers_above_and_the_head():
    base = small("rnn", layers=2)
    draw = init_params(base.model, base.init)
    variant = with_path(base, "model.layers.0.cell", "lstm")
    params, shared = shared_weights(base, draw, variant)
    assert sorted(shared) == sorted(["weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
                                     "head.weight", "head.bias"])
    for name in shared:
        assert params[name] is draw[name]
    own = init_params(variant.model, variant.init)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert params[name].shape == own[name].shape and np.array_equal(params[name], own[name])
    # without sharing, the head would be another draw: the layers below took other numbers
    assert not np.array_equal(own["head.weight"], draw["head.weight"])


def test_equal_shapes_of_another_cell_are_not_shared():
    base = small("rnn", H=12)  # bias_ih_l0 (12,) like an lstm's of hidden size 3
    variant = with_paths(base, [("model.layers.0.cell", "lstm"),
                                ("model.layers.0.hidden_size", 3)])[0]
    draw = init_params(base.model, base.init)
    params, shared = shared_weights(base, draw, variant)
    assert params["bias_ih_l0"].shape == draw["bias_ih_l0"].shape
    assert "bias_ih_l0" not in shared and "bias_hh_l0" not in shared


def test_a_scale_changes_its_family_only():
    base = small("gru")
    draw = init_params(base.model, base.init)
    variant = with_path(base, "init.scales.recurrent", 2.0)
    params, shared = shared_weights(base, draw, variant)
    assert "weight_hh_l0" not in shared
    assert np.allclose(params["weight_hh_l0"], 2.0 * draw["weight_hh_l0"])
    assert sorted(shared) == sorted(n for n in draw if n != "weight_hh_l0")


@pytest.mark.parametrize(("path", "value"), [("init.scheme", "orthogonal"), ("init.seed", 5)])
def test_another_scheme_or_seed_shares_nothing(path, value):
    base = small("lstm")
    draw = init_params(base.model, base.init)
    params, shared = shared_weights(base, draw, with_path(base, path, value))
    assert shared == []
    assert not any(params[n] is draw[n] for n in draw)


def test_compare_starts_each_run_from_the_shared_draw():
    base = small("rnn", layers=2)
    r = compare(base, [("model.layers.0.cell", ["rnn", "lstm"])], seeds=2)
    shared = {(run.variant, run.seed): set(run.shared) for run in r.runs}
    every = set(init_params(base.model, base.init))
    assert shared["model.layers.0.cell=rnn", 0] == every
    assert shared["model.layers.0.cell=lstm", 1] == {"weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                                                     "bias_hh_l1", "head.weight", "head.bias"}


def test_variants_that_change_no_draw_and_no_data_give_identical_curves():
    r = compare(small("gru"), [("training.lr", ["0.001", "0.01"])], seeds=2)
    a, b = (r.curves[v.label]["gradnorm.l0"] for v in r.variants)
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- grids and seeds


def test_several_paths_give_their_product():
    base = small("lstm")
    grid = variants(base, [("init.forget_bias", ["0", "1"]), ("model.layers.0.cell", ["rnn", "lstm"])])
    assert [v.label for v in grid] == [
        "init.forget_bias=0; model.layers.0.cell=rnn", "init.forget_bias=0; model.layers.0.cell=lstm",
        "init.forget_bias=1; model.layers.0.cell=rnn", "init.forget_bias=1; model.layers.0.cell=lstm"]
    assert grid[3].experiment.init.forget_bias == 1.0
    assert grid[3].experiment.model.layers[0].cell == "lstm"
    assert grid[0].changes == (("init.forget_bias", 0.0), ("model.layers.0.cell", "rnn"))


def test_a_fitted_layer_is_in_the_variants_description():
    base = small("lstm")
    base.model.layers[0].peephole = True
    grid = variants(base, [("model.layers.0.cell", ["gru", "lstm"])])
    assert grid[0].notes == ("model.layers.0: peephole off (only an lstm has peepholes)",)
    assert grid[0].description == ("model.layers.0.cell=gru (model.layers.0: peephole off "
                                   "(only an lstm has peepholes))")
    assert grid[1].notes == () and grid[1].description == "model.layers.0.cell=lstm"


def test_variants_of_different_layers_have_their_own_keys():
    r = compare(small("gru"), [("model.layers.0.bidirectional", ["false", "true"])])
    assert list(r.curves["model.layers.0.bidirectional=false"]) == ["gradnorm.l0"]
    assert list(r.curves["model.layers.0.bidirectional=true"]) == ["gradnorm.l0",
                                                                   "gradnorm.l0_reverse"]
    assert {row["key"] for row in read_rows(r)} == {"gradnorm.l0", "gradnorm.l0_reverse"}


def test_each_seed_is_the_variants_own_seed_plus_an_offset():
    r = compare(small("rnn", seed=4), [("init.seed", ["4", "10"])], seeds=2)
    assert [(run.variant, run.seed) for run in r.runs] == [
        ("init.seed=4", 4), ("init.seed=10", 10), ("init.seed=4", 5), ("init.seed=10", 11)]


@pytest.mark.parametrize(("vary", "kwargs", "message"), [
    ([("init.forgt_bias", ["0"])], {}, "init.forgt_bias: no such field"),
    ([("init.forget_bias", ["0", "abc"])], {}, "init.forget_bias: expected a number, got 'abc'"),
    ([("init.forget_bias", ["2", "2.0"])], {}, "the same variant twice"),
    ([("init.forget_bias", ["0"]), ("init.forget_bias", ["1"])], {}, "varied twice"),
    ([("init.forget_bias", [])], {}, "init.forget_bias: no values"),
    ([("init.forget_bias", ["0"])], {"seeds": 0}, "seeds: expected a whole number from 1"),
    ([("init.forget_bias", ["0"])], {"train_steps": -1}, "train_steps: expected"),
    ([("init.seed", ["2147483647"])], {"seeds": 2}, "--seeds: seed 2147483647 + 1 is out of range"),
])
def test_everything_is_checked_before_the_first_run(vary, kwargs, message):
    ran = []
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        compare(small("lstm"), vary, on_run=ran.append, **kwargs)
    assert ran == []


# ----------------------------------------------------------------------------- the band


def synthetic(seeds: int, values: np.ndarray) -> CompareResult:
    exp = small("rnn")
    grid = variants(exp, [("init.forget_bias", ["0"])])
    return CompareResult(exp, [("init.forget_bias", [0])], grid, seeds, 0,
                         {grid[0].label: {"gradnorm.l0": values}})


def test_below_ten_seeds_the_band_is_min_to_max():
    a = np.random.default_rng(0).lognormal(size=(9, 7))
    r = synthetic(9, a)
    mean, low, high = r.stats(r.variants[0].label, "gradnorm.l0")
    assert r.band == BAND_MINMAX
    assert np.array_equal(low, a.min(0)) and np.array_equal(high, a.max(0))
    assert np.allclose(mean, a.mean(0))


def test_from_ten_seeds_the_band_is_the_middle_95_percent():
    a = np.random.default_rng(0).lognormal(size=(40, 7))
    r = synthetic(40, a)
    mean, low, high = r.stats(r.variants[0].label, "gradnorm.l0")
    assert r.band == BAND_PERCENTILE
    assert np.allclose(low, np.percentile(a, 2.5, axis=0))
    assert np.allclose(high, np.percentile(a, 97.5, axis=0))
    assert np.all(low > a.min(0)) and np.all(high < a.max(0))
    assert np.all((low <= mean) & (mean <= high))
    assert "2.5th and 97.5th percentiles over 40 seeds" in r.band_text


def test_missing_values_are_left_out_of_a_point():
    a = np.array([[1.0, np.nan, np.nan], [3.0, 4.0, np.nan]])
    r = synthetic(2, a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, low, high = r.stats(r.variants[0].label, "gradnorm.l0")
        text = r.to_csv()
    assert list(mean[:2]) == [2.0, 4.0] and list(low[:2]) == [1.0, 4.0]
    assert np.isnan(mean[2]) and np.isnan(low[2]) and np.isnan(high[2])
    assert text.splitlines()[-1].endswith(",2,nan,nan,nan")


# ----------------------------------------------------------------------------- training, data


def test_trained_runs_add_the_loss_per_step():
    r = compare(small("lstm"), [("training.clip.mode", ["none", "norm"])], seeds=2, train_steps=4)
    for v in r.variants:
        assert list(r.curves[v.label]) == ["gradnorm.l0", *HISTORY_KEYS]
        assert r.curves[v.label]["loss"].shape == (2, 4)
    assert all(run.steps == 4 for run in r.runs)
    loss = [row for row in read_rows(r) if row["key"] == "loss"]
    assert [int(row["t"]) for row in loss] == [1, 2, 3, 4] * 2
    # same seed, same data and weights: the first step's loss is the same either way
    a, b = (r.curves[v.label]["loss"][:, 0] for v in r.variants)
    assert np.array_equal(a, b)
    assert json.loads(json.dumps(r.metadata()))["probe"] == "the weights after 4 training steps"


def test_given_arrays_are_every_runs_data():
    exp = small("gru")
    exp.task = None
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 2, 1)), rng.normal(size=(6, 2, 1))
    r = compare(exp, [("init.scales.recurrent", ["0.5", "2"])], seeds=2, data=(x, y))
    assert all(np.array_equal(run.x, x) for run in r.runs)
    assert r.curves["init.scales.recurrent=2"]["gradnorm.l0"].shape == (2, 6)
    with pytest.raises(UserError, match="no task section"):
        compare(exp, [("init.scales.recurrent", ["0.5"])])


# ----------------------------------------------------------------------------- control


def test_progress_rises_to_the_end_and_cancel_stops_it():
    seen: list[float] = []
    compare(small("lstm"), [("init.forget_bias", ["0", "1"])], seeds=2,
            control=Control(lambda f, _text: seen.append(f)))
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0)
    assert np.all(np.diff(seen) >= -1e-12)

    runs: list = []
    control = Control()

    def stop_after_first(run):
        runs.append(run)
        control.cancel()

    with pytest.raises(Cancelled):
        compare(small("lstm"), [("init.forget_bias", ["0", "1"])], seeds=2, control=control,
                on_run=stop_after_first)
    assert len(runs) == 1
