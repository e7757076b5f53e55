"""Faults during a command: signals, kill -9 and a full disk leave the old output folder
or the new one, never a mix, and the next run removes what was left behind."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

EXP = {"format": "gradlab-experiment", "version": 1,
       "model": {"layers": [{"cell": "lstm", "hidden_size": 8}]},
       "task": {"name": "sine", "seq_len": 20, "batch_size": 4},
       "training": {"steps": 100000, "eval_every": 0, "trace_every": 0},
       "backend": {"device": "numpy", "dtype": "float32"}}


def start(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), *map(str, args)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def old_folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("experiment.json", "weights.safetensors", "history.csv", "trace.npz",
                 "summary.json"):
        (out / name).write_text("old run")
    (out / "notes.txt").write_text("mine")
    return out


def wait_for_staging(tmp_path: Path, timeout: float = 60.0, settle: float = 1.0,
                     proc: subprocess.Popen | None = None) -> None:
    """Wait until the command has made its staging folder, then ``settle`` seconds more
    (by default into the training loop); ``proc`` must not end before."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(p.name.endswith(".staging") for p in tmp_path.iterdir()):
            time.sleep(settle)
            return
        assert proc is None or proc.poll() is None, "the command ended before writing"
        time.sleep(0.02)
    raise AssertionError("the command never started writing")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_training_like_ctrl_c(tmp_path, sig):
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(EXP))
    out = old_folder(tmp_path)
    proc = start(["train", exp, "--out", out])
    wait_for_staging(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopped after" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "experiment.json", "history.csv", "notes.txt", "summary.json", "trace.npz",
        "weights.safetensors"]
    assert (out / "weights.safetensors").read_bytes() != b"old run"
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.json", "out"]


def test_kill_9_leaves_the_old_folder_and_the_next_run_cleans_up(tmp_path):
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(EXP))
    out = old_folder(tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = start(["train", exp, "--out", out])
    wait_for_staging(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    short = dict(EXP, training={"steps": 2, "eval_every": 0, "trace_every": 0})
    exp.write_text(json.dumps(short))
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "train", str(exp), "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.json", "out"]


def test_a_full_disk_is_exit_2_naming_the_file_and_keeps_the_old_folder(tmp_path):
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(dict(EXP, training={"steps": 2})))
    out = old_folder(tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def limit() -> None:  # files may grow to 2 KiB: the weights and the trace cannot
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = start(["train", exp, "--out", out], preexec_fn=limit)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "cannot write" in lines[-1], err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.json", "out"]


# export and compare write their files all-or-nothing too: a folder holding an earlier
# run's files and the user's own, a kill -9 at a random moment, a full disk.
OUTPUT_RUNS = {
    "export": (["--formats", "png,csv", "--size", "480x320"],
               {"experiment.json", "signals.png", "gradients.csv", "gates.f.l0.png"}),
    "compare": (["--vary", "init.forget_bias=0,1", "--seeds", "2", "--train-steps", "30"],
                {"compare.csv", "compare.json", "compare.png", "compare.svg"}),
}
SMALL = dict(EXP, training={"steps": 2, "eval_every": 0, "trace_every": 0})


def earlier_output(tmp_path: Path, owned: set[str]) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    for name in owned:
        (out / name).write_text("old run")
    (out / "notes.txt").write_text("mine")
    return out


def earlier_run(tmp_path: Path, command: str) -> tuple[Path, list[str], Path, dict]:
    """An experiment file, the command's options, an --out folder holding an earlier
    run of it and the user's own file, and that folder's contents now."""
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(SMALL))
    extra, owned = OUTPUT_RUNS[command]
    out = earlier_output(tmp_path, owned)
    return exp, extra, out, {p.name: p.read_bytes() for p in out.iterdir()}


def check_new_output(out: Path, command: str) -> None:
    names = {p.name for p in out.iterdir()}
    assert (out / "notes.txt").read_text() == "mine"
    assert not any((out / n).read_bytes() == b"old run" for n in names)  # nothing stale
    if command == "export":
        assert {"experiment.json", "signals.png", "gradients.csv"} <= names
        assert "gates.f.l0.png" not in names or (out / "gates.f.l0.png").stat().st_size > 100
    else:
        assert names == OUTPUT_RUNS[command][1] | {"notes.txt"}
        assert (out / "compare.csv").read_text().startswith("variant,key,t,mean,low,high")


def run_to_the_end(command: str, exp, extra: list, out) -> None:
    """``gradlab COMMAND EXP … --out OUT`` in a subprocess, which must succeed."""
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), command, str(exp), *extra,
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", list(OUTPUT_RUNS))
def test_export_and_compare_replace_an_earlier_run_and_keep_the_users_files(tmp_path, command):
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(SMALL))
    extra, owned = OUTPUT_RUNS[command]
    # an earlier export of a two-layer model: its plots of layer 1 must not outlive it
    out = earlier_output(tmp_path, owned | {"hidden.h.l1.png", "signals.sample3.csv"})
    (out / "photo.png").write_text("mine too")  # not an export's name: the user's
    run_to_the_end(command, exp, extra, out)
    assert (out / "photo.png").read_text() == "mine too"
    (out / "photo.png").unlink()
    if command == "compare":  # plot-like names are the user's files to compare
        assert (out / "hidden.h.l1.png").read_text() == "old run"
        (out / "hidden.h.l1.png").unlink()
        (out / "signals.sample3.csv").unlink()
    check_new_output(out, command)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.json", "out"]


@pytest.mark.parametrize("command", list(OUTPUT_RUNS))
def test_kill_9_of_export_and_compare_leaves_one_folder_and_the_next_run_cleans_up(tmp_path,
                                                                                  command):
    import random

    exp, extra, out, before = earlier_run(tmp_path, command)
    proc = start([command, exp, *extra, "--out", out])
    wait_for_staging(tmp_path, 120, random.Random(os.getpid()).uniform(0.0, 1.0), proc)
    proc.kill()
    proc.communicate(timeout=60)
    now = {p.name: p.read_bytes() for p in out.iterdir()}
    if now != before:  # the new folder, whole
        check_new_output(out, command)
    run_to_the_end(command, exp, extra, out)
    check_new_output(out, command)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.json", "out"]


@pytest.mark.parametrize("command", list(OUTPUT_RUNS))
def test_a_full_disk_under_export_and_compare_is_exit_2_and_keeps_the_old_folder(tmp_path,
                                                                                 command):
    exp, extra, out, before = earlier_run(tmp_path, command)

    def limit() -> None:  # files may grow to 2 KiB: no PNG fits
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = start([command, exp, *extra, "--out", out], preexec_fn=limit)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "cannot write" in lines[-1], err
    assert str(out) in lines[-1] and ".staging" not in lines[-1], err  # names the real path
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.json", "out"]


BIG_EIG = {"format": "gradlab-experiment", "version": 1,  # one 3000 x 3000 eigenvalue problem
           "model": {"layers": [{"cell": "rnn", "hidden_size": 3000}]},
           "task": {"name": "sine", "seq_len": 5, "batch_size": 1},
           "backend": {"device": "numpy", "dtype": "float64"}}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_a_long_eigenvalue_call_ends_at_once_and_writes_nothing(tmp_path, sig):
    """LAPACK cannot be interrupted: the call runs in a thread of its own, and the
    command stops waiting for it (exit 130 within a second, the old folder intact)."""
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(BIG_EIG))
    out = old_folder(tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = start(["analyze", exp, "--out", out],
                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # into the eigenvalues (the pass of 5 steps takes milliseconds)
    wait_for_staging(tmp_path, 120, 0.7, proc)
    assert proc.poll() is None, "the eigenvalues took under a second: use a larger size"
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert took < 1.5, f"{took:.1f} s after the signal"
    assert err.strip().splitlines() == ["error: interrupted"], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.json", "out"]
