"""The LSTM anatomy panel and its lesson: learn, forget, remember and use over time."""

from __future__ import annotations

import numpy as np
import pytest

from core.anatomy import PARTS, lstm_anatomy
from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.init import init_params
from core.lab import Lab, run_probe
from core.lessons import ORDER, list_lessons, load_lesson
from gui.plots import ALL_PANELS, panel_by_name
from gui.plots.anatomy import AnatomyPanel
from gui.plots.base import batch_norm


def make_anatomy(qtbot) -> AnatomyPanel:
    panel = AnatomyPanel()
    qtbot.addWidget(panel)
    panel.resize(700, 420)
    panel.show()
    return panel


def real_probe(cells=("lstm",), bidirectional=False, pattern="many_to_many"):
    layers = [LayerConfig(cell=c, hidden_size=5, bidirectional=bidirectional) for c in cells]
    model = ModelConfig(input_size=1, output_size=1, layers=layers, pattern=pattern)
    exp = Experiment(model=model, task=TaskConfig(name="sine", seq_len=25, batch_size=3))
    exp.init.forget_bias = 1.0
    return run_probe(exp, init_params(model, exp.init), None, jacobian=False,
                     connectivity=False)


def curve(panel: AnatomyPanel, part: str, norm: bool = False) -> np.ndarray:
    item = (panel.norm_curves if norm else panel.curves)[part]
    return np.zeros(0) if item.yData is None else np.asarray(item.yData, dtype=np.float64)


def test_registered_after_the_cell_state():
    names = [p.name for p in ALL_PANELS]
    assert panel_by_name("anatomy") is AnatomyPanel
    assert names.index("anatomy") == names.index("cell") + 1


def test_curves_are_the_four_parts_of_a_real_probe(qtbot):
    r = real_probe()
    panel = make_anatomy(qtbot)
    panel.show_result(r)
    parts = lstm_anatomy(r.arrays, "l0")
    assert panel.unit_selector.text() == "mean over units"
    for p in PARTS:
        np.testing.assert_allclose(curve(panel, p), parts[p][:, 0, :].mean(axis=1), rtol=1e-9)
        np.testing.assert_allclose(curve(panel, p, norm=True), batch_norm(parts[p]), rtol=1e-9)
    # what the plot shows adds up, and what is used is the hidden state
    np.testing.assert_allclose(curve(panel, "remember"),
                               curve(panel, "forget") + curve(panel, "learn"), atol=1e-6)
    np.testing.assert_allclose(curve(panel, "use"), r.arrays["h.l0"][:, 0, :].mean(axis=1),
                               atol=1e-6)
    assert curve(panel, "forget")[0] == 0  # nothing to keep before the first step
    table = panel.to_csv_table()
    assert set(table) == {"timestep", *PARTS, *(f"batch_norm_{p}" for p in PARTS)}
    assert "layer 0" in panel.plot.titleLabel.text

    panel.sample_selector.setValue(2)
    panel.unit_selector.setValue(3)
    for p in PARTS:
        np.testing.assert_allclose(curve(panel, p), parts[p][:, 2, 3], rtol=1e-9)
    assert "unit 3" in panel.plot.titleLabel.text
    assert panel.unit_selector.maximum() == 4


def test_reverse_cells_and_other_cells_in_a_stack(qtbot):
    r = real_probe(("lstm", "gru"), bidirectional=True)
    panel = make_anatomy(qtbot)
    panel.show_result(r)
    panel.layer_selector.setCurrentIndex(panel.layer_selector.findData("l0_reverse"))
    parts = lstm_anatomy(r.arrays, "l0_reverse")
    np.testing.assert_allclose(curve(panel, "learn"), parts["learn"][:, 0].mean(1), rtol=1e-9)
    assert curve(panel, "forget")[-1] == 0 and curve(panel, "forget")[0] != 0
    assert panel.overlay.text == ""
    panel.layer_selector.setCurrentIndex(panel.layer_selector.findData("l1"))
    assert "GRU cell" in panel.overlay.text and "LSTM" in panel.overlay.text
    assert panel.to_csv_table() == {}
    assert all(curve(panel, p).size == 0 for p in PARTS)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_other_models_are_told_plainly(qtbot, fake_result, cell):
    panel = make_anatomy(qtbot)
    panel.show_result(fake_result(cell))
    assert f"{cell.upper()} cell" in panel.overlay.text
    assert "Only LSTM" in panel.norm_overlay.text
    panel.show_result(fake_result("lstm"))
    assert panel.overlay.text == "" and panel.to_csv_table()


def test_output_recurrence_keeps_nothing(qtbot):
    r = real_probe(pattern="output_recurrence")
    panel = make_anatomy(qtbot)
    panel.show_result(r)
    assert not curve(panel, "forget").any()
    np.testing.assert_allclose(curve(panel, "remember"), curve(panel, "learn"), atol=1e-6)
    assert "nothing to forget" in panel.plot.titleLabel.toolTip() + panel.plot.titleLabel.text


def test_lesson_sets_up_what_it_describes(qtbot):
    names = [name for name, _title in list_lessons()]
    assert ORDER.index("lstm_anatomy") == ORDER.index("forget_gate") + 1
    assert names.index("lstm_anatomy") == names.index("forget_gate") + 1
    exp = load_lesson("lstm_anatomy")
    assert exp.title == "Anatomy of an LSTM cell"
    assert [layer.cell for layer in exp.model.layers] == ["lstm"]
    assert f'"{AnatomyPanel.title}"' in exp.description  # the window brings the plot forward
    assert "Try:" in exp.description
    r = Lab.from_preset("lstm_anatomy").probe()
    panel = make_anatomy(qtbot)
    panel.show_result(r)
    # the delimiter at step 34 is a new input: the cell writes more then than just before
    learn = curve(panel, "learn", norm=True)
    assert "step 34" in exp.description
    assert learn[34] > 1.1 * learn[33]
    # and what the first steps wrote fades: the kept part shrinks over the blanks
    forget = curve(panel, "forget")
    assert abs(forget[6]) > 2 * abs(forget[30])
