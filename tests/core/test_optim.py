"""Optimizers, schedules and clipping against updates worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import WeightsError
from core.experiment import ClipConfig, ScheduleConfig, TrainingConfig
from core.training.clip import clip_gradients, global_norm
from core.training.optim import SGD, Adam, RMSprop, make_optimizer
from core.training.schedule import lr_at

P0 = {"w": np.array([[1.0, -2.0], [0.5, 3.0]]), "b": np.array([0.25, -0.75])}
G1 = {"w": np.array([[0.1, 0.2], [-0.3, 0.4]]), "b": np.array([1.0, -0.5])}
G2 = {"w": np.array([[-0.2, 0.05], [0.1, -0.6]]), "b": np.array([0.3, 0.2])}


def fresh() -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in P0.items()}


def run(cfg: TrainingConfig, lrs=(0.1, 0.05)) -> dict[str, np.ndarray]:
    params = fresh()
    opt = make_optimizer(cfg, params)
    opt.step(G1, lrs[0])
    opt.step(G2, lrs[1])
    return params


def close(a: dict, b: dict) -> None:
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- optimizers


def test_factory_picks_the_named_optimizer():
    assert isinstance(make_optimizer(TrainingConfig(optimizer="sgd"), fresh()), SGD)
    assert isinstance(make_optimizer(TrainingConfig(optimizer="rmsprop"), fresh()), RMSprop)
    assert isinstance(make_optimizer(TrainingConfig(optimizer="adam"), fresh()), Adam)


def test_sgd_plain_two_steps():
    got = run(TrainingConfig(optimizer="sgd"))
    want = {k: P0[k] - 0.1 * G1[k] - 0.05 * G2[k] for k in P0}
    close(got, want)


def test_updates_are_in_place():
    params = fresh()
    w = params["w"]
    make_optimizer(TrainingConfig(optimizer="sgd"), params).step(G1, 0.1)
    assert params["w"] is w
    np.testing.assert_allclose(w, P0["w"] - 0.1 * G1["w"])


def test_sgd_momentum_two_steps():
    mu = 0.9
    got = run(TrainingConfig(optimizer="sgd", momentum=mu))
    want = {}
    for k in P0:
        buf1 = G1[k]
        p1 = P0[k] - 0.1 * buf1
        buf2 = mu * buf1 + G2[k]
        want[k] = p1 - 0.05 * buf2
    close(got, want)


def test_sgd_nesterov_two_steps():
    mu = 0.9
    got = run(TrainingConfig(optimizer="sgd", momentum=mu, nesterov=True))
    want = {}
    for k in P0:
        buf1 = G1[k]
        p1 = P0[k] - 0.1 * (G1[k] + mu * buf1)
        buf2 = mu * buf1 + G2[k]
        want[k] = p1 - 0.05 * (G2[k] + mu * buf2)
    close(got, want)


def test_sgd_weight_decay_adds_l2_to_the_gradient():
    wd = 0.01
    got = run(TrainingConfig(optimizer="sgd", weight_decay=wd))
    want = {}
    for k in P0:
        p1 = P0[k] - 0.1 * (G1[k] + wd * P0[k])
        want[k] = p1 - 0.05 * (G2[k] + wd * p1)
    close(got, want)


def test_rmsprop_two_steps():
    a, eps = 0.99, 1e-8
    got = run(TrainingConfig(optimizer="rmsprop", alpha=a, eps=eps))
    want = {}
    for k in P0:
        v1 = (1 - a) * G1[k] ** 2
        p1 = P0[k] - 0.1 * G1[k] / (np.sqrt(v1) + eps)
        v2 = a * v1 + (1 - a) * G2[k] ** 2
        want[k] = p1 - 0.05 * G2[k] / (np.sqrt(v2) + eps)
    close(got, want)


def test_rmsprop_momentum_and_weight_decay():
    a, eps, mu, wd = 0.9, 1e-6, 0.5, 0.1
    got = run(TrainingConfig(optimizer="rmsprop", alpha=a, eps=eps, momentum=mu,
                             weight_decay=wd))
    want = {}
    for k in P0:
        g1 = G1[k] + wd * P0[k]
        v1 = (1 - a) * g1 ** 2
        buf1 = g1 / (np.sqrt(v1) + eps)
        p1 = P0[k] - 0.1 * buf1
        g2 = G2[k] + wd * p1
        v2 = a * v1 + (1 - a) * g2 ** 2
        buf2 = mu * buf1 + g2 / (np.sqrt(v2) + eps)
        want[k] = p1 - 0.05 * buf2
    close(got, want)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_two_steps_with_bias_correction(wd):
    b1, b2, eps = 0.8, 0.95, 1e-8
    got = run(TrainingConfig(optimizer="adam", beta1=b1, beta2=b2, eps=eps, weight_decay=wd))
    want = {}
    for k in P0:
        g1 = G1[k] + wd * P0[k]
        m1 = (1 - b1) * g1
        v1 = (1 - b2) * g1 ** 2
        p1 = P0[k] - 0.1 * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
        g2 = G2[k] + wd * p1
        m2 = b1 * m1 + (1 - b1) * g2
        v2 = b2 * v1 + (1 - b2) * g2 ** 2
        want[k] = p1 - 0.05 * (m2 / (1 - b1 ** 2)) / (np.sqrt(v2 / (1 - b2 ** 2)) + eps)
    close(got, want)


def test_adam_first_step_moves_each_weight_by_about_lr():
    params = fresh()
    make_optimizer(TrainingConfig(optimizer="adam"), params).step(G1, 0.01)
    np.testing.assert_allclose(np.abs(params["w"] - P0["w"]), 0.01, rtol=1e-5)


def test_missing_gradient_leaves_parameter_alone():
    params = fresh()
    make_optimizer(TrainingConfig(optimizer="sgd"), params).step({"w": G1["w"]}, 0.1)
    np.testing.assert_array_equal(params["b"], P0["b"])


@pytest.mark.parametrize("cfg", [
    TrainingConfig(optimizer="adam"),
    TrainingConfig(optimizer="sgd", momentum=0.9, nesterov=True),
    TrainingConfig(optimizer="rmsprop", momentum=0.3),
])
def test_state_dict_round_trip_resumes_exactly(cfg):
    straight = run(cfg)
    params = fresh()
    opt = make_optimizer(cfg, params)
    opt.step(G1, 0.1)
    state = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert int(state["step"]) == 1
    resumed = {k: v.copy() for k, v in params.items()}
    opt2 = make_optimizer(cfg, resumed)
    opt2.load_state_dict(state)
    opt2.step(G2, 0.05)
    close(resumed, straight)
    assert opt2.t == 2


def test_state_dict_is_a_copy():
    params = fresh()
    opt = make_optimizer(TrainingConfig(optimizer="adam"), params)
    opt.step(G1, 0.1)
    state = opt.state_dict()
    before = state["exp_avg.w"].copy()
    opt.step(G2, 0.1)
    np.testing.assert_array_equal(state["exp_avg.w"], before)


def test_load_state_dict_rejects_a_mismatch():
    opt = make_optimizer(TrainingConfig(optimizer="adam"), fresh())
    sgd_state = make_optimizer(TrainingConfig(optimizer="sgd", momentum=0.9), fresh()).state_dict()
    with pytest.raises(WeightsError, match="missing"):
        opt.load_state_dict(sgd_state)
    state = opt.state_dict()
    state["exp_avg.w"] = np.zeros(3)
    with pytest.raises(WeightsError, match=r"exp_avg\.w"):
        opt.load_state_dict(state)


# ----------------------------------------------------------------------------- schedules


def test_constant_schedule():
    cfg = TrainingConfig(lr=0.01)
    assert lr_at(cfg, 0) == 0.01
    assert lr_at(cfg, 10_000) == 0.01


def test_step_schedule():
    cfg = TrainingConfig(lr=0.1, schedule=ScheduleConfig(name="step", step_size=10, gamma=0.5))
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 9) == pytest.approx(0.1)
    assert lr_at(cfg, 10) == pytest.approx(0.05)
    assert lr_at(cfg, 25) == pytest.approx(0.025)


def test_cosine_schedule():
    cfg = TrainingConfig(lr=0.1, steps=100,
                         schedule=ScheduleConfig(name="cosine", min_lr=0.01))
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 50) == pytest.approx(0.055)
    assert lr_at(cfg, 25) == pytest.approx(0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(cfg, 100) == pytest.approx(0.01)
    assert lr_at(cfg, 500) == pytest.approx(0.01)


# ----------------------------------------------------------------------------- clipping


def grads(scale: float = 1.0) -> dict[str, np.ndarray]:
    return {"a": np.array([3.0, 0.0]) * scale, "b": np.array([[0.0], [4.0]]) * scale}


def test_global_norm_spans_every_array():
    assert global_norm(grads()) == pytest.approx(5.0)
    assert global_norm({}) == 0.0


def test_norm_clipping_scales_down_to_max_norm():
    g = grads()
    before, after = clip_gradients(g, ClipConfig(mode="norm", max_norm=1.0))
    assert before == pytest.approx(5.0)
    assert after == pytest.approx(1.0)
    assert global_norm(g) == pytest.approx(1.0)
    np.testing.assert_allclose(g["a"], [0.6, 0.0])  # direction kept


def test_norm_clipping_leaves_small_gradients_alone():
    g = grads(0.1)
    before, after = clip_gradients(g, ClipConfig(mode="norm", max_norm=1.0))
    assert before == after == pytest.approx(0.5)
    np.testing.assert_array_equal(g["a"], grads(0.1)["a"])


def test_value_clipping_bounds_every_entry():
    g = {"a": np.array([-3.0, 0.2, 7.0])}
    before, after = clip_gradients(g, ClipConfig(mode="value", max_value=0.5))
    np.testing.assert_array_equal(g["a"], [-0.5, 0.2, 0.5])
    assert before == pytest.approx(math.sqrt(9 + 0.04 + 49))
    assert after == pytest.approx(math.sqrt(0.25 + 0.04 + 0.25))


def test_mode_none_reports_the_norm_only():
    g = grads()
    assert clip_gradients(g, ClipConfig(mode="none")) == pytest.approx((5.0, 5.0))
    np.testing.assert_array_equal(g["a"], [3.0, 0.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_gradients_do_not_crash_and_are_not_scaled(bad):
    g = {"a": np.array([1.0, bad]), "b": np.array([2.0])}
    before, after = clip_gradients(g, ClipConfig(mode="norm", max_norm=1.0))
    assert not math.isfinite(before) and not math.isfinite(after)
    assert (math.isnan(before)) == (bad != bad)
    assert g["b"][0] == 2.0


def test_huge_but_finite_gradients_have_a_finite_norm():
    g = {"a": np.array([3e30, 4e30], dtype=np.float32)}
    assert global_norm(g) == pytest.approx(5e30, rel=1e-5)
    before, after = clip_gradients(g, ClipConfig(mode="norm", max_norm=2.0))
    assert before == pytest.approx(5e30, rel=1e-5) and after == 2.0
    np.testing.assert_allclose(g["a"], [1.2, 1.6], rtol=1e-5)
