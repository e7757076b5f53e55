"""core.sweep.phase: a sweep as a map (medians over seeds, unfinished runs left out),
positions on linear, log and text axes, a cell's setting, and what is not a sweep."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from core.sweep import parse_grid, plan, run_sweep
from core.sweep.phase import changes_at, grid_axes, open_sweep, phase_map, position
from tests.core.test_sweep import small


def test_positions():
    assert position([0.5, 1.0, 1.5], 1.25) == pytest.approx(1.5)
    assert position([0.1, 1.0, 10.0], 10 ** 0.5) == pytest.approx(1.5)  # log-spaced: in log
    assert position([3.0, 2.0, 1.0], 2.5) == pytest.approx(0.5)  # decreasing
    assert position([10, 20, 50], 35) == pytest.approx(1.5)
    assert position([0.5, 1.0], 1.5) is None and position([0.5, 1.0], 0.25) is None
    assert position(["rnn", "lstm"], "lstm") == 1.0 and position(["rnn", "lstm"], "gru") is None
    assert position([True, False], False) == 1.0
    assert position([2.0], 2.0) == 0.0 and position([2.0], 3.0) is None


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    exp = small()
    out = tmp_path_factory.mktemp("s")
    axes = [parse_grid("init.scales.recurrent=0.5,1,2", exp), parse_grid("task.seq_len=6,12", exp),
            parse_grid("model.layers.0.cell=rnn,gru", exp)]
    run_sweep(plan(exp, axes, seeds=3), out)
    return open_sweep(out)  # the folder that holds sweep.zarr


def test_a_map_is_the_median_over_finished_runs(sweep):
    assert grid_axes(sweep) == ["init.scales.recurrent", "task.seq_len", "model.layers.0.cell"]
    pm = phase_map(sweep, "grad_ratio", "init.scales.recurrent", "task.seq_len",
                   {"model.layers.0.cell": 1})
    assert pm.values.shape == (2, 3) and pm.fixed == {"model.layers.0.cell": 1}
    raw = sweep.grad_ratio.values[:, :, 1, :]  # (scale, seq_len, seed) of the gru
    np.testing.assert_allclose(pm.values, np.log10(np.median(raw, axis=-1)).T)
    edited = sweep.copy(deep=True)
    edited["status"].values[2, 1, 1, 0] = ""  # one run not finished: left out
    pm2 = phase_map(edited, "grad_ratio", "init.scales.recurrent", "task.seq_len",
                    {"model.layers.0.cell": 1})
    assert pm2.values[1, 2] == pytest.approx(np.log10(np.median(raw[2, 1, 1:])))
    one_row = phase_map(sweep, "spectral_radius", "init.scales.recurrent")
    assert one_row.values.shape == (1, 3) and one_row.y is None
    assert one_row.fixed == {"task.seq_len": 0, "model.layers.0.cell": 0}
    with pytest.raises(ConfigError, match="final_loss: not in this sweep"):
        phase_map(sweep, "final_loss", "init.scales.recurrent")
    with pytest.raises(ConfigError, match="not an axis"):
        phase_map(sweep, "loss", "init.forget_bias")


def test_a_cell_gives_its_whole_setting(sweep):
    pm = phase_map(sweep, "loss", "task.seq_len", "init.scales.recurrent",
                   {"model.layers.0.cell": 1})
    assert changes_at(pm, 1, 2, sweep) == [("task.seq_len", 12), ("init.scales.recurrent", 2.0),
                                           ("model.layers.0.cell", "gru")]


def test_not_a_sweep(tmp_path):
    with pytest.raises(ConfigError, match="not a readable sweep"):
        open_sweep(tmp_path)


def test_the_measured_edge_along_the_scale_axis():
    from core.sweep.phase import PhaseMap, measured_edge

    values = np.array([[-3.0, -1.0, 1.0, 2.0],          # crosses halfway from 1.0 to 1.5
                       [-np.inf, 0.5, 1.0, 2.0],         # from a ratio of 0: at the first finite
                       [-3.0, -2.0, -1.0, -0.5]])        # never
    pm = PhaseMap("grad_ratio", "init.scales.recurrent", "task.seq_len", [0.5, 1.0, 1.5, 2.0],
                  [10, 20, 50], values)
    assert measured_edge(pm) == [pytest.approx(1.25), pytest.approx(1.0), None]
    transposed = PhaseMap("grad_ratio", "task.seq_len", "init.scales.recurrent", [10, 20, 50],
                          [0.5, 1.0, 1.5, 2.0], values.T)
    assert measured_edge(transposed) == measured_edge(pm)
    assert measured_edge(PhaseMap("loss", pm.x, pm.y, pm.x_values, pm.y_values, values)) == []


def test_a_nullable_axis_reads_as_written(tmp_path):
    exp = small()
    p = plan(exp, [parse_grid("training.tbptt=null,5", exp)])
    run_sweep(p, tmp_path)
    ds = open_sweep(tmp_path)
    values = [str(v) for v in ds["training.tbptt"].values]
    assert values == ["null", "5"]
    assert position(values, None) == 0.0 and position(values, 5) == 1.0
    pm = phase_map(ds, "loss", "training.tbptt")
    assert changes_at(pm, 0) == [("training.tbptt", "null")]
    from core.paths import with_paths

    assert with_paths(exp, changes_at(pm, 0))[0].training.tbptt is None  # loads back
