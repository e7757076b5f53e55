"""Saved-experiment archives: round trips, atomic saves, and every malformed archive."""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as safetensors_bytes

from core import archive
from core.archive import load_archive, save_archive
from core.errors import ConfigError, DataError, MemoryLimitError, UserError, WeightsError
from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig, experiment_to_dict
from core.init import init_params
from core.training.history import History
from core.training.optim import make_optimizer


def _experiment() -> Experiment:
    exp = Experiment(title="Remembering", description="A copy task with two layers")
    exp.model = ModelConfig(input_size=10, output_size=9, loss="cross_entropy",
                            layers=[LayerConfig(cell="lstm", hidden_size=5, bidirectional=True,
                                                peephole=True),
                                    LayerConfig(cell="gru", hidden_size=3)])
    exp.task = TaskConfig(name="copy", seq_len=20, batch_size=4,
                          options={"pattern_length": 3, "delay": 5})
    exp.init.seed, exp.init.scales.recurrent = 7, 1.5
    exp.training.clip.mode, exp.training.tbptt = "value", 4
    return exp


def _params(exp: Experiment) -> dict[str, np.ndarray]:
    return init_params(exp.model, exp.init)


def _optimizer_state(exp: Experiment, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    opt = make_optimizer(exp.training, {k: v.copy() for k, v in params.items()})
    rng = np.random.default_rng(0)
    for _ in range(3):
        opt.step({k: rng.normal(size=v.shape) for k, v in params.items()}, 0.01)
    return opt.state_dict()


class _Snap:
    def __init__(self, step: int, val_loss: float | None) -> None:
        self.step, self.loss, self.val_loss = step, 1.0 / step, val_loss
        self.grad_norm_before, self.grad_norm_after = 10.0 * step, 1.0
        self.lr, self.elapsed_s = 1e-3, 0.25 * step


def _history() -> History:
    h = History()
    for step in range(1, 6):
        h.record(_Snap(step, None if step % 2 else 0.5 / step))
    return h


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _zip(path: Path, members: list[tuple[str, bytes]] | dict[str, bytes],
         method: int = zipfile.ZIP_DEFLATED) -> Path:
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    exp = _experiment()
    params = _params(exp)
    path = tmp_path / "run.gradlab"
    save_archive(path, exp, params, _history(), _optimizer_state(exp, params))
    return path


def _raises(path: Path, kind: type[Exception], pattern: str) -> str:
    with pytest.raises(kind) as err:
        load_archive(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: "), msg
    assert re.search(pattern, msg), msg
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- round trips


def test_round_trip_is_exact(tmp_path):
    exp = _experiment()
    params = _params(exp)
    history = _history()
    state = _optimizer_state(exp, params)
    path = tmp_path / "run.gradlab"
    save_archive(path, exp, params, history, state)

    back = load_archive(path)
    assert back.experiment == exp
    assert back.experiment.title == "Remembering"
    assert list(back.params) == list(params)
    for name, value in params.items():
        assert back.params[name].dtype == value.dtype
        assert back.params[name].tobytes() == value.tobytes()  # bitwise
    assert back.experiment.weights is back.params
    assert list(back.history) == list(History.columns)
    for name in History.columns:
        assert back.history[name].dtype == history.column(name).dtype
        np.testing.assert_array_equal(back.history[name], history.column(name))  # NaN == NaN
    assert back.optimizer_state.keys() == state.keys()
    for name, value in state.items():
        assert back.optimizer_state[name].dtype == value.dtype
        assert back.optimizer_state[name].tobytes() == value.tobytes()
    assert back.meta["format"] == "gradlab-archive" and back.meta["version"] == archive.VERSION
    # every member but the user's arrays, which this experiment's task makes unneeded,
    # and the pinned runs, which it has none of
    assert sorted(_members(path)) == sorted(set(archive.MEMBERS) - {archive.DATA, archive.PINNED})
    assert back.data is None
    assert [p.name for p in tmp_path.iterdir()] == ["run.gradlab"]  # no temporary left


def test_round_trip_experiment_only(tmp_path):
    path = tmp_path / "plain.gradlab"
    save_archive(path, Experiment(), None)
    back = load_archive(path)
    assert back.experiment == Experiment()
    assert back.params is None and back.optimizer_state is None and back.history == {}
    assert sorted(_members(path)) == ["experiment.json", "meta.json"]


def test_history_as_columns_with_gaps_and_infinities(tmp_path):
    path = tmp_path / "h.gradlab"
    history = {"step": [1, 2, 3], "loss": [0.1, float("inf"), float("nan")],
               "val_loss": [None, 1 / 3, None]}
    save_archive(path, Experiment(), None, history)
    back = load_archive(path).history
    np.testing.assert_array_equal(back["step"], [1, 2, 3])
    np.testing.assert_array_equal(back["loss"], [0.1, math.inf, math.nan])
    np.testing.assert_array_equal(back["val_loss"], [math.nan, 1 / 3, math.nan])
    assert _members(path)["history.csv"].decode().splitlines()[1] == "1,0.1,"


def test_float32_weights_come_back_as_exact_float64(tmp_path):
    exp = _experiment()
    params32 = {k: v.astype(np.float32) for k, v in _params(exp).items()}
    path = tmp_path / "w.gradlab"
    save_archive(path, exp, params32)
    back = load_archive(path).params
    for name, value in params32.items():
        assert back[name].dtype == np.float64
        np.testing.assert_array_equal(back[name], value)


def test_resuming_from_a_loaded_state(tmp_path, saved):
    back = load_archive(saved)
    opt = make_optimizer(back.experiment.training, back.params)
    opt.load_state_dict(back.optimizer_state)
    assert opt.t == 3


# ----------------------------------------------------------------------------- atomic saves


def test_interrupted_save_leaves_the_previous_file(tmp_path, saved, monkeypatch):
    before = saved.read_bytes()
    calls = []
    real = zipfile.ZipFile.writestr

    def failing(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    exp = _experiment()
    exp.title = "Changed"
    with pytest.raises(OSError, match="No space left"):
        save_archive(saved, exp, _params(exp), _history())
    assert len(calls) == 3  # it failed part-way through the members
    assert saved.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [saved.name]
    monkeypatch.undo()
    assert load_archive(saved).experiment.title == "Remembering"


def test_rejected_save_touches_nothing(tmp_path, saved):
    before = saved.read_bytes()
    exp = _experiment()
    params = _params(exp)
    bad = dict(params, **{"head.bias": np.full(9, np.nan)})
    with pytest.raises(WeightsError, match=r"weights\.safetensors: head\.bias: holds 9 non-finite"):
        save_archive(saved, exp, bad)
    del params["head.weight"]
    with pytest.raises(WeightsError, match=r"missing head\.weight"):
        save_archive(saved, exp, params)
    with pytest.raises(WeightsError, match="only with the weights"):
        save_archive(saved, exp, None, optimizer_state={"step": np.array(1)})
    with pytest.raises(DataError, match="unknown column 'accuracy'"):
        save_archive(saved, exp, None, {"accuracy": [1.0]})
    with pytest.raises(DataError, match="differ in length"):
        save_archive(saved, exp, None, {"step": [1, 2], "loss": [1.0]})
    assert saved.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [saved.name]


def test_optimizer_state_must_fit_the_optimizer(tmp_path):
    exp = _experiment()
    params = _params(exp)
    state = _optimizer_state(exp, params)
    exp.training.optimizer = "sgd"
    with pytest.raises(WeightsError, match=r"optimizer\.safetensors: does not match.*unexpected "
                                           r"exp_avg"):
        save_archive(tmp_path / "x.gradlab", exp, params, None, state)
    assert not (tmp_path / "x.gradlab").exists()


# ----------------------------------------------------------------------------- malformed files


def test_missing_file_and_folder(tmp_path):
    _raises(tmp_path / "nothing.gradlab", UserError, "no such file")
    (tmp_path / "dir.gradlab").mkdir()
    _raises(tmp_path / "dir.gradlab", UserError, "is a folder")


def test_not_a_zip(tmp_path):
    path = tmp_path / "text.gradlab"
    path.write_text('{"format": "gradlab-experiment"}')
    _raises(path, UserError, "not a Gradient Flow Lab archive .*zip")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gradlab"
    path.write_bytes(b"")
    _raises(path, UserError, r"the file is empty \(0 bytes\); expected a \.gradlab file")


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.99])
def test_truncated(tmp_path, saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    _raises(saved, UserError, "not a Gradient Flow Lab archive")


def test_corrupt_member_fails_its_checksum(tmp_path, saved):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("weights.safetensors")
    # Local header: 30 bytes plus the name and extra field, then the stored data.
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.compress_size - 3] ^= 0xFF
    saved.write_bytes(bytes(data))
    _raises(saved, UserError, r"weights\.safetensors: corrupt entry")


def test_missing_experiment(tmp_path, saved):
    members = _members(saved)
    del members["experiment.json"]
    _raises(_zip(tmp_path / "x.gradlab", members), UserError, r"no experiment\.json inside")


def test_newer_format_version(tmp_path, saved):
    members = _members(saved)
    members["meta.json"] = json.dumps({"format": "gradlab-archive", "version": 99}).encode()
    _raises(_zip(tmp_path / "x.gradlab", members), UserError,
            r"archive format version 99 is newer than this build reads \(version 1\)")


@pytest.mark.parametrize("meta", [b"[]", b'{"format": "zip"}', b"{", b'{"format": '
                                  b'"gradlab-archive", "version": "one"}'])
def test_bad_meta(tmp_path, saved, meta):
    members = _members(saved)
    members["meta.json"] = meta
    _raises(_zip(tmp_path / "x.gradlab", members), UserError, r"meta\.json: ")


@pytest.mark.parametrize("name", ["../experiment.json", "/etc/experiment.json",
                                  "C:\\experiment.json", "a/../../experiment.json",
                                  "..\\weights.safetensors"])
def test_zip_slip_entries_are_refused(tmp_path, saved, name):
    inner = tmp_path / "inner"
    inner.mkdir()
    members = [*_members(saved).items(), (name, b"{}")]
    path = _zip(inner / "x.gradlab", members)
    msg = _raises(path, UserError, "refusing entry .*leaves the archive")
    assert repr(name) in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner", saved.name]
    assert [p.name for p in inner.iterdir()] == ["x.gradlab"]  # nothing extracted


@pytest.mark.parametrize("name", ["notes.txt", "weights/", "Experiment.JSON", "trace.npz"])
def test_unexpected_entries_are_refused(tmp_path, saved, name):
    members = [*_members(saved).items(), (name, b"")]
    msg = _raises(_zip(tmp_path / "x.gradlab", members), UserError, "unexpected entry")
    assert repr(name) in msg


def test_duplicate_entries_are_refused(tmp_path, saved):
    members = [*_members(saved).items(), ("experiment.json", b"{}")]
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = _zip(tmp_path / "x.gradlab", members)
    _raises(path, UserError, "'experiment.json' appears twice")


def test_too_large_for_memory(tmp_path, saved, monkeypatch):
    monkeypatch.setattr(archive, "available_memory", lambda: 4096)
    msg = _raises(saved, MemoryLimitError, r"unpacks to .*would need about .* of memory available")
    assert "4.0 KiB" in msg


def test_zip_bomb(tmp_path, saved):
    members = _members(saved)
    members["history.csv"] = b"step\n" + b"1\n" * (2 * 1024**2)
    _raises(_zip(tmp_path / "bomb.gradlab", members), MemoryLimitError,
            r"history\.csv: would expand from .* to 4\.0 MiB .*zip bomb")


def test_lying_size_is_caught_on_read(tmp_path, saved):
    """A header declaring a small size cannot make the reader produce more."""
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("experiment.json")
    cd = data.find(b"PK\x01\x02")  # central directory entries: the name starts at byte 46
    while data[cd + 46:cd + 46 + len(info.filename)] != info.filename.encode():
        cd = data.find(b"PK\x01\x02", cd + 4)
    data[cd + 24:cd + 28] = (10).to_bytes(4, "little")  # uncompressed size in the directory
    saved.write_bytes(bytes(data))
    _raises(saved, UserError, r"experiment\.json: ")


def test_experiment_errors_name_file_member_and_field(tmp_path, saved):
    members = _members(saved)
    doc = json.loads(members["experiment.json"])
    doc["model"]["layers"][1]["hidden_size"] = "big"
    members["experiment.json"] = json.dumps(doc).encode()
    path = _zip(tmp_path / "x.gradlab", members)
    with pytest.raises(ConfigError) as err:
        load_archive(path)
    assert str(err.value) == (f"{path}: experiment.json: model.layers[1].hidden_size: "
                              "expected an integer, got 'big'")


@pytest.mark.parametrize(("text", "pattern"), [
    (b'{"format": ', r"experiment\.json: not valid JSON \(line 1"),
    (b"\xff\xfe", r"experiment\.json: not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, r"experiment\.json: not usable JSON"),
    (b'{"format": "gradlab-experiment", "version": 1, "model": {"input_size": 1' + b"0" * 5000
     + b"}}", r"experiment\.json: not usable JSON"),
    (b'{"format": "gradlab-experiment", "version": 2, "model": {}}',
     r"experiment\.json: version: this build reads version 1, the file is version 2"),
])
def test_experiment_json_errors(tmp_path, saved, text, pattern):
    members = _members(saved)
    members["experiment.json"] = text
    _raises(_zip(tmp_path / "x.gradlab", members), ConfigError, pattern)


def test_weights_for_another_model(tmp_path, saved):
    members = _members(saved)
    other = Experiment()
    other.model.layers[0].hidden_size = 6
    members["weights.safetensors"] = safetensors_bytes(_params(other))
    _raises(_zip(tmp_path / "x.gradlab", members), WeightsError,
            r"weights\.safetensors: does not match the model: missing weight_peep_l0, ")


def test_weights_with_wrong_shape_dtype_or_values(tmp_path, saved):
    members = _members(saved)
    exp = _experiment()
    params = _params(exp)
    for change, pattern in [
        ({"head.bias": np.zeros(8)}, r"head\.bias: expected shape \(9,\), got \(8,\)"),
        ({"head.bias": np.zeros(9, dtype=np.bool_)}, r"head\.bias: dtype BOOL is not a supported"),
        ({"head.bias": np.array([np.inf] + [0.0] * 8)}, r"head\.bias: holds 1 non-finite value "),
    ]:
        members["weights.safetensors"] = safetensors_bytes({**params, **change})
        _raises(_zip(tmp_path / "x.gradlab", members), WeightsError, pattern)
    members["weights.safetensors"] = b"\x10\x00\x00\x00\x00\x00\x00\x00{}"
    _raises(_zip(tmp_path / "x.gradlab", members), WeightsError,
            r"weights\.safetensors: not a readable \.safetensors file")


def test_optimizer_state_problems(tmp_path, saved):
    members = _members(saved)
    without = dict(members)
    del without["weights.safetensors"]
    _raises(_zip(tmp_path / "x.gradlab", without), WeightsError,
            r"optimizer\.safetensors: an optimizer state without weights\.safetensors")
    exp = _experiment()
    state = _optimizer_state(exp, _params(exp))
    for change, pattern in [
        ({"step": np.array(-1)}, r"step: expected a whole number of steps"),
        ({"step": np.array(1.5)}, r"step: expected a whole number of steps"),
        ({"exp_avg.head.bias": np.full(9, np.nan)}, r"exp_avg\.head\.bias: holds 9 non-finite"),
        ({"momentum_buffer.head.bias": np.zeros(9)}, r"unexpected momentum_buffer\.head\.bias"),
    ]:
        members["optimizer.safetensors"] = safetensors_bytes({**state, **change})
        _raises(_zip(tmp_path / "x.gradlab", members), WeightsError, pattern)


@pytest.mark.parametrize(("text", "pattern"), [
    ("", r"history\.csv line 1: no header row"),
    ("step,accuracy\n1,2\n", r"history\.csv line 1: unknown column 'accuracy'"),
    ("step,loss,loss\n", r"history\.csv line 1: a column appears twice"),
    ("step,loss\n1,0.5\n2,abc\n", r"history\.csv line 3, column loss: expected a number or an "
                                  r"empty cell, got 'abc'"),
    ("step,loss\n1,0.5\n2\n", r"history\.csv line 3: 1 cells, expected 2"),
    ("step,loss\n1,0.5\n\n3,1\n", r"history\.csv line 3: 0 cells, expected 2"),
    ("step,loss\n1.5,0.5\n", r"history\.csv line 2, column step: expected a whole number"),
    ("step,loss\n,0.5\n", r"history\.csv line 2, column step: expected a whole number"),
    ("step,loss\n1,1_000\n", r"history\.csv line 2, column loss: expected a number"),
    ("step,loss\n1,\"0.5\n", r"history\.csv line \d+: malformed CSV"),
    ("step\n" + "9" * 30 + "\n", r"history\.csv line 2, column step"),
])
def test_history_errors_name_the_line(tmp_path, saved, text, pattern):
    members = _members(saved)
    members["history.csv"] = text.encode()
    _raises(_zip(tmp_path / "x.gradlab", members), DataError, pattern)


def test_history_must_be_utf8(tmp_path, saved):
    members = _members(saved)
    members["history.csv"] = b"step,loss\n1,\xff\n"
    _raises(_zip(tmp_path / "x.gradlab", members), DataError, r"history\.csv: not UTF-8 text")


def test_history_accepts_what_history_writes(tmp_path, saved):
    members = _members(saved)
    members["history.csv"] = _history().to_csv().encode()
    back = load_archive(_zip(tmp_path / "x.gradlab", members))
    np.testing.assert_array_equal(back.history["val_loss"], _history().column("val_loss"))


def test_written_experiment_is_the_plain_experiment_file(saved):
    doc = json.loads(_members(saved)["experiment.json"])
    assert doc == experiment_to_dict(_experiment())


def test_members_are_read_in_memory(tmp_path, saved, monkeypatch):
    def no_extract(*args, **kwargs):
        raise AssertionError("archives are never extracted to disk")

    monkeypatch.setattr(zipfile.ZipFile, "extract", no_extract)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", no_extract)
    assert load_archive(saved).params is not None


def test_meta_is_optional(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("experiment.json", json.dumps(experiment_to_dict(Experiment())))
    path = tmp_path / "min.gradlab"
    path.write_bytes(buf.getvalue())
    assert load_archive(path).experiment == Experiment()  # meta.json is optional


def _pins(exp: Experiment) -> list[archive.Pinned]:
    curves = {"gradnorm.l0": np.array([1e-30, 0.5, np.inf, np.nan]),
              "gradnorm.l0_reverse": np.array([1.0, 2.0, 3.0, 4.0])}
    history = {"step": np.array([1, 2], dtype=np.int64), "loss": np.array([1.5, np.nan])}
    return [archive.Pinned("A", exp, curves, history), archive.Pinned("B", exp, curves, {})]


def test_pinned_runs_round_trip(tmp_path):
    exp = _experiment()
    path = tmp_path / "pins.gradlab"
    save_archive(path, exp, None, pinned=_pins(exp))
    with zipfile.ZipFile(path) as zf:
        assert archive.PINNED in zf.namelist()
    pins = load_archive(path).pinned
    assert [p.label for p in pins] == ["A", "B"]
    assert experiment_to_dict(pins[0].experiment) == experiment_to_dict(exp)
    for old, new in zip(_pins(exp), pins, strict=True):
        for key, values in old.curves.items():
            np.testing.assert_array_equal(new.curves[key], values)
        assert set(new.history) == set(old.history)
    assert pins[0].history["step"].dtype == np.int64 and pins[0].steps == 2
    save_archive(tmp_path / "old.gradlab", exp, None)  # an archive without pins
    assert load_archive(tmp_path / "old.gradlab").pinned == []


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: "{not json", r"pinned\.json: not valid JSON"),
    (lambda d: {**d, "format": "other"}, r"pinned\.json: not a list of pinned runs"),
    (lambda d: {**d, "pinned": d["pinned"] * 3}, r"pinned\.json: pinned: 6 runs, at most 4"),
    (lambda d: {**d, "pinned": [{**d["pinned"][0], "label": ""}]},
     r"pinned\.json: pinned\[0\]\.label"),
    (lambda d: {**d, "pinned": [{**d["pinned"][0], "experiment": {
        **d["pinned"][0]["experiment"], "init": {"forgt_bias": 1}}}]},
     r"pinned\.json: pinned\[0\]\.experiment: .*forgt_bias"),
    (lambda d: {**d, "pinned": [{**d["pinned"][0], "curves": {"gradnorm.l0": [1, "x"]}}]},
     r"pinned\.json: pinned\[0\]\.curves\.gradnorm\.l0\[1\]: expected a number"),
    (lambda d: {**d, "pinned": [{**d["pinned"][0], "curves": {"dh.l0": [1.0]}}]},
     r"pinned\.json: pinned\[0\]\.curves: unknown curve 'dh\.l0'"),
    (lambda d: {**d, "pinned": [{**d["pinned"][0], "history": {"step": [1], "loss": []}}]},
     r"pinned\.json: pinned\[0\]\.history: the columns differ in length"),
])
def test_a_corrupt_pinned_member_is_refused_naming_it(tmp_path, edit, pattern):
    exp = _experiment()
    good = tmp_path / "good.gradlab"
    save_archive(good, exp, None, pinned=_pins(exp))
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    doc = edit(json.loads(members[archive.PINNED]))
    members[archive.PINNED] = (doc if isinstance(doc, str) else json.dumps(doc)).encode()
    bad = tmp_path / "bad.gradlab"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(UserError, match=re.escape(str(bad)) + ": " + pattern):
        load_archive(bad)
