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
    assert s["gradient_far_last"] == res.diagnosis.ratios()
    # the contract's ratio is in time order for every cell: ||dL/dh_0|| / ||dL/dh_T-1||
    assert s["gradient_ratio"]["l0_reverse"] == pytest.approx(g[0] / g[-1])
    assert s["gradient_verdict"] == res.diagnosis.verdicts()
    again = summary(exp, res.arrays, res.spectral_radius, "x")
    assert again["gradient_far_last"] == s["gradient_far_last"]
    # the field has a default: older constructors keep working
    bare = ProbeResult(experiment=exp, x=res.x, y=res.y, arrays=res.arrays)
    assert bare.diagnosis is None


# ----------------------------------------------------------------------------- the lessons

# What each lesson's text says about the "Gradient flow over time" plot of its first
# layer: the verdict per direction, the words that say it (they must be in the text),
# and the range of log10(farthest/last) those words allow.  A lesson that says nothing
# about the curve must not show a vanishing or exploding label either: "stable".
LESSON_CLAIMS: dict[str, tuple[dict[str, str], str | None, tuple[float, float]]] = {
    "vanishing_tanh": ({"l0": "vanishing"}, "falls by more than ten decades", (-99, -10)),
    "exploding_clipping": ({"l0": "exploding"}, "nearly seven decades", (6.5, 7.0)),
    "sigmoid_flattening": ({"l0": "stable"}, "stays level", (-0.5, 0.5)),
    "forget_gate": ({"l0": "stable"}, "only about two decades below the last", (-2.5, -1.5)),
    "lstm_anatomy": ({"l0": "stable"}, None, (-1, 1)),
    "peephole": ({"l0": "stable"}, None, (-1, 1)),
    "gru_gates": ({"l0": "stable"}, "loses less than three decades over 100 steps", (-3, -2)),
    "coupled_gates": ({"l0": "stable"}, "about five and a half decades below the last",
                      (-6, -5)),
    "input_only_gates": ({"l0": "stable"}, "stays level", (-0.5, 0.5)),
    "bidirectional": ({"l0": "vanishing", "l0_reverse": "vanishing"},
                      "sees the far end of the sequence only faintly", (-99, -6)),
    "sequence_to_one": ({"l0": "stable"}, "about four decades below the last", (-4.5, -3.5)),
    "teacher_forcing": ({"l0": "stable"}, "stays at that step", (-0.5, 0.5)),
    "one_weights_every_length": ({"l0": "stable"}, "stays level at every length", (-0.5, 0.5)),
    # scale 1, 50 steps: between the text's 10⁻² after 10 steps and 10⁻²⁴ after 100
    "edge_of_chaos": ({"l0": "vanishing"}, "10⁻²⁴ after 100", (-14, -10)),
}


def lesson_probe(name: str, edit=None):
    import copy

    from core.lab import Lab

    exp = copy.deepcopy(Lab.from_preset(name).experiment)
    if edit is not None:
        edit(exp)
    return exp, Lab(exp).probe(jacobian=False, connectivity=False)


def lesson_names() -> list[str]:
    from core.lessons import list_lessons

    return [n for n, _title in list_lessons()]


def test_every_lesson_has_its_claim_written_down():
    missing = [n for n in lesson_names() if n not in LESSON_CLAIMS]
    assert not missing, f"say what these lessons claim about the gradient curve: {missing}"


@pytest.mark.parametrize("name", lesson_names())
def test_lesson_text_and_diagnosis_agree(name):
    from core.lessons import load_lesson

    verdicts, words, (lo, hi) = LESSON_CLAIMS[name]
    text = " ".join(load_lesson(name).description.split())
    if words is not None:
        assert words in text, f"{name}: the text no longer says {words!r}"
    _exp, res = lesson_probe(name)
    for key, verdict in verdicts.items():
        d = res.diagnosis.curves[key]
        assert d.verdict == verdict, f"{name} {key}: {d.text}"
        assert lo <= math.log10(d.ratio) <= hi, f"{name} {key}: {d.text}"


def _set(path: str, value):
    def edit(exp):
        obj = exp
        *head, last = path.split(".")
        for part in head:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        setattr(obj, last, value)
    return edit


# The "Try:" suggestions that say what the curve will do: (lesson, edit, words in the
# text, verdicts of layer 0, how far log10(farthest/last) moves from the lesson's own).
TRY_CLAIMS = [
    ("vanishing_tanh", _set("init.scales.recurrent", 2.0), "watch the curve flatten",
     {"l0": "stable"}, (10, 99)),
    # more than the 12.3 decades the lesson's curve falls: it now rises from right to left
    ("vanishing_tanh", _set("init.scales.recurrent", 4.0), "tilts the other way",
     {}, (12.5, 99)),
    ("forget_gate", _set("init.forget_bias", 0.0), "falls by more than fifteen further decades",
     {"l0": "vanishing"}, (-99, -15)),
    ("gru_gates", _set("init.scales.recurrent", 1.0), "collapses by more than fifteen decades",
     {"l0": "vanishing"}, (-99, -15)),
    ("bidirectional", _set("init.scales.recurrent", 2.0), "watch both curves flatten together",
     {"l0": "stable", "l0_reverse": "stable"}, (9, 99)),
    ("sequence_to_one", _set("model.layers.0.cell", "rnn"), "a tanh RNN would lose more than ten",
     {"l0": "vanishing"}, (-99, -6)),
    ("one_weights_every_length", _set("task.seq_len", 200), "stays level at every length",
     {"l0": "stable"}, (-0.5, 0.5)),
]


@pytest.mark.parametrize(("name", "edit", "words", "verdicts", "shift"), TRY_CLAIMS,
                         ids=[f"{c[0]}-{c[2][:20]}" for c in TRY_CLAIMS])
def test_lesson_suggestions_do_what_the_text_says(name, edit, words, verdicts, shift):
    from core.lessons import load_lesson

    assert words in " ".join(load_lesson(name).description.split())
    _exp, before = lesson_probe(name)
    _exp, after = lesson_probe(name, edit)
    for key, verdict in verdicts.items():
        assert after.diagnosis.curves[key].verdict == verdict, after.diagnosis.curves[key].text
    moved = (math.log10(after.diagnosis.curves["l0"].ratio)
             - math.log10(before.diagnosis.curves["l0"].ratio))
    assert shift[0] <= moved <= shift[1], (moved, after.diagnosis.curves["l0"].text)


def test_the_gradient_norm_of_huge_finite_float32_gradients_stays_finite():
    """The kept last finite weights of a diverged run still get a gradient curve: the
    squares are summed in float64, so 1e19 (or 1e-22) does not overflow (or vanish)."""
    from core.backend import resolve_backend
    from core.experiment import ModelConfig
    from core.tracing import LayerTrace, Trace

    be = resolve_backend("numpy", "float32")
    dh = np.full((3, 2, 4), 1e19, dtype=np.float32)
    dh[0] = 1e-22
    tr = Trace(ModelConfig(), be, np.zeros((3, 2, 1), np.float32),
               {"l0": LayerTrace(h=np.zeros_like(dh), dh=dh)})
    g = tr.gradnorm("l0")
    assert g.dtype == np.float32 and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [2e-22, 2e19, 2e19], rtol=1e-6)
