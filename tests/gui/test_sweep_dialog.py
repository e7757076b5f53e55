"""The Run sweep dialog: a small sweep of the current experiment in a thread, shown as a
phase diagram when done; bad axes said in the dialog; Cancel keeps what finished."""

from __future__ import annotations

import gc

import xarray as xr
from PySide6.QtCore import QSettings

from core.experiment import experiment_from_dict
from core.lab import Lab
from gui.sweep_dialog import SweepDialog


def small():
    return experiment_from_dict({
        "format": "gradlab-experiment", "version": 1,
        "model": {"input_size": 2, "output_size": 1, "pattern": "many_to_one",
                  "layers": [{"cell": "rnn", "hidden_size": 6}]},
        "task": {"name": "adding", "seq_len": 10, "batch_size": 4},
        "backend": {"device": "numpy", "dtype": "float64"}})


def test_a_small_sweep_runs_and_opens(qtbot, tmp_path):
    from gui.app import MainWindow

    win = MainWindow(settings=QSettings(str(tmp_path / "g.ini"), QSettings.Format.IniFormat))
    win.confirm_discard = lambda: True
    qtbot.addWidget(win)
    try:
        win.state.load(small())
        dialog = win.run_sweep_dialog()
        dialog.set_axis(0, "init.scales.recurrent", "0.5:2:4")
        dialog.set_axis(1, "model.layers.0.cell", "rnn,gru")
        dialog.seeds.setValue(1)
        dialog.folder.setText(str(tmp_path / "S"))
        with qtbot.waitSignal(dialog.finished_sweep, timeout=30_000):
            assert dialog.start()
        ds = xr.open_zarr(tmp_path / "S" / "sweep.zarr")
        assert dict(ds.sizes)["init.scales.recurrent"] == 4 and (ds.status.values == "ok").all()
        view = win.phase_view
        assert (view.map.x, view.map.y) == ("init.scales.recurrent", "model.layers.0.cell")
        assert view.marker_position() is not None
    finally:
        win.close()
        win.deleteLater()
        gc.collect()


def test_bad_axes_are_said_in_the_dialog(qtbot, tmp_path):
    dialog = SweepDialog(Lab(small()))
    qtbot.addWidget(dialog)
    dialog.set_axis(0, "init.scales.recurent", "1,2")
    assert not dialog.start() and "no such field" in dialog.message.text()
    dialog.set_axis(0, "init.scales.recurrent", "0.5:2:100")
    dialog.set_axis(1, "init.forget_bias", "0:1:30")
    assert not dialog.start() and "gradlab sweep" in dialog.message.text()
    assert not dialog.running


def test_cancel_keeps_what_finished(qtbot, tmp_path):
    dialog = SweepDialog(Lab(small()))
    qtbot.addWidget(dialog)
    dialog.set_axis(0, "init.scales.recurrent", "0.5:2:40")
    dialog.set_axis(1, "init.forget_bias", "0,1")
    dialog.seeds.setValue(1)
    dialog.folder.setText(str(tmp_path / "S"))
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.bar.value() >= 3, timeout=30_000)
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.running, timeout=30_000)
    assert "Cancelled" in dialog.message.text()
    status = xr.open_zarr(tmp_path / "S" / "sweep.zarr").status.values
    done = int((status == "ok").sum())
    assert 3 <= done < 80 and int((status == "").sum()) == 80 - done
