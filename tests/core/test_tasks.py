"""The task registry, the generated tasks, the bundled series and CSV import."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, DataError
from core.experiment import experiment_from_dict, experiment_to_dict
from core.tasks import (
    DATASET_NAMES,
    TASK_NAMES,
    describe_task,
    mackey_glass,
    make_batch,
    persistence_baseline,
    task_options,
    task_shapes,
    validate_task,
)
from core.tasks import series as series_mod
from core.tasks.mackey_glass import integrate

COMMON = ("name", "seq_len", "batch_size")


def experiment(task: dict, pattern: str | None = None, **model):
    """A validated experiment for ``task`` whose model fits it (unless overridden)."""
    opts = {k: v for k, v in task.items() if k not in COMMON}
    shapes = task_shapes(task["name"], opts)
    body = {"input_size": shapes["input_size"], "output_size": shapes["output_size"],
            "loss": shapes["loss"], "pattern": pattern or shapes["default_pattern"],
            "layers": [{"cell": "gru", "hidden_size": 4}]}
    body.update(model)
    return experiment_from_dict({"format": "gradlab-experiment", "version": 1,
                                 "model": body, "task": task})


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def ramp_csv(tmp_path: Path, n: int = 200, name: str = "ramp.csv") -> tuple[str, np.ndarray]:
    """A strictly increasing series, so every value tells where it sits in time."""
    raw = np.arange(n) * 0.5 + np.sin(np.arange(n)) * 0.1 + 3.0
    lines = ["step,value"] + [f"{i},{float(v)!r}" for i, v in enumerate(raw)]
    return write(tmp_path, "\n".join(lines) + "\n", name), raw


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- registry

def test_task_names_and_descriptions():
    assert TASK_NAMES == ("sine", "adding", "copy", "mackey_glass", "parity", "dataset", "csv")
    for name in TASK_NAMES:
        text = describe_task(name)
        assert isinstance(text, str) and 20 < len(text) < 400
    with pytest.raises(ConfigError, match=r"task\.name: unknown task 'nope'"):
        describe_task("nope")


def test_task_shapes():
    assert task_shapes("adding") == {"input_size": 2, "output_size": 1, "loss": "mse",
                                     "patterns": ("many_to_one",),
                                     "default_pattern": "many_to_one", "max_seq_len": None}
    copy = task_shapes("copy", {"alphabet_size": 5})
    assert (copy["input_size"], copy["output_size"], copy["loss"]) == (7, 6, "cross_entropy")
    assert task_shapes("parity")["output_size"] == 2
    assert task_shapes("sine", {"horizon": 3})["output_size"] == 3
    assert task_shapes("csv")["max_seq_len"] is None
    assert task_shapes("mackey_glass")["max_seq_len"] == 999
    expected = {"sunspots": 61, "nile": 19, "co2": 104, "elnino": 145}
    for name, longest in expected.items():
        assert task_shapes("dataset", {"series": name})["max_seq_len"] == longest
    for name in TASK_NAMES:
        shapes = task_shapes(name)
        assert shapes["default_pattern"] in shapes["patterns"]


CASES = [
    ({"name": "sine", "seq_len": 12}, "many_to_many"),
    ({"name": "sine", "seq_len": 12, "horizon": 3}, "output_recurrence"),
    ({"name": "sine", "seq_len": 12, "horizon": 2}, "many_to_one"),
    ({"name": "adding", "seq_len": 12}, "many_to_one"),
    ({"name": "copy", "seq_len": 12, "pattern_length": 3, "alphabet_size": 4}, "many_to_many"),
    ({"name": "mackey_glass", "seq_len": 12, "length": 400}, "many_to_many"),
    ({"name": "mackey_glass", "seq_len": 12, "length": 400}, "many_to_one"),
    ({"name": "parity", "seq_len": 12}, "many_to_one"),
    ({"name": "parity", "seq_len": 12}, "many_to_many"),
    ({"name": "dataset", "seq_len": 12, "series": "nile"}, "many_to_many"),
    ({"name": "dataset", "seq_len": 12, "series": "co2", "horizon": 2}, "many_to_one"),
    ({"name": "dataset", "seq_len": 12, "series": "elnino"}, "output_recurrence"),
]


@pytest.mark.parametrize(("task", "pattern"), CASES,
                         ids=[f"{t['name']}-{p}" for t, p in CASES])
def test_shapes_and_dtypes(task, pattern):
    exp = experiment({**task, "batch_size": 5}, pattern)
    O = exp.model.output_size
    for split in ("train", "val"):
        x, y = make_batch(exp, rng(), split)
        assert x.shape == (12, 5, exp.model.input_size) and x.dtype == np.float64
        classes = exp.model.loss == "cross_entropy"
        if pattern == "many_to_one":
            assert y.shape == ((5,) if classes else (5, O))
        else:
            assert y.shape == ((12, 5) if classes else (12, 5, O))
        assert y.dtype == (np.int64 if classes else np.float64)
        if classes:
            assert y.min() >= 0 and y.max() < O
        assert np.isfinite(x).all() and np.isfinite(y).all()


def test_batch_and_length_overrides():
    exp = experiment({"name": "sine", "seq_len": 30, "batch_size": 4})
    x, y = make_batch(exp, rng(), batch_size=7, seq_len=9)
    assert x.shape == (9, 7, 1) and y.shape == (9, 7, 1)
    with pytest.raises(ValueError, match="split"):
        make_batch(exp, rng(), split="test")
    probe = make_batch(exp, rng(2), "probe")
    np.testing.assert_array_equal(probe[0], make_batch(exp, rng(2), "train")[0])
    with pytest.raises(ConfigError, match=r"model\.pattern: the sine task supports"):
        exp.model.pattern = "sideways"
        make_batch(exp, rng())
    copy = experiment({"name": "copy", "seq_len": 30, "pattern_length": 5})
    with pytest.raises(ConfigError, match=r"task\.seq_len:.*at least 11"):
        make_batch(copy, rng(), seq_len=10)


@pytest.mark.parametrize(("task", "pattern"), CASES,
                         ids=[f"{t['name']}-{p}" for t, p in CASES])
def test_determinism_under_a_seed(task, pattern):
    exp = experiment({**task, "batch_size": 6}, pattern)
    a = make_batch(exp, rng(3))
    b = make_batch(exp, rng(3))
    c = make_batch(exp, rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_experiment_round_trip_keeps_options_flat():
    exp = experiment({"name": "copy", "seq_len": 40, "pattern_length": 4, "delay": 20})
    task = experiment_to_dict(exp)["task"]
    assert task["pattern_length"] == 4 and task["delay"] == 20
    assert experiment_from_dict(experiment_to_dict(exp)).task == exp.task


# ----------------------------------------------------------------------------- validation

def _fails(task: dict, match: str, error: type = ConfigError, **model) -> None:
    with pytest.raises(error, match=match):
        experiment(task, **model)


def test_validation_names_the_field():
    _fails({"name": "bogus"}, r"^task\.name: unknown task 'bogus' \(expected one of sine, ")
    _fails({"name": "sine", "colour": 1},
           r"^task\.colour: unknown field \(expected one of .*frequencies.*noise")
    _fails({"name": "sine", "noise": "lots"}, r"^task\.noise: expected a number, got 'lots'")
    _fails({"name": "sine", "noise": -1}, r"^task\.noise: must be at least 0")
    _fails({"name": "sine", "frequencies": [0.1, 0.9]}, r"^task\.frequencies\[1\]: must be at most")
    _fails({"name": "sine", "frequencies": {"min": 0.2, "max": 0.1}}, r"^task\.frequencies: min")
    _fails({"name": "sine", "frequencies": "fast"}, r"^task\.frequencies: expected a list")
    _fails({"name": "sine", "horizon": 1.5}, r"^task\.horizon: expected an integer")
    _fails({"name": "adding", "placement": "middle"}, r"^task\.placement: 'middle' is not one of")
    _fails({"name": "adding", "seq_len": 1}, r"^task\.seq_len: the adding task needs at least 2")
    _fails({"name": "copy", "alphabet_size": True}, r"^task\.alphabet_size: expected an integer")
    _fails({"name": "copy", "seq_len": 30, "pattern_length": 10, "delay": 15},
           r"^task\.seq_len: .*needs at least 35 steps, got 30")
    _fails({"name": "parity", "signed": "yes"}, r"^task\.signed: expected true or false")
    _fails({"name": "mackey_glass", "tau": 0}, r"^task\.tau: must be at least 1")
    _fails({"name": "mackey_glass", "seq_len": 2000}, r"^task\.length: .*too short")
    _fails({"name": "dataset", "series": "moon"}, r"^task\.series: 'moon' is not one of sunspots")
    _fails({"name": "dataset", "series": "nile", "seq_len": 50},
           r"^task\.seq_len: the nile series has too few values: 100 found, at least \d+ needed"
           r".*use seq_len 19 or less")
    _fails({"name": "csv"}, r"^task\.path: the csv task needs")
    _fails({"name": "csv", "path": 3}, r"^task\.path: expected the path")
    _fails({"name": "csv", "path": "x.csv", "column": -1}, r"^task\.column: expected a column")
    _fails({"name": "csv", "path": "x.csv", "has_header": "maybe"}, r"^task\.has_header: ")


def test_validation_checks_the_model_fits_the_task():
    _fails({"name": "adding"}, r"^model\.input_size: the adding task has 2 input channels.*got 1",
           input_size=1)
    _fails({"name": "adding"}, r"^model\.pattern: the adding task supports many_to_one, "
           r"got many_to_many", pattern="many_to_many")
    _fails({"name": "copy"}, r"^model\.output_size: the copy task has 9 output classes.*got 4",
           output_size=4)
    _fails({"name": "copy"}, r"^model\.loss: the copy task is a classification task",
           loss="mse", output_size=1)
    _fails({"name": "sine"}, r"^model\.loss: the sine task is a regression task",
           loss="cross_entropy", output_size=2)
    _fails({"name": "sine", "horizon": 2}, r"^model\.output_size: the sine task has 2 outputs",
           output_size=1)
    _fails({"name": "parity"}, r"^model\.pattern: the parity task supports",
           pattern="output_recurrence")


def test_validate_task_directly():
    exp = experiment({"name": "sine", "seq_len": 10})
    exp.task.options["noise"] = [1]
    with pytest.raises(ConfigError, match=r"task\.noise"):
        validate_task(exp)
    assert task_options("sine")["horizon"] == 1


# ----------------------------------------------------------------------------- generated tasks

def test_sine_targets_are_the_next_values():
    exp = experiment({"name": "sine", "seq_len": 25, "batch_size": 6,
                      "frequencies": [0.05, 0.1]})
    x, y = make_batch(exp, rng())
    np.testing.assert_allclose(x[1:, :, 0], y[:-1, :, 0], atol=1e-12)
    assert persistence_baseline(exp, x, y) == pytest.approx(float(np.mean((y - x) ** 2)))
    three = experiment({"name": "sine", "seq_len": 25, "batch_size": 6, "horizon": 3})
    x, y = make_batch(three, rng())
    for k in range(3):
        np.testing.assert_allclose(y[:25 - 1 - k, :, k], x[1 + k:, :, 0], atol=1e-12)
    # A single frequency: the period is exactly 1/f.
    fixed = experiment({"name": "sine", "seq_len": 40, "batch_size": 3, "frequencies": [0.1]})
    x, _ = make_batch(fixed, rng())
    np.testing.assert_allclose(x[10:], x[:-10], atol=1e-12)


def test_sine_many_to_one_and_noise():
    exp = experiment({"name": "sine", "seq_len": 20, "batch_size": 4, "horizon": 2},
                     "many_to_one")
    x, y = make_batch(exp, rng())
    long = experiment({"name": "sine", "seq_len": 22, "batch_size": 4})
    x2, _ = make_batch(long, rng())
    np.testing.assert_allclose(x2[:20], x)
    np.testing.assert_allclose(y, x2[20:22, :, 0].T, atol=1e-12)
    noisy = experiment({"name": "sine", "seq_len": 200, "batch_size": 4, "noise": 0.5})
    x, y = make_batch(noisy, rng())
    assert 0.3 < np.std(x[1:, :, 0] - y[:-1, :, 0]) < 0.7


def test_adding_markers_and_target():
    exp = experiment({"name": "adding", "seq_len": 50, "batch_size": 200})
    x, y = make_batch(exp, rng())
    values, markers = x[:, :, 0], x[:, :, 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(markers)) <= {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=0), 2.0)
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(axis=0))
    first_half = markers[:25].sum(axis=0)
    np.testing.assert_array_equal(first_half, 1.0)  # "halves": one marker in each half
    assert persistence_baseline(exp, x, y) is None


def test_adding_anywhere():
    exp = experiment({"name": "adding", "seq_len": 5, "batch_size": 500,
                      "placement": "anywhere"})
    x, y = make_batch(exp, rng())
    markers = x[:, :, 1]
    np.testing.assert_array_equal(markers.sum(axis=0), 2.0)
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(axis=0))
    assert markers[:2].sum(axis=0).max() == 2.0  # both markers may fall in the first half
    assert (markers.sum(axis=1) > 0).all()  # every step can hold a marker


@pytest.mark.parametrize(("seq_len", "delay"), [(30, None), (40, 12), (26, 6)])
def test_copy_layout(seq_len, delay):
    K, L = 5, 4
    task = {"name": "copy", "seq_len": seq_len, "batch_size": 16, "alphabet_size": K,
            "pattern_length": L}
    if delay is not None:
        task["delay"] = delay
    d = seq_len - 2 * L if delay is None else delay
    x, y = make_batch(experiment(task), rng())
    blank, delim = K, K + 1
    np.testing.assert_array_equal(x.sum(axis=2), 1.0)  # one-hot
    ids = x.argmax(axis=2)
    pattern = ids[:L]
    assert (pattern < K).all()
    np.testing.assert_array_equal(ids[L:L + d - 1], blank)
    np.testing.assert_array_equal(ids[L + d - 1], delim)
    np.testing.assert_array_equal(ids[L + d:], blank)
    np.testing.assert_array_equal(y[L + d:2 * L + d], pattern)  # the recall after the delay
    np.testing.assert_array_equal(y[:L + d], blank)
    np.testing.assert_array_equal(y[2 * L + d:], blank)


def test_parity_final_and_running():
    exp = experiment({"name": "parity", "seq_len": 30, "batch_size": 64})
    x, y = make_batch(exp, rng())
    bits = x[:, :, 0].astype(int)
    assert set(np.unique(bits)) == {0, 1}
    np.testing.assert_array_equal(y, bits.sum(axis=0) % 2)
    run = experiment({"name": "parity", "seq_len": 30, "batch_size": 64}, "many_to_many")
    x, y = make_batch(run, rng())
    bits = x[:, :, 0].astype(int)
    for t in (0, 7, 29):
        np.testing.assert_array_equal(y[t], bits[:t + 1].sum(axis=0) % 2)
    signed = experiment({"name": "parity", "seq_len": 30, "batch_size": 64, "signed": True})
    x, y = make_batch(signed, rng())
    assert set(np.unique(x)) == {-1.0, 1.0}
    np.testing.assert_array_equal(y, (x[:, :, 0] > 0).sum(axis=0) % 2)


def test_mackey_glass_series():
    raw = integrate(17.0, 1.0, 600)
    assert raw.shape == (600,) and np.isfinite(raw).all()
    assert 0.2 < raw.min() < raw.max() < 1.5  # the familiar range of the tau = 17 attractor
    other = integrate(30.0, 1.0, 600)
    assert not np.allclose(raw, other)
    exp = experiment({"name": "mackey_glass", "seq_len": 20, "batch_size": 8, "tau": 30,
                      "length": 600})
    x, y = make_batch(exp, rng())
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x[1:, :, 0], y[:-1, :, 0])
    series = mackey_glass.load(task_options("mackey_glass", {"tau": 30, "length": 600}))
    assert series.n_train == 480
    train = series.values[:series.n_train]
    assert abs(train.mean()) < 1e-9 and abs(train.std() - 1) < 1e-9
    np.testing.assert_allclose(series.raw, other)


# ----------------------------------------------------------------------------- bundled series

@pytest.mark.parametrize("name", DATASET_NAMES)
def test_bundled_series_load(name):
    series = series_mod.load_dataset({"series": name, "val_fraction": 0.2})
    n = {"sunspots": 309, "nile": 100, "co2": 526, "elnino": 732}[name]
    assert series.raw.shape == (n,) and np.isfinite(series.raw).all()
    readme = (series_mod.DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert series_mod.DATASETS[name].file in readme


def test_dataset_windows_are_the_series():
    exp = experiment({"name": "dataset", "series": "sunspots", "seq_len": 30, "batch_size": 8})
    x, y = make_batch(exp, rng())
    series = series_mod.load_dataset({"series": "sunspots", "val_fraction": 0.2})
    raw = series.raw
    for b in range(8):
        values = x[:, b, 0] * series.std + series.mean
        starts = [s for s in range(len(raw) - 30) if np.allclose(raw[s:s + 30], values)]
        assert starts and starts[0] + 31 <= series.n_train
    np.testing.assert_allclose(x[1:, :, 0], y[:-1, :, 0])


# ----------------------------------------------------------------------------- CSV windows

def test_csv_windows_line_up(tmp_path):
    path, raw = ramp_csv(tmp_path)
    exp = experiment({"name": "csv", "path": path, "column": "value", "seq_len": 15,
                      "batch_size": 10, "horizon": 2})
    x, y = make_batch(exp, rng())
    np.testing.assert_array_equal(x[1:, :, 0], y[:-1, :, 0])  # x[t+1] == y[t]
    np.testing.assert_array_equal(x[2:, :, 0], y[:-2, :, 1])
    train = raw[:160]
    mean, std = train.mean(), train.std()
    for b in range(10):
        s = int(np.argmin(np.abs(raw - (x[0, b, 0] * std + mean))))
        np.testing.assert_allclose(x[:, b, 0] * std + mean, raw[s:s + 15])
        np.testing.assert_allclose(y[:, b, 1] * std + mean, raw[s + 2:s + 17])
    one = experiment({"name": "csv", "path": path, "seq_len": 15, "batch_size": 10},
                     "many_to_one")
    x, y = make_batch(one, rng())
    z = (raw - mean) / std
    for b in range(10):
        s = int(np.argmin(np.abs(z - x[0, b, 0])))
        assert y[b, 0] == pytest.approx(z[s + 15])
    assert persistence_baseline(one, x, y) == pytest.approx(float(np.mean((y - x[-1]) ** 2)))


def test_normalisation_uses_the_train_part_only(tmp_path):
    raw = np.concatenate([np.linspace(0.0, 1.0, 80), np.full(20, 1000.0)])
    path = write(tmp_path, "value\n" + "\n".join(f"{float(v)!r}" for v in raw) + "\n")
    exp = experiment({"name": "csv", "path": path, "seq_len": 5, "batch_size": 50})
    x, _ = make_batch(exp, rng())
    z = (raw - raw[:80].mean()) / raw[:80].std()
    assert np.isin(np.round(x, 9), np.round(z, 9)).all()
    series = series_mod.load_csv(task_options("csv", {"path": path}))
    assert series.mean == pytest.approx(raw[:80].mean()) and series.std == pytest.approx(
        raw[:80].std())
    assert abs(series.values[:80].mean()) < 1e-9
    xv, _ = make_batch(exp, rng(), "val")
    assert (xv > 100).all()  # validation values keep their real (huge) offset


def test_val_split_is_later_in_time(tmp_path):
    path, _ = ramp_csv(tmp_path, n=300)
    exp = experiment({"name": "csv", "path": path, "seq_len": 20, "batch_size": 64,
                      "val_fraction": 0.25, "horizon": 3})
    series = series_mod.load_csv(task_options("csv", {"path": path, "val_fraction": 0.25}))
    assert series.n_train == 225
    xt, yt = make_batch(exp, rng(), "train")
    xv, yv = make_batch(exp, rng(), "val")
    boundary = series.values[225]
    assert max(xt.max(), yt.max()) < boundary <= min(xv.min(), yv.min())


def test_csv_variants(tmp_path):
    semi = write(tmp_path, "# a comment\nwhen;Level\n\n1;1,5\n2;2,5\n3;4,0\n4;3,5\n5;5,5\n",
                 "semi.csv")
    values, label = series_mod.read_csv_column(semi, "level")
    np.testing.assert_array_equal(values, [1.5, 2.5, 4.0, 3.5, 5.5])
    assert label == "column 'Level'"
    bare = write(tmp_path, "1,10\n2,20\n3,30\n", "bare.csv")
    np.testing.assert_array_equal(series_mod.read_csv_column(bare)[0], [10, 20, 30])
    np.testing.assert_array_equal(series_mod.read_csv_column(bare, 0)[0], [1, 2, 3])
    headed = write(tmp_path, "a,b\n1,10\n2,20\n", "headed.csv")
    np.testing.assert_array_equal(series_mod.read_csv_column(headed, 1)[0], [10, 20])
    tabs = write(tmp_path, "x\ty\n1\t2\n3\t4\n", "tabs.csv")
    np.testing.assert_array_equal(series_mod.read_csv_column(tabs, "y")[0], [2, 4])


# ----------------------------------------------------------------------------- bad CSV files

BAD = {
    "text": ("year,value\n" + "".join(f"{1900 + i},{i}\n" for i in range(15)) + "1915,abc\n",
             "value", r"bad\.csv line 17, column 'value': 'abc' is not a number"),
    "nan": ("year,value\n1,1\n2,nan\n3,4\n", "value", r"bad\.csv line 3, column 'value': missing"),
    "empty cell": ("year,value\n1,1\n2,\n3,4\n", "value",
                   r"bad\.csv line 3, column 'value': empty"),
    "short row": ("year,value\n1,1\n2\n3,4\n", "value", r"bad\.csv line 3: only 1 cell,"),
    "infinite": ("v\n1\ninf\n", "v", r"bad\.csv line 3, column 'v': inf is not finite"),
    "no column": ("year,value\n1,2\n", "flow",
                  r"bad\.csv line 1: no column 'flow' \(columns: 'year', 'value'\)"),
    "no index": ("1,2\n3,4\n", 5, r"bad\.csv line 1: there is no column 5; the first row has 2"),
    "empty": ("", None, r"bad\.csv: the file is empty"),
    "blank": ("\n\n  \n", None, r"bad\.csv: holds no data"),
    "header only": ("year,value\n", None, r"bad\.csv: has a header row but no data rows"),
    "binary": ("\x00\x01\x02abc", None, r"bad\.csv: this looks like a binary file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_csv_raises_data_error(tmp_path, case):
    text, column, message = BAD[case]
    path = write(tmp_path, text, "bad.csv")
    task = {"name": "csv", "path": path, "seq_len": 1, "batch_size": 2}
    if column is not None:
        task["column"] = column
    with pytest.raises(DataError, match=message):
        experiment(task)


def test_csv_with_too_few_rows(tmp_path):
    path = write(tmp_path, "value\n" + "\n".join(str(i) for i in range(30)) + "\n", "short.csv")
    with pytest.raises(DataError, match=r"short\.csv, column 'value': too few values: 30 found, "
                                        r"at least 253 needed .*seq_len 50 \+ horizon 1"):
        experiment({"name": "csv", "path": path, "seq_len": 50})
    assert series_mod.min_length(50, 1, 0.2) == 253  # 51 validation values: 20 % of 253
    assert series_mod.max_seq_len_for(253, 1, 0.2) == 50
    assert series_mod.max_seq_len_for(252, 1, 0.2) == 49
    for T, h, f in [(1, 1, 0.05), (7, 3, 0.5), (100, 2, 0.33), (999, 1, 0.2)]:
        n = series_mod.min_length(T, h, f)
        assert series_mod.max_seq_len_for(n, h, f) >= T > series_mod.max_seq_len_for(n - 1, h, f)


def test_csv_constant_training_part(tmp_path):
    path = write(tmp_path, "v\n" + "1\n" * 40 + "2\n" * 10, "flat.csv")
    with pytest.raises(DataError, match=r"flat\.csv, column 'v': the training part is constant"):
        experiment({"name": "csv", "path": path, "seq_len": 3})


def test_csv_missing_folder_and_too_large(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"missing\.csv: no such file"):
        experiment({"name": "csv", "path": str(tmp_path / "missing.csv")})
    with pytest.raises(DataError, match="is a folder"):
        experiment({"name": "csv", "path": str(tmp_path)})
    path, _ = ramp_csv(tmp_path, name="big.csv")
    monkeypatch.setattr(series_mod, "MAX_CSV_BYTES", 1000)
    with pytest.raises(DataError, match=r"big\.csv: the file is \d+ MB; a CSV series may be "
                                        r"at most"):
        series_mod.read_csv_column(path)


def test_column_name_needs_a_header(tmp_path):
    path = write(tmp_path, "1\n2\n3\n")
    with pytest.raises(ConfigError, match=r"^task\.column: a column name"):
        series_mod.read_csv_column(path, "value", has_header=False)


def test_csv_edit_is_picked_up(tmp_path):
    path, _ = ramp_csv(tmp_path, n=100)
    experiment({"name": "csv", "path": path, "seq_len": 10})
    Path(path).write_text("value\n1\n2\nzzz\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 4, column 'value': 'zzz'"):
        experiment({"name": "csv", "path": path, "seq_len": 10})
