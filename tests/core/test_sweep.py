"""Sweeps: grid parsing, the plan's invalid points, the zarr layout, resuming after an
interrupt, and the same numbers in this process and on a Dask worker."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from core.errors import ConfigError
from core.experiment import experiment_from_dict
from core.jobs import Cancelled
from core.sweep import job as job_module
from core.sweep import parse_grid, plan, run_sweep
from core.sweep.runner import embedded_client


def small(cell: str = "rnn", activation: str = "tanh", T: int = 12):
    return experiment_from_dict({
        "format": "gradlab-experiment", "version": 1,
        "model": {"input_size": 2, "output_size": 1, "pattern": "many_to_one",
                  "layers": [{"cell": cell, "hidden_size": 6, "activation": activation}]},
        "task": {"name": "adding", "seq_len": T, "batch_size": 4},
        "backend": {"device": "numpy", "dtype": "float64"}})


# ----------------------------------------------------------------------------- grid


def test_list_linear_and_log_values():
    exp = small()
    a = parse_grid("init.scales.recurrent=0.5:2:4", exp)
    assert a.path == "init.scales.recurrent"
    assert a.values == pytest.approx((0.5, 1.0, 1.5, 2.0))
    b = parse_grid("init.scales.recurrent=0.1:10:3log", exp)
    assert b.values == pytest.approx((0.1, 1.0, 10.0))
    c = parse_grid("model.layers.0.cell=rnn,lstm,gru", exp)
    assert c.values == ("rnn", "lstm", "gru")
    d = parse_grid("init.scales.recurrent=1,2", exp)  # numbers of a number field are floats
    assert d.values == (1.0, 2.0) and all(type(v) is float for v in d.values)
    e = parse_grid("task.seq_len=10:40:4", exp)  # a whole-number field stays whole
    assert e.values == (10, 20, 30, 40) and all(type(v) is int for v in e.values)


@pytest.mark.parametrize("text, needle", [
    ("init.scales.recurent=1,2", "init.scales.recurent: no such field"),
    ("init=1,2", "a section, not a field"),
    ("init.scales.recurrent", "expected PATH=VALUES"),
    ("init.scales.recurrent=1:2", "START:STOP:N"),
    ("init.scales.recurrent=0:1:3log", "above 0"),
    ("init.scales.recurrent=1:2:0", "N must be 1"),
    ("model.layers.0.cell=0:1:3", "needs a numeric field"),
    ("task.seq_len=10:11:4", "rounds to the same whole number"),
    ("init.scales.recurrent=1,1", "given twice"),
    ("init.scales.recurrent=2,2.0", "given twice"),
])
def test_bad_grids_are_named(text, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        parse_grid(text, small())


def test_a_value_that_fits_no_point_fails_the_plan():
    exp = small()
    with pytest.raises(ConfigError, match="expected a number"):
        plan(exp, [parse_grid("init.scales.recurrent=1,abc", exp)])
    with pytest.raises(ConfigError, match=r"model\.layers\.0\.cell"):
        plan(exp, [parse_grid("model.layers.0.cell=rnn,foo", exp)])
    with pytest.raises(ConfigError, match="on the grid twice"):
        plan(exp, [parse_grid("init.forget_bias=0,1", exp), parse_grid("init.forget_bias=2", exp)])
    with pytest.raises(ConfigError, match="--seeds"):
        plan(exp, [parse_grid("init.seed=0,1", exp)])


def test_invalid_combinations_are_recorded_and_cells_fitted(tmp_path):
    exp = small(activation="relu")
    axes = [parse_grid("model.layers.0.cell=rnn,lstm", exp),
            parse_grid("model.layers.0.peephole=false,true", exp)]
    p = plan(exp, axes, seeds=2)
    bad = [pt for pt in p.points if pt.experiment is None]
    assert [pt.index for pt in bad] == [(0, 1)]  # an rnn with peepholes, set on purpose
    assert "peephole" in bad[0].reason
    lstm = next(pt for pt in p.points if pt.index == (1, 0))
    assert lstm.experiment.model.layers[0].activation == "tanh"
    assert any("activation tanh" in n for n in lstm.notes)
    assert p.jobs == 3 * 2
    stats = run_sweep(p, tmp_path)
    assert (stats.computed, stats.total) == (6, 6)
    ds = xr.open_zarr(tmp_path / "sweep.zarr")
    status = ds.status.values
    assert all(s.startswith("invalid: ") and "peephole" in s for s in status[0, 1])
    assert (status[0, 0] == "ok").all() and (status[1] == "ok").all()
    assert np.isnan(ds.grad_ratio.values[0, 1]).all()
    assert "activation tanh" in str(ds.notes.values[1, 0])
    assert ds.notes.values[0, 0] == ""


# ----------------------------------------------------------------------------- the store


def test_layout_and_values_match_a_direct_probe(tmp_path):
    from core.diagnosis import gradient_ratio
    from core.lab import Lab

    exp = small()
    axes = [parse_grid("init.scales.recurrent=0.5,1.5", exp), parse_grid("task.seq_len=8,12", exp)]
    p = plan(exp, axes, seeds=2, train_steps=3)
    run_sweep(p, tmp_path, command="gradlab sweep test")
    ds = xr.open_zarr(tmp_path / "sweep.zarr")
    assert dict(ds.sizes) == {"init.scales.recurrent": 2, "task.seq_len": 2, "seed": 2, "t": 12}
    assert list(ds["task.seq_len"].values) == [8, 12]
    assert list(ds.seed.values) == [0, 1]
    for name in ("gradnorm", "grad_ratio", "spectral_radius", "loss", "final_loss", "val_loss",
                 "diverged", "status"):
        assert name in ds.data_vars
    assert ds.attrs["command"] == "gradlab sweep test"
    assert json.loads(ds.attrs["experiment"])["model"]["layers"][0]["cell"] == "rnn"
    assert (ds.steps.values == 3).all() and not ds.diverged.values.any()
    # one point by hand: scale 1.5, seq_len 8, seed 1
    data = json.loads(ds.attrs["experiment"])
    data["init"]["scales"]["recurrent"] = 1.5
    data["task"]["seq_len"] = 8
    data["init"]["seed"] += 1
    lab = Lab(experiment_from_dict(data))
    r = lab.probe(jacobian=False, connectivity=False)
    g = r.arrays["gradnorm.l0"]
    got = ds.gradnorm.values[1, 0, 1]
    np.testing.assert_array_equal(got[:8], g)
    assert np.isnan(got[8:]).all()  # padded past its length
    assert ds.grad_ratio.values[1, 0, 1] == gradient_ratio(g)
    assert ds.spectral_radius.values[1, 0, 1] == r.spectral_radius["weight_hh_l0"]
    assert ds.loss.values[1, 0, 1] == float(r.arrays["loss"])
    assert np.isfinite(ds.final_loss.values).all() and np.isfinite(ds.val_loss.values).all()


def test_an_existing_store_needs_resume_and_the_same_sweep(tmp_path):
    exp = small()
    p = plan(exp, [parse_grid("init.forget_bias=0,1", exp)])
    run_sweep(p, tmp_path)
    with pytest.raises(ConfigError, match="already exists; add --resume"):
        run_sweep(p, tmp_path)
    other = plan(exp, [parse_grid("init.forget_bias=0,2", exp)])
    with pytest.raises(ConfigError, match="another grid"):
        run_sweep(other, tmp_path, resume=True)
    more_seeds = plan(exp, [parse_grid("init.forget_bias=0,1", exp)], seeds=2)
    with pytest.raises(ConfigError, match="another seeds"):
        run_sweep(more_seeds, tmp_path, resume=True)


def test_resume_after_an_interrupt_recomputes_nothing_written(tmp_path, monkeypatch):
    exp = small()
    axes = [parse_grid("init.scales.recurrent=0.5:2:3", exp), parse_grid("model.layers.0.cell=rnn,gru", exp)]
    p = plan(exp, axes, seeds=2)
    real = job_module.run_point
    calls: list[tuple[float, str, int]] = []

    def counted(data, steps):
        if len(calls) == 5:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the sixth run
        calls.append((data["init"]["scales"]["recurrent"], data["model"]["layers"][0]["cell"],
                      data["init"]["seed"]))
        return real(data, steps)

    monkeypatch.setattr(job_module, "run_point", counted)
    with pytest.raises(Cancelled):
        run_sweep(p, tmp_path)
    first = xr.open_zarr(tmp_path / "sweep.zarr").load()
    assert int((first.status.values == "ok").sum()) == 5
    assert int((first.status.values == "").sum()) == 12 - 5
    before = set(calls)
    calls.clear()
    monkeypatch.setattr(job_module, "run_point", lambda d, s: (calls.append(
        (d["init"]["scales"]["recurrent"], d["model"]["layers"][0]["cell"], d["init"]["seed"])),
        real(d, s))[1])
    stats = run_sweep(p, tmp_path, resume=True)
    assert (stats.computed, stats.kept) == (7, 5)
    assert len(calls) == 7 and not before & set(calls)  # nothing written is run again
    after = xr.open_zarr(tmp_path / "sweep.zarr").load()
    assert (after.status.values == "ok").all()
    done = first.status.values == "ok"
    np.testing.assert_array_equal(after.gradnorm.values[done], first.gradnorm.values[done])
    # and the whole equals an uninterrupted sweep
    monkeypatch.setattr(job_module, "run_point", real)
    run_sweep(p, tmp_path / "again")
    again = xr.open_zarr(tmp_path / "again" / "sweep.zarr").load()
    np.testing.assert_array_equal(after.gradnorm.values, again.gradnorm.values)


def test_cancel_stops_between_runs(tmp_path):
    exp = small()
    p = plan(exp, [parse_grid("init.forget_bias=0:3:4", exp)])
    seen = []
    with pytest.raises(Cancelled):
        run_sweep(p, tmp_path, on_progress=lambda pr: seen.append(pr.done),
                  cancel=lambda: len(seen) > 2)
    status = xr.open_zarr(tmp_path / "sweep.zarr").status.values
    assert list(status) == ["ok", "ok", "", ""]


def test_a_dask_worker_gives_the_same_numbers(tmp_path):
    exp = small()
    axes = [parse_grid("init.scales.recurrent=0.5,2", exp), parse_grid("model.layers.0.cell=rnn,lstm", exp)]
    p = plan(exp, axes, seeds=2, train_steps=5)
    run_sweep(p, tmp_path / "here")
    with embedded_client(1) as client:
        stats = run_sweep(p, tmp_path / "dask", client=client)
    assert stats.computed == 8
    here = xr.open_zarr(tmp_path / "here" / "sweep.zarr").load()
    there = xr.open_zarr(tmp_path / "dask" / "sweep.zarr").load()
    for name in here.data_vars:
        np.testing.assert_array_equal(here[name].values, there[name].values, err_msg=name)


def test_a_sweep_needs_a_task():
    data = {"format": "gradlab-experiment", "version": 1,
            "model": {"input_size": 1, "output_size": 1, "layers": [{"cell": "rnn", "hidden_size": 4}]}}
    exp = experiment_from_dict(data)
    with pytest.raises(ConfigError, match="runs on the experiment's task"):
        plan(exp, [parse_grid("init.forget_bias=0,1", exp)])


def test_progress_rate_and_time_left():
    from core.sweep import Progress

    p = Progress(done=10, total=40, elapsed_s=5.0)
    assert p.rate == 2.0 and p.eta_s == 15.0
    assert Progress(0, 40, 0.0).eta_s is None and Progress(0, 40, 0.0).rate == 0.0
