"""The mean-field critical line against direct numerical evaluation: a fine trapezoid
integral of the same expectations, and a wide random tanh RNN run step by step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.lessons import load_lesson
from core.meanfield import (
    chi,
    critical_scale,
    critical_sigma_w2,
    drive_variance,
    fixed_point,
    recurrent_variance,
    supported,
)
from core.paths import with_paths


def trapezoid_mean(f, q: float) -> float:
    """E[f(z)], z ~ N(0, q), by the trapezoid rule on a fine grid (an independent method)."""
    s = math.sqrt(q)
    z = np.linspace(-12 * s, 12 * s, 20_001)
    dens = np.exp(-z * z / (2 * q)) / math.sqrt(2 * math.pi * q)
    return float(np.trapezoid(f(z) * dens, z))


def direct_fixed_point(sigma_w2: float, drive: float) -> float:
    q = 1.0
    for _ in range(3000):  # plain iteration of the map, to convergence
        new = sigma_w2 * trapezoid_mean(lambda z: np.tanh(z) ** 2, q) + drive
        if abs(new - q) < 1e-14:
            break
        q = new
    return new


@pytest.mark.parametrize("sigma_w2, drive", [(0.8, 0.05), (1.5, 0.1), (3.0, 0.5)])
def test_fixed_point_and_chi_match_a_trapezoid_integral(sigma_w2, drive):
    q = fixed_point(sigma_w2, drive)
    assert q == pytest.approx(direct_fixed_point(sigma_w2, drive), rel=1e-6)
    direct = sigma_w2 * trapezoid_mean(lambda z: (1 - np.tanh(z) ** 2) ** 2, q)
    assert chi(sigma_w2, drive) == pytest.approx(direct, rel=1e-6)


def test_without_drive_the_line_is_sigma_w_one():
    assert fixed_point(0.9, 0.0) == 0.0
    assert critical_sigma_w2(0.0) == pytest.approx(1.0, rel=1e-6)
    assert chi(0.5, 0.0) == pytest.approx(0.5)


@pytest.mark.parametrize("drive", [0.02, 0.3])
def test_the_line_is_where_a_wide_network_keeps_gradients_level(drive):
    """At σ_w² on the line a 1500-unit tanh RNN with Gaussian weights neither shrinks
    nor grows a backpropagated vector; at 0.6× and 1.6× the scale it clearly does."""
    sw2 = critical_sigma_w2(drive)
    assert chi(sw2, drive) == pytest.approx(1.0, abs=1e-9)
    H, T = 1500, 60
    rng = np.random.default_rng(0)
    W0 = rng.normal(0.0, 1.0 / math.sqrt(H), size=(H, H))
    drives = rng.normal(0.0, math.sqrt(drive), size=(T, H))
    rates = {}
    for factor in (0.6, 1.0, 1.6):
        W = W0 * math.sqrt(sw2) * factor
        h = np.zeros(H)
        pre = []
        for t in range(T):
            a = W @ h + drives[t]
            h = np.tanh(a)
            pre.append(a)
        if factor == 1.0:  # the measured variance settles at the mean-field q*
            q_seen = float(np.mean(np.square(pre[T // 2:])))
            assert q_seen == pytest.approx(fixed_point(sw2, drive), rel=0.08)
        v = rng.normal(size=H)
        v /= np.linalg.norm(v)
        logs = []
        for t in range(T - 1, T // 2, -1):  # backward through the second half
            v = W.T @ ((1 - np.tanh(pre[t]) ** 2) * v)
            n = np.linalg.norm(v)
            logs.append(math.log(n * n))
            v /= n
        rates[factor] = float(np.mean(logs))  # log of the squared gain per step
    assert abs(rates[1.0]) < 0.05  # χ = 1: level
    assert rates[0.6] < -0.3 and rates[1.6] > 0.2


def test_critical_scale_of_an_experiment():
    exp = load_lesson("vanishing_tanh")  # uniform scheme: σ_w² = scale² / 3
    assert supported(exp) is None
    s = critical_scale(exp)
    at, _ = with_paths(exp, [("init.scales.recurrent", s)])
    assert chi(recurrent_variance(at), drive_variance(at)) == pytest.approx(1.0, abs=1e-9)
    assert math.sqrt(3) < s < 3  # above √3 (no drive): the input and biases push it out
    stronger, _ = with_paths(exp, [("init.scales.input", 4.0)])
    assert critical_scale(stronger) > s
    lstm, _ = with_paths(exp, [("model.layers.0.cell", "lstm")])
    assert "tanh RNN" in supported(lstm)
    with pytest.raises(ValueError, match="tanh RNN"):
        critical_scale(lstm)
    ident, _ = with_paths(exp, [("init.scheme", "identity")])
    assert "identity" in supported(ident)
