"""The training loop: determinism, cancel, resume, history, exploding gradients, learning."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from core.backend import resolve_backend
from core.errors import DataError, MemoryLimitError
from core.experiment import (
    BackendConfig,
    ClipConfig,
    Experiment,
    InitConfig,
    LayerConfig,
    ModelConfig,
    Scales,
    ScheduleConfig,
    TaskConfig,
    TrainingConfig,
    experiment_from_dict,
)
from core.init import init_params
from core.network import Network
from core.tasks import persistence_baseline
from core.training.history import COLUMNS, History
from core.training.loop import Snapshot, _Data, evaluate, evaluation_batch, train


def small(cell: str = "lstm", *, steps: int = 6, dtype: str = "float32", **training) -> Experiment:
    """A tiny sine-forecasting experiment on NumPy."""
    return Experiment(
        model=ModelConfig(layers=[LayerConfig(cell=cell, hidden_size=8)]),
        init=InitConfig(seed=3),
        task=TaskConfig(name="sine", seq_len=12, batch_size=4),
        training=TrainingConfig(steps=steps, eval_every=2, trace_every=3, **training),
        backend=BackendConfig(device="numpy", dtype=dtype),
    )


def run(exp: Experiment, **kw) -> list[Snapshot]:
    kw.setdefault("probe_every", 0)
    return list(train(exp, **kw))


def finite(params: dict[str, np.ndarray]) -> bool:
    return all(np.all(np.isfinite(v)) for v in params.values())


# ----------------------------------------------------------------------------- basics


def test_one_snapshot_per_step_with_the_last_marked_done():
    snaps = run(small(steps=5))
    assert [s.step for s in snaps] == [1, 2, 3, 4, 5]
    assert [s.done for s in snaps] == [False] * 4 + [True]
    assert all(math.isfinite(s.loss) and s.nonfinite is None for s in snaps)
    assert all(s.steps_per_s > 0 and s.elapsed_s > 0 for s in snaps)
    # validation every eval_every (= 2) steps and at the end, free of the probe
    assert [s.val_loss is not None for s in snaps] == [False, True, False, True, True]
    assert all(s.probe is None for s in snaps)


def test_runs_are_deterministic_under_a_seed():
    a = [s.loss for s in run(small(steps=5))]
    b = [s.loss for s in run(small(steps=5))]
    c = [s.loss for s in run(small(steps=5), seed=99)]
    assert a == b
    assert a != c


def test_training_lowers_the_loss():
    snaps = run(small(steps=40, lr=0.02), probe_every=0)
    assert snaps[-1].val_loss < 0.5 * snaps[1].val_loss


def test_learning_rate_follows_the_schedule():
    exp = small(steps=6, optimizer="sgd", lr=0.1,
                schedule=ScheduleConfig(name="step", step_size=2, gamma=0.5))
    assert [s.lr for s in run(exp)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_norm_clipping_is_reported():
    exp = small(steps=4, optimizer="sgd", lr=0.01, clip=ClipConfig(mode="norm", max_norm=1e-3))
    for s in run(exp):
        assert s.grad_norm_before > 1e-3
        assert s.grad_norm_after == pytest.approx(1e-3)


def test_steps_argument_overrides_training_steps():
    assert len(run(small(steps=50), steps=3)) == 3
    assert run(small(steps=5), steps=0) == []


def test_params_come_back_as_float64_host_copies():
    snaps = run(small(steps=2))
    p = snaps[-1].params()
    assert p.keys() == init_params(small().model, small().init).keys()
    assert all(v.dtype == np.float64 for v in p.values())
    p["head.bias"][:] = 1e9  # a copy: training state is not touched
    assert snaps[-1].params()["head.bias"][0] != 1e9


def test_sizes_that_cannot_fit_are_refused_before_anything_is_allocated():
    exp = small()
    exp.model.layers[0].hidden_size = 60_000
    exp.task.seq_len = 100_000
    with pytest.raises(MemoryLimitError, match="memory"):
        next(train(exp))


def test_start_weights_are_used():
    exp = small(steps=1, optimizer="sgd", lr=1e-12)
    start = init_params(exp.model, InitConfig(seed=11))
    got = run(exp, params=start)[-1].params()
    for k in start:
        np.testing.assert_allclose(got[k], start[k], atol=1e-6)


# ----------------------------------------------------------------------------- cancel, resume


def test_cancel_stops_between_steps():
    seen: list[Snapshot] = []
    gen = train(small(steps=50), probe_every=0, cancel=lambda: len(seen) >= 3)
    for snap in gen:
        seen.append(snap)
    assert [s.step for s in seen] == [1, 2, 3]


def test_resume_continues_exactly_where_it_stopped():
    exp = small(steps=6, dtype="float64")
    straight = run(exp)
    first = run(exp, steps=3)
    rest = run(exp, params=first[-1].params(), optimizer_state=first[-1].optimizer_state())
    assert [s.step for s in rest] == [4, 5, 6]
    np.testing.assert_allclose([s.loss for s in rest], [s.loss for s in straight[3:]],
                               rtol=1e-12)
    end, want = rest[-1].params(), straight[-1].params()
    for k in want:
        np.testing.assert_allclose(end[k], want[k], rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- history


def test_history_writes_csv_columns(tmp_path):
    hist = History()
    for snap in run(small(steps=4)):
        hist.record(snap)
    assert len(hist) == 4
    path = tmp_path / "out" / "history.csv"
    hist.write_csv(path)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == COLUMNS == (
        "step", "loss", "val_loss", "grad_norm_before", "grad_norm_after", "lr", "elapsed_s")
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert rows[1][2] == "" and rows[2][2] != ""  # validation every 2 steps
    assert float(rows[1][1]) == pytest.approx(hist.column("loss")[0])
    assert np.isnan(hist.column("val_loss")[0])
    assert hist.column("step").dtype == np.int64
    assert not list(tmp_path.joinpath("out").glob("*.tmp"))


# ----------------------------------------------------------------------------- exploding


def exploding(clip: str) -> Experiment:
    """A tanh RNN with recurrent weights scaled ×2, trained by SGD at a huge learning rate."""
    return Experiment(
        model=ModelConfig(layers=[LayerConfig(cell="rnn", hidden_size=32, activation="tanh")]),
        init=InitConfig(scheme="uniform", scales=Scales(recurrent=2.0), seed=0),
        task=TaskConfig(name="sine", seq_len=50, batch_size=8),
        training=TrainingConfig(optimizer="sgd", lr=50.0, steps=60, eval_every=10,
                                clip=ClipConfig(mode=clip, max_norm=1.0)),
        backend=BackendConfig(device="numpy", dtype="float32"),
    )


def test_exploding_run_stops_with_a_message_and_keeps_finite_weights():
    snaps, weights = [], []
    for snap in train(exploding("none")):  # no exception escapes
        snaps.append(snap)
        weights.append(snap.params())  # the weights after this step, taken as it comes
    last = snaps[-1]
    assert last.done and last.nonfinite is not None
    assert 1 < len(snaps) < 60
    assert last.nonfinite.startswith(f"step {last.step}:")
    assert "layer l0 (forward direction)" in last.nonfinite and "at timestep" in last.nonfinite
    assert "last finite weights are kept" in last.nonfinite
    assert not math.isfinite(last.loss)
    assert all(s.nonfinite is None and math.isfinite(s.loss) for s in snaps[:-1])
    assert last.probe is not None  # a probe of the weights that are kept
    # the bad step applied nothing: the weights are those after the step before
    assert finite(weights[-1])
    for k in weights[-1]:
        np.testing.assert_array_equal(weights[-1][k], weights[-2][k])


def test_the_same_run_with_norm_clipping_stays_finite():
    snaps = run(exploding("norm"))
    assert len(snaps) == 60
    assert all(s.nonfinite is None for s in snaps)
    assert all(math.isfinite(s.loss) for s in snaps)
    assert finite(snaps[-1].params())


def test_an_overflowing_update_is_rolled_back():
    # finite gradients (targets of 1000 make them large) times a learning rate of 1e38
    exp = small(steps=3, optimizer="sgd", lr=1e38, clip=ClipConfig(mode="none"))
    X = np.zeros((12, 4, 1))
    Y = np.full((12, 4, 1), 1000.0)
    snaps = run(exp, data=(X, Y))
    assert len(snaps) == 1
    last = snaps[0]
    assert last.done and "step 1" in last.nonfinite and "update made" in last.nonfinite
    assert math.isfinite(last.loss) and math.isfinite(last.grad_norm_before)
    kept = last.params()
    start = init_params(exp.model, exp.init)
    for k in start:  # the starting weights, after their float32 round trip
        np.testing.assert_array_equal(kept[k], start[k].astype(np.float32))
    assert int(last.optimizer_state()["step"]) == 0


def test_an_exploding_forward_pass_names_layer_and_timestep():
    exp = exploding("none")
    exp.model.layers[0].activation = "relu"
    exp.init.scales = Scales(recurrent=6.0)
    exp.task.seq_len = 200
    snaps = run(exp)
    assert len(snaps) == 1
    msg = snaps[0].nonfinite
    assert msg.startswith("step 1: the hidden state h of layer l0 (forward direction) became")
    where = msg.split(";")[0]
    t = int(where.rsplit(" ", 1)[-1])
    assert where.endswith(f"at timestep {t}") and 0 < t < 200
    assert finite(snaps[0].params())


def test_the_exploding_lesson_names_step_layer_direction_and_timestep():
    """Its outputs grow until their squared errors overflow float32 while every state
    stays finite: the message says so and names the read-out it came from."""
    from core.lessons import load_lesson

    exp = load_lesson("exploding_clipping")
    snaps = run(exp)
    last = snaps[-1]
    assert last.done and len(snaps) < exp.training.steps
    msg = last.nonfinite
    assert msg.startswith(f"step {last.step}: the loss became Inf")
    assert "the read-out of layer l0's last states (timestep 99, forward direction)" in msg
    assert ("every state and every dL/dh stayed finite" in msg
            or "then the gradient dL/dh of layer l0 (forward direction) became" in msg)


# ------------------------------------------------------------------------- data, tbptt, feedback


def test_training_on_given_arrays():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 10, 1))
    Y = np.roll(X, -1, axis=0)
    snaps = run(small(steps=3), data=(X, Y))
    assert len(snaps) == 3 and all(math.isfinite(s.loss) for s in snaps)
    with pytest.raises(DataError, match="batch size"):
        run(small(steps=1), data=(X, Y[:, :5]))


def test_truncated_bptt_trains():
    snaps = run(small(steps=3, tbptt=4))
    assert all(math.isfinite(s.loss) and s.grad_norm_before > 0 for s in snaps)


def test_output_recurrence_with_teacher_forcing_ratio():
    exp = small(steps=4, teacher_forcing=0.5)
    exp.model = ModelConfig(layers=[LayerConfig(cell="rnn", hidden_size=8)],
                            pattern="output_recurrence")
    a = run(exp)
    assert [s.loss for s in a] == [s.loss for s in run(exp)]
    assert all(math.isfinite(s.loss) for s in a)
    # validation runs free: its loss is the free-running loss of the validation batch
    xv, yv = _Data(exp, None, exp.init.seed).val(64)
    net = Network(exp.model, a[-1].params(), resolve_backend("numpy", "float32"))
    free = net.run(xv, yv, teacher_mask=np.zeros(12, dtype=bool), need_backward=False).loss
    forced = net.run(xv, yv, need_backward=False).loss
    assert a[-1].val_loss == pytest.approx(free, rel=1e-6)
    assert free != pytest.approx(forced, rel=1e-6)


def test_probes_come_at_their_cadence_and_at_the_end():
    snaps = list(train(small(steps=7)))  # trace_every = 3
    assert [s.step for s in snaps if s.probe is not None] == [3, 6, 7]
    pr = snaps[2].probe
    assert pr.nonfinite is None and "gradnorm.l0" in pr.arrays
    assert pr.arrays["h.l0"].shape == (12, 4, 8)
    # a fixed batch: the same inputs every time
    np.testing.assert_array_equal(snaps[2].probe.x, snaps[-1].probe.x)
    assert [s.probe is not None for s in train(small(steps=4), probe_every=2)] == [
        False, True, False, True]


def test_evaluate_at_other_sequence_lengths():
    exp = small(steps=3)
    params = run(exp)[-1].params()
    short = evaluate(exp, params, seq_len=5, batch_size=8, seed=1)
    long = evaluate(exp, params, seq_len=200, batch_size=8, seed=1)
    assert math.isfinite(short) and math.isfinite(long)
    assert short == evaluate(exp, params, seq_len=5, batch_size=8, seed=1)


# ----------------------------------------------------------------------------- learning


def experiment(model: dict, task: dict, steps: int, lr: float, seed: int = 0) -> Experiment:
    return experiment_from_dict({
        "format": "gradlab-experiment", "version": 1, "model": model,
        "init": {"seed": seed}, "task": task,
        "training": {"optimizer": "adam", "lr": lr, "steps": steps, "eval_every": 100,
                     "clip": {"mode": "norm", "max_norm": 1.0}},
        "backend": {"device": "numpy", "dtype": "float32"}})


@pytest.mark.slow
def test_lstm_solves_the_adding_problem():
    exp = experiment({"input_size": 2, "output_size": 1, "pattern": "many_to_one",
                      "loss": "mse", "layers": [{"cell": "lstm", "hidden_size": 16}]},
                     {"name": "adding", "seq_len": 20, "batch_size": 32}, steps=600, lr=0.02)
    snaps = run(exp)
    assert snaps[-1].nonfinite is None
    mse = evaluate(exp, snaps[-1].params(), batch_size=1000, seed=123)
    assert mse < 0.02  # predicting the mean scores about 1/6 ≈ 0.167


@pytest.mark.slow
def test_gru_learns_parity_on_short_sequences():
    exp = experiment({"input_size": 1, "output_size": 2, "pattern": "many_to_many",
                      "loss": "cross_entropy", "layers": [{"cell": "gru", "hidden_size": 16}]},
                     {"name": "parity", "seq_len": 10, "batch_size": 32}, steps=300, lr=0.02)
    params = run(exp)[-1].params()
    x, y = evaluation_batch(exp, batch_size=500, seed=5)
    net = Network(exp.model, params, resolve_backend("numpy", "float64"))
    accuracy = (net.run(x, y, need_backward=False).output.argmax(-1) == y).mean()
    assert accuracy > 0.99  # chance is 0.5
    assert evaluate(exp, params, batch_size=500, seed=5) < 0.05  # ln 2 ≈ 0.69 at chance
    # the same weights keep counting on sequences four times longer
    assert evaluate(exp, params, seq_len=40, batch_size=200, seed=6) < 0.3


@pytest.mark.slow
def test_model_beats_persistence_on_a_real_series():
    exp = experiment({"input_size": 1, "output_size": 1, "pattern": "many_to_many",
                      "loss": "mse", "layers": [{"cell": "lstm", "hidden_size": 16}]},
                     {"name": "dataset", "series": "sunspots", "seq_len": 20, "batch_size": 16},
                     steps=300, lr=0.01)
    snaps = run(exp)
    x, y = evaluation_batch(exp, batch_size=256, seed=7)  # windows of the held-out years
    baseline = persistence_baseline(exp, x, y)
    assert baseline is not None and baseline > 0
    assert evaluate(exp, snaps[-1].params(), batch_size=256, seed=7) < 0.8 * baseline
    assert snaps[-1].val_loss < baseline
