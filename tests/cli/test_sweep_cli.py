"""``gradlab sweep``: the issue's own sweep on an embedded Dask cluster, and bad grids as
one error line (exit 2) before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import main  # noqa: E402


def run(argv: list, capsys) -> tuple[int, str, str]:
    rc = main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_vanishing_tanh_sweep(tmp_path, capsys):
    import xarray as xr

    out = tmp_path / "D"
    argv = ["sweep", "--preset", "vanishing_tanh", "--grid", "init.scales.recurrent=0.5:2.0:6",
            "--grid", "model.layers.0.cell=rnn,lstm", "--seeds", 3, "--train-steps", 60,
            "--out", out, "--workers", 2]
    rc, stdout, err = run(argv, capsys)
    assert rc == 0, err
    assert "36 runs computed" in stdout
    assert "36/36 runs" in err  # the progress line's last state
    ds = xr.open_zarr(out / "sweep.zarr")
    assert ds.sizes["init.scales.recurrent"] == 6
    assert ds.sizes["model.layers.0.cell"] == 2
    assert ds.sizes["seed"] == 3 and ds.sizes["t"] == 50
    for name in ("gradnorm", "grad_ratio", "spectral_radius", "final_loss", "val_loss", "diverged"):
        assert name in ds.data_vars
    assert "--grid init.scales.recurrent=0.5:2.0:6" in ds.attrs["command"]
    median = ds.grad_ratio.sel({"model.layers.0.cell": "rnn"}).median("seed").values
    assert np.all(np.diff(median) > 0), median  # the tanh RNN's ratio rises with the scale
    assert median[0] < 1e-10 < median[-1]
    # run again: refused without --resume, nothing to do with it
    rc, _out, err = run(argv, capsys)
    assert rc == 2 and err.count("\n") == 1 and "--resume" in err
    rc, stdout, err = run([*argv, "--resume"], capsys)
    assert rc == 0, err
    assert "0 runs computed, 36 already there" in stdout


@pytest.mark.parametrize("grid, needle", [
    ("init.scales.recurent=1,2", "init.scales.recurent: no such field"),
    ("init.scales.recurrent=a,b", "expected a number, got 'a'"),
    ("init.scales.recurrent=1:2", "START:STOP:N"),
    ("init.scales.recurrent=0:2:3log", "above 0"),
    ("model.layers.0.cell=rnn,foo", "'foo' is not one of"),
    ("init=1,2", "a section, not a field"),
    ("nonsense", "expected PATH=VALUES"),
])
def test_bad_grids_exit_2_with_one_line(tmp_path, capsys, grid, needle):
    rc, _out, err = run(["sweep", "--preset", "vanishing_tanh", "--grid", grid,
                         "--out", tmp_path / "D"], capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]
    assert not (tmp_path / "D" / "sweep.zarr").exists()


def test_usage_errors(tmp_path, capsys):
    rc, _o, err = run(["sweep", "--grid", "init.forget_bias=0,1", "--out", tmp_path], capsys)
    assert rc == 2 and "EXPERIMENT file or --preset" in err
    rc, _o, err = run(["sweep", "--preset", "vanishing_tanh", "--grid", "init.forget_bias=0,1",
                       "--out", tmp_path, "--workers", 2, "--scheduler", "tcp://127.0.0.1:1"],
                      capsys)
    assert rc == 2 and "give one of them" in err
    rc, _o, err = run(["sweep", "--preset", "nope", "--grid", "init.forget_bias=0,1",
                       "--out", tmp_path], capsys)
    assert rc == 2 and err.count("\n") == 1


def test_a_backend_that_cannot_run_here_fails_before_any_run(tmp_path, capsys):
    from core.backend import resolve_backend

    try:
        resolve_backend("cupy", "float32")
    except Exception:  # no CuPy or no GPU: the case under test
        pass
    else:
        pytest.skip("CuPy runs here")
    rc, _o, err = run(["sweep", "--preset", "vanishing_tanh", "--grid", "backend.device=numpy,cupy",
                       "--out", tmp_path / "D"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "cupy" in err.lower()
    assert not (tmp_path / "D" / "sweep.zarr").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    rc, _o, err = run(["sweep", "--preset", "vanishing_tanh", "--grid", "init.forget_bias=0,1",
                       "--out", tmp_path, "--scheduler", "tcp://127.0.0.1:9"], capsys)
    assert rc == 2, err
    assert err.count("\n") == 1 and "cannot reach a Dask scheduler" in err


def test_ctrl_c_keeps_what_finished_and_resume_finishes(tmp_path, capsys, monkeypatch):
    import contextlib

    import xarray as xr

    from core.sweep import job

    @contextlib.contextmanager
    def here(_args, _embedded):  # the runs in this process, where the job can be patched
        yield None

    real = job.run_point
    calls = []

    def interrupted(data, steps):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(data, steps)

    monkeypatch.setattr(main, "_sweep_client", here)
    monkeypatch.setattr(job, "run_point", interrupted)
    argv = ["sweep", "--preset", "vanishing_tanh", "--grid", "init.scales.recurrent=0.5:2:4",
            "--seeds", 2, "--out", tmp_path]
    rc, _out, err = run(argv, capsys)
    assert rc == 130
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: interrupted; 3 of 8 runs are kept") and "--resume" in lines[-1]
    assert int((xr.open_zarr(tmp_path / "sweep.zarr").status.values == "ok").sum()) == 3
    monkeypatch.setattr(job, "run_point", real)
    rc, out, err = run([*argv, "--resume"], capsys)
    assert rc == 0, err
    assert "5 runs computed, 3 already there" in out


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_the_embedded_cluster_cleanly(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it: one error line, exit
    130, the finished runs kept, no worker left behind."""
    import os
    import signal
    import subprocess
    import time

    import xarray as xr

    p = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "sweep", "--preset", "vanishing_tanh",
         "--grid", "init.scales.recurrent=0.5:2.0:6", "--grid", "model.layers.0.cell=rnn,lstm",
         "--seeds", "3", "--train-steps", "200", "--out", str(tmp_path), "--workers", "2"],
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    store = tmp_path / "sweep.zarr" / "status"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        if store.exists() and any(f.name[0].isdigit() for f in store.iterdir()):
            break  # a run is written
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted;"), err
    kept = int((xr.open_zarr(tmp_path / "sweep.zarr").status.values == "ok").sum())
    assert 1 <= kept < 36
    assert f"{kept} of 36 runs are kept" in lines[0]
    for _ in range(100):  # the workers (same process group) are gone too
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a worker process outlived the sweep")
