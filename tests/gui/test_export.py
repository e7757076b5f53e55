"""Exporting plots: `gradlab export` headless, and the same files from live panels."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QTabWidget

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import main  # noqa: E402
from core.experiment import experiment_to_dict, load_experiment_config  # noqa: E402
from core.lessons import load_lesson  # noqa: E402
from gui import export  # noqa: E402
from gui.plots import ALL_PANELS, panel_by_name  # noqa: E402
from gui.state import probe_experiment  # noqa: E402

from .conftest import make_fake_history  # noqa: E402

PRESET = "vanishing_tanh"
NAMES = [p.name for p in ALL_PANELS]
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
    for name in NAMES:
        for suffix in ("png", "svg"):
            assert str(out / f"{name}.{suffix}") in printed, (name, suffix)
    assert str(out / "experiment.json") in printed
    assert {Path(p) for p in printed} == {p for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    saved = load_experiment_config(out / "experiment.json")
    assert experiment_to_dict(saved) == experiment_to_dict(load_lesson(PRESET))


def test_pngs_are_not_blank(cli_export):
    out = cli_export[0]
    for name in NAMES:
        img = QImage(str(out / f"{name}.png"))
        assert not img.isNull(), name
        assert img.width() > 800 and img.height() > 500, (name, img.size())
        assert distinct_colours(img) > 8, name


def test_svgs_parse_and_hold_vector_paths(cli_export):
    out = cli_export[0]
    for name in NAMES:
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
    written = export.export_headless(exp, tmp_path, ["png", "csv"], width=400, height=300,
                                     scale=2.0, history=make_fake_history(40))
    assert not list(tmp_path.glob("*.svg"))
    img = QImage(str(tmp_path / "gradients.png"))
    assert 780 <= img.width() <= 800 and 500 <= img.height() <= 600
    train = read_columns(tmp_path / "training.csv")
    np.testing.assert_array_equal(train["step"], np.arange(40))
    assert (tmp_path / "gates.csv").exists() or list(tmp_path.glob("gates.*.csv"))
    assert tmp_path / "experiment.json" in written


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
    export.export_panels([front, back], tmp_path, ["png"])
    small, big = QImage(str(tmp_path / "gradients.png")), QImage(str(tmp_path / "hidden.png"))
    assert small.width() < 500 and distinct_colours(small) > 8
    assert big.width() > 0.9 * export.DEFAULT_SIZE[0]  # not the few pixels of an unshown tab
    assert distinct_colours(big) > 8
    assert back.size() == old


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
    for name in NAMES:
        assert (out / f"{name}.png").exists(), name
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
