"""Exporting plots: `gradlab export` headless, and the same files from live panels.

Every plot writes everything it can show (each layer, direction, gate, matrix and
block), at one chosen size, in the dark or the light theme, with the user's umask.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QTabWidget

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import main  # noqa: E402
from core.experiment import (  # noqa: E402
    Experiment,
    LayerConfig,
    ModelConfig,
    TaskConfig,
    experiment_to_dict,
    load_experiment_config,
)
from core.lessons import load_lesson  # noqa: E402
from gui import export  # noqa: E402
from gui.colormaps import LINE_COLORS  # noqa: E402
from gui.plots import ALL_PANELS, panel_by_name  # noqa: E402
from gui.state import probe_experiment  # noqa: E402

from .conftest import make_fake_history  # noqa: E402

PRESET = "vanishing_tanh"  # one RNN layer: every plot has one view
NAMES = [p.name for p in ALL_PANELS]
SHOWN = [n for n in NAMES if n != "training"]  # nothing trained: no training plot
SVG_NS = "{http://www.w3.org/2000/svg}"


def run_cli(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def read_columns(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return {name: np.array([float(r[i]) for r in rows[1:] if r[i] != ""])
            for i, name in enumerate(rows[0])}


def read_matrix(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    index = [r[0] for r in rows[1:]]
    assert index == [str(i) for i in range(len(index))]
    return rows[0], np.array([[float(v) for v in r[1:]] for r in rows[1:]])


def read_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh))


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def luminance(colour: QColor) -> float:
    return 0.2126 * colour.red() + 0.7152 * colour.green() + 0.0722 * colour.blue()


def dark_pixels(img: QImage) -> int:
    """Pixels (sampled every 2nd) dark enough to be text or an axis on a light background."""
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    return sum(luminance(img.pixelColor(x, y)) < 80 for x in range(0, img.width(), 2)
               for y in range(0, img.height(), 2))


def distinct_colours(img: QImage) -> int:
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    return len({img.pixel(x, y) for x in range(0, img.width(), 5)
                for y in range(0, img.height(), 5)})


@pytest.fixture(scope="module")
def cli_export(qapp, tmp_path_factory):
    """`gradlab export --preset vanishing_tanh` run once: (folder, stdout, probe result)."""
    out = tmp_path_factory.mktemp("export") / "plots"
    rc, stdout, stderr = run_cli(["export", "--preset", PRESET, "--out", out])
    assert rc == 0, stderr
    exp = load_lesson(PRESET)
    return out, stdout, probe_experiment(exp, export.headless_params(exp))


# ----------------------------------------------------------------------------- the CLI


def test_cli_writes_every_plot_in_every_format(cli_export):
    out, stdout, _result = cli_export
    printed = [line.removeprefix("wrote ") for line in stdout.splitlines()]
    assert all(line.startswith("wrote ") for line in stdout.splitlines())
    for name in SHOWN:
        for suffix in ("png", "svg"):
            assert str(out / f"{name}.{suffix}") in printed, (name, suffix)
    assert not list(out.glob("training*")), "no history: no 'Press Train' placeholder"
    assert str(out / "experiment.json") in printed
    assert {Path(p) for p in printed} == {p for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    saved = load_experiment_config(out / "experiment.json")
    assert experiment_to_dict(saved) == experiment_to_dict(load_lesson(PRESET))


def test_pngs_are_not_blank_and_have_the_default_size(cli_export):
    out = cli_export[0]
    for name in SHOWN:
        img = QImage(str(out / f"{name}.png"))
        assert not img.isNull(), name
        assert (img.width(), img.height()) == export.DEFAULT_SIZE, (name, img.size())
        assert distinct_colours(img) > 8, name
        assert luminance(img.pixelColor(1, 1)) < 40, name  # the window's dark look


def test_svgs_parse_and_hold_vector_paths(cli_export):
    out = cli_export[0]
    for name in SHOWN:
        root = ET.parse(out / f"{name}.svg").getroot()
        assert root.tag == f"{SVG_NS}svg", name
        shapes = [el for el in root.iter() if el.tag in (f"{SVG_NS}path", f"{SVG_NS}polyline")]
        assert shapes, name


def test_csvs_hold_the_plotted_numbers(cli_export):
    out, _stdout, r = cli_export
    T = r.x.shape[0]
    grads = read_columns(out / "gradients.csv")
    np.testing.assert_array_equal(grads["timestep"], np.arange(T))
    np.testing.assert_array_equal(grads["gradnorm.l0"], r.arrays["gradnorm.l0"].astype(np.float64))

    header, h = read_matrix(out / "hidden.h.l0.csv")  # layer 0, sample 0: units × time
    assert header == ["index", *map(str, range(T))]
    want = r.arrays["h.l0"][:, 0, :].T  # written in its own precision's shortest exact form
    np.testing.assert_array_equal(h.astype(want.dtype), want)

    jac = read_columns(out / "jacobian.csv")
    np.testing.assert_array_equal(jac["jacobian.l0"], r.jacobian["l0"])
    _header, conn = read_matrix(out / "connectivity.connectivity.csv")
    np.testing.assert_array_equal(conn, np.asarray(r.connectivity, dtype=np.float64).reshape(conn.shape))

    signals = read_columns(out / "signals.csv")
    np.testing.assert_array_equal(signals["input_0"], r.x[:, 0, 0])
    # an RNN has no cell state or gates, and nothing trained yet: no CSV for those plots
    assert not list(out.glob("cell*.csv")) and not list(out.glob("gates*.csv"))


def test_live_panels_export_the_same_csvs(qtbot, cli_export, tmp_path):
    out, _stdout, result = cli_export
    panels = []
    for cls in ALL_PANELS:
        panel = cls()
        qtbot.addWidget(panel)
        panel.resize(*export.DEFAULT_SIZE)  # the graph's columns depend on its width
        panel.show()
        panel.show_result(result)
        panels.append(panel)
    written = export.export_all(panels, result.experiment, tmp_path, formats=("csv",))
    live = {p.name for p in written if p.suffix == ".csv"}
    headless = {p.name for p in out.glob("*.csv")}
    assert live == headless and "gradients.csv" in live
    for name in live:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    assert (tmp_path / "experiment.json").exists()


@pytest.mark.parametrize("out", ["file", "below_file"])
def test_invalid_out_exits_2(qapp, tmp_path, out):
    blocker = tmp_path / "a_file.txt"
    blocker.write_text("x")
    target = {"file": blocker, "below_file": blocker / "sub"}[out]
    rc, stdout, err = run_cli(["export", "--preset", PRESET, "--out", target])
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err
    assert stdout == ""
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("argv, needle", [
    (["--formats", "png,gif"], "gif"),
    (["--formats", ","], "formats"),
    (["--width", "5"], "--width"),
    (["--height", "tall"], "--height"),
    (["--scale", "0"], "--scale"),
    (["--size", "900"], "--size"),
    (["--size", "100x600"], "--size"),
    (["--size", "900x600", "--width", "800"], "--size"),
    (["--theme", "sepia"], "--theme"),
])
def test_bad_arguments_exit_2(qapp, tmp_path, argv, needle):
    rc, _stdout, err = run_cli(["export", "--preset", PRESET, "--out", tmp_path / "o", *argv])
    assert rc == 2 and err.startswith("error:") and needle in err
    assert len(err.strip().splitlines()) == 1


def test_bad_experiment_file_exits_2(qapp, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gradlab-experiment", "version": 1, "model": {"layers": 3}}')
    rc, _stdout, err = run_cli(["export", bad, "--out", tmp_path / "o"])
    assert rc == 2 and err.startswith("error:") and "bad.json" in err
    assert not (tmp_path / "o").exists()


def test_experiment_and_preset_together_exit_2(qapp, tmp_path):
    rc, _stdout, err = run_cli(["export", tmp_path / "e.json", "--preset", PRESET,
                                "--out", tmp_path / "o"])
    assert rc == 2 and "--preset" in err


# ----------------------------------------------------------------------------- the library


def test_headless_size_scale_formats_and_history(qapp, tmp_path):
    exp = load_lesson("gru_gates")
    written = export.export_headless(exp, tmp_path, ["png", "csv"], size=(400, 300),
                                     scale=2.0, history=make_fake_history(40))
    assert not list(tmp_path.glob("*.svg"))
    pngs = [p for p in written if p.suffix == ".png"]
    assert tmp_path / "training.png" in pngs  # a history: the training plot is written
    for png in pngs:
        img = QImage(str(png))
        assert (img.width(), img.height()) == (800, 600), (png.name, img.size())
    train = read_columns(tmp_path / "training.csv")
    np.testing.assert_array_equal(train["step"], np.arange(40))
    assert read_header(tmp_path / "gates.csv") == ["timestep", "mean_r", "mean_z", "mean_n"]
    assert {p.name for p in tmp_path.glob("gates.*.png")} == {"gates.r.l0.png", "gates.z.l0.png",
                                                              "gates.n.l0.png"}
    assert tmp_path / "experiment.json" in written


def test_an_empty_history_writes_no_training_plot(qapp, tmp_path):
    empty = {k: np.array([]) for k in make_fake_history(1)}
    export.export_headless(load_lesson(PRESET), tmp_path, ["png", "csv"], history=empty)
    assert (tmp_path / "gradients.png").exists() and not list(tmp_path.glob("training*"))


def test_export_limits_match_the_command_line():
    assert main.EXPORT_SIZE == export.DEFAULT_SIZE and main.EXPORT_MIN == export.MIN_SIZE
    assert export.DEFAULT_THEME in export.THEMES and set(export.THEMES) == {"dark", "light"}


def test_panel_hidden_behind_a_tab_is_laid_out_for_export(qtbot, fake_result, tmp_path):
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    front, back = panel_by_name("gradients")(), panel_by_name("hidden")()
    tabs.addTab(front, "front")
    tabs.addTab(back, "back")
    tabs.resize(500, 350)
    tabs.show()
    r = fake_result("lstm", T=30)
    front.show_result(r)
    back.show_result(r)
    qtbot.waitExposed(tabs)
    assert not back.isVisible()
    old = back.size()
    old_front = front.size()
    export.export_panels([front, back], tmp_path, ["png"])
    shown, hidden = QImage(str(tmp_path / "gradients.png")), QImage(str(tmp_path / "hidden.png"))
    # one size for both: not the shown one's few hundred pixels, nor an unshown tab's few
    assert (shown.width(), shown.height()) == export.DEFAULT_SIZE
    assert (hidden.width(), hidden.height()) == export.DEFAULT_SIZE
    assert distinct_colours(shown) > 8 and distinct_colours(hidden) > 8
    assert back.size() == old and front.size() == old_front


def test_svg_failure_names_the_plot_and_keeps_the_rest(qtbot, fake_result, tmp_path, monkeypatch):
    from pyqtgraph.exporters import SVGExporter

    def broken(self, *args, **kwargs):
        raise ValueError("could not convert string to float: 'M0'")

    monkeypatch.setattr(SVGExporter, "export", broken)
    panel = panel_by_name("gradients")()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_result(fake_result("gru", T=20))
    with pytest.raises(export.ExportError) as info:
        export.export_panels([panel], tmp_path)
    message = str(info.value)
    assert '"Gradient flow over time" plot' in message and "SVG" in message and "3485" in message
    assert {p.name for p in info.value.written} == {"gradients.png", "gradients.csv"}
    assert not (tmp_path / "gradients.svg").exists()


def test_svg_failure_from_the_cli_is_one_error_line(qapp, tmp_path, monkeypatch):
    from pyqtgraph.exporters import SVGExporter

    monkeypatch.setattr(SVGExporter, "export", lambda *a, **k: (_ for _ in ()).throw(ValueError("x")))
    rc, stdout, err = run_cli(["export", "--preset", PRESET, "--out", tmp_path, "--formats", "svg"])
    assert rc == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert "SVG export failed" in err and "plot" in err and "Traceback" not in err
    assert "experiment.json" not in stdout


def test_csv_layout_and_non_finite_values():
    table = {"timestep": np.arange(4, dtype=np.float64),
             "value": np.array([0.1, np.nan, np.inf, -np.inf]),
             "short": np.array([1.5, 2.5], dtype=np.float32),
             "map": np.array([[1.0, np.nan, 3.25], [-np.inf, 5.0, 6.0]])}
    files = export.csv_files("demo", table)
    assert set(files) == {"demo.csv", "demo.map.csv"}
    assert files["demo.csv"].decode().splitlines() == [
        "timestep,value,short", "0,0.1,1.5", "1,nan,2.5", "2,inf,", "3,-inf,"]
    assert files["demo.map.csv"].decode().splitlines() == [
        "index,0,1,2", "0,1.0,nan,3.25", "1,-inf,5.0,6.0"]
    back = np.loadtxt(io.StringIO(files["demo.map.csv"].decode()), delimiter=",", skiprows=1)
    np.testing.assert_array_equal(back[:, 1:], table["map"])
    assert export.csv_files("empty", {}) == {}


def test_export_rejects_unknown_format(tmp_path):
    with pytest.raises(export.ExportError, match="gif"):
        export.export_panels([], tmp_path, ["gif"])


# ----------------------------------------------------------------------------- every view


@pytest.fixture(scope="module")
def cli_bidirectional(qapp, tmp_path_factory):
    out = tmp_path_factory.mktemp("bidir") / "plots"
    rc, _stdout, stderr = run_cli(["export", "--preset", "bidirectional", "--out", out,
                                   "--formats", "png,csv"])
    assert rc == 0, stderr
    exp = load_lesson("bidirectional")
    return out, probe_experiment(exp, export.headless_params(exp))


def test_bidirectional_writes_both_directions(cli_bidirectional):
    out, r = cli_bidirectional
    for key in ("l0", "l0_reverse"):
        _header, h = read_matrix(out / f"hidden.h.{key}.csv")
        want = r.arrays[f"h.{key}"][:, 0, :].T
        np.testing.assert_array_equal(h.astype(want.dtype), want, err_msg=key)
        assert (out / f"hidden.{key}.png").exists(), key
    assert not (out / "hidden.png").exists()  # two views: each named by its choice
    # the reverse direction's picture is not the forward one's
    assert ((out / "hidden.l0.png").read_bytes() != (out / "hidden.l0_reverse.png").read_bytes())
    eigen = read_columns(out / "eigen.csv")
    for name in ("weight_hh_l0", "weight_hh_l0_reverse"):
        want = np.sort_complex(np.asarray(r.spectra[name]["h"], dtype=complex))
        got = np.sort_complex(eigen[f"{name}.h.real"] + 1j * eigen[f"{name}.h.imag"])
        np.testing.assert_allclose(got, want, err_msg=name)


@pytest.fixture(scope="module")
def cli_light(qapp, tmp_path_factory):
    """`gradlab export --preset forget_gate --size 640x400 --theme light` under umask 022."""
    out = tmp_path_factory.mktemp("light") / "plots"
    with umask(0o022):
        rc, _stdout, stderr = run_cli(["export", "--preset", "forget_gate", "--out", out,
                                       "--size", "640x400", "--theme", "light"])
    assert rc == 0, stderr
    exp = load_lesson("forget_gate")
    return out, probe_experiment(exp, export.headless_params(exp))


def test_forget_gate_writes_every_gate(cli_light):
    out, r = cli_light
    assert r.experiment.model.layers[0].cell == "lstm"
    for gate in "ifgo":
        _header, g = read_matrix(out / f"gates.gate.{gate}.l0.csv")
        want = r.arrays[f"gate.{gate}.l0"][:, 0, :].T
        np.testing.assert_array_equal(g.astype(want.dtype), want, err_msg=gate)
        for suffix in ("png", "svg"):
            assert (out / f"gates.{gate}.l0.{suffix}").exists(), (gate, suffix)
    # the gate only picks the heatmap: the means of every gate are written once
    assert read_header(out / "gates.csv") == ["timestep", "mean_i", "mean_f", "mean_g", "mean_o"]


def test_eigen_csv_names_its_matrix_and_block(cli_light):
    out, r = cli_light
    header = read_header(out / "eigen.csv")
    assert header == [f"weight_hh_l0.{block}.{part}" for block in "ifgo"
                      for part in ("real", "imag", "abs")]
    eigen = read_columns(out / "eigen.csv")
    want = np.sort(np.abs(np.asarray(r.spectra["weight_hh_l0"]["f"], dtype=complex)))
    np.testing.assert_allclose(np.sort(eigen["weight_hh_l0.f.abs"]), want)


def test_every_png_has_the_chosen_size_and_the_light_theme(cli_light):
    out, _r = cli_light
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 10
    for png in pngs:
        img = QImage(str(png))
        assert (img.width(), img.height()) == (640, 400), (png.name, img.size())
        for x, y in ((1, 1), (img.width() - 2, img.height() - 2)):
            assert luminance(img.pixelColor(x, y)) > 240, (png.name, x, y)
    # the axes and their labels are drawn dark on the light background, not in the
    # window's light grey
    assert dark_pixels(QImage(str(out / "gradients.png"))) > 200
    root = ET.parse(out / "gradients.svg").getroot()
    assert "#ffffff" in ET.tostring(root, encoding="unicode").lower()


def test_files_get_the_users_umask(cli_light, fake_result, qtbot, tmp_path):
    out, _r = cli_light
    for path in out.iterdir():  # written under umask 022
        assert path.stat().st_mode & 0o777 == 0o644, path.name
    panel = panel_by_name("gradients")()
    qtbot.addWidget(panel)
    panel.show_result(fake_result("gru", T=20))
    with umask(0o027):
        written = export.export_panels([panel], tmp_path / "o", ["png", "csv"])
    assert written and all(p.stat().st_mode & 0o777 == 0o640 for p in written)


def test_no_training_plot_without_a_history(cli_light):
    out, _r = cli_light
    assert not list(out.glob("training*"))


def test_the_sample_shown_is_exported_and_named(qtbot, fake_result, tmp_path):
    panel = panel_by_name("hidden")()
    qtbot.addWidget(panel)
    panel.resize(400, 300)
    panel.show()
    r = fake_result("lstm", num_layers=2, bidirectional=True, T=12, B=5, H=6)
    panel.show_result(r)
    panel.layer_selector.setCurrentIndex(panel.layer_selector.findData("l0_reverse"))
    panel.sample_selector.setValue(3)
    drawn = panel.to_csv_table()
    written = export.export_panels([panel], tmp_path, ["png", "csv"], size=(300, 200))
    keys = ("l0", "l0_reverse", "l1", "l1_reverse")
    assert {p.name for p in written} == ({f"hidden.{key}.sample3.png" for key in keys}
                                         | {f"hidden.h.{key}.sample3.csv" for key in keys})
    for key in keys:
        _header, h = read_matrix(tmp_path / f"hidden.h.{key}.sample3.csv")
        np.testing.assert_array_equal(h.astype(np.float32), r.arrays[f"h.{key}"][:, 3, :].T)
    # the user's choice, size and drawing are as they were
    assert panel.layer_selector.currentData() == "l0_reverse"
    assert panel.sample_selector.value() == 3
    assert panel.size().toTuple() == (400, 300)
    after = panel.to_csv_table()
    assert after.keys() == drawn.keys()
    for k in drawn:
        np.testing.assert_array_equal(after[k], drawn[k])


def _bidirectional_lstm() -> Experiment:
    return Experiment(model=ModelConfig(layers=[LayerConfig(cell="lstm", hidden_size=6,
                                                            bidirectional=True)]),
                      task=TaskConfig(name="sine", seq_len=16, batch_size=4))


def _colours(panel) -> set[str]:
    """What a theme changes: the background and the colours of every axis, title, label
    and message (a plot behind a tab may draw new text when exported, in its own colours)."""
    import pyqtgraph as pg

    found = {panel.glw.backgroundBrush().color().name()}
    for item in panel.glw.scene().items():
        if isinstance(item, pg.AxisItem):
            found |= {item.pen().color().name(), item.textPen().color().name()}
        elif isinstance(item, pg.LabelItem):
            found |= {c.lower() for c in re.findall(r"color: ?(#[0-9A-Fa-f]{6,8})", item.item.toHtml())}
        elif isinstance(item, pg.TextItem):
            found.add(item.color.name())
    return found


def test_window_export_all_writes_the_same_set(qtbot, tmp_path):
    from PySide6.QtCore import QCoreApplication, QEvent, QSettings

    from gui.app import MainWindow

    exp = _bidirectional_lstm()
    history = make_fake_history(30)
    headless = export.export_headless(exp, tmp_path / "headless", ["png", "csv"],
                                      history=history, size=(500, 350), theme="light")
    win = MainWindow(settings=QSettings(str(tmp_path / "gradlab.ini"),
                                        QSettings.Format.IniFormat))
    win.confirm_discard = lambda: True
    try:
        _check_window_export(qtbot, win, exp, history, headless, tmp_path)
    finally:
        win.close()
        win.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()


def _check_window_export(qtbot, win, exp, history, headless, tmp_path) -> None:
    win.resize(1100, 800)
    win.show()
    qtbot.waitExposed(win)
    win.state.load(exp)
    qtbot.waitUntil(lambda: win.state.result is not None and not win.state.probe_runner.is_busy
                    and win.state.result.experiment == win.state.experiment, timeout=20_000)
    win.flush_redraws()
    for panel in win.panels:  # as a training run would have left them
        panel.set_history(history)
    gates = panel_by_name_in(win, "gates")
    gates.layer_selector.setCurrentIndex(gates.layer_selector.findData("l0_reverse"))
    gates.gate_selector.setCurrentIndex(gates.gate_selector.findData("o"))
    qtbot.wait(200)  # the window's layout settles
    shown = [p for p in win.panels if p.isVisible()]
    assert shown and len(shown) < len(win.panels)  # some plots are behind tabs
    sizes = {p.name: p.size().toTuple() for p in shown}  # (a tab never shown has no size yet)
    colours = {p.name: _colours(p) for p in win.panels}

    win.complete_result()  # as File → Export all does: the hidden connectivity view's map
    assert win.state.result.connectivity is not None
    win.flush_redraws()
    written = export.export_all(win.panels, win.state.experiment, tmp_path / "window",
                                ["png", "csv"], size=(500, 350), theme="light")

    assert {p.name for p in written} == {p.name for p in headless}
    for path in written:
        if path.suffix == ".png":
            img = QImage(str(path))
            assert (img.width(), img.height()) == (500, 350), path.name
            assert luminance(img.pixelColor(1, 1)) > 240, path.name
        elif path.suffix == ".csv":
            assert path.read_bytes() == (tmp_path / "headless" / path.name).read_bytes(), path.name
    names = {p.name for p in written}
    assert {f"gates.{g}.{key}.png" for g in "ifgo" for key in ("l0", "l0_reverse")} <= names
    assert read_header(tmp_path / "window" / "gates.csv") == ["timestep", *[
        f"{key}.mean_{g}" for key in ("l0", "l0_reverse") for g in "ifgo"]]
    assert "training.png" in names
    # the window is left as the user had it: selection, sizes and its own colours
    assert gates.layer_selector.currentData() == "l0_reverse"
    assert gates.gate_selector.currentData() == "o"
    assert {p.name: p.size().toTuple() for p in shown} == sizes
    assert [p for p in win.panels if p.isVisible()] == shown
    lines = {c.lower() for c in LINE_COLORS}  # legends a plot behind a tab drew just now
    for panel in win.panels:
        after = _colours(panel)
        assert colours[panel.name] <= after and after - colours[panel.name] <= lines, panel.name


def panel_by_name_in(win, name):
    return next(p for p in win.panels if p.name == name)


# ----------------------------------------------------------------------------- no task


def _no_task_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    path = tmp_path / "e.json"
    path.write_text('{"format": "gradlab-experiment", "version": 1, "model": {"input_size": 3, '
                    '"output_size": 2, "layers": [{"cell": "gru", "hidden_size": 4}]}}')
    rng = np.random.default_rng(2)
    np.save(tmp_path / "x.npy", rng.normal(size=(10, 4, 3)))
    np.save(tmp_path / "y.npy", rng.normal(size=(10, 4, 2)))
    return path, tmp_path / "x.npy", tmp_path / "y.npy"


def test_cli_exports_an_experiment_without_task_on_given_arrays(qapp, tmp_path):
    path, x, y = _no_task_files(tmp_path)
    out = tmp_path / "plots"
    rc, _stdout, err = run_cli(["export", path, "--input", x, "--target", y, "--out", out,
                               "--formats", "png,csv"])
    assert rc == 0, err
    for name in SHOWN:  # one image, or one per view (the GRU's gates r, z, n)
        assert (out / f"{name}.png").exists() or list(out.glob(f"{name}.*.png")), name
    assert {p.name for p in out.glob("gates*.png")} == {f"gates.{g}.l0.png" for g in "rzn"}
    assert load_experiment_config(out / "experiment.json").task is None
    heat = list(out.glob("hidden.*.csv"))
    assert heat, sorted(p.name for p in out.iterdir())
    _header, matrix = read_matrix(heat[0])
    assert matrix.shape[1] == 10  # the given arrays' 10 timesteps


def test_headless_export_without_task_or_arrays_is_refused(qapp, tmp_path):
    path, x, y = _no_task_files(tmp_path)
    exp = load_experiment_config(path)
    with pytest.raises(export.ExportError, match=r"no task section.*--input X\.npy"):
        export.export_headless(exp, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    with pytest.raises(export.ExportError, match=r"input: expected an input of shape"):
        export.export_headless(exp, tmp_path / "o", data=(np.zeros((10, 4, 2)), np.load(y)))
    written = export.export_headless(exp, tmp_path / "o", ["csv"], data=(np.load(x), np.load(y)))
    assert tmp_path / "o" / "experiment.json" in written
