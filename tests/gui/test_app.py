"""The application shell: builder, controls, training, lessons, banner, settings."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import gc

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QMimeData, QPointF, QSettings, Qt
from PySide6.QtGui import QDropEvent

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.lessons import list_lessons
from gui.app import MainWindow, run_app
from gui.builder import LAYER_MIME
from gui.palette import block_mime
from gui.state import DIVERGED, PAUSED, RUNNING

WAIT_MS = 20_000


def small_experiment(**task: object) -> Experiment:
    """A quick model: RNN(8) on 20-step sine sequences."""
    return Experiment(
        model=ModelConfig(layers=[LayerConfig(cell="rnn", hidden_size=8)]),
        task=TaskConfig(name="sine", seq_len=20, batch_size=4, **task),
    )


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "gradlab.ini"), QSettings.Format.IniFormat)


def dispose(win) -> None:
    """Close and destroy a window now, then collect its Python garbage at once
    (rather than at a random later moment while other widgets are alive)."""
    win.close()
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


@pytest.fixture
def window(qtbot, settings):
    win = MainWindow(settings=settings)
    win.confirm_discard = lambda: True
    win.state.load(small_experiment())
    wait_result(qtbot, win)
    yield win
    dispose(win)


def wait_result(qtbot, win, check=lambda r: True):
    """Wait until the probe is idle and the latest result passes ``check``; draw it."""
    s = win.state
    qtbot.waitUntil(lambda: s.result is not None and not s.probe_runner.is_busy
                    and s.result.experiment == s.experiment and check(s.result),
                    timeout=WAIT_MS)
    win.flush_redraws()
    return s.result


def panel(win, name):
    return next(p for p in win.panels if p.name == name)


def layers(win):
    return [(lay.cell, lay.bidirectional) for lay in win.state.experiment.model.layers]


# ----------------------------------------------------------------------------- builder


def test_dropping_a_block_adds_a_layer_and_undo_restores(qtbot, window):
    stack = window.builder.canvas.stack
    below_everything = QPointF(10, stack.height() - 2)
    mime = block_mime({"kind": "layer", "cell": "gru"})  # the event does not own it
    event = QDropEvent(below_everything, Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    stack.dropEvent(event)
    assert layers(window) == [("rnn", False), ("gru", False)]
    wait_result(qtbot, window, lambda r: len(r.experiment.model.layers) == 2)
    assert "gradnorm.l1" in window.state.result.arrays

    # the bidirectional modifier applies to the layer it is dropped on
    window.builder.canvas.handle_drop(block_mime({"kind": "bidirectional"}),
                                      stack.cards[1].geometry().center())
    assert layers(window) == [("rnn", True), ("gru", False)]

    window.undo_action.trigger()
    assert layers(window) == [("rnn", False), ("gru", False)]
    window.undo_action.trigger()
    assert layers(window) == [("rnn", False)]
    window.redo_action.trigger()
    assert layers(window) == [("rnn", False), ("gru", False)]


def test_layers_reorder_and_delete(qtbot, window):
    canvas = window.builder.canvas
    canvas.add_block({"kind": "layer", "cell": "lstm"})
    assert layers(window) == [("rnn", False), ("lstm", False)]
    mime = QMimeData()  # dragging layer 1 (on top of the stack) above layer 0
    mime.setData(LAYER_MIME, b'{"index": 1}')
    assert canvas.handle_drop(mime, canvas.stack.cards[1].geometry().topLeft())
    qtbot.waitUntil(lambda: layers(window) == [("lstm", False), ("rnn", False)])
    canvas._move(1, 0)  # the arrow buttons
    assert layers(window) == [("rnn", False), ("lstm", False)]
    canvas._move(1, 0)
    canvas._delete(0)
    assert layers(window) == [("rnn", False)]
    window.state.undo()
    assert layers(window) == [("lstm", False), ("rnn", False)]


def test_impossible_stacks_are_refused_with_the_reason(window):
    canvas, state = window.builder.canvas, window.state
    before = state.experiment.model
    canvas.add_block({"kind": "layer", "cell": "gru"})
    canvas.select(1)
    canvas.peephole.setChecked(True)  # peephole on a GRU
    assert "peephole connections need an lstm cell" in canvas.message.text()
    assert not state.experiment.model.layers[1].peephole
    assert not canvas.peephole.isChecked()  # the form snaps back

    state.undo()
    assert state.experiment.model == before
    canvas._delete(0)  # the only layer
    assert "at least one recurrent layer" in canvas.message.text()
    assert state.experiment.model == before
    assert "at least one recurrent layer" in window.banner.text()

    canvas.add_block({"kind": "bidirectional"}, layer=0)
    assert not canvas.message.isVisible() or "Not applied" not in canvas.message.text()
    state.undo()
    state.set_pattern("output_recurrence")
    assert not canvas.add_block({"kind": "bidirectional"}, layer=0)
    assert "output_recurrence has no hidden-to-hidden" in canvas.message.text()


def test_task_change_brings_model_sizes_and_is_undoable(window):
    state = window.state
    window.controls.task.setCurrentIndex(window.controls.task.findData("parity"))
    m = state.experiment.model
    assert (state.experiment.task.name, m.output_size, m.loss) == ("parity", 2, "cross_entropy")
    state.undo()
    assert state.experiment.task.name == "sine"
    assert state.experiment.model.loss == "mse"


# ----------------------------------------------------------------------------- controls


def test_recurrent_slider_updates_gradient_plot_and_spectral_radius(qtbot, window):
    grads = panel(window, "gradients")
    before = {k: np.array(v, copy=True) for k, v in grads.to_csv_table().items()}
    radius_before = window.controls.radius.text()
    rho_before = window.state.result.spectral_radius["weight_hh_l0"]

    slider = window.controls.scales["recurrent"].slider
    slider.setValue(slider.maximum())  # scale 4
    assert window.state.experiment.init.scales.recurrent == pytest.approx(4.0)
    result = wait_result(qtbot, window)
    assert result.spectral_radius["weight_hh_l0"] == pytest.approx(4 * rho_before, rel=1e-6)
    assert window.controls.radius.text() != radius_before
    after = grads.to_csv_table()
    assert any(not np.array_equal(np.asarray(after[k]), before[k])
               for k in before if k in after and np.size(before[k]) > 1)
    assert window.controls.scales["recurrent"].spin.value() == pytest.approx(4.0)


def test_the_toolbar_says_undo_while_the_menu_says_what(qtbot, window):
    """The Undo button keeps its width: the edit it undoes is in its tooltip and menu."""
    from PySide6.QtWidgets import QToolButton

    button = next(b for b in window.findChildren(QToolButton)
                  if b.defaultAction() is window.undo_action)
    slider = window.controls.scales["recurrent"].slider
    for step in (5, 11):
        slider.setValue(slider.value() + step)
        text = window.undo_action.text()
        assert text.startswith("Undo ") and text != "Undo"  # names the edit
        assert window.undo_action.toolTip() == text
        assert button.text() == "Undo"
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert window.undo_action.text() == "Undo" and button.text() == "Undo"
    assert not window.undo_action.isEnabled()


def test_seq_len_change_keeps_the_weights(qtbot, window):
    params = window.state.params
    window.controls.seq_len.setValue(35)
    result = wait_result(qtbot, window)
    assert result.x.shape[0] == 35
    assert window.state.params is params
    window.controls.seed.setValue(3)  # an init change re-draws them
    assert window.state.params is not params


# ----------------------------------------------------------------------------- training


def test_train_grows_the_loss_curve_and_pause_stops_it(qtbot, window):
    state = window.state
    window.train_action.trigger()
    assert state.training_state == RUNNING
    assert window.train_action.text() == "Pause"
    qtbot.waitUntil(lambda: len(state.history["step"]) >= 5, timeout=WAIT_MS)
    window.flush_redraws()
    assert np.isfinite(panel(window, "training").to_csv_table()["loss"]).sum() >= 5

    window.train_action.trigger()  # Space → pause: the step in flight is cancelled
    qtbot.waitUntil(lambda: state.training_state == PAUSED, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: state.at_rest, timeout=WAIT_MS)
    wait_result(qtbot, window)
    count = len(state.history["step"])
    qtbot.wait(300)
    assert len(state.history["step"]) == count
    assert not np.array_equal(state.params["weight_hh_l0"],
                              small_params(state.experiment)["weight_hh_l0"])

    state.step()
    qtbot.waitUntil(lambda: len(state.history["step"]) == count + 1, timeout=WAIT_MS)
    qtbot.wait(200)
    assert len(state.history["step"]) == count + 1

    window.reset_action.trigger()
    assert state.history["step"] == []
    assert np.array_equal(state.params["weight_hh_l0"],
                          small_params(state.experiment)["weight_hh_l0"])


def test_train_nudge_undo_takes_the_notice_about_the_nudge_down(qtbot, window):
    """The notice of an edit of trained weights says what it did to them; once Undo
    has brought them back it would mislead, so it goes, and the status bar says what
    was undone.  Redo brings the edit back and says so."""
    state = window.state
    window.train_action.trigger()
    qtbot.waitUntil(lambda: len(state.history["step"]) >= 5, timeout=WAIT_MS)
    window.train_action.trigger()
    qtbot.waitUntil(lambda: state.at_rest, timeout=WAIT_MS)
    wait_result(qtbot, window)
    trained = dict(state.params)
    window.controls.scales["recurrent"].spin.setValue(1.3)
    wait_result(qtbot, window, lambda r: r.experiment.init.scales.recurrent == 1.3)
    assert window.banner.kind == "notice"
    assert "recurrent weights ×1.3" in window.banner.text()
    window.undo_action.trigger()
    assert state.experiment.init.scales.recurrent == 1.0
    np.testing.assert_array_equal(state.params["weight_hh_l0"], trained["weight_hh_l0"])
    assert window.banner.isHidden() and window.banner.kind == ""
    assert window.statusBar().currentMessage() == "Undone: Recurrent scale 1.3"
    window.redo_action.trigger()
    assert state.experiment.init.scales.recurrent == 1.3
    assert window.statusBar().currentMessage() == "Redone: Recurrent scale 1.3"
    window.undo_action.trigger()
    window.undo_action.trigger()  # the training run
    assert state.history["step"] == []
    assert window.statusBar().currentMessage().startswith("Undone: ")


def test_knob_edits_without_training_do_not_redraw_the_empty_curves(qtbot, window):
    """Each knob edit of untrained weights starts an empty history; drawing it again
    would change nothing and hold the probe result back by the pacer's gap.  The curves
    of a step are drawn, and so is the history that empties at Reset."""
    state = window.state
    drawn = []
    window._history_throttle._fn = drawn.append  # what reaches the plots
    for value in (1.1, 1.2, 1.3):
        state.lab.set_scale("recurrent", value)
        wait_result(qtbot, window)
    assert drawn == []

    state.step()
    qtbot.waitUntil(lambda: len(state.history["step"]) == 1, timeout=WAIT_MS)
    wait_result(qtbot, window)
    assert [len(h["step"]) for h in drawn][-1:] == [1]
    window.reset_action.trigger()  # the step's curves give way to none
    wait_result(qtbot, window)
    state.lab.set_scale("recurrent", 1.5)
    wait_result(qtbot, window)
    assert [len(h["step"]) for h in drawn][-2:] == [1, 0]


def test_an_edit_shows_the_pass_first_and_pins_only_the_complete_result(qtbot, window):
    """The probe of an edit is shown in two steps, the pass and then its Jacobian
    products; a pin taken at once waits for the second.  (The runner holds an early
    part back for a moment, in case the whole follows: here it is shown at once.)"""
    state = window.state
    state.probe_runner.early_grace_ms = 0
    seen = []
    state.result_changed.connect(lambda r: seen.append(r))
    state.lab.set_scale("recurrent", 1.3)
    wait_result(qtbot, window)
    assert [r.pending for r in seen] == [("jacobian",), ()]
    assert seen[0].arrays is seen[1].arrays
    jacobian = panel(window, "jacobian")
    assert jacobian.to_csv_table()["jacobian.l0"].size == state.experiment.task.seq_len

    state.lab.set_scale("recurrent", 1.4)
    assert window.pin_run()  # at once, while the probe runs
    pin = state.pinned[-1]
    assert pin.result.pending == () and pin.result.jacobian
    assert pin.experiment.init.scales.recurrent == 1.4


def small_params(exp):
    from core.init import init_params

    return init_params(exp.model, exp.init)


def test_exploding_lesson_shows_banner_and_app_keeps_working(qtbot, window):
    state = window.state
    assert window.open_lesson("exploding_clipping")
    wait_result(qtbot, window)
    window.train_action.trigger()
    qtbot.waitUntil(lambda: state.training_state == DIVERGED and not state.trainer.running,
                    timeout=60_000)
    assert window.banner.kind == "nonfinite"
    assert "step" in window.banner.text()
    assert "last finite weights are kept" in window.banner.text()
    assert all(np.isfinite(v).all() for v in state.params.values())  # last finite weights

    # The knob rescales the last finite (trained) weights and says so; Reset draws a
    # fresh, calm model; undo brings the trained weights back.
    trained = dict(state.params)
    old = state.experiment.init.scales.recurrent
    notices = []
    state.notice.connect(notices.append)
    window.controls.scales["recurrent"].spin.setValue(1.0)  # the app still responds
    result = wait_result(qtbot, window,
                         lambda r: r.experiment.init.scales.recurrent == pytest.approx(1.0))
    assert notices and "kept and adjusted: recurrent weights ×" in notices[-1]
    np.testing.assert_array_equal(state.params["weight_hh_l0"],
                                  trained["weight_hh_l0"] * (1.0 / old))
    window.reset_action.trigger()
    result = wait_result(qtbot, window, lambda r: r.experiment.init.scales.recurrent == 1.0
                         and not state.history["step"])
    assert result.nonfinite is None
    assert window.banner.kind != "nonfinite"
    state.undo()
    state.undo()
    assert all(state.params[k] is v for k, v in trained.items())


# ----------------------------------------------------------------------------- lessons


def test_every_lesson_opens_and_draws(qtbot, window):
    errors: list[str] = []
    window.state.error.connect(errors.append)
    names = [name for name, _title in list_lessons()]
    assert len(names) >= 10
    for name in names:
        assert window.open_lesson(name)
        result = wait_result(qtbot, window)
        assert result.experiment.title == window.state.experiment.title
        assert window.state.experiment.title in window.lesson_panel.text()
        assert window.banner.kind == "", (name, window.banner.text())
        if name == "teacher_forcing":  # the plot its explanation points to comes forward
            assert panel(window, "connectivity").isVisibleTo(window)
    assert errors == []


# ----------------------------------------------------------------------------- window


def test_timestep_click_marks_every_panel(window, monkeypatch):
    seen = []
    for p in window.panels:
        monkeypatch.setattr(p, "mark_timestep", lambda t, p=p: seen.append((p.name, t)))
    window.panels[0].timestep_clicked.emit(7)
    assert sorted(seen) == sorted((p.name, 7) for p in window.panels)


def test_worker_errors_show_in_the_window(qtbot, window):
    def broken(exp, params, data, control, **options):
        raise RuntimeError("boom")

    window.state.lab._probe_fn = broken
    window.state.request_probe()
    qtbot.waitUntil(lambda: window.banner.kind == "error", timeout=WAIT_MS)
    assert "boom" in window.banner.text()
    assert "boom" in window.statusBar().currentMessage()


def test_status_bar_and_title(window):
    from core.cells import native

    steps = " · compiled steps" if native.kernels() else ""  # the C build, where it works
    assert window.backend_label.text() == "NumPy · float32" + steps
    assert window.probe_label.text().endswith("ms")
    # A new time repaints the label without laying the window out: its size is fixed
    # and holds the longest time a probe is let run.
    label = window.probe_label
    assert label.minimumSize() == label.maximumSize()
    assert label.width() >= label.fontMetrics().horizontalAdvance("probe: 99999 ms")
    window.controls.dtype.setCurrentIndex(window.controls.dtype.findData("float64"))
    assert window.backend_label.text() == "NumPy · float64" + steps
    assert window.isWindowModified()


def test_files_save_open_and_bad_file(qtbot, window, tmp_path):
    state = window.state
    state.set_task(seq_len=33)
    path = tmp_path / "exp.json"
    assert state.save(path)
    assert not state.modified
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gradlab-experiment", "version": 1, "model": {"layers": 3}}')
    assert not state.open_file(bad)
    assert "model.layers" in window.banner.text()
    assert state.experiment.task.seq_len == 33  # nothing changed
    state.load(Experiment())
    assert state.open_file(path)
    assert state.experiment.task.seq_len == 33


def test_settings_remember_experiment_and_docks(qtbot, settings):
    first = MainWindow(settings=settings)
    first.state.load(dataclasses.replace(small_experiment(), title="remember me"))
    first.area.moveDock(first.docks["controls"], "left", None)
    layout = first.area.saveState()
    dispose(first)  # closing saves the settings
    second = MainWindow(settings=settings)
    try:
        assert second.restore_last_experiment()
        assert second.state.experiment.title == "remember me"
        assert json_roundtrip(second.area.saveState()) == json_roundtrip(layout)
        second.reset_layout()
        assert json_roundtrip(second.area.saveState()) != json_roundtrip(layout)
    finally:
        dispose(second)


def json_roundtrip(value):
    import json

    return json.loads(json.dumps(value))


def test_export_all_writes_every_plot(qtbot, window, tmp_path):
    assert window.export_all(str(tmp_path / "out"))
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert "experiment.json" in names
    untrained = {p.name for p in window.panels} - {"training"}  # no "No training yet" plot
    assert {f"{n}.png" for n in untrained} <= names
    assert "training.png" not in names
    window.state.step()  # with a history, the training plot is written too
    qtbot.waitUntil(lambda: window.state.at_rest and bool(window.state.history["step"]),
                    timeout=WAIT_MS)
    assert window.export_all(str(tmp_path / "trained"))
    assert (tmp_path / "trained" / "training.png").exists()
    assert any(n.endswith(".svg") for n in names) and any(n.endswith(".csv") for n in names)


def test_run_app_screenshot(qtbot, tmp_path):
    out = tmp_path / "shot.png"
    assert run_app(preset="vanishing_tanh", screenshot=str(out)) == 0
    assert out.stat().st_size > 10_000
    assert run_app(preset="no_such_lesson", screenshot=str(out)) == 2


def test_the_connectivity_map_is_computed_while_its_view_can_be_seen(qtbot, window, tmp_path):
    from gui.app import raise_dock

    window.show()
    qtbot.waitExposed(window)
    raise_dock(window.docks["plot.jacobian"])  # the map's tab behind another
    window.state.set_init(forget_bias=1.5)
    r = wait_result(qtbot, window)
    assert r.connectivity is None and r.jacobian is not None
    raise_dock(window.docks["plot.connectivity"])  # shown: probed again with the map
    r = wait_result(qtbot, window, lambda r: r.connectivity is not None)
    conn = panel(window, "connectivity")
    assert conn.isVisible() and "No connectivity" not in (conn.overlay.text or "")
    raise_dock(window.docks["plot.jacobian"])
    window.state.set_init(forget_bias=2.0)
    assert wait_result(qtbot, window).connectivity is None
    assert window.export_all(str(tmp_path / "out"))  # export computes what was left out
    assert (tmp_path / "out" / "connectivity.connectivity.csv").exists()
    assert window.state.result.connectivity is not None
