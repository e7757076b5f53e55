from __future__ import annotations

from core.knob_effects import idle_knobs
from tests.core.helpers import small_model


def test_every_knob_acts_on_an_lstm():
    assert idle_knobs(small_model("lstm")) == {}
    assert idle_knobs(small_model("cifg")) == {}


def test_forget_bias_needs_a_forget_gate():
    assert set(idle_knobs(small_model("gru"))) == {"init.forget_bias"}
    assert "minLSTM" in idle_knobs(small_model("mingru"))["init.forget_bias"]
    assert "init.forget_bias" not in idle_knobs(small_model("minlstm"))


def test_recurrent_scale_needs_hidden_weights_or_feedback():
    reason = idle_knobs(small_model("minlstm"))["init.scales.recurrent"]
    assert reason.startswith("no effect: minLSTM cells have no hidden-to-hidden weights")
    assert "init.scales.recurrent" not in idle_knobs(small_model("mingru", "output_recurrence"))
    mixed = small_model("mingru", depth=2)
    mixed.layers[1].cell = "gru"
    assert "init.scales.recurrent" not in idle_knobs(mixed)
