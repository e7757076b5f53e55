"""The phase-diagram view: the map of a real sweep, the "you are here" marker that follows
the Lab, a click that loads a grid point (undoably), the measured boundary and the
mean-field critical line in the right cells."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from core.experiment import experiment_from_dict
from core.lab import Lab
from core.meanfield import critical_scale
from core.paths import with_paths
from core.sweep import parse_grid, plan, run_sweep
from core.sweep.phase import position
from gui.plots.phase import PhaseView

SCALES = "init.scales.recurrent=0.5:3.5:7"


def base():
    return experiment_from_dict({
        "format": "gradlab-experiment", "version": 1,
        "model": {"input_size": 2, "output_size": 1, "pattern": "many_to_one",
                  "layers": [{"cell": "rnn", "hidden_size": 16}]},
        "task": {"name": "adding", "seq_len": 30, "batch_size": 8},
        "backend": {"device": "numpy", "dtype": "float64"}})


@pytest.fixture(scope="module")
def sweep_path(tmp_path_factory):
    exp = base()
    out = tmp_path_factory.mktemp("sweep")
    axes = [parse_grid(SCALES, exp), parse_grid("model.layers.0.cell=rnn,lstm", exp)]
    run_sweep(plan(exp, axes, seeds=2), out)
    return out / "sweep.zarr"


@pytest.fixture
def view(qtbot, sweep_path):
    lab = Lab(base())
    v = PhaseView(lab)
    qtbot.addWidget(v)
    v.resize(700, 500)
    v.show()
    qtbot.waitExposed(v)
    assert v.load(str(sweep_path))
    return v


def test_the_map_and_its_axes(view):
    pm = view.map
    assert (pm.x, pm.y) == ("init.scales.recurrent", "model.layers.0.cell")
    assert view.x_axis.toolTip() == "init.scales.recurrent"  # elided in a narrow dock
    assert pm.values.shape == (2, 7)
    assert pm.x_values == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    rnn = pm.values[0]
    assert np.all(np.diff(rnn) > 0)  # log10 ratio rises with the scale
    assert rnn[0] < 0 < rnn[-1]
    image = view.image.image
    np.testing.assert_array_equal(image, pm.values)
    view.set_quantity("spectral_radius")
    assert view.map.quantity == "spectral_radius" and view.map.values[0, 1] > view.map.values[0, 0]


def test_the_marker_follows_the_lab(view):
    lab = view.lab
    assert view.marker_position() == pytest.approx((1.0, 0.0))  # scale 1, rnn
    assert view.marker.data["x"].tolist() == [1.0]
    lab.set_scale("recurrent", 1.75)
    assert view.marker_position() == pytest.approx((2.5, 0.0))
    assert view.marker.data["x"].tolist() == pytest.approx([2.5])
    lab.set_paths([("model.layers.0.cell", "lstm")])
    assert view.marker_position() == pytest.approx((2.5, 1.0))
    assert view.marker.data["y"].tolist() == [1.0]
    lab.set_scale("recurrent", 5.0)  # off the map: no marker
    assert view.marker_position() is None and len(view.marker.data) == 0
    lab.undo()
    assert view.marker_position() == pytest.approx((2.5, 1.0))
    assert view.marker.data["x"].tolist() == pytest.approx([2.5])


def test_a_knob_off_the_map_leaves_the_marker_alone(view, monkeypatch):
    drawn: list[tuple] = []
    monkeypatch.setattr(view.marker, "setData", lambda *a, **k: drawn.append(a))
    view.lab.set_scale("input", 0.7)  # neither axis of the map
    view.lab.set_init(seed=5)  # new weights, the same setting on the map
    assert drawn == []
    view.lab.set_scale("recurrent", 1.75)
    assert drawn == [([2.5], [0.0])]


def test_a_click_loads_the_cell_undoably(view, qtbot):
    lab = view.lab
    before = lab.experiment
    scene = view.plot.vb.mapViewToScene(QPointF(4.2, 0.9))  # cell (4, 1): scale 2.5, lstm
    widget_pos = view.glw.mapFromScene(scene)
    with qtbot.waitSignal(view.point_loaded, timeout=2000):
        qtbot.mouseClick(view.glw.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)
    assert lab.experiment.init.scales.recurrent == 2.5
    assert lab.experiment.model.layers[0].cell == "lstm"
    assert view.marker_position() == pytest.approx((4.0, 1.0))
    assert "Load sweep point" in lab.undo_text
    assert lab.undo()
    assert lab.experiment == before
    assert view.marker_position() == pytest.approx((1.0, 0.0))


def test_the_measured_boundary_lies_where_the_ratio_crosses_one(view):
    pm = view.map
    assert view.boundary.isVisible()
    path = view.boundary.mapToItem(view.plot.vb.childGroup, view.boundary.path)
    pts = np.array([(path.elementAt(k).x, path.elementAt(k).y) for k in range(path.elementCount())])
    rnn = pm.values[0]
    k = int(np.argmax(rnn > 0))  # first cell above ratio 1 in the rnn row
    crossing = (k - 1) + (0 - rnn[k - 1]) / (rnn[k] - rnn[k - 1])  # linear between centres
    on_row = pts[np.abs(pts[:, 1] - 0.0) < 1e-6]
    assert on_row.size, pts
    assert on_row[:, 0].min() == pytest.approx(crossing, abs=1e-6)


def test_the_mean_field_line_marks_the_rnn_row_only(view):
    xs, ys = view.critical.getData()
    assert len(xs) == 2 and list(ys) == [-0.5, 0.5]  # one segment, across the rnn row
    exp, _ = with_paths(base(), [("model.layers.0.cell", "rnn")])
    expected = position(view.map.x_values, critical_scale(exp))
    assert xs[0] == pytest.approx(expected) and xs[1] == pytest.approx(expected)
    assert "tanh RNN" in view.line_note  # the lstm row: why it has none
    assert "mean field" in view.status.text() and "Chen, Pennington" in view.status.toolTip()


def test_not_a_sweep(qtbot, tmp_path):
    v = PhaseView(Lab(base()))
    qtbot.addWidget(v)
    assert not v.load(str(tmp_path))
    assert "not a" in v.status.text()


def test_the_window_opens_a_sweep_in_a_dock(qtbot, sweep_path, tmp_path):
    import gc

    from PySide6.QtCore import QSettings

    from gui.app import MainWindow

    win = MainWindow(settings=QSettings(str(tmp_path / "g.ini"), QSettings.Format.IniFormat))
    win.confirm_discard = lambda: True
    qtbot.addWidget(win)
    try:
        assert win.show_sweep(sweep_path.parent)  # the folder that holds sweep.zarr
        view = win.phase_view
        assert view.map is not None and view.map.values.shape == (2, 7)
        assert view.lab is win.state.lab
        win.state.lab.set_scale("recurrent", 2.0)
        assert view.marker_position() is not None
        assert not win.show_sweep(tmp_path)  # not a sweep: said in the banner
        assert "not a" in win.banner.text()
        assert view.map is not None  # the open one stays
    finally:
        win.close()
        win.deleteLater()
        gc.collect()


def test_open_drop_and_open_recent_take_a_sweep_folder(qtbot, sweep_path, tmp_path):
    import gc

    from PySide6.QtCore import QMimeData, QSettings, QUrl

    from core.document import file_kind
    from gui.app import MainWindow

    assert file_kind(sweep_path) == file_kind(sweep_path.parent) == "sweep"
    assert file_kind(tmp_path / "s.zarr.zip") == "sweep" and file_kind(tmp_path) is None
    win = MainWindow(settings=QSettings(str(tmp_path / "g.ini"), QSettings.Format.IniFormat))
    asked = []
    win.confirm_discard = lambda: asked.append(True) or True
    qtbot.addWidget(win)
    try:
        before = win.state.experiment
        assert win.open_path(sweep_path)  # File → Open, Open Recent and a drop all come here
        assert win.phase_view.map is not None and win.state.experiment is before
        assert not asked  # a sweep replaces no work: nothing to ask
        assert str(sweep_path) in win._recent
        win.phase_view.ds = None
        assert win.open_recent(str(sweep_path)) and win.phase_view.ds is not None
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(sweep_path.parent))])
        assert win._dropped_file(mime) == str(sweep_path.parent)
        assert not win.open_path(tmp_path)  # a plain folder: one line that says what opens
        assert "sweep.zarr folders" in win.banner.text()
    finally:
        win.close()
        win.deleteLater()
        gc.collect()


def test_the_edge_of_chaos_lesson_opens_its_sweep(qtbot, tmp_path, monkeypatch):
    import gc
    from pathlib import Path

    from PySide6.QtCore import QSettings

    import core.lessons as lessons
    from gui.app import MainWindow

    monkeypatch.setattr(lessons, "LESSONS_DIR", Path(__file__).resolve().parents[2]
                        / "resources" / "lessons")
    win = MainWindow(settings=QSettings(str(tmp_path / "g.ini"), QSettings.Format.IniFormat))
    win.confirm_discard = lambda: True
    qtbot.addWidget(win)
    try:
        assert win.open_lesson("edge_of_chaos")
        view = win.phase_view
        pm = view.map
        assert (pm.x, pm.y, pm.fixed) == ("init.scales.recurrent", "task.seq_len",
                                          {"model.layers.0.cell": 0})
        assert view.marker_position() == pytest.approx((2.0, 2.0))  # scale 1, 50 steps
        assert view.boundary.isVisible()  # with ratios of 0 (log10 -inf) in the map
        assert len(view.critical.getData()[0]) == 2 * 4  # one segment per length
        lab = win.state.lab
        lab.set_paths([("model.layers.0.cell", "lstm")])
        assert view.map.fixed == {"model.layers.0.cell": 1}  # the map follows to the LSTM
        xs = view.critical.getData()[0]
        assert (xs is None or not len(xs)) and "tanh RNN" in view.line_note
        assert np.all(view.map.values < 0)
    finally:
        win.close()
        win.deleteLater()
        gc.collect()


def test_the_tooltip_compares_the_measured_edge_with_the_line(view):
    tip = view.status.toolTip()
    assert "measured edge (ratio 1) at scale" in tip and "mean-field critical scale" in tip
    exp, _ = with_paths(base(), [("model.layers.0.cell", "rnn")])
    assert view.critical_scales == [pytest.approx(critical_scale(exp))]


def test_a_one_axis_sweep_is_one_row(qtbot, tmp_path):
    exp = base()
    run_sweep(plan(exp, [parse_grid("init.scales.recurrent=0.5,1,2,3", exp)]), tmp_path)
    v = PhaseView(Lab(base()))
    qtbot.addWidget(v)
    assert v.load(str(tmp_path / "sweep.zarr"))
    assert v.map.y is None and v.map.values.shape == (1, 4)
    assert v.marker_position() == pytest.approx((1.0, 0.0))
    assert not v.boundary.isVisible()  # a contour needs two rows
    _xs, ys = v.critical.getData()
    assert list(ys) == [-0.5, 0.5]  # the line still marks the one row
    assert v.load_cell(2) and v.lab.experiment.init.scales.recurrent == 2.0
