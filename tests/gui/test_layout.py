"""The window on a laptop screen and on a large one: sizes, arrangement, scrolling."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc

import pyqtgraph as pg
import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QSize
from PySide6.QtWidgets import QApplication, QGroupBox

from core.lessons import list_lessons, load_lesson
from gui.app import WIDE_MIN, MainWindow

LAPTOP = (1280, 720)
LARGE = (1600, 1000)
HEATMAP_MIN = (200, 120)  # a heatmap's view box, where the colours are
DOCK_MIN = (200, 120)  # what any dock shows at least


@pytest.fixture
def window(qtbot):
    win = MainWindow(settings=None)
    win.confirm_discard = lambda: True
    win.state.load(load_lesson("forget_gate"), lesson="forget_gate")
    win.show_mentioned_panels(win.state.experiment.description)
    qtbot.waitUntil(lambda: win.state.result is not None
                    and not win.state.probe_runner.is_busy, timeout=20_000)
    yield win
    win.close()
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


def show_at(qtbot, win, size):
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    win.flush_redraws()
    QApplication.processEvents()
    QApplication.processEvents()


def visible(win, name):
    return win.docks[name].isVisible() and win.docks[name].widgets[0].isVisible()


def heatmap_views(win):
    """``{panel name: (width, height)}`` of every heatmap view box on screen."""
    return {p.name: (p.plot.vb.width(), p.plot.vb.height())
            for p in win.panels if p.isVisible() and hasattr(p, "plot")
            and isinstance(getattr(p, "image", None), pg.ImageItem)
            and p.image.image is not None}


def fits(size, room):
    return size.width() <= room[0] and size.height() <= room[1]


def test_the_window_fits_a_laptop_screen(qtbot, window):
    show_at(qtbot, window, LAPTOP)
    assert window.width() <= LAPTOP[0] and window.height() <= LAPTOP[1]
    assert fits(window.minimumSizeHint(), LAPTOP), window.minimumSizeHint()
    assert fits(window.centralWidget().minimumSizeHint(), LAPTOP)
    assert fits(window.minimumSize().expandedTo(QSize(0, 0)), LAPTOP)
    shown = [name for name in window.docks if visible(window, name)]
    assert {"lesson", "controls", "plot.gradients", "plot.hidden", "plot.gates",
            "plot.jacobian"} <= set(shown)
    for name in shown:
        widget = window.docks[name].widgets[0]
        assert widget.width() >= DOCK_MIN[0] and widget.height() >= DOCK_MIN[1], \
            (name, widget.size())
    views = heatmap_views(window)
    assert {"hidden", "gates"} <= set(views)
    for name, (w, h) in views.items():
        assert w >= HEATMAP_MIN[0] and h >= HEATMAP_MIN[1], (name, w, h)


@pytest.mark.parametrize("name", [name for name, _title in list_lessons()])
def test_every_lesson_opened_at_start_fits_a_laptop_screen(qtbot, name):
    """As ``gradlab --preset NAME`` opens it on a laptop: the docks a lesson brings
    forward (the edge-of-chaos lesson's phase diagram) must not widen the window."""
    win = MainWindow(settings=None)
    qtbot.addWidget(win)
    win.confirm_discard = lambda: True
    exp = load_lesson(name)
    assert win.state.load(exp, lesson=name)
    win.show_lesson_views(exp, name)  # before the window is shown, as run_app does
    show_at(qtbot, win, LAPTOP)
    assert win.width() <= LAPTOP[0] and win.height() <= LAPTOP[1]
    assert fits(win.minimumSizeHint(), LAPTOP), win.minimumSizeHint()
    assert win.open_lesson("forget_gate")  # and then another lesson from the menu
    show_at(qtbot, win, LAPTOP)
    assert win.width() <= LAPTOP[0] and win.height() <= LAPTOP[1]


def test_the_lesson_and_the_controls_scroll_to_their_ends(qtbot, window):
    show_at(qtbot, window, LAPTOP)
    browser = window.lesson_panel.browser
    found = browser.document().find("Try:")
    assert not found.isNull()
    browser.setTextCursor(found)
    browser.ensureCursorVisible()
    assert browser.viewport().rect().contains(browser.cursorRect())

    controls = window.controls  # a scroll area: the last group can be scrolled to
    body = controls.widget()
    assert body.width() <= controls.viewport().width()  # nothing cut off at the side
    last = max(body.findChildren(QGroupBox), key=lambda g: g.geometry().bottom())
    controls.ensureWidgetVisible(last)
    bottom = last.mapTo(controls.viewport(), last.rect().bottomLeft())
    assert 0 < bottom.y() <= controls.viewport().height()


def test_the_large_screen_shows_every_panel_side_by_side(qtbot, window):
    show_at(qtbot, window, LARGE)
    assert window.size().toTuple() == LARGE
    shown = {name for name in window.docks if visible(window, name)}
    assert {"architecture", "lesson", "controls", "plot.gradients", "plot.hidden",
            "plot.training", "plot.signals", "plot.gates", "plot.jacobian"} <= shown
    for name, (w, h) in heatmap_views(window).items():
        assert w >= HEATMAP_MIN[0] and h >= HEATMAP_MIN[1], (name, w, h)


def test_the_arrangement_follows_the_window_until_the_user_moves_a_dock(qtbot, window):
    show_at(qtbot, window, LARGE)
    assert visible(window, "architecture") and visible(window, "lesson")
    show_at(qtbot, window, LAPTOP)
    assert visible(window, "lesson") and not visible(window, "architecture")  # tabs
    assert window.docks["lesson"].container() is window.docks["architecture"].container()
    show_at(qtbot, window, (WIDE_MIN[0], WIDE_MIN[1] - 1))
    assert not visible(window, "architecture")
    show_at(qtbot, window, WIDE_MIN)
    assert visible(window, "architecture") and visible(window, "lesson")

    window.area.moveDock(window.docks["controls"], "left", None)  # the user's own layout
    mine = window.area.saveState()
    show_at(qtbot, window, LAPTOP)
    assert window.area.saveState()["main"][1][0] == mine["main"][1][0]
    assert window.docks["controls"].container() is window.area.topContainer
    window.reset_layout()  # the starting arrangement for this size: compact
    assert window.docks["lesson"].container() is window.docks["architecture"].container()


def test_tab_titles_show_which_dock_is_in_front(qtbot, window):
    for size in (LAPTOP, LARGE):
        show_at(qtbot, window, size)
        tabs = {d.container() for d in window.docks.values()
                if d.container() is not None and d.container().type() == "tab"}
        assert tabs
        for tab in tabs:
            front = tab.stack.currentWidget()
            for i in range(tab.count()):
                dock = tab.widget(i)
                assert dock.label.dim == (dock is not front), (size, dock.name())


def test_dock_titles_give_way_instead_of_widening_their_column(qtbot, window):
    show_at(qtbot, window, LAPTOP)
    tab = window.docks["plot.jacobian"].container()
    assert tab.type() == "tab" and tab.count() >= 3
    # no wider than its widest plot needs: three titles side by side would need ~420 px
    docks = [tab.widget(i) for i in range(tab.count())]
    assert tab.minimumSizeHint().width() <= max(d.minimumSizeHint().width() for d in docks)
    label = window.docks["plot.connectivity"].label
    assert label.minimumSizeHint().width() < label.sizeHint().width()


def test_a_gateless_lesson_shows_its_data_where_the_gates_would_be(qtbot, window):
    """At laptop size the gate plot shares a place with the data plot: a plain RNN
    lesson brings the data forward (its gate plot would only say there are none); a
    gated lesson leaves its gates in front."""
    show_at(qtbot, window, LAPTOP)
    assert window.open_lesson("vanishing_tanh")
    QApplication.processEvents()
    assert visible(window, "plot.signals") and not visible(window, "plot.gates")
    assert window.open_lesson("gru_gates")
    QApplication.processEvents()
    assert visible(window, "plot.gates")
    # opened in the wide arrangement, where the two have places of their own, and then
    # narrowed to a laptop's: the data stays in front
    show_at(qtbot, window, LARGE)
    assert window.open_lesson("vanishing_tanh")
    show_at(qtbot, window, LAPTOP)
    assert visible(window, "plot.signals") and not visible(window, "plot.gates")
