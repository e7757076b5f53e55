"""The one estimate of a run's memory: within 25 % of the measured peak for every
analysis option, checked before anything large is allocated, refused in one sentence."""

from __future__ import annotations

import gc
import re
import tracemalloc

import pytest

from core import estimate as estimate_mod
from core.errors import MemoryLimitError
from core.estimate import check, estimate
from core.experiment import experiment_from_dict
from core.lab import Lab, run_probe
from core.memory import param_count


def exp_for(cell: str, H: int, T: int, B: int, dtype: str = "float32", training=None, **model):
    layer = {"cell": cell, "hidden_size": H, "bidirectional": model.pop("bidirectional", False)}
    m = {"input_size": 1, "output_size": 1, "layers": [layer] * model.pop("depth", 1), **model}
    return experiment_from_dict({"format": "gradlab-experiment", "version": 1, "model": m,
                                 "task": {"name": "sine", "seq_len": T, "batch_size": B},
                                 "backend": {"device": "numpy", "dtype": dtype},
                                 **({"training": training} if training else {})})


@pytest.fixture(scope="module", autouse=True)
def warm() -> None:
    """Import and compile everything a probe uses once, before any peak is traced: the
    modules a first run loads are Python objects tracemalloc counts too."""
    Lab(exp_for("rnn", 4, 5, 1)).probe(jacobian=True, connectivity=True)


CASES = {
    "rnn": ("rnn", 128, 200, 16, {}),
    "lstm": ("lstm", 64, 200, 16, {}),
    "gru float64": ("gru", 32, 200, 8, {"dtype": "float64"}),
    "bidirectional lstm": ("lstm", 48, 150, 8, {"bidirectional": True}),
    "many_to_one lstm": ("lstm", 64, 120, 8, {"pattern": "many_to_one"}),
    "output_recurrence gru": ("gru", 32, 120, 8, {"pattern": "output_recurrence"}),
}
OPTIONS = {"pass and eigenvalues": {}, "jacobian": {"jacobian": True},
           "connectivity": {"connectivity": True}}


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("case", list(CASES))
def test_estimate_within_25_percent_of_the_measured_peak(case, option):
    cell, H, T, B, kw = CASES[case]
    kw = dict(kw)
    dtype = kw.pop("dtype", "float32")
    exp = exp_for(cell, H, T, B, dtype, **kw)
    opts = {"jacobian": False, "connectivity": False, **OPTIONS[option]}
    gc.collect()
    tracemalloc.start()
    try:
        lab = Lab(exp)  # drawing the weights, the batch, the pass and the analysis
        lab.probe(**opts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = estimate(exp, T, B, **opts).peak
    assert 0.75 <= est / peak <= 1.25, f"estimate {est} against a peak of {peak}"


# Training runs of the sizes that once peaked 1.33 times the estimate: the training
# pass, the validation pass and, every step, a probe with every analysis.
TRAIN_CASES = {
    "lstm": ("lstm", 128, 200, 16, {}),
    "gru float64": ("gru", 128, 100, 4, {"dtype": "float64"}),
    "bidirectional gru": ("gru", 64, 100, 4, {"bidirectional": True}),
    "output_recurrence lstm float64": ("lstm", 128, 100, 1, {"dtype": "float64",
                                                             "pattern": "output_recurrence"}),
    "output_recurrence gru": ("gru", 128, 200, 1, {"pattern": "output_recurrence"}),
}


@pytest.mark.parametrize("probes", [False, True], ids=["no probes", "probes with every analysis"])
@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_training_estimate_within_25_percent_of_the_measured_peak(case, probes):
    cell, H, T, B, kw = TRAIN_CASES[case]
    kw = dict(kw)
    dtype = kw.pop("dtype", "float32")
    steps = 3
    training = {"optimizer": "adam", "steps": steps, "eval_every": 1,
                "trace_every": 1 if probes else 0}
    exp = exp_for(cell, H, T, B, dtype, training=training, **kw)
    gc.collect()
    tracemalloc.start()
    try:
        lab = Lab(exp)
        lab.train(steps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = estimate(exp, T, B, jacobian=probes, connectivity=probes, training_steps=steps,
                   train_batch=B, val_batch=max(4 * B, 64)).peak
    assert 0.75 <= est / peak <= 1.25, f"estimate {est} against a peak of {peak}"


def test_drawing_the_weights_is_part_of_the_estimate():
    exp = exp_for("lstm", 512, 4, 1)
    gc.collect()
    tracemalloc.start()
    try:
        Lab(exp)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    drawing = 3 * 8 * param_count(exp.model)  # the estimate's floor while weights are drawn
    assert 0.75 <= drawing / peak <= 1.25
    assert estimate(exp, 4, 1).peak >= drawing


def test_refusal_is_one_sentence_with_estimate_limit_and_free_memory(monkeypatch):
    monkeypatch.setattr(estimate_mod, "available_memory", lambda: 10 * 1024**3)
    exp = exp_for("rnn", 4, 1_000_000, 1)
    with pytest.raises(MemoryLimitError) as info:
        check(estimate(exp, 1_000_000, 1, connectivity=True), "exp.json")
    assert re.fullmatch(r"exp\.json: this run needs about 7\.3 TiB \(T=1000000, batch=1; most "
                        r"for the connectivity map\); the limit is 8\.0 GiB, 80 % of the 10\.0 "
                        r"GiB of memory free now; use a smaller hidden size, sequence length or batch, "
                        r"or leave out that analysis", str(info.value)), str(info.value)


def test_the_jacobian_of_a_wide_layer_takes_one_matrix_at_a_time():
    """LSTM-1024 at T = 500 once kept all T (H, H) products (6 GiB); now one at a time."""
    exp = exp_for("lstm", 1024, 500, 16)
    est = estimate(exp, 500, 16, jacobian=True)
    assert 1024 * 1024 * 8 < est.parts["jacobian"] < 500 * 1024 * 1024 * 4 / 10
    assert est.peak < 2 * 1024**3


def test_the_probe_checks_every_analysis_before_drawing_the_batch(monkeypatch):
    """A window's probe of a huge task refuses before the task draws anything."""
    import core.tasks as tasks

    drawn = []
    monkeypatch.setattr(tasks, "probe_batch", lambda exp: drawn.append(exp))
    monkeypatch.setattr(estimate_mod, "available_memory", lambda: 8 * 1024**3)
    exp = exp_for("rnn", 4, 20_000_000, 16)
    with pytest.raises(MemoryLimitError, match=r"this run needs about .* the limit is 6\.4 GiB"):
        run_probe(exp, Lab(exp_for("rnn", 4, 10, 16)).params, None)
    assert drawn == []


def test_sizes_near_the_limits_never_overflow():
    exp = exp_for("lstm", 65_536, 2**31 - 1, 2**31 - 1)
    est = estimate(exp, 2**31 - 1, 2**31 - 1, jacobian=True, connectivity=True,
                   training_steps=2**31 - 1, train_batch=2**31 - 1, val_batch=2**31 - 1)
    assert est.peak > 10**20 and est.seconds > 0
    with pytest.raises(MemoryLimitError, match="this run needs about"):
        check(est)


def test_the_time_of_an_eigenvalue_problem_is_estimated_within_ten_times():
    """The model's 10 n³ FLOPs of LAPACK at its measured rate, against the best of three
    measurements on one BLAS thread (a second thread spinning on a busy machine, or
    another test's work, can make one measurement many times slower): within the
    factor of ten the fuzz campaign allows before it calls a run hung."""
    import time

    import numpy as np
    from threadpoolctl import threadpool_limits

    exp = exp_for("rnn", 768, 4, 1)
    a = np.random.default_rng(0).uniform(-1, 1, (768, 768)) / np.sqrt(768)
    took = []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(3):
            t0 = time.perf_counter()
            np.linalg.eigvals(a)
            took.append(time.perf_counter() - t0)
    assert min(took) / 10 <= estimate_mod.eigen_seconds(exp.model) <= 10 * min(took)
    small = estimate_mod.eigen_seconds(exp_for("rnn", 384, 4, 1).model)
    assert 4 < estimate_mod.eigen_seconds(exp.model) / small < 8  # n³, with an n² part
