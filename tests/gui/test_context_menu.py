"""Every plot's context menu (export this plot, copy, auto-range), zoom that survives a
new result, and the value under the mouse."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import csv
import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QWheelEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu

from gui.export import ExportError
from gui.plots import ALL_PANELS, panel_by_name


def make_panel(qtbot, name, result, size=(600, 400)):
    panel = panel_by_name(name)()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_result(result)
    QApplication.processEvents()
    return panel


def actions(menu: QMenu) -> dict[str, object]:
    """Every action of ``menu`` and its submenus by text (submenus as "Menu/Action")."""
    found = {}
    for action in menu.actions():
        if action.menu() is not None:
            found[action.text()] = action
            for sub in action.menu().actions():
                found[f"{action.text()}/{sub.text()}"] = sub
        elif action.text():
            found[action.text()] = action
    return found


def view_point(panel, plot, x, y) -> QPoint:
    """Where the view coordinates ``(x, y)`` of ``plot`` are in the panel's graphics view."""
    scene = plot.vb.mapViewToScene(QPointF(x, y))
    return panel.glw.mapFromScene(scene)


def wheel(panel, at: QPoint, clicks: int = 3) -> None:
    """Turn the mouse wheel over ``at`` in the panel's graphics view (zoom in for > 0)."""
    event = QWheelEvent(QPointF(at), QPointF(panel.glw.viewport().mapToGlobal(at)), QPoint(),
                        QPoint(0, 120 * clicks), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(panel.glw.viewport(), event)


def hover(qtbot, panel, at: QPoint) -> str:
    qtbot.wait(40)  # pyqtgraph drops mouse moves that follow each other too closely
    qtbot.mouseMove(panel.glw.viewport(), at)
    QApplication.processEvents()
    return panel.hover_text


# ----------------------------------------------------------------------------- the menu


@pytest.mark.parametrize("cls", ALL_PANELS, ids=lambda c: c.name)
def test_every_plot_offers_export_copy_and_auto_range(qtbot, cls, fake_result):
    panel = make_panel(qtbot, cls.name, fake_result("lstm"))
    found = actions(panel.context_menu())
    assert {"Export this plot", "Export this plot/PNG image…", "Export this plot/SVG image…",
            "Export this plot/CSV data…", "Copy image", "Auto-range"} <= set(found)
    assert not found["Auto-range"].isEnabled()  # nothing zoomed yet


def test_a_right_click_on_a_plot_opens_the_menu(qtbot, fake_result, monkeypatch):
    panel = make_panel(qtbot, "gradients", fake_result("lstm"))
    opened = []
    monkeypatch.setattr(QMenu, "popup", lambda menu, pos, *a: opened.append((menu, pos)))
    centre = panel.glw.mapFromScene(panel.plot.vb.sceneBoundingRect().center())
    qtbot.mouseClick(panel.glw.viewport(), Qt.MouseButton.RightButton, pos=centre)
    assert len(opened) == 1 and opened[0][0] is panel.context_menu()
    qtbot.mouseClick(panel.glw.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert len(opened) == 1  # a left click marks a timestep, no menu


# ----------------------------------------------------------------------------- export


def choose_file(monkeypatch, path, asked=None):
    def ask(parent, caption, start, filters, *args):
        if asked is not None:
            asked.append((caption, start, filters))
        return str(path), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(ask))


def test_export_this_plot_writes_png_svg_and_csv(qtbot, fake_result, tmp_path, monkeypatch):
    panel = make_panel(qtbot, "gradients", fake_result("lstm"))
    found = actions(panel.context_menu())
    asked = []

    choose_file(monkeypatch, tmp_path / "flow", asked)  # no suffix: the format's is added
    found["Export this plot/PNG image…"].trigger()
    image = QImage(str(tmp_path / "flow.png"))
    assert not image.isNull()
    assert (image.width(), image.height()) == (panel.glw.width(), panel.glw.height())
    assert asked[-1][1].endswith("gradients.png") and "png" in asked[-1][2].lower()

    choose_file(monkeypatch, tmp_path / "flow.svg")
    found["Export this plot/SVG image…"].trigger()
    svg = (tmp_path / "flow.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "</svg>" in svg

    choose_file(monkeypatch, tmp_path / "flow.csv")
    found["Export this plot/CSV data…"].trigger()
    with open(tmp_path / "flow.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    table = panel.to_csv_table()
    assert rows[0] == list(table)
    column = rows[0].index("gradnorm.l0")
    np.testing.assert_allclose([float(r[column]) for r in rows[1:]], table["gradnorm.l0"],
                               rtol=1e-6)


def test_export_this_heatmap_as_csv_writes_its_matrix(qtbot, fake_result, tmp_path,
                                                      monkeypatch):
    result = fake_result("lstm", T=30, H=8)
    panel = make_panel(qtbot, "hidden", result)
    choose_file(monkeypatch, tmp_path / "states.csv")
    actions(panel.context_menu())["Export this plot/CSV data…"].trigger()
    written = np.loadtxt(tmp_path / "states.csv", delimiter=",", skiprows=1)[:, 1:]
    np.testing.assert_allclose(written, result.arrays["h.l0"][:, 0, :].T, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["states.csv"]


def test_a_plot_without_numbers_offers_no_csv(qtbot, fake_result, tmp_path, monkeypatch):
    panel = make_panel(qtbot, "cell", fake_result("gru"))  # a GRU has no cell state
    assert not actions(panel.context_menu())["Export this plot/CSV data…"].isEnabled()
    with pytest.raises(ExportError, match="no numbers"):
        panel.export_plot(tmp_path / "cell.csv")
    assert not list(tmp_path.iterdir())


def test_a_cancelled_dialog_writes_nothing(qtbot, fake_result, tmp_path, monkeypatch):
    panel = make_panel(qtbot, "gradients", fake_result("lstm"))
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: ("", "")))
    actions(panel.context_menu())["Export this plot/PNG image…"].trigger()
    assert not list(tmp_path.iterdir())


def test_copy_puts_the_plot_image_on_the_clipboard(qtbot, fake_result):
    panel = make_panel(qtbot, "hidden", fake_result("lstm"))
    clipboard = QApplication.clipboard()
    clipboard.clear()
    actions(panel.context_menu())["Copy image"].trigger()
    image = clipboard.image()
    assert not image.isNull()
    assert (image.width(), image.height()) == (panel.glw.width(), panel.glw.height())
    centre = panel.glw.mapFromScene(panel.plot.vb.sceneBoundingRect().center())
    colour = image.pixelColor(centre)  # the heatmap's colours, not an empty background
    assert (colour.red(), colour.green(), colour.blue()) != (0, 0, 0)


# ----------------------------------------------------------------------------- zoom


def ranges(vb):
    return np.array(vb.viewRange())


@pytest.mark.parametrize("name", ["hidden", "gradients", "gates", "signals"])
def test_a_zoom_survives_a_new_result_until_auto_range(qtbot, fake_result, name):
    panel = make_panel(qtbot, name, fake_result("lstm", T=100, seed=0))
    plot = panel.plot if hasattr(panel, "plot") else panel.input_plot
    chosen = ranges(plot.vb)
    wheel(panel, panel.glw.mapFromScene(plot.vb.sceneBoundingRect().center()))
    zoomed = ranges(plot.vb)
    assert (zoomed[:, 1] - zoomed[:, 0] < 0.9 * (chosen[:, 1] - chosen[:, 0])).all()
    assert panel.zoomed

    panel.show_result(fake_result("lstm", T=60, seed=1, decay=0.7))  # new ranges chosen
    QApplication.processEvents()
    np.testing.assert_allclose(ranges(plot.vb), zoomed)
    assert actions(panel.context_menu())["Auto-range"].isEnabled()

    actions(panel.context_menu())["Auto-range"].trigger()
    fresh = make_panel(qtbot, name, fake_result("lstm", T=60, seed=1, decay=0.7))
    fresh_plot = fresh.plot if hasattr(fresh, "plot") else fresh.input_plot
    np.testing.assert_allclose(ranges(plot.vb), ranges(fresh_plot.vb))
    assert not panel.zoomed
    panel.show_result(fake_result("lstm", T=40, seed=2))  # and follows results again
    QApplication.processEvents()
    assert ranges(plot.vb)[0, 1] == pytest.approx(39.5, abs=2)


def test_a_pan_of_a_linked_plot_keeps_both(qtbot, fake_result):
    panel = make_panel(qtbot, "gates", fake_result("lstm", T=100))
    vb = panel.trace_plot.vb
    vb.translateBy(x=20)  # as a drag does
    vb.sigRangeChangedManually.emit([True, True])
    x_range = ranges(vb)[0]
    panel.show_result(fake_result("lstm", T=100, seed=3))
    QApplication.processEvents()
    np.testing.assert_allclose(ranges(vb)[0], x_range)
    np.testing.assert_allclose(ranges(panel.plot.vb)[0], x_range)  # x-linked heatmap
    panel.auto_range()
    assert ranges(vb)[0][0] == pytest.approx(-0.5)


# ----------------------------------------------------------------------------- hover


def test_hovering_a_curve_names_its_value(qtbot, fake_result):
    panel = make_panel(qtbot, "gradients", fake_result("lstm", T=50))
    curve = panel.curves["h.l0"]
    t, g = float(curve.xData[12]), float(curve.yData[12])
    text = hover(qtbot, panel, view_point(panel, panel.plot, t, math.log10(g)))
    assert text.startswith("t = 12:"), text
    assert f"{g:.4g}" in text
    assert f"{g:.4g}" in panel.plot.vb.toolTip()  # shown when the mouse rests
    c = panel.curves["c.l0"]  # the cell-state gradient, dashed, in the same colour
    dc = float(c.yData[30])
    assert f"{dc:.4g}" in hover(qtbot, panel, view_point(panel, panel.plot, 30, math.log10(dc)))
    assert "╌" in panel.plot.vb.toolTip()
    lo, hi = panel.plot.vb.viewRange()[1]
    assert hover(qtbot, panel, view_point(panel, panel.plot, 25, hi - 0.02 * (hi - lo))) == ""


def test_hovering_a_heatmap_cell_names_timestep_unit_and_value(qtbot, fake_result):
    result = fake_result("lstm", T=40, H=10)
    panel = make_panel(qtbot, "hidden", result)
    value = float(result.arrays["h.l0"][7, 0, 3])
    text = hover(qtbot, panel, view_point(panel, panel.plot, 7.2, 2.9))
    assert text == f"t = 7, unit 3: h = {value:+.3f}"
    assert panel.readout.text() == text  # beside the selectors
    assert text in panel.plot.vb.toolTip()  # and when the mouse rests


def test_hovering_a_mean_gate_curve(qtbot, fake_result):
    result = fake_result("lstm", T=40)
    panel = make_panel(qtbot, "gates", result)
    shown = [c for c in panel.curves if c.isVisible() and c.yData is not None]
    assert len(shown) == 4  # i, f, g, o

    def apart(c):  # the curve farthest from the others at t = 20
        return min(abs(c.yData[20] - o.yData[20]) for o in shown if o is not c)

    curve = max(shown, key=apart)
    t, v = float(curve.xData[20]), float(curve.yData[20])
    text = hover(qtbot, panel, view_point(panel, panel.trace_plot, t, v))
    assert text == f"t = 20: mean = {v:.4g}", text
