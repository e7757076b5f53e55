"""The command line: exit status, one-line errors, the files it writes, no Qt when headless.

Most tests call ``main.main(argv)`` in-process (fast); a few run ``python main.py``
in a subprocess where the process itself is under test (exit status, sys.modules).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import main  # noqa: E402
from core.experiment import load_experiment_config  # noqa: E402
from core.layout import GATES, layer_keys, param_shapes  # noqa: E402

MODEL = {"input_size": 1, "output_size": 1, "pattern": "many_to_many", "loss": "mse",
         "layers": [{"cell": "lstm", "hidden_size": 6, "bidirectional": True},
                    {"cell": "gru", "hidden_size": 4}]}


def write_exp(path: Path, **overrides) -> Path:
    data = {"format": "gradlab-experiment", "version": 1, "model": json.loads(json.dumps(MODEL)),
            "task": {"name": "sine", "seq_len": 12, "batch_size": 3},
            "backend": {"device": "numpy", "dtype": "float64"}}
    data.update(overrides)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def exp_file(tmp_path: Path) -> Path:
    return write_exp(tmp_path / "exp.json")


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc: int, err: str, *needles: str) -> str:
    """Exit 2, exactly one stderr line, starting 'error:', no traceback; return the line."""
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def spec_keys(model) -> set[str]:
    keys = {"loss", "output"}
    for k, _d, key in layer_keys(model):
        cell = model.layers[k].cell
        keys |= {f"h.{key}", f"dh.{key}", f"gradnorm.{key}"}
        keys |= {f"gate.{g}.{key}" for g in GATES[cell]}
        if cell == "lstm":
            keys |= {f"c.{key}", f"dc.{key}"}
    keys |= {f"grad.{name}" for name in param_shapes(model)}
    return keys


# ----------------------------------------------------------------------------- success


def test_info(capsys):
    rc, out, err = run(["info"], capsys)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert all(re.match(r"^[a-z_]+: .+", line) for line in lines), out
    assert any(line.startswith("numpy: ") for line in lines)
    assert any(line.startswith("auto: ") for line in lines)
    from core.cells import native

    assert f"cpu_steps: {native.status()}" in lines


def test_presets_lists_name_then_title(capsys, monkeypatch):
    monkeypatch.setattr("core.lessons.list_lessons",
                        lambda: [("vanishing_tanh", "Vanishing gradients in a tanh RNN"),
                                 ("forget_gate", "The forget gate keeps gradients alive")])
    rc, out, err = run(["presets"], capsys)
    assert rc == 0, err
    assert out.splitlines() == ["vanishing_tanh  Vanishing gradients in a tanh RNN",
                                "forget_gate     The forget gate keeps gradients alive"]


def test_presets_matches_the_lessons(capsys):
    from core.lessons import list_lessons

    rc, out, _ = run(["presets"], capsys)
    assert rc == 0
    assert [line.split()[0] for line in out.splitlines()] == [n for n, _ in list_lessons()]


def test_analyze_writes_trace_and_summary(tmp_path, exp_file, capsys):
    out_dir = tmp_path / "out"
    rc, out, err = run(["analyze", exp_file, "--out", out_dir], capsys)
    assert rc == 0, err
    assert str(out_dir / "trace.npz") in out and str(out_dir / "summary.json") in out
    exp = load_experiment_config(exp_file)
    from core.tracefile import load_trace

    arrays = load_trace(out_dir / "trace.npz")
    assert set(arrays) == spec_keys(exp.model)
    assert arrays["h.l0_reverse"].shape == (12, 3, 6)
    assert arrays["gradnorm.l1"].shape == (12,)
    assert arrays["grad.weight_hh_l0"].shape == (24, 6)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["loss"] == pytest.approx(float(arrays["loss"]))
    assert set(summary["spectral_radius"]) == {"weight_hh_l0", "weight_hh_l0_reverse",
                                               "weight_hh_l1"}
    g = arrays["gradnorm.l0"]
    assert summary["gradient_ratio"]["l0"] == pytest.approx(g[0] / g[-1])
    assert set(summary["gradient_ratio"]) == {"l0", "l0_reverse", "l1"}
    assert "NumPy" in summary["backend"]
    assert summary["sizes"]["seq_len"] == 12 and summary["sizes"]["batch_size"] == 3


def test_analyze_matches_the_python_api(tmp_path, exp_file, capsys):
    import core

    rc, _, err = run(["analyze", exp_file, "--out", tmp_path / "o"], capsys)
    assert rc == 0, err
    from core.tracefile import load_trace

    saved = load_trace(tmp_path / "o" / "trace.npz")
    api = core.trace(core.load_experiment(exp_file))
    assert set(api) == set(saved)
    for key in saved:
        np.testing.assert_allclose(api[key], saved[key], rtol=1e-12, atol=1e-15, err_msg=key)


def test_analyze_with_weights_and_data_and_extras(tmp_path, exp_file, capsys):
    from core.init import init_params
    from core.weights import save_weights

    exp = load_experiment_config(exp_file)
    save_weights(tmp_path / "w.safetensors", init_params(exp.model, exp.init))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(7, 2, 1)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.normal(size=(7, 2, 1)))
    rc, _, err = run(["analyze", exp_file, "--weights", tmp_path / "w.safetensors",
                      "--input", tmp_path / "x.npy", "--target", tmp_path / "y.npy",
                      "--jacobian", "--connectivity", "--out", tmp_path / "o"], capsys)
    assert rc == 0, err
    with np.load(tmp_path / "o" / "trace.npz", allow_pickle=False) as z:
        assert z["output"].shape == (7, 2, 1)
    assert (tmp_path / "o" / "connectivity.npy").exists()
    with np.load(tmp_path / "o" / "jacobian.npz", allow_pickle=False) as z:
        assert set(z.files) == {"l0", "l0_reverse", "l1"}


def test_analyze_and_train_take_a_preset_as_export_does(tmp_path, capsys):
    """``--preset NAME`` instead of a file: the lesson's own experiment, exactly."""
    import core
    from core.lessons import load_lesson
    from core.tracefile import load_trace

    rc, out, err = run(["analyze", "--preset", "forget_gate", "--out", tmp_path / "a"], capsys)
    assert rc == 0, err
    assert str(tmp_path / "a" / "summary.json") in out
    saved = load_trace(tmp_path / "a" / "trace.npz")
    api = core.trace(load_lesson("forget_gate"))
    assert set(api) == set(saved)
    for key in saved:
        np.testing.assert_allclose(api[key], saved[key], rtol=1e-12, atol=1e-15, err_msg=key)

    rc, out, err = run(["train", "--preset", "vanishing_tanh", "--steps", 2,
                        "--out", tmp_path / "t"], capsys)
    assert rc == 0, err
    assert "step 2/2" in err and str(tmp_path / "t" / "weights.safetensors") in out
    trained = load_experiment_config(tmp_path / "t" / "experiment.json")
    lesson = load_lesson("vanishing_tanh")
    assert (trained.title, trained.model) == (lesson.title, lesson.model)
    assert len((tmp_path / "t" / "history.csv").read_text().splitlines()) == 3


@pytest.mark.parametrize("command", ["analyze", "train"])
def test_analyze_and_train_want_a_file_or_a_preset(command, tmp_path, exp_file, capsys):
    out = ["--out", tmp_path / "o"]
    rc, _, err = run([command, *out], capsys)
    assert_user_error(rc, err, f"gradlab {command}", "EXPERIMENT", "--preset", "neither")
    rc, _, err = run([command, exp_file, "--preset", "forget_gate", *out], capsys)
    assert_user_error(rc, err, "not both")
    rc, _, err = run([command, "--preset", "no_such_lesson", *out], capsys)
    assert_user_error(rc, err, "no_such_lesson")
    assert not (tmp_path / "o").exists()


def test_train_writes_every_file(tmp_path, exp_file, capsys):
    rc, _, err = run(["train", exp_file, "--steps", 3, "--out", tmp_path / "t"], capsys)
    assert rc == 0, err
    for name in ("experiment.json", "weights.safetensors", "history.csv", "trace.npz"):
        assert (tmp_path / "t" / name).exists(), name
    rows = (tmp_path / "t" / "history.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == 4
    assert "step 3/3" in err
    from core.weights import load_weights

    exp = load_experiment_config(tmp_path / "t" / "experiment.json")
    assert set(load_weights(tmp_path / "t" / "weights.safetensors", exp.model)) == set(
        param_shapes(exp.model))


def test_train_ctrl_c_stops_cleanly_and_saves(tmp_path, exp_file, capsys, monkeypatch):
    import core.training.loop as loop

    real = loop.train

    def interrupted(*args, **kwargs):
        for i, snap in enumerate(real(*args, **kwargs)):
            yield snap
            if i == 1:
                signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C

    monkeypatch.setattr(loop, "train", interrupted)
    before = signal.getsignal(signal.SIGINT)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(8, 5, 1)))
    np.save(tmp_path / "y.npy", rng.normal(size=(8, 5, 1)))
    rc, _, err = run(["train", exp_file, "--steps", 50, "--input", tmp_path / "x.npy",
                      "--target", tmp_path / "y.npy", "--out", tmp_path / "t"], capsys)
    assert rc == 130, err
    assert "Traceback" not in err
    for name in ("experiment.json", "weights.safetensors", "history.csv", "trace.npz"):
        assert (tmp_path / "t" / name).exists(), name
    assert len((tmp_path / "t" / "history.csv").read_text().splitlines()) == 1 + 2
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


@pytest.mark.parametrize("command", ["", "analyze", "train", "export", "presets", "info"])
def test_help(command, capsys):
    argv = ([command] if command else []) + ["--help"]
    rc, out, _ = run(argv, capsys)
    assert rc == 0
    assert out.startswith(f"usage: gradlab {command}".rstrip())


def test_headless_commands_do_not_import_qt(tmp_path, exp_file):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(6, 4, 1)))
    np.save(tmp_path / "y.npy", rng.normal(size=(6, 4, 1)))
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import main
runs = [["info"], ["presets"], ["analyze", {str(exp_file)!r}, "--out", {str(tmp_path / "a")!r}],
        ["train", {str(exp_file)!r}, "--steps", "2", "--input", {str(tmp_path / "x.npy")!r},
         "--target", {str(tmp_path / "y.npy")!r}, "--out", {str(tmp_path / "t")!r}]]
for argv in runs:
    assert main.main(argv) == 0, argv
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"))
assert not qt, qt
print("no-qt-ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "no-qt-ok" in res.stdout


def test_script_exit_status():
    ok = subprocess.run([sys.executable, "main.py", "info"], cwd=ROOT, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0 and "numpy:" in ok.stdout
    bad = subprocess.run([sys.executable, "main.py", "analyze", "missing.json", "--out", "x"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: missing.json: no such file"]


# ----------------------------------------------------------------------------- bad input


def test_malformed_json(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "gradlab-experiment",\n "version": 1,\n "model": {,}}')
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    line = assert_user_error(rc, err, str(path), "not valid JSON")
    assert re.search(r"line 3, column \d+", line)
    assert not (tmp_path / "o" / "trace.npz").exists()


@pytest.mark.parametrize("content", ["", "  \n"])
def test_an_empty_experiment_file_says_it_is_empty(tmp_path, capsys, content):
    path = tmp_path / "e.json"
    path.write_text(content)
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, str(path), "the file is empty")


def test_missing_model(tmp_path, capsys):
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"format": "gradlab-experiment", "version": 1}))
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, str(path), "model")


def test_unknown_field(tmp_path, capsys):
    path = write_exp(tmp_path / "e.json")
    data = json.loads(path.read_text())
    data["model"]["layers"][0]["hiden_size"] = 8
    path.write_text(json.dumps(data))
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "model.layers[0].hiden_size", "unknown field")


def test_ill_typed_field(tmp_path, capsys):
    path = write_exp(tmp_path / "e.json")
    data = json.loads(path.read_text())
    data["model"]["layers"][1]["hidden_size"] = "big"
    path.write_text(json.dumps(data))
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "model.layers[1].hidden_size", "expected an integer")


def test_negative_hidden_size(tmp_path, capsys):
    path = write_exp(tmp_path / "e.json")
    data = json.loads(path.read_text())
    data["model"]["layers"][0]["hidden_size"] = -3
    path.write_text(json.dumps(data))
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "model.layers[0].hidden_size", "-3")


def _absurd(path: Path, layers: int, hidden: int, seq_len: int) -> Path:
    model = dict(MODEL, layers=[{"cell": "lstm", "hidden_size": hidden}] * layers)
    return write_exp(path, model=model, task={"name": "sine", "seq_len": seq_len,
                                              "batch_size": 16})


@pytest.mark.parametrize("command", ["analyze", "train"])
@pytest.mark.parametrize(("layers", "hidden", "seq_len"),
                         [(8, 65_536, 100), (2, 512, 2_000_000_000)],
                         ids=["huge-hidden", "huge-T"])
def test_absurd_size_refused_with_an_estimate(tmp_path, capsys, monkeypatch, command,
                                              layers, hidden, seq_len):
    path = _absurd(tmp_path / "e.json", layers, hidden, seq_len)

    def no_init(*_a, **_k):
        raise AssertionError("parameters allocated before the memory check")

    monkeypatch.setattr("core.init.init_params", no_init)
    rc, _, err = run([command, path, "--out", tmp_path / "o"], capsys)
    line = assert_user_error(rc, err, str(path))
    assert "memory" in line
    assert re.search(r"\d+(\.\d+)? [KMGT]iB", line), line


@pytest.fixture
def weights_for(tmp_path, exp_file):
    from core.init import init_params

    exp = load_experiment_config(exp_file)
    return init_params(exp.model, exp.init)


def test_weights_of_wrong_shape(tmp_path, exp_file, weights_for, capsys):
    from core.weights import save_weights

    weights_for["weight_hh_l1"] = np.zeros((12, 5))
    save_weights(tmp_path / "w.safetensors", weights_for)
    rc, _, err = run(["analyze", exp_file, "--weights", tmp_path / "w.safetensors",
                      "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "w.safetensors",
                      "weight_hh_l1: expected shape (12, 4), got (12, 5)")


def test_weights_missing_a_name(tmp_path, exp_file, weights_for, capsys):
    from core.weights import save_weights

    del weights_for["bias_hh_l0_reverse"]
    save_weights(tmp_path / "w.npz", weights_for)
    rc, _, err = run(["analyze", exp_file, "--weights", tmp_path / "w.npz",
                      "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "w.npz", "missing bias_hh_l0_reverse")


def test_npz_holding_pickled_objects(tmp_path, exp_file, weights_for, capsys):
    weights_for["head.bias"] = np.array([object()], dtype=object)
    np.savez(tmp_path / "w.npz", **weights_for)
    rc, _, err = run(["analyze", exp_file, "--weights", tmp_path / "w.npz",
                      "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "w.npz", "pickled objects, which are never loaded")


def test_input_of_wrong_rank(tmp_path, exp_file, capsys):
    np.save(tmp_path / "x.npy", np.zeros((12, 3)))
    np.save(tmp_path / "y.npy", np.zeros((12, 3, 1)))
    rc, _, err = run(["analyze", exp_file, "--input", tmp_path / "x.npy",
                      "--target", tmp_path / "y.npy", "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "x.npy", "(T, B, D)", "got shape (12, 3)")


def test_target_of_wrong_shape(tmp_path, exp_file, capsys):
    np.save(tmp_path / "x.npy", np.zeros((12, 3, 1)))
    np.save(tmp_path / "y.npy", np.zeros((3, 1)))
    rc, _, err = run(["analyze", exp_file, "--input", tmp_path / "x.npy",
                      "--target", tmp_path / "y.npy", "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "y.npy", "(T, B, O) = (12, 3, 1)", "got shape (3, 1)")


def test_non_finite_input(tmp_path, exp_file, capsys):
    x = np.zeros((12, 3, 1))
    x[4, 2, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.zeros((12, 3, 1)))
    rc, _, err = run(["analyze", exp_file, "--input", tmp_path / "x.npy",
                      "--target", tmp_path / "y.npy", "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "x.npy", "non-finite", "[4, 2, 0]")


def test_pickled_input_array(tmp_path, exp_file, capsys):
    np.save(tmp_path / "x.npy", np.array([object()] * 3, dtype=object))  # pickles on write
    np.save(tmp_path / "y.npy", np.zeros((12, 3, 1)))
    rc, _, err = run(["analyze", exp_file, "--input", tmp_path / "x.npy",
                      "--target", tmp_path / "y.npy", "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "x.npy", "pickled objects")


def test_class_targets_for_cross_entropy(tmp_path, capsys):
    model = dict(MODEL, output_size=2, loss="cross_entropy", pattern="many_to_one")
    path = write_exp(tmp_path / "e.json", model=model,
                     task={"name": "parity", "seq_len": 12, "batch_size": 3})
    np.save(tmp_path / "x.npy", np.zeros((12, 3, 1)))
    argv = ["analyze", path, "--input", tmp_path / "x.npy", "--target", tmp_path / "y.npy",
            "--out", tmp_path / "o"]
    np.save(tmp_path / "y.npy", np.array([0.0, 0.5, 1.0]))
    rc, _, err = run(argv, capsys)
    assert_user_error(rc, err, "y.npy", "whole numbers")
    np.save(tmp_path / "y.npy", np.array([0, 2, 1]))
    rc, _, err = run(argv, capsys)
    assert_user_error(rc, err, "y.npy", "0..1")
    np.save(tmp_path / "y.npy", np.zeros((12, 3), dtype=np.int64))
    rc, _, err = run(argv, capsys)
    assert_user_error(rc, err, "y.npy", "(B,) = (3,)", "got shape (12, 3)")
    np.save(tmp_path / "y.npy", np.array([0, 1, 1]))
    rc, _, err = run(argv, capsys)
    assert rc == 0, err


def test_target_without_input(tmp_path, exp_file, capsys):
    np.save(tmp_path / "y.npy", np.zeros((12, 3, 1)))
    rc, _, err = run(["analyze", exp_file, "--target", tmp_path / "y.npy",
                      "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "--target", "--input")


@pytest.mark.parametrize("argv", [["analyze", "e.json"], ["bogus"], ["train", "e.json",
                                  "--out", "o", "--steps", "-4"], ["info", "--nope"]])
def test_usage_errors_are_one_line(argv, capsys):
    rc, _, err = run(argv, capsys)
    assert_user_error(rc, err, "gradlab")


def test_unknown_preset(capsys):
    rc, _, err = run(["--preset", "no_such_lesson"], capsys)
    assert_user_error(rc, err, "no_such_lesson")


def test_export_not_yet_available_or_validates(tmp_path, exp_file, capsys):
    rc, _, err = run(["export", exp_file, "--out", tmp_path / "x", "--formats", "gif"], capsys)
    assert_user_error(rc, err, "gif")
    rc, _, err = run(["export", "--out", tmp_path / "x"], capsys)
    assert_user_error(rc, err, "EXPERIMENT", "--preset")


def test_cupy_without_gpu(tmp_path, capsys):
    from core.backend import probe_cupy

    if probe_cupy()[0] is not None:
        pytest.skip("a GPU is present")
    path = write_exp(tmp_path / "e.json", backend={"device": "cupy", "dtype": "float32"})
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "cupy")


def test_internal_error_exit_1(capsys, monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr("core.backend.backend_info", broken)
    monkeypatch.delenv(main.DEBUG_ENV, raising=False)
    rc, _, err = run(["info"], capsys)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error: RuntimeError: boom")
    monkeypatch.setenv(main.DEBUG_ENV, "1")
    rc, _, err = run(["info"], capsys)
    assert rc == 1 and "Traceback" in err


def test_screenshot_needs_an_image_suffix(capsys):
    rc, _, err = run(["--screenshot", "window.gif"], capsys)
    assert_user_error(rc, err, "window.gif", ".png")


def test_load_experiment_attaches_weights(tmp_path, exp_file, weights_for):
    import core
    from core.weights import save_weights

    save_weights(tmp_path / "w.npz", weights_for)
    exp = core.load_experiment(exp_file, weights=tmp_path / "w.npz")
    assert set(exp.weights) == set(weights_for)
    assert isinstance(exp, core.Experiment)
    with pytest.raises(core.UserError, match="no such file"):
        core.load_experiment(exp_file, weights=tmp_path / "nope.npz")


# ----------------------------------------------------------------------------- no task, .gradlab

NO_TASK_MODEL = {"input_size": 3, "output_size": 2, "layers": [{"cell": "gru", "hidden_size": 4}]}


@pytest.fixture
def no_task(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The smallest experiment (format, version, model; no task) and arrays for it."""
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"format": "gradlab-experiment", "version": 1,
                                "model": NO_TASK_MODEL}))
    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", rng.normal(size=(8, 6, 3)))
    np.save(tmp_path / "y.npy", rng.normal(size=(8, 6, 2)))
    return path, tmp_path / "x.npy", tmp_path / "y.npy"


def test_analyze_and_train_without_a_task_run_on_the_arrays(tmp_path, no_task, capsys):
    import core
    from core.tracefile import load_trace

    path, x, y = no_task
    rc, _, err = run(["analyze", path, "--input", x, "--target", y, "--out", tmp_path / "a"],
                     capsys)
    assert rc == 0, err
    saved = load_trace(tmp_path / "a" / "trace.npz")
    assert saved["h.l0"].shape == (8, 6, 4)  # the whole of the given arrays
    api = core.trace(core.load_experiment(path), np.load(x), np.load(y))
    np.testing.assert_allclose(saved["loss"], api["loss"], rtol=1e-6)
    rc, _, err = run(["train", path, "--input", x, "--target", y, "--steps", 4,
                      "--out", tmp_path / "t"], capsys)
    assert rc == 0, err
    for name in ("experiment.json", "weights.safetensors", "history.csv", "trace.npz",
                 "summary.json"):
        assert (tmp_path / "t" / name).exists(), name
    assert len((tmp_path / "t" / "history.csv").read_text().splitlines()) == 1 + 4
    assert "task" not in json.loads((tmp_path / "t" / "experiment.json").read_text())
    assert load_trace(tmp_path / "t" / "trace.npz")["h.l0"].shape == (8, 6, 4)


@pytest.mark.parametrize("command", ["analyze", "train", "export"])
def test_no_task_and_no_arrays_is_one_error_line(tmp_path, no_task, capsys, command):
    path, _x, y = no_task
    rc, out, err = run([command, path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, f"{path} has no task section", "--input X.npy", "--target Y.npy")
    assert out == "" and not (tmp_path / "o").exists()
    rc, _, err = run([command, path, "--target", y, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, "--target given without --input", "no task section")


def _saved_run(tmp_path: Path, exp_file: Path) -> tuple[Path, dict]:
    """A .gradlab holding the experiment, weights trained for a few steps and their history."""
    from core.archive import save_archive
    from core.training.history import History
    from core.training.loop import train

    exp = load_experiment_config(exp_file)
    history = History()
    for snap in train(exp, steps=5, probe_every=0):
        history.record(snap)
    weights = snap.params()
    path = tmp_path / "run.gradlab"
    save_archive(path, exp, weights, history, snap.optimizer_state())
    return path, weights


def test_analyze_reads_a_gradlab_with_its_saved_weights(tmp_path, exp_file, capsys):
    import core
    from core.init import init_params
    from core.tracefile import load_trace
    from core.weights import save_weights

    path, weights = _saved_run(tmp_path, exp_file)
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert rc == 0, err
    saved = load_trace(tmp_path / "o" / "trace.npz")
    exp = core.load_experiment(exp_file)
    exp.weights = weights
    trained = core.trace(exp)
    assert float(saved["loss"]) == pytest.approx(float(trained["loss"]), rel=1e-12)
    exp.weights = None
    assert float(saved["loss"]) != pytest.approx(float(core.trace(exp)["loss"]), rel=1e-6)
    # --weights wins over the saved ones
    fresh = init_params(exp.model, exp.init)
    save_weights(tmp_path / "w.safetensors", fresh)
    rc, _, err = run(["analyze", path, "--weights", tmp_path / "w.safetensors",
                      "--out", tmp_path / "f"], capsys)
    assert rc == 0, err
    assert float(load_trace(tmp_path / "f" / "trace.npz")["loss"]) == pytest.approx(
        float(core.trace(exp)["loss"]), rel=1e-12)


def test_train_continues_from_the_weights_of_a_gradlab(tmp_path, exp_file, capsys):
    from core.weights import load_weights

    path, weights = _saved_run(tmp_path, exp_file)
    rc, _, err = run(["train", path, "--steps", 0, "--out", tmp_path / "t"], capsys)
    assert rc == 0, err
    exp = load_experiment_config(tmp_path / "t" / "experiment.json")
    after = load_weights(tmp_path / "t" / "weights.safetensors", exp.model)
    for name, value in weights.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_export_of_a_gradlab_draws_its_history_and_every_layer(tmp_path, exp_file, capsys):
    path, _weights = _saved_run(tmp_path, exp_file)
    rc, _, err = run(["export", path, "--out", tmp_path / "o", "--formats", "png,csv",
                      "--size", "320x240"], capsys)
    assert rc == 0, err
    out = tmp_path / "o"
    rows = (out / "training.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,") and len(rows) == 1 + 5  # the saved 5 steps
    assert (out / "training.png").exists()
    # every layer and direction, each with its own cell's gates (LSTM, then a GRU on top)
    keys = {"l0": "ifgo", "l0_reverse": "ifgo", "l1": "rzn"}
    assert {p.name for p in out.glob("gates.gate.*.csv")} == {
        f"gates.gate.{g}.{key}.csv" for key, gates in keys.items() for g in gates}
    assert {p.name for p in out.glob("gates.*.png")} == {
        f"gates.{g}.{key}.png" for key, gates in keys.items() for g in gates}
    assert {p.name for p in out.glob("hidden.h.*.csv")} == {f"hidden.h.{k}.csv" for k in keys}
    header = (out / "gates.csv").read_text().splitlines()[0].split(",")
    assert header == ["timestep", *[f"{key}.mean_{g}" for key, gates in keys.items()
                                    for g in gates]]
    # the experiment alone has no history: no training plot saying "Press Train"
    rc, _, err = run(["export", exp_file, "--out", tmp_path / "j", "--formats", "png",
                      "--size", "320x240"], capsys)
    assert rc == 0, err
    assert (tmp_path / "j" / "gradients.png").exists()
    assert not list((tmp_path / "j").glob("training*"))


def test_export_help_offers_size_and_theme(capsys):
    rc, out, _ = run(["export", "--help"], capsys)
    assert rc == 0
    assert "--size WxH" in out and "--theme {dark,light}" in out and "--width" not in out


@pytest.mark.parametrize("suffix, needle", [(".npy", "--input"), (".safetensors", "--weights"),
                                            (".txt", ".txt")])
def test_other_documents_are_refused_by_suffix(tmp_path, exp_file, capsys, suffix, needle):
    path = tmp_path / f"thing{suffix}"
    path.write_bytes(exp_file.read_bytes())
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, str(path), ".json", ".gradlab", needle)


def test_a_damaged_gradlab_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "bad.gradlab"
    path.write_text("not a zip")
    rc, _, err = run(["analyze", path, "--out", tmp_path / "o"], capsys)
    assert_user_error(rc, err, str(path), "not a Gradient Flow Lab archive")


def test_a_gradlab_with_its_own_arrays_needs_no_input_options(tmp_path, capsys):
    from core.experiment import experiment_from_dict
    from core.lab import Lab

    exp = experiment_from_dict({"format": "gradlab-experiment", "version": 1,
                                "model": {"input_size": 3, "output_size": 2,
                                          "layers": [{"cell": "gru", "hidden_size": 4}]}})
    lab = Lab(exp)
    rng = np.random.default_rng(3)
    assert lab.set_data(rng.normal(size=(6, 4, 3)), rng.normal(size=(6, 4, 2)))
    lab.train(2)
    assert lab.save(tmp_path / "mine.gradlab")
    rc, _, err = run(["analyze", tmp_path / "mine.gradlab", "--out", tmp_path / "a"], capsys)
    assert rc == 0, err
    assert float(np.load(tmp_path / "a" / "trace.npz")["loss"]) == pytest.approx(
        float(lab.probe().arrays["loss"]))
    rc, _, err = run(["train", tmp_path / "mine.gradlab", "--steps", 3,
                      "--out", tmp_path / "t"], capsys)
    assert rc == 0, err
    rows = (tmp_path / "t" / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 + 3  # the saved run goes on: its 2 steps, then 3 more
