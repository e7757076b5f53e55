"""The user's own arrays: checks, core.trace and training on an experiment without a task."""

from __future__ import annotations

import math

import numpy as np
import pytest

import core
from core.errors import DataError
from core.experiment import ModelConfig, experiment_from_dict
from core.layout import GATES, layer_keys, param_shapes
from core.tasks import make_batch, persistence_baseline
from core.training.loop import _Data, evaluate, evaluation_batch, train
from core.userdata import check_arrays, load_input, load_target

T, B = 9, 5


def no_task(**model) -> core.Experiment:
    """The smallest experiment: format, version and a model with 3 inputs, no task."""
    m = {"input_size": 3, "output_size": 2, "layers": [{"cell": "gru", "hidden_size": 4}]}
    m.update(model)
    return experiment_from_dict({"format": "gradlab-experiment", "version": 1, "model": m,
                                 "backend": {"device": "numpy", "dtype": "float64"}})


def arrays(n: int = B, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, n, 3))
    return x, np.tanh(x[..., :2] + np.roll(x[..., 1:], 1, axis=0))


# ----------------------------------------------------------------------------- core.trace


def test_trace_on_given_arrays_without_a_task():
    exp = no_task()
    x, y = arrays()
    out = core.trace(exp, x, y)
    keys = {"loss", "output"}
    for _k, _d, key in layer_keys(exp.model):
        keys |= {f"h.{key}", f"dh.{key}", f"gradnorm.{key}"}
        keys |= {f"gate.{g}.{key}" for g in GATES["gru"]}
    keys |= {f"grad.{name}" for name in param_shapes(exp.model)}
    assert set(out) == keys
    assert out["output"].shape == (T, B, 2)
    assert out["h.l0"].shape == out["dh.l0"].shape == (T, B, 4)
    assert out["gradnorm.l0"].shape == (T,)
    for name, shape in param_shapes(exp.model).items():
        assert out[f"grad.{name}"].shape == shape
    assert math.isfinite(float(out["loss"]))


def test_trace_without_arrays_names_what_is_missing():
    with pytest.raises(DataError, match=r"no task section.*trace\(exp, x, y\).*input"):
        core.trace(no_task())


def test_trace_checks_the_arrays():
    exp = no_task()
    x, y = arrays()
    with pytest.raises(DataError, match=r"input: expected an input of shape \(T, B, D\) "
                                        r"with D = model.input_size = 3"):
        core.trace(exp, x[..., :2], y)
    with pytest.raises(DataError, match=r"target: expected a target of shape \(T, B, O\)"):
        core.trace(exp, x, y[:, :3])
    bad = x.copy()
    bad[2, 1, 0] = np.inf
    with pytest.raises(DataError, match=r"input: 1 non-finite value.*\[2, 1, 0\]"):
        core.trace(exp, bad, y)


def test_check_arrays_for_classes_and_missing_parts():
    exp = no_task(loss="cross_entropy", output_size=3, pattern="many_to_one")
    x, _ = arrays()
    xs, ys = check_arrays(exp.model, x.astype(np.float32), np.array([[0], [2], [1], [0], [2]]))
    assert xs.dtype == np.float64 and ys.dtype == np.int64 and ys.shape == (B,)
    with pytest.raises(DataError, match=r"class labels must lie in 0..2"):
        check_arrays(exp.model, x, np.array([0, 3, 1, 0, 2]))
    with pytest.raises(DataError, match="whole numbers"):
        check_arrays(exp.model, x, np.array([0, 0.5, 1, 0, 2]))
    with pytest.raises(DataError, match="target: missing"):
        check_arrays(exp.model, x, None)
    with pytest.raises(DataError, match="input: missing"):
        check_arrays(exp.model, None, np.zeros(B))
    with pytest.raises(DataError, match="expected numbers"):
        check_arrays(exp.model, np.array([[["a", "b", "c"]]]), np.zeros(1))


def test_files_are_named_in_their_errors(tmp_path):
    model = ModelConfig(input_size=3, output_size=2)
    np.save(tmp_path / "x.npy", np.zeros((T, B, 2)))
    with pytest.raises(DataError, match=r"x\.npy: expected an input of shape"):
        load_input(tmp_path / "x.npy", model)
    np.save(tmp_path / "y.npy", np.zeros((T, B, 2), dtype=np.float32))
    y = load_target(tmp_path / "y.npy", model, T, B)
    assert y.dtype == np.float64 and y.shape == (T, B, 2)
    (tmp_path / "p.npy").write_bytes(b"\x80\x04junk")
    with pytest.raises(DataError, match="pickled objects"):
        load_input(tmp_path / "p.npy", model)
    with pytest.raises(DataError, match="no such file"):
        load_target(tmp_path / "nope.npy", model, T, B)


def test_the_task_registry_without_a_task():
    exp = no_task()
    with pytest.raises(DataError, match="no task section"):
        make_batch(exp, np.random.default_rng(0))
    assert persistence_baseline(exp, *arrays()) is None


# ----------------------------------------------------------------------------- training


def test_training_without_a_task_on_given_arrays():
    exp = no_task()
    exp.training.lr = 0.02
    exp.training.eval_every = 5
    data = arrays(n=12)
    snaps = list(train(exp, data=data, steps=30, probe_every=10))
    assert [s.step for s in snaps] == list(range(1, 31))
    assert all(math.isfinite(s.loss) for s in snaps)
    # full batch (12 sequences, fewer than ARRAY_BATCH): the loss falls
    assert snaps[-1].loss < 0.9 * snaps[0].loss
    assert snaps[-1].val_loss is not None and snaps[-1].val_loss < snaps[0].loss
    pr = snaps[-1].probe
    assert pr is not None and pr.arrays["h.l0"].shape == (T, 12, 4)
    # validation scores every given sequence
    assert snaps[-1].val_loss == pytest.approx(evaluate(exp, snaps[-1].params(), data=data))


def test_training_batch_size_draws_minibatches_from_the_arrays():
    exp = no_task()
    data = arrays(n=12)
    assert _Data(exp, data, 0).B == 12
    exp.training.batch_size = 4
    source = _Data(exp, data, 0)
    assert source.B == 4
    x, y = source.train(np.random.default_rng(0))
    assert x.shape == (T, 4, 3) and y.shape == (T, 4, 2)
    # The probe shows every given sequence, as the window and `gradlab analyze` do.
    assert source.probe()[0].shape == (T, 12, 3)
    assert source.val(64)[0].shape == (T, 12, 3)


def test_training_without_a_task_needs_arrays():
    exp = no_task()
    with pytest.raises(DataError, match=r"no task section.*input and target arrays"):
        next(train(exp, steps=2))
    with pytest.raises(DataError, match="no task section"):
        evaluation_batch(exp)
    with pytest.raises(DataError, match=r"input: expected shape \(T, B, 3\)"):
        next(train(exp, data=(np.zeros((T, B, 2)), np.zeros((T, B, 2))), steps=1))


def test_half_precision_arrays_are_checked_without_a_warning(tmp_path):
    """float16 cannot hold float32's largest value: comparing against it overflowed in the
    cast and NumPy warned on every float16 file, though every value was in range."""
    import warnings

    exp = no_task()
    x, y = arrays()
    np.save(tmp_path / "x.npy", x.astype(np.float16))
    np.save(tmp_path / "y.npy", y.astype(np.float16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xs = load_input(tmp_path / "x.npy", exp.model)
        ys = load_target(tmp_path / "y.npy", exp.model, T=T, B=B)
    np.testing.assert_allclose(xs, x.astype(np.float16), rtol=0)
    assert ys.shape == y.shape
