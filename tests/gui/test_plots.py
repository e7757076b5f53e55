"""The plot panels: they draw every kind of model, plot exactly the data given, export."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
import pytest
from pyqtgraph.exporters import ImageExporter, SVGExporter
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage

from gui.plots import ALL_PANELS, panel_by_name
from gui.plots.base import batch_norm
from gui.plots.gates import GATE_LABELS

from .conftest import VARIANTS, make_fake_history, make_fake_result

NAMES = ["signals", "hidden", "gates", "cell", "anatomy", "gradients", "jacobian", "eigen",
         "training", "connectivity", "graph"]


def make_panel(qtbot, name: str, size: tuple[int, int] = (600, 380)):
    panel = panel_by_name(name)()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    return panel


def select(combo, key) -> None:
    """Pick the combo item whose data is ``key`` (as a user would)."""
    index = combo.findData(key)
    assert index >= 0, f"{key!r} not offered"
    combo.setCurrentIndex(index)


def check_table(table: dict) -> None:
    assert table, "nothing to export"
    lengths = {v.shape[0] for v in table.values() if v.ndim == 1}
    assert len(lengths) <= 1, f"1-D columns differ in length: {lengths}"
    assert all(v.ndim in (1, 2) for v in table.values())


# ----------------------------------------------------------------------------- registry


def test_registry_order_and_lookup():
    assert [p.name for p in ALL_PANELS] == NAMES
    for panel in ALL_PANELS:
        assert panel_by_name(panel.name) is panel
        assert panel.title and panel.tooltip.count(".") >= 1
    with pytest.raises(KeyError):
        panel_by_name("nope")


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_draws_every_model(qtbot, name, any_result, fake_history):
    panel = make_panel(qtbot, name)
    assert panel.toolTip() == panel.tooltip != ""
    panel.show_result(any_result)
    panel.set_history(fake_history)
    panel.mark_timestep(7)
    panel.mark_timestep(None)
    panel.mark_timestep(10_000)  # out of range: harmless
    panel.show_result(any_result)  # redraw on the same items
    qtbot.wait(1)
    table = panel.to_csv_table()
    if table:
        check_table(table)
    assert panel.export_items()


@pytest.mark.parametrize("name", NAMES)
def test_panels_survive_non_finite_values(qtbot, name):
    r = make_fake_result("lstm", T=20, B=3, H=4)
    for value in r.arrays.values():
        if value.ndim >= 1 and value.dtype.kind == "f" and value.shape[0] == 20:
            value[12:] = np.inf
            value[15:] = np.nan
    r.arrays["gradnorm.l0"][:3] = 0.0
    r.connectivity[:] = np.nan
    r.jacobian["l0"][:] = np.nan
    r.spectra["weight_hh_l0"]["f"][0] = np.nan
    r.nonfinite = "non-finite gradient at step 3, timestep 12"
    panel = make_panel(qtbot, name)
    panel.show_result(r)
    panel.set_history({"step": [0, 1, 2], "loss": [1.0, np.inf, np.nan],
                       "val_loss": [np.nan] * 3, "grad_norm_before": [1.0, 1e30, np.nan],
                       "grad_norm_after": [1.0, 1.0, np.nan]})
    panel.mark_timestep(13)
    panel.grab()


# ----------------------------------------------------------------------------- data shown


def test_gradients_curves_are_the_gradient_norms(qtbot):
    r = make_fake_result("lstm", num_layers=2, bidirectional=True)
    panel = make_panel(qtbot, "gradients")
    panel.show_result(r)
    assert panel.plot.getAxis("left").logMode
    table = panel.to_csv_table()
    for key in ("l0", "l0_reverse", "l1", "l1_reverse"):
        g = r.arrays[f"gradnorm.{key}"]
        np.testing.assert_allclose(panel.curves[f"h.{key}"].yData, g, rtol=1e-6)
        np.testing.assert_allclose(table[f"gradnorm.{key}"], g, rtol=1e-6)
        dc = batch_norm(r.arrays[f"dc.{key}"])
        np.testing.assert_allclose(panel.curves[f"c.{key}"].yData, dc, rtol=1e-6)
        assert panel.curves[f"c.{key}"].opts["pen"].style() == Qt.PenStyle.DashLine
    assert not panel.theory.isVisible()


def test_gradients_theory_line_for_a_linear_rnn(qtbot):
    r = make_fake_result("rnn", activation="linear", decay=0.9)
    panel = make_panel(qtbot, "gradients")
    panel.show_result(r)
    rho = r.spectral_radius["weight_hh_l0"]
    g = r.arrays["gradnorm.l0"]
    theory = panel.theory.yData
    T = len(g)
    np.testing.assert_allclose(theory[-1], g[-1], rtol=1e-6)
    np.testing.assert_allclose(theory, g[-1] * rho ** (T - 1 - np.arange(T)), rtol=1e-6)
    assert panel.theory.isVisible()
    assert "ρ" in panel.plot.titleLabel.text


def glow_points(item) -> int:
    """How many steps a glow curve marks (none drawn: 0)."""
    y = item.yData
    return 0 if y is None else int(np.isfinite(y).sum())


def test_gradients_flag_vanishing_and_exploding(qtbot):
    panel = make_panel(qtbot, "gradients")
    r = make_fake_result("lstm", decay=0.85)
    panel.show_result(r)
    assert "vanishing" in panel.note.text and "exploding" not in panel.note.text
    vanish = panel.glows["l0"][0].yData
    faded = r.diagnosis.curves["l0"].faded
    assert faded[:5].all() and not faded[-5:].any()
    assert np.isfinite(vanish[faded]).all() and np.isnan(vanish[~faded]).all()
    panel.show_result(make_fake_result("rnn", activation="linear", decay=1.15))
    assert "exploding" in panel.note.text and "vanish" not in panel.note.text
    explode = panel.glows["l0"][1].yData
    assert np.isfinite(explode[0]) and np.isnan(explode[-1])


def test_gradients_note_and_glows_are_the_core_diagnosis(qtbot):
    """The panel shows core.diagnosis's verdict and steps, not a rule of its own: a result
    whose diagnosis says otherwise than its curve is drawn with the diagnosis's words."""
    from core.diagnosis import diagnose

    r = make_fake_result("gru", decay=0.93)  # 0.93^99: two decades, stable
    panel = make_panel(qtbot, "gradients", size=(900, 380))
    panel.show_result(r)
    assert "stable" in panel.note.text and "vanish" not in panel.note.text
    assert glow_points(panel.glows["l0"][0]) == 0
    steep = dict(r.arrays)
    steep["gradnorm.l0"] = (0.5 ** (99 - np.arange(100))).astype(np.float32)
    r.diagnosis = diagnose(steep, "many_to_many")
    panel.show_result(r)
    expected = r.diagnosis.curves["l0"]
    assert expected.verdict == "vanishing"
    assert "vanishing" in panel.note.text and "vanished at t 0–79" in panel.note.text
    glow = panel.glows["l0"][0].yData
    np.testing.assert_array_equal(np.isfinite(glow), expected.faded)


def test_gradients_below_float_range_is_a_bar_not_points(qtbot):
    r = make_fake_result("lstm", pattern="many_to_one", decay=0.6, T=120)
    r.arrays["gradnorm.l0"][:30] = 0.0  # the norm underflowed, as at long lengths
    r.arrays["dc.l0"][:20] = np.float32(1e-44)  # subnormal float32: not a value to plot
    from core.diagnosis import diagnose

    r.diagnosis = diagnose(r.arrays, "many_to_one")
    panel = make_panel(qtbot, "gradients", size=(900, 380))
    panel.show_result(r)
    assert np.isnan(panel.curves["h.l0"].yData[:30]).all()  # no points at 0 or 1e-45
    assert np.isnan(panel.curves["c.l0"].yData[:20]).all()
    bar = panel.floors["l0"]
    assert bar.isVisible()
    np.testing.assert_array_equal(np.isfinite(bar.yData), np.arange(120) < 30)
    lo = panel.plot.vb.viewRange()[1][0]
    g = r.arrays["gradnorm.l0"]
    y = np.log10(bar.yData[0])
    assert lo < y < np.log10(g[g > 0].min())  # at the bottom, below every drawn value
    assert "below float range at t 0–29" in panel.note.text
    assert "below float range" in panel.plot.titleLabel.text
    # a result without underflow hides the bar and its legend entry
    panel.show_result(make_fake_result("lstm"))
    drawn = panel.floors["l0"].yData
    assert drawn is None or not np.isfinite(np.asarray(drawn, dtype=float)).any()
    assert "below float range" not in panel.plot.titleLabel.text


def test_gradients_lower_reverse_cell_is_not_called_exploding(qtbot):
    """The stack of a user's report: bidirectional LSTM, then an RNN and a GRU, many to
    one.  The reverse cell of layer 0 gets its gradient from the RNN above, which is large
    near t = T−1 only; its far/last ratio is huge but nothing explodes."""
    from core.experiment import Experiment, LayerConfig, ModelConfig
    from core.init import init_params
    from core.probe import probe

    m = ModelConfig(input_size=2, output_size=1, pattern="many_to_one",
                    layers=[LayerConfig(cell="lstm", hidden_size=16, bidirectional=True),
                            LayerConfig(cell="rnn", hidden_size=16),
                            LayerConfig(cell="gru", hidden_size=16)])
    exp = Experiment(model=m)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4, 2))
    result = probe(exp, init_params(m, exp.init), x, rng.normal(size=(4, 1)),
                   jacobian=False, connectivity=False)
    low = result.diagnosis.curves["l0_reverse"]
    assert low.ratio > 1e3 and low.verdict == "stable"
    panel = make_panel(qtbot, "gradients", size=(1200, 500))
    panel.show_result(result)
    line = next(x for x in panel.note.text.split("<br>") if x.startswith("L0 ←"))
    assert "stable" in line and "explod" not in line and "layer above" in line
    assert glow_points(panel.glows["l0_reverse"][1]) == 0


def test_hidden_heatmap_is_h_transposed_and_follows_selectors(qtbot):
    r = make_fake_result("lstm", num_layers=2, bidirectional=True, B=4)
    panel = make_panel(qtbot, "hidden")
    panel.show_result(r)
    np.testing.assert_array_equal(panel.image.image, r.arrays["h.l0"][:, 0, :].T)
    keys = [panel.layer_selector.itemData(i) for i in range(panel.layer_selector.count())]
    assert keys == ["l0", "l0_reverse", "l1", "l1_reverse"]
    select(panel.layer_selector, "l1_reverse")
    panel.sample_selector.setValue(3)
    np.testing.assert_array_equal(panel.image.image, r.arrays["h.l1_reverse"][:, 3, :].T)
    np.testing.assert_array_equal(panel.to_csv_table()["h.l1_reverse"],
                                  r.arrays["h.l1_reverse"][:, 3, :].T)
    low, high = panel.bar.levels()
    assert low == -high  # diverging map centred on zero
    assert panel.sample_selector.maximum() == 3
    # a new result keeps the user's choices
    panel.show_result(make_fake_result("lstm", num_layers=2, bidirectional=True, B=4, seed=1))
    assert panel.layer_selector.currentData() == "l1_reverse"
    assert panel.sample_selector.value() == 3


def test_a_result_of_the_same_batch_leaves_the_sample_selector_alone(qtbot, monkeypatch):
    """Setting a spin box's range lays out and repaints the panel's bar, even unchanged."""
    panel = make_panel(qtbot, "hidden")
    panel.show_result(make_fake_result("lstm", B=4))
    calls = []
    monkeypatch.setattr(panel.sample_selector, "setRange", lambda *a: calls.append(a))
    panel.show_result(make_fake_result("lstm", B=4, seed=1))
    assert calls == []
    panel.show_result(make_fake_result("lstm", B=6, seed=2))
    assert calls == [(0, 5)]


def test_cell_state_colours_keep_a_round_level_over_small_changes(qtbot):
    """An unbounded cell state gets a round colour level above its largest magnitude,
    kept while the values fill more than half of it and renewed when they outgrow it
    or shrink below half; bounded values keep ±1."""
    r = make_fake_result("lstm", T=20, H=6)
    c = r.arrays["c.l0"]
    panel = make_panel(qtbot, "cell")

    def show(peak: float) -> tuple[float, float]:
        r.arrays["c.l0"] = c / np.max(np.abs(c[:, 0])) * peak
        panel.show_result(r)
        return panel.bar.levels()

    assert show(0.9) == (-1.0, 1.0)
    assert show(2.6) == (-3.0, 3.0)
    assert show(2.2) == (-3.0, 3.0)  # inside and more than half: kept
    assert show(3.4) == (-4.0, 4.0)  # outgrown
    assert show(1.7) == (-2.0, 2.0)  # below half of 4
    assert show(0.5) == (-1.0, 1.0)


def test_hidden_hover_reads_out_unit_time_and_value(qtbot):
    r = make_fake_result("gru", T=30, H=8)
    panel = make_panel(qtbot, "hidden")
    panel.show_result(r)
    text = panel._describe(12.2, 5.1)
    assert "t = 12" in text and "unit 5" in text
    assert f"{r.arrays['h.l0'][12, 0, 5]:+.3f}" in text
    assert panel._describe(-3, 2) is None


def test_cell_panel_shows_c_or_explains_its_absence(qtbot):
    panel = make_panel(qtbot, "cell")
    r = make_fake_result("lstm")
    panel.show_result(r)
    np.testing.assert_array_equal(panel.image.image, r.arrays["c.l0"][:, 0, :].T)
    assert panel.overlay.text == ""
    panel.show_result(make_fake_result("gru"))
    assert "No cell state for this cell" in panel.overlay.text
    assert panel.to_csv_table() == {}
    panel.mark_timestep(4)
    assert not panel.plot._time_marker.isVisible()


def test_gates_heatmap_traces_and_labels(qtbot):
    r = make_fake_result("lstm", B=3)
    panel = make_panel(qtbot, "gates")
    panel.show_result(r)
    labels = [panel.gate_selector.itemText(i) for i in range(panel.gate_selector.count())]
    assert labels == ["i — input (learn = i⊙g)", "f — forget (keep = f⊙old c)",
                      "g — candidate (new values)", "o — output (use = o⊙tanh c)"]
    assert panel.gate_selector.currentData() == "f"
    np.testing.assert_array_equal(panel.image.image, r.arrays["gate.f.l0"][:, 0, :].T)
    assert panel.bar.levels() == (0.0, 1.0)
    for i, g in enumerate("ifgo"):
        np.testing.assert_allclose(panel.curves[i].yData, r.arrays[f"gate.{g}.l0"][:, 0].mean(1),
                                   rtol=1e-6)
    select(panel.gate_selector, "g")  # tanh candidate: diverging levels
    low, high = panel.bar.levels()
    assert low == -high
    gru = make_fake_result("gru")
    panel.show_result(gru)
    assert [panel.gate_selector.itemData(i) for i in range(3)] == ["r", "z", "n"]
    assert GATE_LABELS["z"] == "update"
    assert "update" in panel.trace_plot.titleLabel.text
    panel.show_result(make_fake_result("rnn"))
    assert "no gates" in panel.overlay.text


def test_signals_regression_classification_and_many_to_one(qtbot):
    panel = make_panel(qtbot, "signals")
    r = make_fake_result("lstm", D=2, O=2, B=4)
    panel.show_result(r)
    panel.sample_selector.setValue(2)
    np.testing.assert_array_equal(panel.input_curves[1].yData, r.x[:, 2, 1])
    np.testing.assert_array_equal(panel.target_curves[1].yData, r.y[:, 2, 1])
    np.testing.assert_array_equal(panel.pred_curves[0].yData, r.arrays["output"][:, 2, 0])
    check_table(panel.to_csv_table())

    c = make_fake_result("lstm", loss="cross_entropy", O=3)
    panel.show_result(c)
    probs = panel.prob_image.image
    assert probs.shape == (3, c.x.shape[0])
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(panel.class_targets.data["y"], c.y[:, 2])
    assert panel.prob_bar.isVisible()

    m = make_fake_result("gru", pattern="many_to_one", O=1)
    panel.show_result(m)
    T = m.x.shape[0]
    np.testing.assert_array_equal(panel.pred_curves[0].xData, [T - 1])
    np.testing.assert_allclose(panel.pred_curves[0].yData, m.arrays["output"][2, :1])
    np.testing.assert_allclose(panel.target_curves[0].yData, m.y[2, :1])
    check_table(panel.to_csv_table())

    mc = make_fake_result("gru", pattern="many_to_one", loss="cross_entropy", O=4)
    panel.show_result(mc)
    assert panel.pred_curves[0].yData[0] == np.argmax(mc.arrays["output"][2])


def test_a_knob_edit_sets_only_the_curves_whose_values_changed(qtbot, monkeypatch):
    """The input and the target of a probe are the same after a knob edit: setting
    them again would lay out and repaint their plot for nothing."""
    import dataclasses

    panel = make_panel(qtbot, "signals")
    r = make_fake_result("lstm", D=2, O=1)
    panel.show_result(r)
    calls: list[str] = []
    for name, curve in [("input", panel.input_curves[0]), ("target", panel.target_curves[0]),
                        ("prediction", panel.pred_curves[0])]:
        original = curve.setData
        monkeypatch.setattr(curve, "setData", lambda *a, _n=name, _o=original, **k: (
            calls.append(_n), _o(*a, **k)))
    arrays = dict(r.arrays, output=np.asarray(r.arrays["output"]) * 1.5)  # new weights
    panel.show_result(dataclasses.replace(r, x=np.array(r.x), arrays=arrays))
    assert calls == ["prediction"]
    np.testing.assert_array_equal(panel.pred_curves[0].yData, arrays["output"][:, 0, 0])
    calls.clear()
    x = np.array(r.x)
    x[3, 0, 0] += 1.0  # another batch: the input is drawn again
    panel.show_result(dataclasses.replace(r, x=x, arrays=arrays))
    assert calls == ["input", "prediction"]
    assert panel.input_curves[0].yData[3] == x[3, 0, 0]


def test_an_early_result_waits_only_in_the_views_of_its_pending_analyses(qtbot, monkeypatch):
    """The pass comes first (an early result), its Jacobian products a moment later:
    the gradient panel draws the pass once, the Jacobian panel keeps its curves until
    the products come, and says they are being computed if they take long."""
    from dataclasses import replace

    from gui.plots.base import WAIT_NOTE_MS

    old = make_fake_result("gru", num_layers=2)
    new = make_fake_result("gru", num_layers=2, decay=0.8, seed=1)
    early = replace(new, jacobian={}, pending=("jacobian",))
    jac, grads = make_panel(qtbot, "jacobian"), make_panel(qtbot, "gradients")
    draws = {"jacobian": 0, "gradients": 0}
    for p in (jac, grads):
        p.show_result(old)
        draw = p._draw
        monkeypatch.setattr(p, "_draw", lambda p=p, draw=draw: (
            draws.__setitem__(p.name, draws[p.name] + 1), draw()))
    for p in (jac, grads):
        p.show_result(early)
    assert draws == {"jacobian": 0, "gradients": 1}
    np.testing.assert_allclose(jac.curves["l0"].yData, old.jacobian["l0"])
    for p in (jac, grads):
        p.show_result(new)  # the completion: only the panel that waited draws
    assert draws == {"jacobian": 1, "gradients": 1}
    np.testing.assert_allclose(jac.curves["l0"].yData, new.jacobian["l0"])
    assert jac.overlay.text == ""

    slow = replace(old, jacobian={}, pending=("jacobian",))
    jac.show_result(slow)
    assert jac.overlay.text == ""  # not at once: a short wait would only blink
    qtbot.waitUntil(lambda: "Computing the Jacobian products" in jac.overlay.text,
                    timeout=WAIT_NOTE_MS + 2000)
    assert jac.to_csv_table() == {}  # nothing of the old weights passes for the new
    jac.show_result(old)
    assert jac.overlay.text == ""
    np.testing.assert_allclose(jac.curves["l1"].yData, old.jacobian["l1"])


def test_jacobian_curves_and_placeholder(qtbot):
    r = make_fake_result("gru", num_layers=2)
    panel = make_panel(qtbot, "jacobian")
    panel.show_result(r)
    for key in ("l0", "l1"):
        np.testing.assert_allclose(panel.curves[key].yData, r.jacobian[key])
    assert panel.plot.getAxis("left").logMode
    panel.show_result(make_fake_result("gru", jacobian=False))
    assert "No Jacobian" in panel.overlay.text
    assert panel.to_csv_table() == {}


def test_log_plots_grid_lines_sit_at_the_axis_ticks_and_stay_out_of_the_axis(qtbot):
    """The grid of a log plot is an item of the view, with a line at every tick the
    axis labels; the axis keeps to its own strip (a grid drawn by the axis made it
    cover the whole plot, repainted with every curve)."""
    panel = make_panel(qtbot, "jacobian")
    panel.show_result(make_fake_result("gru", num_layers=2))
    qtbot.wait(50)  # laid out and painted
    plot = panel.plot
    axis, grid = plot.getAxis("left"), plot._grid
    assert axis.grid is False
    assert axis.boundingRect().width() < plot.vb.width() / 2
    (lo, hi) = plot.vb.viewRange()[1]
    assert grid.isVisible() and grid.boundingRect().top() == lo
    levels = axis.tickValues(lo, hi, axis.geometry().height())
    major = [v for v in levels[0][1] if lo <= v <= hi]
    assert len(major) >= 2
    drawn = grid._lines if grid._lines is not None else grid._layout()
    assert [line.y1() for line in drawn[0][1]] == major
    assert all(line.y1() == line.y2() for _o, lines in drawn for line in lines)
    assert 0 < drawn[0][0] <= 0.25

    plot.setYRange(lo - 3, hi + 3, padding=0)  # a new range: the lines follow
    (lo2, hi2) = plot.vb.viewRange()[1]
    assert grid._lines is None
    assert (grid.boundingRect().top(), grid.boundingRect().bottom()) == (lo2, hi2)
    panel.show_result(make_fake_result("gru", jacobian=False))  # a message instead
    assert not grid.isVisible()


def test_log_axis_ticks_are_pyqtgraphs_own_numbers(qtbot):
    """LogAxis computes pyqtgraph's log-axis tick values in plain Python (quicker by
    some 0.2 ms a new range): the same levels and values, then within three decades the
    minor ticks split into 1-2-5 and the rest, over more none."""
    import pyqtgraph as pg

    from gui.plots.base import LogAxis

    axis = LogAxis("left")
    axis.logMode = True
    rng = np.random.default_rng(0)
    spans = [*rng.uniform(0.02, 1, 200), *rng.uniform(1, 3.5, 200), *rng.uniform(3, 14, 200)]
    kinds = set()
    for span in spans:
        lo = float(rng.uniform(-12, 4))
        hi, size = lo + float(span), float(rng.uniform(30, 1200))
        axis.logMode = False  # pyqtgraph's own, then its log levels and the old split
        standard = pg.AxisItem.tickValues(axis, hi, lo, size)
        axis.logMode = True
        expected = pg.AxisItem.logTickValues(axis, lo, hi, size, standard)
        if expected and expected[-1][0] is None:
            minor = np.asarray(expected.pop()[1], dtype=np.float64)
            if hi - lo <= 3:
                main = np.isin(np.round(10 ** (minor % 1)).astype(int), (1, 2, 5))
                expected += [(None, list(minor[main])), (None, list(minor[~main]))]
        got = axis.tickValues(hi, lo, size)
        kinds.add(tuple(s is None for s, _v in got))
        assert [s for s, _v in got] == [s for s, _v in expected], (lo, hi, size)
        for (_s, values), (_e, want) in zip(got, expected, strict=True):
            assert values == [float(v) for v in want], (lo, hi, size)
    assert any(k and not any(k) for k in kinds)  # decades only (over three)
    assert any(k[-2:] == (True, True) for k in kinds)  # minor ticks, split
    assert [len(v) for _s, v in axis.tickValues(-2.2, -1.1, 300)] == [3, 7]  # 2, 5, 10; 3, 4, …


def test_faint_colours_are_mixed_in_advance_over_an_opaque_background():
    from PySide6.QtGui import QColor

    from gui.plots.base import faint

    mixed = faint(QColor(255, 255, 255), QColor(0, 0, 0), 0.25)
    assert mixed.getRgb() == (64, 64, 64, 255)
    assert faint(QColor(0, 0, 0), QColor(255, 255, 255), 0.5).getRgb()[:3] == (128, 128, 128)
    see_through = faint(QColor(255, 0, 0), QColor(0, 0, 0, 0), 0.25)
    assert see_through.red() == 255 and abs(see_through.alphaF() - 0.25) < 0.01


def test_eigen_points_blocks_and_radius(qtbot):
    r = make_fake_result("lstm")
    panel = make_panel(qtbot, "eigen")
    panel.show_result(r)
    assert panel.matrix_selector.currentData() == "weight_hh_l0"
    select(panel.block_selector, "f")
    eig = r.spectra["weight_hh_l0"]["f"]
    table = panel.to_csv_table()
    np.testing.assert_allclose(np.sort_complex(table["real"] + 1j * table["imag"]),
                               np.sort_complex(eig))
    shown = np.concatenate([panel.points.data["x"], panel.outside.data["x"]])
    np.testing.assert_allclose(np.sort(shown), np.sort(eig.real))
    assert f"ρ = {np.abs(eig).max():.3f}" in panel.plot.titleLabel.text
    assert (np.abs(panel.outside.data["x"] + 1j * panel.outside.data["y"]) > 1).all()
    rnn = make_fake_result("rnn")
    panel.show_result(rnn)
    assert panel.block_selector.currentData() == "h"
    loop = make_fake_result("rnn", pattern="output_recurrence")
    panel.show_result(loop)  # one layer: the output-to-hidden loop is its recurrence
    assert panel.matrix_selector.currentData() == "loop_l0"
    no_rec = make_fake_result("rnn", pattern="output_recurrence", num_layers=2)
    assert no_rec.spectra == {}
    panel.show_result(no_rec)
    assert "No recurrent weight matrix" in panel.overlay.text


def test_training_history(qtbot, fake_history):
    panel = make_panel(qtbot, "training")
    assert "No training yet" in panel.overlay.text
    panel.show_result(make_fake_result("lstm"))
    assert not panel.clip_line.isVisible()  # nothing to compare it with yet
    panel.set_history(fake_history)
    assert panel.clip_line.isVisible()  # the default experiment clips by norm at 1.0
    np.testing.assert_allclose(panel.loss.yData, fake_history["loss"])
    seen = np.isfinite(fake_history["val_loss"])
    np.testing.assert_allclose(panel.val.xData, fake_history["step"][seen])
    np.testing.assert_allclose(panel.after.yData, fake_history["grad_norm_after"])
    np.testing.assert_allclose(panel.to_csv_table()["grad_norm_before"],
                               fake_history["grad_norm_before"])
    assert panel.overlay.text == ""
    panel.set_history({k: [] for k in fake_history})
    assert panel.to_csv_table() == {}
    panel.set_history({"loss": [1.0, 0.5]})  # missing columns are tolerated
    np.testing.assert_array_equal(panel.to_csv_table()["step"], [0, 1])


def test_connectivity_is_log10_with_colour_bar(qtbot):
    r = make_fake_result("lstm", T=40)
    panel = make_panel(qtbot, "connectivity")
    panel.show_result(r)
    expected = np.where(r.connectivity > 0, np.log10(np.where(r.connectivity > 0,
                                                              r.connectivity, 1)), np.nan)
    np.testing.assert_allclose(panel.image.image, expected)
    assert "log" in panel.bar.getAxis("right").labelText  # beside the values
    lo, hi = panel.bar.levels()  # the peak rounded up to half a decade, at most 8 below
    assert 0 <= hi - np.nanmax(expected) < 0.5 and hi * 2 == round(hi * 2) and hi - lo <= 8
    m = make_fake_result("lstm", T=40, pattern="many_to_one")
    panel.show_result(m)
    assert panel.image.image.shape == (1, 40)
    panel.show_result(make_fake_result("lstm", connectivity=False))
    assert "No connectivity" in panel.overlay.text


def test_connectivity_colours_keep_their_levels_over_small_changes(qtbot):
    """A map that moves a little keeps the colour levels and the axes: their labels are
    not laid out again (a change of levels or of an axis's style redraws it)."""
    from dataclasses import replace

    r = make_fake_result("lstm", T=30)
    t = np.arange(30)
    decades = -0.5 * np.abs(t[:, None] - t[None, :]) + 0.2  # 14.5 decades across
    panel = make_panel(qtbot, "connectivity")
    panel.show_result(replace(r, connectivity=10.0 ** decades))
    levels = tuple(panel.bar.levels())
    assert levels == (0.5 - 8, 0.5)
    axes = [panel.plot.getAxis("left"), panel.plot.getAxis("bottom"), panel.bar.getAxis("right")]
    panel.glw.grab()  # painted: each axis keeps its picture until it must be redrawn
    pictures = [axis.picture for axis in axes]
    assert None not in pictures
    panel.show_result(replace(r, connectivity=10.0 ** (decades - 0.4)))
    panel.glw.grab()
    assert tuple(panel.bar.levels()) == levels
    assert all(axis.picture is picture for axis, picture in zip(axes, pictures, strict=True))
    np.testing.assert_allclose(panel.image.image, decades - 0.4)
    panel.show_result(replace(r, connectivity=10.0 ** (decades + 2)))  # the peak went up
    assert tuple(panel.bar.levels()) == (2.5 - 8, 2.5)


# ----------------------------------------------------------------------------- real engine

ENGINE_MODELS = {
    "lstm_seq": ({"cell": "lstm"}, "many_to_many", "mse", 2),
    "gru_bidir2": ({"cell": "gru", "bidirectional": True}, "many_to_many", "mse", 2),
    "rnn_feedback": ({"cell": "rnn"}, "output_recurrence", "mse", 1),
    "lstm_classes_final": ({"cell": "lstm", "peephole": True}, "many_to_one",
                           "cross_entropy", 1),
    "cifg_bidir2": ({"cell": "cifg", "bidirectional": True}, "many_to_many", "mse", 2),
    "mingru_bidir2": ({"cell": "mingru", "bidirectional": True}, "many_to_many", "mse", 2),
    "minlstm_final": ({"cell": "minlstm"}, "many_to_one", "mse", 1),
    "mingru_feedback": ({"cell": "mingru"}, "output_recurrence", "mse", 1),
}


@pytest.mark.parametrize("model", sorted(ENGINE_MODELS))
def test_panels_draw_real_probe_results(qtbot, model):
    from core.experiment import Experiment, LayerConfig, ModelConfig
    from core.init import init_params
    from core.probe import probe

    layer, pattern, loss, n_layers = ENGINE_MODELS[model]
    O = 3 if loss == "cross_entropy" else 1
    m = ModelConfig(input_size=2, output_size=O, pattern=pattern, loss=loss,
                    layers=[LayerConfig(hidden_size=6, **layer) for _ in range(n_layers)])
    exp = Experiment(model=m)
    rng = np.random.default_rng(0)
    T, B = 15, 3
    x = rng.normal(size=(T, B, 2))
    shape = (B,) if pattern == "many_to_one" else (T, B)
    y = rng.integers(0, O, size=shape) if loss == "cross_entropy" else rng.normal(size=(*shape, O))
    result = probe(exp, init_params(m, exp.init), x, y)
    for name in NAMES:
        panel = make_panel(qtbot, name, size=(450, 300))
        panel.show_result(result)
        panel.mark_timestep(3)
        table = panel.to_csv_table()
        if table:
            check_table(table)
    grads = make_panel(qtbot, "gradients")
    grads.show_result(result)
    np.testing.assert_allclose(grads.curves["h.l0"].yData, result.arrays["gradnorm.l0"],
                               rtol=1e-6)


def _real_probe(cell: str, pattern: str = "many_to_one", T: int = 40):
    from core.experiment import Experiment, LayerConfig, ModelConfig
    from core.init import init_params
    from core.probe import probe

    m = ModelConfig(input_size=2, output_size=1, pattern=pattern,
                    layers=[LayerConfig(cell=cell, hidden_size=6)])
    exp = Experiment(model=m)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(T, 3, 2))
    y = rng.normal(size=(3, 1) if pattern == "many_to_one" else (T, 3, 1))
    return probe(exp, init_params(m, exp.init), x, y, connectivity=False)


@pytest.mark.parametrize(("cell", "text"), [("mingru", "∏(1−z)"), ("minlstm", "∏ f′")])
def test_gradients_theory_is_the_gate_product_for_input_only_cells(qtbot, cell, text):
    """A one-layer minGRU/minLSTM with the loss on the last step: the overlay is the exact
    product of the keep factors, so it lies on the curve."""
    r = _real_probe(cell)
    panel = make_panel(qtbot, "gradients")
    panel.show_result(r)
    assert panel.theory.isVisible()
    np.testing.assert_allclose(panel.theory.yData, r.arrays["gradnorm.l0"], rtol=1e-5)
    assert text in panel.plot.titleLabel.text
    assert "theory" in panel.to_csv_table()


def test_gradients_no_gate_theory_for_a_gru(qtbot):
    panel = make_panel(qtbot, "gradients")
    panel.show_result(_real_probe("gru"))
    assert not panel.theory.isVisible()


def test_eigen_shows_the_diagonal_step_jacobian_without_w_hh(qtbot):
    r = _real_probe("mingru", "many_to_many", T=20)
    panel = make_panel(qtbot, "eigen")
    panel.show_result(r)
    assert panel.matrix_selector.currentData() == "step_jacobian_l0"
    assert panel.block_selector.currentData() == "mean"
    z = r.arrays["gate.z.l0"][:, 0]
    want = np.exp(np.log(1 - z).mean(axis=0))
    table = panel.to_csv_table()
    np.testing.assert_allclose(np.sort(table["real"]), np.sort(want), rtol=1e-6)
    assert np.all(table["imag"] == 0)
    assert "Diagonal step Jacobian" in panel.plot.titleLabel.text or "diag" in \
        panel.plot.titleLabel.text


# ----------------------------------------------------------------------------- interaction


def test_click_on_a_time_plot_emits_the_timestep(qtbot):
    panel = make_panel(qtbot, "gradients")
    panel.show_result(make_fake_result("gru", T=50))
    qtbot.wait(20)
    vb = panel.plot.vb
    scene_pt = vb.mapViewToScene(pg.Point(30, vb.viewRange()[1][0] * 0.5
                                          + vb.viewRange()[1][1] * 0.5))
    view_pt = panel.glw.mapFromScene(scene_pt)
    with qtbot.waitSignal(panel.timestep_clicked, timeout=1000) as blocker:
        qtbot.mouseClick(panel.glw.viewport(), Qt.MouseButton.LeftButton,
                         pos=QPoint(view_pt.x(), view_pt.y()))
    assert blocker.args == [30]


def test_mark_timestep_moves_the_markers(qtbot):
    panel = make_panel(qtbot, "gates")
    panel.show_result(make_fake_result("lstm"))
    panel.mark_timestep(42)
    lines = [line for _plot, line in panel._time_plots]
    assert len(lines) == 2 and all(line.isVisible() and line.value() == 42 for line in lines)
    panel.mark_timestep(None)
    assert not any(line.isVisible() for line in lines)


# ----------------------------------------------------------------------------- export


def _non_blank(img: QImage) -> bool:
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    w, h = img.width(), img.height()
    colours = {img.pixel(x, y) for x in range(0, w, 7) for y in range(0, h, 7)}
    return w > 100 and h > 100 and len(colours) > 5


@pytest.mark.parametrize("name", NAMES)
def test_png_export_is_not_blank(qtbot, name):
    panel = make_panel(qtbot, name)
    panel.show_result(make_fake_result(**VARIANTS["lstm"]))
    panel.set_history(make_fake_history())
    qtbot.wait(1)
    for item in panel.export_items():
        exporter = ImageExporter(item)
        img = exporter.export(toBytes=True)
        assert isinstance(img, QImage) and _non_blank(img)


def test_svg_export_of_every_panel(qtbot, tmp_path):
    for name in NAMES:
        panel = make_panel(qtbot, name)
        panel.show_result(make_fake_result("lstm", T=30))
        panel.set_history(make_fake_history(30))
        for i, item in enumerate(panel.export_items()):
            path = tmp_path / f"{name}_{i}.svg"
            SVGExporter(item).export(str(path))
            text = path.read_text(encoding="utf-8")
            assert "<svg" in text and len(text) > 2000, name


def test_redraw_of_every_panel_is_fast(qtbot):
    """Default sizes (T=100, B=16, H=32): all ten panels redraw well within a frame budget."""
    r = make_fake_result("lstm")
    panels = [make_panel(qtbot, name) for name in NAMES]
    for p in panels:
        p.show_result(r)
    qtbot.wait(1)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for p in panels:
            p.show_result(r)
        runs.append(time.perf_counter() - t0)
    # The target is 50 ms; the bound leaves room for a busy test machine.
    assert min(runs) < 0.15, f"redraw took {min(runs) * 1e3:.0f} ms"


# ----------------------------------------------------------------------------- fit and finish


def _titles(panel):
    """Every plot title (and free label) of a panel that chooses among variants."""
    from pyqtgraph import LabelItem, PlotItem

    labels = []
    for item in panel.glw.scene().items():
        if isinstance(item, PlotItem) and hasattr(item.titleLabel, "_fit"):
            labels.append(item.titleLabel)
        elif isinstance(item, LabelItem) and hasattr(item, "_fit"):
            labels.append(item)
    return labels


@pytest.mark.parametrize("size", [(310, 240), (450, 300)])
@pytest.mark.parametrize("variant", ["lstm", "bidir2", "many_to_one", "rnn_linear", "classes"])
def test_titles_fit_at_dock_sizes(qtbot, size, variant):
    """At the window's dock sizes no title is cut: the fullest variant that fits shows,
    and a shortened one keeps the full text as its tooltip."""
    from gui.plots.base import text_width

    r = make_fake_result(**VARIANTS[variant])
    for name in NAMES:
        panel = make_panel(qtbot, name, size)
        panel.show_result(r)
        panel.set_history(make_fake_history())
        qtbot.wait(1)
        for label in _titles(panel):
            variants, font_size, room = label._fit
            shown, _size = label._fit_shown
            assert shown in variants
            if shown != variants[-1]:
                assert text_width(shown, font_size) <= room(), (name, shown)
            assert label.toolTip() == ("" if shown == variants[0] else variants[0])


def test_a_narrow_plot_shortens_its_title_and_a_wide_one_shows_it_all(qtbot):
    r = make_fake_result("lstm", num_layers=2, bidirectional=True)
    panel = make_panel(qtbot, "hidden", (900, 400))
    panel.show_result(r)
    qtbot.wait(1)
    assert "Hidden state" in panel.plot.titleLabel.text
    panel.resize(260, 240)
    qtbot.waitUntil(lambda: "Hidden state" not in panel.plot.titleLabel.text, timeout=2000)
    assert "Hidden state" in panel.plot.titleLabel.toolTip()


def test_placeholder_messages_wrap_inside_the_plot(qtbot):
    panel = make_panel(qtbot, "training", (300, 260))
    qtbot.wait(1)
    item = panel.overlay._item
    assert "No training yet" in panel.overlay.text
    assert item.textItem.textWidth() <= panel.loss_plot.vb.width()
    rect = item.mapRectToItem(panel.loss_plot.vb, item.boundingRect())
    assert rect.left() >= 0 and rect.right() <= panel.loss_plot.vb.width()
    assert not panel.clip_line.isVisible()


def test_plot_items_never_lose_their_scene(qtbot):
    """Items dropped by a change of model stay in the scene, hidden: an item without a
    parent or scene is freed at an arbitrary time, which can crash at teardown."""
    signals = make_panel(qtbot, "signals")
    assert signals.prob_bar.scene() is signals.glw.scene()
    signals.show_result(make_fake_result(**VARIANTS["classes"]))
    assert signals.prob_bar.isVisible()
    signals.show_result(make_fake_result("lstm"))
    assert signals.prob_bar.scene() is signals.glw.scene() and not signals.prob_bar.isVisible()

    grads = make_panel(qtbot, "gradients")
    assert grads.dc_sample.scene() is grads.glw.scene()
    grads.show_result(make_fake_result(**VARIANTS["bidir2"]))
    old = list(grads.curves.values())
    grads.show_result(make_fake_result("gru"))
    assert all(c.scene() is grads.glw.scene() for c in old)
    assert sum(c.isVisible() for c in old) == 1  # the one curve of the GRU

    jac = make_panel(qtbot, "jacobian")
    jac.show_result(make_fake_result(**VARIANTS["bidir2"]))
    old = list(jac.curves.values())
    jac.show_result(make_fake_result("gru"))
    assert all(c.scene() is jac.glw.scene() for c in old)


def test_a_panel_behind_a_tab_draws_when_shown(qtbot):
    from PySide6.QtWidgets import QTabWidget

    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    front, back = panel_by_name("gradients")(), panel_by_name("hidden")()
    tabs.addTab(front, "front")
    tabs.addTab(back, "back")
    tabs.resize(600, 400)
    tabs.show()
    r = make_fake_result("gru", T=30, H=8)
    front.show_result(r)
    back.show_result(r)
    assert back.image.image is None  # nobody sees it: not drawn yet
    np.testing.assert_array_equal(back.to_csv_table()["h.l0"], r.arrays["h.l0"][:, 0, :].T)
    r2 = make_fake_result("gru", T=30, H=8, seed=1)
    back.show_result(r2)
    tabs.setCurrentWidget(back)
    np.testing.assert_array_equal(back.image.image, r2.arrays["h.l0"][:, 0, :].T)


@pytest.mark.parametrize("name", ["signals", "gradients", "jacobian", "hidden", "gates"])
def test_a_new_result_is_painted_once(qtbot, name):
    """View ranges are final before painting, so a redraw costs one paint, not two or three."""
    import time

    from PySide6.QtCore import QEvent, QObject

    panel = make_panel(qtbot, name)
    paints = []

    class Count(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                paints.append(time.monotonic())
            return False

    def settle(quiet_s: float = 0.15) -> None:
        """Wait until no paint has come for ``quiet_s`` (a busy machine delays them)."""
        start = time.monotonic()
        while time.monotonic() - max([start, *paints]) < quiet_s:
            qtbot.wait(10)

    counter = Count()
    panel.glw.viewport().installEventFilter(counter)
    panel.show_result(make_fake_result("lstm", seed=0, decay=0.8))
    settle()  # the first result's paints, however late, are over
    paints.clear()
    panel.show_result(make_fake_result("lstm", seed=1, decay=0.95))
    settle()
    panel.glw.viewport().removeEventFilter(counter)
    assert len(paints) == 1


@pytest.mark.parametrize(("cell", "gate", "words"), [
    ("minlstm", "f", "f′ = f/(f+i)"), ("mingru", "z", "from x only"), ("cifg", "f", "write 1−f"),
])
def test_gates_name_what_a_gate_means_in_the_new_cells(qtbot, cell, gate, words):
    r = _real_probe(cell, "many_to_many", T=10)
    panel = make_panel(qtbot, "gates")
    panel.show_result(r)
    labels = [panel.gate_selector.itemText(i) for i in range(panel.gate_selector.count())]
    assert any(words in text for text in labels), labels
    assert panel.gate_selector.currentData() == gate
