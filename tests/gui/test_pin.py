"""Pin a run in the window: the live run is drawn over the pinned one, with what differs."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QMessageBox

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from gui.app import MainWindow

from .test_files import dispose, wait_result


def lstm_experiment() -> Experiment:
    return Experiment(model=ModelConfig(input_size=2, output_size=1, pattern="many_to_one",
                                        layers=[LayerConfig(cell="lstm", hidden_size=6)]),
                      task=TaskConfig(name="adding", seq_len=15, batch_size=4))


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    settings = QSettings(str(tmp_path / "gradlab.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings, data_dir=tmp_path / "data")
    win.state.load(lstm_experiment())
    wait_result(qtbot, win)
    yield win
    dispose(win)


def gradients(win):
    return next(p for p in win.panels if p.name == "gradients")


def test_pin_then_edit_overlays_the_pinned_run(qtbot, window):
    panel = gradients(window)
    assert not window.unpin_action.isEnabled() and panel.pinned.curves == {}
    assert window.pin_action.shortcut().toString() == "Ctrl+P"
    window.pin_action.trigger()
    pinned = np.array(window.state.result.arrays["gradnorm.l0"], dtype=np.float64)
    assert [p.label for p in window.state.pinned] == ["A"]
    assert window.unpin_action.isEnabled()
    window.state.set_init(forget_bias=2.0)
    wait_result(qtbot, window)
    assert set(panel.pinned.curves) == {"A.l0"}
    curve = panel.pinned.curves["A.l0"]
    assert curve.isVisible() and curve.zValue() < panel.curves["h.l0"].zValue()
    np.testing.assert_allclose(curve.yData, pinned)
    # muted: the live curve's colour mixed toward the background (opaque, so cheap to paint)
    bg = pg.mkColor(pg.getConfigOption("background"))
    live, muted = panel.curves["h.l0"].opts["pen"].color(), curve.opts["pen"].color()
    assert muted.alpha() == 255 and muted.rgb() != live.rgb()

    def distance(c):
        return sum(abs(a - b) for a, b in zip(c.getRgb()[:3], bg.getRgb()[:3], strict=True))

    assert 0 < distance(muted) < distance(live)
    assert panel.pinned.legend_texts == ["A: init.forget_bias 0 → 2"]
    legend = [label.text for _sample, label in panel.pinned.legend.items]
    assert any("A: init.forget_bias 0 → 2" in text for text in legend)
    assert "pinned.A.gradnorm.l0" in panel.to_csv_table()


def test_unpin_removes_the_overlay(qtbot, window):
    panel = gradients(window)
    window.pin_run()
    window.state.set_init(forget_bias=1.0)
    wait_result(qtbot, window)
    assert panel.pinned.curves
    window.unpin_action.trigger()
    assert window.state.pinned == [] and panel.pinned.curves == {}
    assert panel.pinned.legend_texts == [] and not panel.pinned.legend.isVisible()
    assert not any(item.isVisible() for item in panel.pinned._pool)


def test_pinned_runs_survive_save_and_open(qtbot, window, tmp_path):
    window.pin_run()
    window.state.set_init(forget_bias=2.0)
    wait_result(qtbot, window)
    path = tmp_path / "pins.gradlab"
    assert window.save_as(path)
    window.state.load(lstm_experiment())
    wait_result(qtbot, window)
    assert window.state.pinned == [] and gradients(window).pinned.curves == {}
    assert window.open_path(path)
    wait_result(qtbot, window)
    assert [p.label for p in window.state.pinned] == ["A"]
    assert gradients(window).pinned.legend_texts == ["A: init.forget_bias 0 → 2"]
    assert set(gradients(window).pinned.curves) == {"A.l0"}


def test_unpin_one_run_from_the_menu_keeps_the_others(qtbot, window):
    panel = gradients(window)
    window.pin_run()
    window.state.set_init(forget_bias=1.0)
    wait_result(qtbot, window)
    window.pin_run()
    window.state.set_init(forget_bias=2.0)
    wait_result(qtbot, window)
    window._fill_unpin_menu()
    items = window.unpin_menu.actions()
    assert [a.text() for a in items] == ["A: init.forget_bias 0 → 2",
                                         "B: init.forget_bias 1 → 2"]
    items[0].trigger()
    assert [p.label for p in window.state.pinned] == ["B"]
    assert set(panel.pinned.curves) == {"B.l0"}


def test_the_difference_view_shows_the_log_ratio_per_timestep(qtbot, window):
    panel = gradients(window)
    assert panel.diff.scene() is None  # no pinned run: no difference view
    window.pin_run()
    pinned = np.array(window.state.result.arrays["gradnorm.l0"], dtype=np.float64)
    window.state.set_init(forget_bias=2.0)
    wait_result(qtbot, window)
    live = np.array(window.state.result.arrays["gradnorm.l0"], dtype=np.float64)
    assert panel.diff.scene() is not None
    curve = panel.diff_curves["A.l0"]
    np.testing.assert_allclose(curve.yData, np.log10(live) - np.log10(pinned), rtol=1e-12)
    # forget bias 2 keeps the far steps' gradient: the ratio grows going back in time
    assert curve.yData[0] > curve.yData[-1]
    assert "logratio.A.l0" in panel.to_csv_table()
    window.unpin_action.trigger()
    assert panel.diff.scene() is None


def test_seeds_draw_a_band_that_holds_the_mean(qtbot, window):
    panel = gradients(window)
    assert window.controls.seeds.value() == 1  # one run until asked
    window.controls.seeds.setValue(4)  # as typed into the field
    wait_result(qtbot, window)
    qtbot.waitUntil(lambda: window.state.result.seed_band is not None, timeout=10000)
    wait_result(qtbot, window)
    band = window.state.result.seed_band
    assert band.seeds == 4 and window.state.seeds == 4
    fill = panel.bands["l0"]
    assert fill.isVisible()
    mean, low, high = band.stats("gradnorm.l0")
    np.testing.assert_allclose(panel.curves["h.l0"].yData, mean)
    np.testing.assert_allclose(fill.curves[0].yData, low)
    np.testing.assert_allclose(fill.curves[1].yData, high)
    table = panel.to_csv_table()
    assert np.all(table["gradnorm.l0.low"] <= table["gradnorm.l0.mean"])
    assert np.all(table["gradnorm.l0.mean"] <= table["gradnorm.l0.high"])
    assert "mean of 4 seeds" in panel.note.text
    # pinned with its band, then an edit: the pinned band stays, fainter
    window.pin_run()
    window.state.set_init(forget_bias=2.0)
    wait_result(qtbot, window)
    qtbot.waitUntil(lambda: window.state.result.seed_band is not None, timeout=10000)
    assert panel.bands["A.l0"].isVisible() and panel.bands["l0"].isVisible()
    window.controls.seeds.setValue(1)
    qtbot.waitUntil(lambda: window.state.result.seed_band is None
                    and window.state.result.experiment.init.forget_bias == 2.0, timeout=10000)
    wait_result(qtbot, window)
    assert "l0" not in panel.bands


def panel_of(win, name):
    from gui.app import raise_dock

    raise_dock(win.docks[f"plot.{name}"])
    panel = next(p for p in win.panels if p.name == name)
    panel._catch_up()
    return panel


def test_every_curve_view_draws_the_pinned_run(qtbot, window):
    window.pin_run()
    kept = window.state.result
    window.state.set_init(forget_bias=2.0)
    wait_result(qtbot, window)
    jac = panel_of(window, "jacobian")
    np.testing.assert_allclose(jac.pinned.curves["A.l0"].yData, kept.jacobian["l0"])
    assert jac.pinned.legend_texts == ["A: init.forget_bias 0 → 2"]
    assert "pinned.A.jacobian.l0" in jac.to_csv_table()
    eig = panel_of(window, "eigen")
    block = eig.block_selector.currentData()
    ring = eig.pinned_points["A"]
    want = np.asarray(kept.spectra["weight_hh_l0"][block])
    np.testing.assert_allclose(np.sort(ring.data["x"]), np.sort(want.real), atol=1e-6)
    # The map is computed while its view can be seen; pinning took it though hidden.
    assert window.state.result.connectivity is None and kept.connectivity is not None
    window.show()
    qtbot.waitExposed(window)
    conn = panel_of(window, "connectivity")  # raising its tab probes again, with the map
    wait_result(qtbot, window)
    assert window.state.result.connectivity is not None
    conn._catch_up()
    assert conn.pinned_label == "A" and conn.pin_plot.scene() is not None
    np.testing.assert_allclose(conn.pin_image.image, np.log10(kept.connectivity), rtol=1e-6)
    window.unpin_action.trigger()
    assert conn.pin_plot.scene() is None
    assert panel_of(window, "eigen").pinned_points == {}  # drawn again when shown
    assert panel_of(window, "jacobian").pinned.curves == {}


def test_a_trained_pin_draws_its_loss_behind_the_live_training(qtbot, window):
    window.state.lab.train(5)
    wait_result(qtbot, window)
    window.pin_run()
    loss = np.asarray(window.state.lab.history.column("loss"))
    window.state.reset()  # fresh weights: the live run is untrained
    wait_result(qtbot, window)
    training = panel_of(window, "training")
    window.flush_redraws()
    curve = training.pinned.curves["A.loss"]
    np.testing.assert_allclose(curve.yData, loss)
    assert "pinned runs" in training.grad_overlay._html
    assert not training.overlay._html or not training.overlay._item.isVisible()


def test_the_training_legend_follows_what_differs(qtbot, window):
    window.state.lab.train(3)
    wait_result(qtbot, window)
    window.pin_run()
    training = panel_of(window, "training")
    window.state.set_scale("recurrent", 1.5)
    wait_result(qtbot, window)
    assert training.pinned.legend_texts == ["A: init.scales.recurrent 1 → 1.5"]
