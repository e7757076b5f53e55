"""``gradlab compare``: the long-form table, its metadata and the figure; bad paths and
values as one error line; several --vary as their product."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import main  # noqa: E402

COLUMNS = ["variant", "key", "t", "mean", "low", "high"]
SKY_BLUE, ORANGE = (0x56, 0xB4, 0xE9), (0xE6, 0x9F, 0x00)  # the first two line colours


@pytest.fixture(autouse=True)
def offscreen(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")


def run(argv: list, capsys) -> tuple[int, str, str]:
    rc = main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc: int, err: str, *needles: str) -> str:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def pixels(path: Path) -> np.ndarray:
    """The PNG as an (h, w, 3) uint8 array."""
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull()
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    data = np.frombuffer(bytes(image.constBits()), dtype=np.uint8).reshape(h, stride)
    return data[:, :3 * w].reshape(h, w, 3)


def near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> int:
    return int(np.all(np.abs(img.astype(int) - np.array(rgb)) <= tol, axis=-1).sum())


def small_exp(path: Path) -> Path:
    path.write_text(json.dumps({
        "format": "gradlab-experiment", "version": 1,
        "model": {"input_size": 1, "output_size": 1,
                  "layers": [{"cell": "lstm", "hidden_size": 5, "peephole": True}]},
        "task": {"name": "sine", "seq_len": 10, "batch_size": 3},
        "backend": {"device": "numpy", "dtype": "float64"}}))
    return path


# ----------------------------------------------------------------------------- the lesson


def test_the_forget_gate_comparison(tmp_path, capsys):
    out = tmp_path / "D"
    rc, stdout, err = run(["compare", "--preset", "forget_gate", "--vary", "init.forget_bias=0,2",
                           "--seeds", 3, "--out", out], capsys)
    assert rc == 0, err
    for name in ("compare.csv", "compare.json", "compare.png", "compare.svg"):
        assert f"wrote {out / name}" in stdout

    columns, rows = read_csv(out / "compare.csv")
    assert columns == COLUMNS
    assert {r["variant"] for r in rows} == {"init.forget_bias=0", "init.forget_bias=2"}
    assert {r["key"] for r in rows} == {"gradnorm.l0"}
    for r in rows:
        assert float(r["low"]) <= float(r["mean"]) <= float(r["high"]), r
    ratio = {}
    for variant in ("init.forget_bias=0", "init.forget_bias=2"):
        mean = {int(r["t"]): float(r["mean"]) for r in rows if r["variant"] == variant}
        assert sorted(mean) == list(range(100))
        ratio[variant] = mean[0] / mean[99]
    assert ratio["init.forget_bias=2"] > 1e6 * ratio["init.forget_bias=0"]

    meta = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert meta["band"] == "min-max" and meta["seeds"] == 3

    img = pixels(out / "compare.png")
    assert img.shape[1] == 900
    assert near(img, SKY_BLUE) > 200 and near(img, ORANGE) > 200  # both variants drawn
    svg = (out / "compare.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "init.forget_bias=2" in svg


# ----------------------------------------------------------------------------- product


def test_several_vary_give_their_product(tmp_path, capsys):
    exp = small_exp(tmp_path / "exp.json")
    out = tmp_path / "grid"
    rc, _, err = run(["compare", exp, "--vary", "model.layers.0.cell=gru,lstm",
                      "--vary", "init.scales.recurrent=0.5,1,2", "--seeds", 2,
                      "--train-steps", 2, "--out", out], capsys)
    assert rc == 0, err
    _, rows = read_csv(out / "compare.csv")
    labels = list(dict.fromkeys(r["variant"] for r in rows))
    assert labels == [f"model.layers.0.cell={c}; init.scales.recurrent={s}"
                      for c in ("gru", "lstm") for s in ("0.5", "1", "2")]
    keys = {r["key"] for r in rows}
    assert keys == {"gradnorm.l0", "loss", "grad_norm_before", "grad_norm_after"}
    assert sorted({int(r["t"]) for r in rows if r["key"] == "loss"}) == [1, 2]
    meta = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    gru = meta["variants"][0]
    assert gru["notes"] == ["model.layers.0: peephole off (only an lstm has peepholes)"]
    assert "peephole off" in gru["description"]
    assert meta["variants"][3]["notes"] == []
    assert (out / "compare.png").stat().st_size > 0


def test_an_experiment_file_with_one_value(tmp_path, capsys):
    exp = small_exp(tmp_path / "exp.json")
    rc, _, err = run(["compare", exp, "--vary", "training.tbptt=null", "--out", tmp_path / "o"],
                     capsys)
    assert rc == 0, err
    _, rows = read_csv(tmp_path / "o" / "compare.csv")
    assert {r["variant"] for r in rows} == {"training.tbptt=null"}
    assert all(r["low"] == r["mean"] == r["high"] for r in rows)  # one seed: no spread


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("vary", "needles"), [
    ("init.forgt_bias=0,2", ("init.forgt_bias: no such field",
                             "expected one of forget_bias, scales, scheme, seed")),
    ("model.layers.1.cell=gru", ("model.layers.1: no such index",)),
    ("init.forget_bias=0,abc", ("init.forget_bias: expected a number, got 'abc'",)),
    ("init.forget_bias=0,50", ("init.forget_bias: must be between -20 and 20, got 50",)),
    ("model.layers.0.cell=lstm,gruu", ("model.layers.0.cell: 'gruu' is not one of",)),
    ("init.forget_bias", ("--vary 'init.forget_bias': expected PATH=V1,V2",)),
    ("init.forget_bias=0,0", ("--vary init.forget_bias: the value 0 is given twice",)),
    ("model.input_size=3", ("model.input_size: the adding task has 2 input channels",)),
])
def test_bad_paths_and_values_exit_2_and_write_nothing(vary, needles, tmp_path, capsys):
    out = tmp_path / "never"
    rc, _, err = run(["compare", "--preset", "forget_gate", "--vary", vary, "--out", out], capsys)
    assert_user_error(rc, err, *needles)
    assert not out.exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["compare", "--vary", "init.seed=1", "--out", "x"], "give an EXPERIMENT file or --preset"),
    (["compare", "--preset", "forget_gate", "--out", "x"], "--vary"),
    (["compare", "--preset", "forget_gate", "--vary", "init.seed=1", "--seeds", 0, "--out", "x"],
     "--seeds: must be 1 or more"),
    (["compare", "--preset", "forget_gate", "--vary", "init.seed=1", "--train-steps", -1,
      "--out", "x"], "--train-steps"),
    (["compare", "--preset", "no_such_lesson", "--vary", "init.seed=1", "--out", "x"],
     "no_such_lesson"),
])
def test_usage_errors(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(argv, capsys)
    assert_user_error(rc, err, needle)
    assert not (tmp_path / "x").exists()


def test_both_a_file_and_a_preset(tmp_path, capsys):
    exp = small_exp(tmp_path / "exp.json")
    rc, _, err = run(["compare", exp, "--preset", "forget_gate", "--vary", "init.seed=1",
                      "--out", tmp_path / "x"], capsys)
    assert_user_error(rc, err, "not both")


def test_help(capsys):
    rc, out, _ = run(["compare", "--help"], capsys)
    assert rc == 0
    assert out.startswith("usage: gradlab compare")
    for word in ("--vary", "--seeds", "--train-steps", "variant,key,t,mean,low,high",
                 "compare.json", "min-max below 10 seeds"):
        assert word in " ".join(out.split()), word
