"""core.diagnosis: one rule for vanishing, exploding and underflowed gradients, and the
lessons' texts agree with it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.diagnosis import (
    EXPLODED,
    VANISHED,
    below_float_range,
    describe_steps,
    diagnose,
    diagnose_curve,
    gradient_ratio,
    runs,
)

T = 40
t = np.arange(T)
BACK = T - 1 - t  # steps back from the last step a forward cell processes


def one_layer(g: np.ndarray, pattern: str = "many_to_one", reverse: bool = False,
              tbptt: int | None = None):
    key = "l0_reverse" if reverse else "l0"
    return diagnose({f"gradnorm.{key}": g}, pattern, tbptt=tbptt).curves[key]


# ----------------------------------------------------------------------------- the rule


def test_geometric_decay_vanishes_beyond_a_millionth_of_the_last_step():
    g = 0.5 ** BACK
    d = one_layer(g)
    assert d.ratio == pytest.approx(0.5 ** (T - 1))
    # 0.5^k < 1e-6 from k = 20 on: exactly the steps t ≤ 19
    k_first = math.ceil(math.log(VANISHED) / math.log(0.5))
    np.testing.assert_array_equal(d.vanished, BACK >= k_first)
    assert d.vanished.sum() == T - k_first
    assert not d.exploded.any() and not d.underflow.any() and not d.unreached.any()
    assert d.verdict == "vanishing"
    assert f"vanished at t 0–{T - 1 - k_first}" in d.text


def test_a_decay_that_keeps_above_a_millionth_is_stable():
    g = 0.83 ** BACK  # about the LSTM of the many-to-one lesson: four decades over 50 steps
    d = one_layer(g)
    assert 1e-4 < d.ratio < 1e-2
    assert d.verdict == "stable" and not d.vanished.any()


def test_geometric_growth_explodes_beyond_a_thousand_times_what_entered():
    g = 1.3 ** BACK
    d = one_layer(g)
    assert d.ratio == pytest.approx(1.3 ** (T - 1))
    k_first = math.floor(math.log(EXPLODED) / math.log(1.3)) + 1
    np.testing.assert_array_equal(d.exploded, BACK >= k_first)
    assert d.verdict == "exploding" and not d.vanished.any()
    assert "exploded at t 0–" in d.text


def test_reverse_direction_mirrors_the_forward_one():
    g = 0.5 ** BACK
    fwd = one_layer(g)
    rev = one_layer(g[::-1].copy(), reverse=True)
    assert rev.ratio == pytest.approx(fwd.ratio)
    np.testing.assert_array_equal(rev.vanished, fwd.vanished[::-1])
    assert rev.verdict == "vanishing"
    # The same curve read as a reverse cell's: its BPTT starts at t = 0, where it is
    # smallest, so it grew by 2^39 on the way: exploding.
    assert one_layer(g, reverse=True).verdict == "exploding"
    assert gradient_ratio(g, reverse=True) == pytest.approx(2.0 ** (T - 1))


def bptt(entering: np.ndarray, factor: float, reverse: bool) -> np.ndarray:
    """A curve made the way BPTT makes it: in processing order each step holds what enters
    there plus ``factor`` times the step processed after it."""
    order = t[::-1] if reverse else t
    g = np.zeros(T)
    carried = 0.0
    for p in range(T - 1, -1, -1):
        carried = factor * carried + entering[order[p]]
        g[order[p]] = carried
    return g


def test_a_lower_reverse_layer_follows_the_layer_above_without_exploding():
    """The stack of the issue: a forward layer above vanishes towards t = 0, so the reverse
    cell below receives almost nothing at t = 0, its last processed step, and a lot at
    t = T−1.  Its own recurrence shrinks (0.6 a step): its far/last ratio is huge, yet
    nothing exploded."""
    above = bptt(np.where(t == T - 1, 1.0, 0.0), 0.5, reverse=False)
    below = bptt(0.3 * above, 0.6, reverse=True)
    arrays = {"gradnorm.l0_reverse": below, "gradnorm.l1": above}
    d = diagnose(arrays, "many_to_one")
    low = d.curves["l0_reverse"]
    assert low.ratio > 1e10
    assert low.verdict == "stable" and not low.exploded.any() and not low.vanished.any()
    assert low.source == "layer above" and "layer above" in low.text
    assert d.curves["l1"].verdict == "vanishing"
    # A recurrence that amplifies by 1.5 a step is outrun by what enters (twice as much a
    # step towards t = T−1): the curve is still mostly what entered.  One that triples
    # the gradient every step explodes.
    assert diagnose({"gradnorm.l0_reverse": bptt(0.3 * above, 1.5, reverse=True),
                     "gradnorm.l1": above}, "many_to_one").curves["l0_reverse"].verdict == "stable"
    grown = bptt(0.3 * above, 3.0, reverse=True)
    assert diagnose({"gradnorm.l0_reverse": grown, "gradnorm.l1": above},
                    "many_to_one").curves["l0_reverse"].verdict == "exploding"


def test_an_output_at_every_step_keeps_the_curve_level_and_stable():
    """many_to_many: every step gets its own share of the loss; a recurrence that forgets
    (0.1 a step) leaves a level curve, which is not vanishing."""
    g = bptt(np.ones(T), 0.1, reverse=False)
    d = one_layer(g, "many_to_many")
    assert d.verdict == "stable" and d.ratio == pytest.approx(1 / 0.9, rel=1e-6)
    # growth over the sum of all shares is still exploding
    grown = bptt(np.ones(T), 1.5, reverse=False)
    d = one_layer(grown, "many_to_many")
    budget = (T - t).astype(float)  # each step's share is 1: what entered at or after t
    np.testing.assert_array_equal(d.exploded, grown > EXPLODED * budget)
    assert d.exploded.any() and d.verdict == "exploding"


def test_exact_zeros_are_below_float_range():
    g = (0.5 ** BACK).astype(np.float32)
    g[:8] = 0.0
    d = one_layer(g)
    np.testing.assert_array_equal(d.underflow, t < 8)
    assert d.vanished[:8].all() and not d.faded[:8].any()
    assert d.ratio == 0.0 and d.verdict == "vanishing"
    assert "below float range at t 0–7" in d.text
    assert not d.unreached.any()


def test_zeros_cut_by_truncation_are_not_underflow():
    g = np.where(BACK < 10, 0.9 ** BACK, 0.0)  # window 10: only the last window is reached
    d = one_layer(g, tbptt=10)
    np.testing.assert_array_equal(d.unreached, t < 30)
    assert not d.underflow.any() and not d.vanished.any()
    assert d.verdict == "stable" and "cut by truncated BPTT" in d.text
    # without the window the same zeros are an underflow
    assert one_layer(g).underflow.sum() == 30


def test_nan_and_inf_make_the_verdict_non_finite():
    g = 0.9 ** BACK
    g[3] = np.nan
    g[5] = np.inf
    d = one_layer(g)
    np.testing.assert_array_equal(np.flatnonzero(d.nonfinite), [3, 5])
    assert d.verdict == "non-finite" and "non-finite at t 3, t 5" in d.text
    assert d.ratio is not None  # both ends are finite
    g[0] = np.nan
    assert one_layer(g).ratio is None
    assert one_layer(np.full(T, np.nan)).verdict == "non-finite"


def test_no_gradient_at_all():
    d = one_layer(np.zeros(T))
    assert d.verdict == "no gradient" and d.ratio is None
    assert diagnose({"loss": np.array(1.0)}, "many_to_one").curves == {}


def test_helpers():
    assert runs([0, 1, 1, 0, 1]) == [(1, 2), (4, 4)]
    assert describe_steps([1, 1, 0, 1, 0, 1]) == "t 0–1, t 3, …"
    tiny32 = np.finfo(np.float32).tiny
    flags = below_float_range(np.array([0.0, tiny32 / 4, tiny32, 1.0, np.nan]), np.float32)
    np.testing.assert_array_equal(flags, [True, True, False, False, False])
    assert not below_float_range(np.array([tiny32 / 4]), np.float64).any()
    with pytest.raises(ValueError):
        diagnose_curve(np.ones(3), np.ones(4))


# ----------------------------------------------------------------------------- probe, summary


def small_probe(pattern: str = "many_to_one"):
    from core.experiment import Experiment, LayerConfig, ModelConfig
    from core.init import init_params
    from core.probe import probe

    m = ModelConfig(input_size=2, output_size=1, pattern=pattern,
                    layers=[LayerConfig(cell="rnn", hidden_size=6, bidirectional=True),
                            LayerConfig(cell="gru", hidden_size=5)])
    exp = Experiment(model=m)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3, 2))
    y = rng.normal(size=(3, 1) if pattern == "many_to_one" else (12, 3, 1))
    return exp, probe(exp, init_params(m, exp.init), x, y)


def test_probe_and_summary_use_the_one_definition():
    from core.probe import ProbeResult
    from core.tracefile import gradient_ratio as summary_ratio
    from core.tracefile import summary

    exp, res = small_probe()
    assert res.diagnosis is not None
    assert list(res.diagnosis.curves) == ["l0", "l0_reverse", "l1"]
    g = res.arrays["gradnorm.l0_reverse"]
    assert res.diagnosis.curves["l0_reverse"].ratio == pytest.approx(g[-1] / g[0])
    assert summary_ratio(g, reverse=True) == res.diagnosis.curves["l0_reverse"].ratio
    s = summary(exp, res.arrays, res.spectral_radius, res.backend_label,
                diagnosis=res.diagnosis)
    assert s["gradient_ratio"] == res.diagnosis.ratios()
    assert s["gradient_verdict"] == res.diagnosis.verdicts()
    assert summary(exp, res.arrays, res.spectral_radius, "x")["gradient_ratio"] == s["gradient_ratio"]
    # the field has a default: older constructors keep working
    bare = ProbeResult(experiment=exp, x=res.x, y=res.y, arrays=res.arrays)
    assert bare.diagnosis is None
