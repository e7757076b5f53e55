"""The lessons on the CIFG and the minGRU do what their texts say, trained as they say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.diagonal import keep_theory
from core.lab import Lab
from core.lessons import load_lesson


def _text(name: str) -> str:
    return " ".join(load_lesson(name).description.split())


def _ratio(res, key: str = "l0") -> float:
    g = res.arrays[f"gradnorm.{key}"]
    return math.log10(g[0] / g[-1])


def test_coupled_gates_at_the_start():
    text = _text("coupled_gates")
    assert "f starts near 0.88" in text and "0.88^99 ≈ 10^−5.5" in text
    res = Lab.from_preset("coupled_gates").probe(jacobian=False, connectivity=False)
    f = res.arrays["gate.f.l0"]
    assert f.mean() == pytest.approx(0.88, abs=0.01)
    assert (1 - f).mean() == pytest.approx(1 / 8, abs=0.01)  # "an eighth ... is written"
    assert "gate.i.l0" not in res.arrays


def test_coupled_gates_trained_then_an_lstm_after_a_pin():
    text = _text("coupled_gates")
    assert "below 0.002" in text and "losing about a decade" in text
    assert "about five decades below the pinned one" in text
    lab = Lab.from_preset("coupled_gates")
    lab.train()
    assert np.mean(lab.history.column("loss")[-10:]) < 0.002
    res = lab.probe(jacobian=False, connectivity=False)
    assert -1.5 <= _ratio(res) <= -0.5
    pin = lab.pin()
    assert lab.update_layer(0, cell="lstm") and lab.reset()
    lab.train()
    assert np.mean(lab.history.column("loss")[-10:]) > 0.12  # still on the 0.167 plateau
    other = lab.probe(jacobian=False, connectivity=False)
    below = math.log10(other.arrays["gradnorm.l0"][0] / pin.curves["gradnorm.l0"][0])
    assert -6 <= below <= -4.5
    assert lab.differences(pin) == ["model.layers.0.cell cifg → lstm"]


def test_input_only_gates_at_the_start():
    text = _text("input_only_gates")
    assert "with z near 0.5 it falls about eleven decades over 40 steps" in text
    res = Lab.from_preset("input_only_gates").probe(jacobian=True, connectivity=False)
    assert res.arrays["gate.z.l0"].mean() == pytest.approx(0.5, abs=0.03)
    theory = keep_theory(res.arrays, "l0", "mingru")
    assert -11.5 <= math.log10(theory[0] / theory[-1]) <= -10.5
    assert -11.5 <= math.log10(res.jacobian["l0"][0]) <= -10
    assert res.spectral_radius == {"step_jacobian_l0": pytest.approx(0.5, abs=0.05)}


def test_input_only_gates_trained():
    text = _text("input_only_gates")
    assert "ρ climbs from about 0.5 to 0.97 and the product spans the sequence within a decade" \
        in text
    lab = Lab.from_preset("input_only_gates")
    lab.train()
    res = lab.probe(jacobian=True, connectivity=False)
    assert res.spectral_radius["step_jacobian_l0"] == pytest.approx(0.97, abs=0.02)
    theory = keep_theory(res.arrays, "l0", "mingru")
    assert -1 <= math.log10(theory[0] / theory[-1]) <= 0
    assert res.arrays["gate.z.l0"].mean() < 0.35  # z learnt to close
