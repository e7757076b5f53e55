"""The "Edge of chaos" lesson: its shipped sweep is this lesson's, recomputes exactly, and
shows what the lesson's text says it shows."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import core.lessons as lessons
from core.experiment import experiment_to_dict
from core.meanfield import critical_scale
from core.paths import with_paths
from core.sweep import parse_grid, plan, run_point
from core.sweep.phase import open_sweep

ROOT = Path(__file__).resolve().parents[2]
NAME = "edge_of_chaos"
CELL = "model.layers.0.cell"


@pytest.fixture(autouse=True)
def checkout_lessons(monkeypatch):
    """This checkout's lessons, whatever an installed copy holds."""
    monkeypatch.setattr(lessons, "LESSONS_DIR", ROOT / "resources" / "lessons")


@pytest.fixture
def ds():
    path = lessons.lesson_sweep(NAME)
    assert path is not None and path.stat().st_size < 300_000  # small enough to ship
    return open_sweep(path)


def log_ratio(ds, cell):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a ratio of 0 is -inf
        return np.log10(ds.grad_ratio.sel({CELL: cell}).median("seed").values)  # (scale, T)


def test_the_sweep_is_this_lessons_and_recomputes_exactly(ds):
    exp = lessons.load_lesson(NAME)
    settings = {k: v for k, v in experiment_to_dict(exp).items() if k not in ("title", "description")}
    stored = json.loads(ds.attrs["experiment"])
    assert {k: v for k, v in stored.items() if k not in ("title", "description")} == settings
    assert dict(ds.sizes) == {"init.scales.recurrent": 15, "task.seq_len": 4, CELL: 2,
                              "seed": 3, "t": 100}
    assert (ds.status.values == "ok").all()
    axes = [parse_grid(a, exp) for a in ("init.scales.recurrent=0.5:4.0:15",
                                         "task.seq_len=10,20,50,100", f"{CELL}=rnn,lstm")]
    p = plan(exp, axes, seeds=3)
    for index, seed in (((6, 2, 0), 1), ((14, 3, 1), 2)):
        point = next(pt for pt in p.points if pt.index == index)
        got = run_point(p.seeded(point, seed))
        stored = ds.gradnorm.values[(*index, seed)]
        # float32: the compiled time loop and the Python loop sum in other orders
        np.testing.assert_allclose(stored[:got["gradnorm"].size], got["gradnorm"], rtol=1e-5)
        assert ds.grad_ratio.values[(*index, seed)] == pytest.approx(got["grad_ratio"],
                                                                     rel=1e-4)


def test_the_map_shows_what_the_text_says(ds):
    text = lessons.load_lesson(NAME).description
    scales = ds["init.scales.recurrent"].values
    rnn, lstm = log_ratio(ds, "rnn"), log_ratio(ds, "lstm")
    exp = lessons.load_lesson(NAME)
    line = critical_scale(exp)
    assert "2.18" in text and line == pytest.approx(2.18, abs=0.005)
    for j, T in enumerate(ds["task.seq_len"].values):  # the measured edge, near scale 2
        col = rnn[:, j]
        k = int(np.argmax(col >= 0))
        assert np.all(col[:k] < 0) and k > 0
        crossing = scales[k - 1] + (scales[k] - scales[k - 1]) * -col[k - 1] / (col[k] - col[k - 1])
        assert 1.85 < crossing < 2.05 < line, (T, crossing)
        mf = critical_scale(with_paths(exp, [("task.seq_len", int(T))])[0])
        assert mf == pytest.approx(line, abs=0.02)
    one, four = list(scales).index(1.0), len(scales) - 1
    assert rnn[one, 0] == pytest.approx(-2, abs=0.5) and rnn[one, 3] == pytest.approx(-24, abs=0.5)
    assert rnn[four, 3] == pytest.approx(7, abs=0.5)
    assert np.all(lstm < 0)  # no edge in this range
    assert lstm[0, 3] == pytest.approx(-23, abs=0.5) and lstm[four, 3] == pytest.approx(-3, abs=0.5)
    assert "10⁻²⁴" in text and "10⁷" in text and "10⁻²³" in text


def test_the_lesson_is_listed():
    assert NAME in dict(lessons.list_lessons())
    assert lessons.lesson_sweep("vanishing_tanh") is None
