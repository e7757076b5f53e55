"""The main window: docks for the builder, the controls, the lesson and every plot.

``run_app`` is the entry point of the desktop app and of ``--screenshot``.
Documents (open, save, recent files, autosave and recovery) follow :mod:`gui.files`.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pyqtgraph.dockarea.Dock import DockLabel
from PySide6.QtCore import (
    QByteArray,
    QEvent,
    QEventLoop,
    QMimeData,
    QObject,
    QRect,
    QSettings,
    QSize,
    Qt,
    QTimer,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QPainter,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QStyle,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.experiment import Experiment, TaskConfig, experiment_from_dict, experiment_to_dict
from core.layout import GATES
from core.lessons import list_lessons, load_lesson

from .builder import BuilderPanel
from .controls import ControlPanel
from .files import (
    ARCHIVE_SUFFIX,
    DOCUMENT_SUFFIXES,
    OPEN_FILTER,
    OPENABLE_SUFFIXES,
    SAVE_FILTERS,
    Autosave,
    AutosaveEntry,
    add_recent,
    data_dir,
    file_kind,
    parse_recent,
    read_document,
    read_weights,
    split_missing,
)
from .garbage import collect_in_gui_thread
from .lessons import LessonPanel
from .plots.base import completes
from .state import DIVERGED, FINISHED, PAUSED, RUNNING, LabState
from .worker import Pacer, Throttle

ORGANISATION, APPLICATION = "GradientFlowLab", "gradlab"
DEFAULT_LESSON = "vanishing_tanh"
SCREENSHOT_SIZE = (1600, 1000)
BUSY_DELAY_MS = 250  # show the progress bar only for work that takes a while
AUTOSAVE_MS = 60_000
# The least time between two redraws of the probe result (while idle, and while
# training) and of the training curves.
RESULT_MIN_MS = 50
RESULT_TRAINING_MIN_MS = 250
HISTORY_MIN_MS = 250
START_SIZE = (1500, 950)
# Where the plot panels go: columns of cells, a cell's panels share it as tabs.  On a
# large screen Architecture and Lesson share a column left of the plots, Controls has
# one on the right; below WIDE_MIN (a laptop) Lesson and Architecture share a place
# as tabs above Controls in one column, and the plots share four cells.
PLOT_LAYOUT = (
    (("gradients",), ("hidden", "cell"), ("training",)),
    (("signals", "graph"), ("gates", "anatomy"), ("jacobian", "eigen", "connectivity")),
)
COMPACT_PLOT_LAYOUT = (
    (("gradients", "training"), ("hidden", "cell")),
    (("gates", "anatomy", "signals", "graph"), ("jacobian", "eigen", "connectivity")),
)
WIDE_MIN = (1500, 900)  # the window size from which the wide arrangement is used
# Relative sizes of the columns: the wide arrangement's left column, plot columns and
# Controls; the compact one's left column and plot columns.
WIDE_COLUMNS = (300, 430, 450, 320)
COMPACT_COLUMNS = (350, 460, 470)

BANNER_STYLES = {
    "nonfinite": "background:#fff4ce; color:#5c4400; border:1px solid #e0b400;",
    "error": "background:#fde7e9; color:#6e0b14; border:1px solid #d13438;",
    "notice": "background:#e5f1fb; color:#0b3a5c; border:1px solid #2b88d8;",
}


def default_panels() -> list[type]:
    """The plot panel classes of the app."""
    from .plots import ALL_PANELS

    return list(ALL_PANELS)


def raise_dock(dock: Any) -> None:
    """Bring ``dock`` to the front if it shares its place with others as tabs."""
    container = dock.container()
    if container is not None and container.type() == "tab":
        dock.raiseDock()


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area that scrolls up and down only: its place
    may be shorter than it needs, never narrower."""
    area = QScrollArea()
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(widget)
    bar = area.verticalScrollBar().sizeHint().width()
    area.setMinimumWidth(widget.minimumSizeHint().width() + bar)
    return area


def _layout_shape(state: Any) -> Any:
    """A DockArea state without its splitter sizes and raised tabs: where each dock is."""
    if isinstance(state, dict):
        return (_layout_shape(state.get("main")), len(state.get("float") or ()))
    if isinstance(state, (list, tuple)) and len(state) == 3 and state[0] != "dock":
        return (state[0], tuple(_layout_shape(child) for child in state[1]))
    return tuple(state[:2]) if isinstance(state, (list, tuple)) else state


class DockTitle(DockLabel):
    """A dock's title bar that gives way rather than widening its column.

    pyqtgraph's titles are as wide as their text at least, and docks sharing a place
    as tabs put their titles side by side, so three tabs could make a column 420 px
    wide.  This one shortens its text with "…" instead (the tooltip has it all).
    """

    def minimumSizeHint(self) -> QSize:
        hint = self.sizeHint()
        if self.orientation == "vertical":
            return QSize(hint.width(), min(hint.height(), 24))
        return QSize(min(hint.width(), 24), hint.height())

    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        if self.orientation == "vertical":
            painter.rotate(-90)
            rect = QRect(-self.height(), 0, self.height(), self.width())
        else:
            rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                             rect.width())
        self.hint = painter.boundingRect(rect, self.alignment(), self.text())  # the full size
        painter.drawText(rect, self.alignment(), text)
        painter.end()
        if self.orientation == "vertical":
            self.setMaximumWidth(self.hint.height())
            self.setMaximumHeight(16777215)
        else:
            self.setMaximumHeight(self.hint.height())
            self.setMaximumWidth(16777215)


class Banner(QFrame):
    """A coloured strip above the docks for non-finite values and errors."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = ""
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.label, 1)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        row.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self.hide()

    def show_message(self, kind: str, html: str, timeout_ms: int = 0) -> None:
        """Show ``html`` styled as ``kind`` (nonfinite or error); 0: until dismissed."""
        if self.kind == "nonfinite" and kind == "error" and not self.isHidden():
            return  # the non-finite explanation matters more
        self.kind = kind
        self.setStyleSheet(f"Banner {{{BANNER_STYLES[kind]}}} QLabel {{border:none;}}")
        self.label.setText(html)
        self.show()
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def clear(self, kind: str) -> None:
        """Hide the banner if it shows a message of ``kind``."""
        if self.kind == kind:
            self.dismiss()

    def dismiss(self) -> None:
        self.kind = ""
        self.hide()

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()


class _VisibilityWatch(QObject):
    """Calls ``changed()`` whenever ``widget`` is shown or hidden (its tab raised or left,
    its dock closed, the window shown)."""

    def __init__(self, widget: QWidget, changed: Callable[[], None]) -> None:
        super().__init__(widget)
        self._changed = changed
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.Show, QEvent.Type.Hide):
            self._changed()
        return False


class MainWindow(QMainWindow):
    """Gradient Flow Lab's window.

    ``settings=None`` remembers nothing between runs (no recent files, no layout);
    ``data_dir`` is the per-user data folder that holds ``autosave/`` (None: no
    autosave and no recovery); ``autosave_ms`` is the autosave interval.
    """

    def __init__(self, state: LabState | None = None, settings: QSettings | None = None,
                 panels: Sequence[type] | None = None, parent: QWidget | None = None,
                 data_dir: str | os.PathLike[str] | None = None,
                 autosave_ms: int = AUTOSAVE_MS) -> None:
        super().__init__(parent)
        from pyqtgraph.dockarea import Dock, DockArea

        self.state = state or LabState(parent=self)
        self.settings = settings
        self.confirm_discard = self._ask_discard  # replaceable (tests)
        self.state.confirm_long_probe = self._ask_long_probe
        self.ask_recover = self._ask_recover  # replaceable (tests)
        self.autosave = Autosave(Path(data_dir) / "autosave") if data_dir is not None else None
        self._autosave_pending = False
        self._closed = False
        self._recent: list[str] = parse_recent(settings.value("files/recent")) if settings else []
        self.setWindowTitle("Gradient Flow Lab")
        self.setAcceptDrops(True)
        self.resize(*START_SIZE)

        self.banner = Banner()
        self.area = DockArea()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.area, 1)
        self.setCentralWidget(central)

        self.builder = BuilderPanel(self.state)
        self.controls = ControlPanel(self.state)
        self.lesson_panel = LessonPanel(self.state)
        self.panels: list[Any] = [cls() for cls in (default_panels() if panels is None
                                                    else panels)]
        self.docks: dict[str, Any] = {}

        def dock(name: str, title: str, widget: QWidget, size: tuple[int, int],
                 tip: str = "") -> Any:
            d = Dock(name, size=size, widget=widget, label=DockTitle(title))
            d.label.setToolTip(tip or title)
            self.docks[name] = d
            self.area.addDock(d)  # arranged below
            return d

        # The architecture editor scrolls rather than widening or lengthening its place.
        dock("architecture", "Architecture", scrolling(self.builder), (330, 560),
             "Drag blocks from the palette onto the stack")
        dock("lesson", "Lesson", self.lesson_panel, (330, 380),
             "What the open lesson shows and what to try")
        dock("controls", "Controls", self.controls, (340, 900),
             "Weight scales, initialisation, data, training and backend")
        for p in self.panels:
            dock(f"plot.{p.name}", p.title, p, (450, 420 if p.name == "gradients" else 300),
                 p.tooltip)
        self._layouts = {mode: self._layout_state(mode) for mode in ("wide", "compact")}
        self._arrange_plots(self._layout_mode_for(self.width(), self.height()))
        # Once more with the sizes the splitters settled on in this window, not yet laid
        # out, so that a layout saved now restores to the very same state.  The sizes
        # of the arrangement itself are given when the window is shown (_fit_layout).
        self.area.restoreState(self.area.saveState(), missing="ignore")
        self._sync_tab_titles()
        self._placed = False  # True once the docks have their sizes in a shown window

        for p in self.panels:
            p.timestep_clicked.connect(self.mark_timestep)
        # The connectivity map costs more than the rest of a lesson's probe: probes
        # compute it only while its view can be seen (and for export and pinning).
        self._conn_panel = next((p for p in self.panels if p.name == "connectivity"), None)
        if self._conn_panel is not None:
            self._conn_watch = _VisibilityWatch(self._conn_panel, self._follow_views)
            self.state.lab.set_analyses(connectivity=False)
        self._build_status_bar()
        self._build_actions()
        self._connect_state()
        self._restore_settings()
        self._update_title()
        self._on_training_state(self.state.training_state)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(autosave_ms)
        self.autosave_timer.timeout.connect(self.autosave_now)
        if self.autosave is not None:
            self.autosave_timer.start()
        QTimer.singleShot(0, self, self._first_probe)

    def _follow_views(self) -> None:
        """Probe for what the visible views show (the connectivity map only if seen)."""
        if self._conn_panel is not None and not self._closed:
            self.state.show_analyses(connectivity=self._conn_panel.isVisible())

    def complete_result(self) -> None:
        """Before export or pinning: when the shown result left out the map of a hidden
        view, probe again with it, and wait for a probe's analyses still computed
        for an early result; the window stays live."""
        lab = self.state.lab
        if lab.set_analyses(connectivity=True):
            self.state.request_probe()
        elif not getattr(lab.result, "pending", ()) or not self.state.probe_runner.is_busy:
            return self._follow_views()
        loop = QEventLoop(self)

        def done(*_: Any) -> None:
            if not getattr(lab.result, "pending", ()):
                loop.quit()

        self.state.result_changed.connect(done)
        self.state.error.connect(loop.quit)
        try:
            if self.state.probe_runner.is_busy:
                loop.exec()
        finally:
            self.state.result_changed.disconnect(done)
            self.state.error.disconnect(loop.quit)
            self._follow_views()

    def _first_probe(self) -> None:
        """Probe the starting experiment unless something else already asked."""
        if not self._closed and self.state.result is None \
                and not self.state.probe_runner.is_busy:
            self.state.request_probe()

    # ------------------------------------------------------------------ layout

    @staticmethod
    def _layout_mode_for(width: int, height: int) -> str:
        """``"wide"`` for a window of at least :data:`WIDE_MIN`, else ``"compact"``."""
        return "wide" if width >= WIDE_MIN[0] and height >= WIDE_MIN[1] else "compact"

    def _layout_state(self, mode: str) -> dict:
        """The starting arrangement of the docks for ``mode`` (a DockArea state).

        Plots go in a grid of :data:`PLOT_LAYOUT` (or :data:`COMPACT_PLOT_LAYOUT`) cells;
        a cell holding several plots shows them as tabs, the first in front.  Unknown
        panels join the last cell.
        """
        def place(names: Sequence[str]) -> Any:
            docks = [("dock", n, {}) for n in names]
            return docks[0] if len(docks) == 1 else ("tab", docks, {"index": 0})

        def split(kind: str, parts: list[tuple[Any, int]]) -> Any:
            if len(parts) == 1:
                return parts[0][0]
            return (kind, [p for p, _ in parts], {"sizes": [w for _, w in parts]})

        compact = mode == "compact"
        unplaced = [n.removeprefix("plot.") for n in self.docks if n.startswith("plot.")]
        columns = []
        for column in COMPACT_PLOT_LAYOUT if compact else PLOT_LAYOUT:
            cells = [[n for n in cell if n in unplaced] for cell in column]
            for n in (n for cell in cells for n in cell):
                unplaced.remove(n)
            columns.append([cell for cell in cells if cell])
        columns = [column for column in columns if column] or [[[]]]
        columns[-1][-1].extend(unplaced)
        # the gradient plot and the gate heatmap over its mean get a larger share
        plots = [split("vertical", [(place([f"plot.{n}" for n in cell]),
                                     400 if {"gradients", "gates"} & set(cell) else 300)
                                    for cell in column])
                 for column in columns if column[0]]
        sizes = COMPACT_COLUMNS if compact else WIDE_COLUMNS
        widths = [sizes[0]] + [sizes[min(i + 1, 2)] for i in range(len(plots))]
        if compact:
            side = split("vertical", [(place(["lesson", "architecture"]), 300),
                                      (place(["controls"]), 340)])
            row = [side, *plots]
        else:
            side = split("vertical", [(place(["architecture"]), 560), (place(["lesson"]), 380)])
            row = [side, *plots, place(["controls"])]
            widths.append(sizes[3])
        return {"main": split("horizontal", list(zip(row, widths, strict=True))),
                "float": []}

    def _arrange_plots(self, mode: str) -> None:
        """Arrange every dock as the app starts them in ``mode`` (wide or compact)."""
        self._default_layout = self._layouts[mode]
        self.area.restoreState(self._default_layout, missing="ignore")
        self._sync_tab_titles()

    def _sync_tab_titles(self) -> None:
        """Show the title of the dock in front of each tabbed place as the raised one
        (a restored DockArea state brings the dock forward but leaves the titles)."""
        for d in self.docks.values():
            container = d.container()
            if container is not None and container.type() == "tab" \
                    and container.stack.currentWidget() is d:
                container.tabClicked(d.label)  # dims the others' titles

    def _current_layout_mode(self) -> str | None:
        """The mode whose arrangement the docks are in (sizes and raised tabs aside), or
        None once the user has moved a dock."""
        shape = _layout_shape(self.area.saveState())
        return next((mode for mode, state in self._layouts.items()
                     if _layout_shape(state) == shape), None)

    def _fit_layout(self) -> None:
        """Switch between the wide and the compact arrangement as the window crosses
        :data:`WIDE_MIN`, unless the user has arranged the docks their own way; on the
        first resize (when shown) give the arrangement's sizes to the docks."""
        want = self._layout_mode_for(self.width(), self.height())
        mode = self._current_layout_mode()
        placed, self._placed = self._placed, True
        if mode is None or (mode == want and placed):
            return
        shown = {d for d in self.docks.values() if d.isVisibleTo(self)}
        self._arrange_plots(want)
        # Where docks now share a place as tabs, one that was on view stays in front:
        # one the open lesson brought forward, else the first.
        tabs = {d.container() for d in self.docks.values()}
        lesson_front = self._lesson_docks()
        for tab in (c for c in tabs if c is not None and c.type() == "tab"):
            docks = [tab.widget(i) for i in range(tab.count())]
            current = tab.stack.currentWidget()
            front = next((d for d in docks if d in shown and d in lesson_front), None)
            if front is None and current not in shown:
                front = next((d for d in docks if d in shown), None)
            if front is not None and front is not current:
                tab.tabClicked(front.label)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_layout()

    def reset_layout(self) -> None:
        """Put every dock back where it starts (for the window's present size)."""
        for d in self.docks.values():
            if d.area is not self.area:
                self.area.moveDock(d, "bottom", None)
        self._arrange_plots(self._layout_mode_for(self.width(), self.height()))

    def flush_redraws(self) -> None:
        """Draw the latest result and history now (before an export or a screenshot)."""
        self._result_throttle.flush()
        self._history_throttle.flush()

    def mark_timestep(self, t: int) -> None:
        """Mark timestep ``t`` on every plot with a time axis."""
        for p in self.panels:
            p.mark_timestep(t)
        self.statusBar().showMessage(f"Timestep {t} marked on every time plot", 3000)

    # ------------------------------------------------------------------ status bar

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.training_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the running probe")
        self.cancel_button.clicked.connect(self.state.cancel_probe)
        self.cancel_button.hide()
        self.probe_label = QLabel("probe: –")
        self.probe_label.setToolTip("Time of the last forward + backward pass and its analysis")
        # A fixed size: a new time repaints the label without laying the window out again.
        self.probe_label.setFixedSize(
            self.probe_label.fontMetrics().horizontalAdvance("probe: 99999 ms") + 4,
            self.probe_label.sizeHint().height())
        self.backend_label = QLabel()
        self.backend_label.setToolTip("Array backend and precision of the maths")
        for w in (self.training_label, self.progress, self.cancel_button, self.probe_label,
                  self.backend_label):
            bar.addPermanentWidget(w)
        self._busy_timer = QTimer(self)
        self._busy_timer.setSingleShot(True)
        self._busy_timer.timeout.connect(self._show_busy)

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self._busy_timer.start(BUSY_DELAY_MS)
        else:
            self._busy_timer.stop()
            self.cancel_button.hide()
            if self.state.training_state != RUNNING:
                self.progress.hide()

    def _on_probe_progress(self, fraction: float, stage: str) -> None:
        """A long probe: a determinate bar, its stage, and a Cancel button."""
        if self.state.training_state == RUNNING:
            return
        self._busy_timer.stop()
        self.progress.setRange(0, 1000)
        self.progress.setValue(round(1000 * fraction))
        self.progress.setToolTip(f"Probe: {stage} ({100 * fraction:.0f} %)")
        self.progress.show()
        self.cancel_button.show()
        self.statusBar().showMessage(f"Probe: {stage}… {100 * fraction:.0f} %")

    def _show_busy(self) -> None:
        if self.state.training_state != RUNNING:
            self.progress.setRange(0, 0)  # indeterminate
            self.progress.setToolTip("Running the probe…")
            self.progress.show()

    def _on_progress(self, done: int, total: int) -> None:
        if self.state.training_state == RUNNING and total:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self.progress.setToolTip(f"Training: {done} of {total} steps")
            self.progress.show()

    # ------------------------------------------------------------------ actions and menus

    def _action(self, text: str, slot: Any, shortcut: Any = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        action.triggered.connect(lambda _checked=False: slot())
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        s = self.state
        # Every edit is undoable, Controls and training runs included (core.lab.Lab).
        # Redo answers both Ctrl+Shift+Z and Ctrl+Y; each key is bound once.
        self.undo_action = self._action("Undo", lambda: self._step_back(redo=False), "Ctrl+Z")
        self.redo_action = self._action("Redo", lambda: self._step_back(redo=True),
                                        "Ctrl+Shift+Z")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        s.undo_changed.connect(self._update_undo_actions)
        self._update_undo_actions()
        # Space trains or pauses only when the focused widget does not use it (a check
        # box, a button): see keyPressEvent; the action shows the key without binding it.
        self.train_action = self._action("Train", s.toggle_training, None,
                                         "Train the network / pause (Space)")
        self.step_action = self._action("Step", s.step, "Ctrl+T", "One training step")
        self.probe_action = self._action("Run probe", s.probe_now, "F5",
                                         "Run the forward pass, BPTT and the analyses now, "
                                         "however long they are estimated to take")
        self.reset_action = self._action("Reset", s.reset, "Ctrl+R",
                                         "Stop training and re-draw the weights from the seed")
        icons = QStyle.StandardPixmap
        self._icons = {name: self.style().standardIcon(icon) for name, icon in (
            ("play", icons.SP_MediaPlay), ("pause", icons.SP_MediaPause))}
        self.step_action.setIcon(self.style().standardIcon(icons.SP_MediaSkipForward))
        self.reset_action.setIcon(self.style().standardIcon(icons.SP_BrowserReload))
        self.pin_action = self._action(
            "&Pin this run", self.pin_run, "Ctrl+P",
            "Keep this run's curves: later edits are drawn over it, dashed curves for the "
            "pin (up to 4 pinned runs)")
        self.unpin_action = self._action("&Unpin all", s.unpin_all, None,
                                         "Drop every pinned run")
        self.unpin_action.setEnabled(False)
        s.pinned_changed.connect(self._show_pins)

        menu = self.menuBar().addMenu("&File")
        menu.addAction(self._action("&New", self.new_experiment, QKeySequence.StandardKey.New))
        menu.addAction(self._action(
            "&Open…", self.open_dialog, QKeySequence.StandardKey.Open,
            "Open a saved experiment (.gradlab), experiment settings (.json), or weights "
            "(.safetensors, .npz) for the current model"))
        self.recent_menu = menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu(prune=False)
        menu.addAction(self._action("&Save", self.save, QKeySequence.StandardKey.Save,
                                    "Save the experiment, its weights and training history"))
        menu.addAction(self._action("Save &As…", self.save_as, "Ctrl+Shift+S"))
        menu.addSeparator()
        menu.addAction(self._action(
            "Load &data…", self.load_data_dialog, None,
            "Probe and train on your own input and target arrays (.npy) instead of the task"))
        menu.addAction(self._action(
            "Open s&weep…", self.open_sweep_dialog, None,
            "Show a sweep (the sweep.zarr folder gradlab sweep writes) as a phase diagram"))
        menu.addAction(self._action(
            "&Run sweep…", self.run_sweep_dialog, None,
            "Run a small sweep over two knobs of this experiment and show its phase diagram"))
        menu.addSeparator()
        menu.addAction(self._action("&Export all…", self.export_all, "Ctrl+E",
                                    "Write every plot as PNG, SVG and CSV into a folder"))
        menu.addSeparator()
        menu.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))

        menu = self.menuBar().addMenu("&Edit")
        menu.addAction(self.undo_action)
        menu.addAction(self.redo_action)

        menu = self.menuBar().addMenu("&Training")
        for a in (self.train_action, self.step_action, self.reset_action, self.probe_action):
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(self.pin_action)
        self.unpin_menu = menu.addMenu("Unpin")
        self.unpin_menu.setToolTip("Drop one pinned run")
        self.unpin_menu.aboutToShow.connect(self._fill_unpin_menu)
        self.unpin_menu.setEnabled(False)
        menu.addAction(self.unpin_action)

        menu = self.menuBar().addMenu("&View")
        menu.addAction(self._action("&Reset layout", self.reset_layout))

        self.lessons_menu = self.menuBar().addMenu("&Lessons")
        self.lesson_actions: dict[str, QAction] = {}
        for name, title in list_lessons():
            action = self._action(title, lambda n=name: self.open_lesson(n))
            action.setData(name)
            self.lessons_menu.addAction(action)
            self.lesson_actions[name] = action

        menu = self.menuBar().addMenu("&Help")
        menu.addAction(self._action("&About Gradient Flow Lab", self.about))

        bar = QToolBar("Training")
        bar.setObjectName("training-toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.train_action, self.step_action, self.reset_action):
            bar.addAction(a)
        bar.addSeparator()
        bar.addAction(self.undo_action)
        bar.addAction(self.redo_action)
        self.addToolBar(bar)

    # ------------------------------------------------------------------ state → window

    def _connect_state(self) -> None:
        s = self.state
        pacer = Pacer()  # the two never draw in one turn: the window paints in between
        self._history_empty = False  # the curves drawn last had no rows
        self._result_throttle = Throttle(self._on_result, min_ms=RESULT_MIN_MS, parent=self,
                                         pacer=pacer)
        # Training curves redraw at most a few times a second: smooth enough, and it
        # leaves the event loop room while the worker trains.
        self._history_throttle = Throttle(self._on_history, min_ms=HISTORY_MIN_MS, parent=self,
                                          pacer=pacer)
        self._drawn_result: Any = None  # the result the views were given last
        s.result_changed.connect(self._push_result)
        s.history_changed.connect(self._push_history)
        s.error.connect(self._on_error)
        s.nonfinite.connect(self._on_nonfinite)
        s.busy.connect(self._on_busy)
        s.training_state_changed.connect(self._on_training_state)
        s.training_progress.connect(self._on_progress)
        s.experiment_changed.connect(self._on_experiment)
        s.file_changed.connect(self._on_file_changed)
        s.history_changed.connect(self._note_change)
        s.notice.connect(self._on_notice)
        s.probe_progress.connect(self._on_probe_progress)
        self._on_experiment(s.experiment)

    def pin_run(self) -> bool:
        """Pin the run shown (Training → Pin this run)."""
        self.complete_result()  # a pin keeps the connectivity map too
        pin = self.state.pin()
        if pin is not None:
            self.statusBar().showMessage(
                f"Pinned {pin.label}: edit a setting to see the new run over it", 5000)
        return pin is not None

    def _fill_unpin_menu(self) -> None:
        """One item per pinned run: "A: init.forget_bias 0 → 2"."""
        s = self.state
        self.unpin_menu.clear()
        for pin in s.pinned:
            diffs = s.differences(pin)
            text = f"{pin.label}: {'; '.join(diffs[:2]) or 'same settings'}"
            self.unpin_menu.addAction(text, lambda p=pin: s.unpin(p))

    def _show_pins(self) -> None:
        """Hand the pinned runs, with what differs from the live run, to the plots."""
        s = self.state
        runs = [(pin, s.differences(pin)) for pin in s.pinned]
        self.unpin_action.setEnabled(bool(runs))
        self.unpin_menu.setEnabled(bool(runs))
        for p in self.panels:
            if hasattr(p, "set_pinned"):
                p.set_pinned(runs)

    def _push_result(self, result: Any) -> None:
        """A new probe result to the views: through the throttle, except the completion
        of the early result drawn last (the same pass with its analyses), which goes to
        the views at once: only those that waited for the analyses redraw."""
        if completes(result, self._drawn_result) and not self._result_throttle.pending:
            self._on_result(result)
        else:
            self._result_throttle.push(result)

    def _on_result(self, result: Any) -> None:
        self._drawn_result = result
        if self.state.pinned:
            self._show_pins()  # the differences are with the run just probed
        for p in self.panels:
            try:
                p.show_result(result)
            except Exception as exc:  # one broken plot must not take the others down
                self._on_error(f"{getattr(p, 'title', p)}: could not draw ({exc})")
        ms = 1000.0 * float(getattr(result, "elapsed_s", 0.0) or 0.0)
        self.probe_label.setText(f"probe: {ms:.0f} ms")
        label = getattr(result, "backend_label", "") or self.state.backend_label
        self.backend_label.setText(label)
        if self.banner.kind == "error":
            self.banner.dismiss()

    def _push_history(self, history: dict) -> None:
        """Hand new training curves to their throttle, except one empty history after
        another (each knob edit starts one): nothing would change on screen, and the
        redraw would hold back the probe result that follows by the pacer's gap."""
        empty = not len(history.get("step", ()))
        if empty and self._history_empty:
            return
        self._history_empty = empty
        self._history_throttle.push(history)

    def _on_history(self, history: dict) -> None:
        for p in self.panels:
            p.set_history(history)
        steps = history.get("step")
        if steps is not None and len(steps):
            loss = history["loss"][-1]
            self.training_label.setText(f"step {int(steps[-1])} · loss {loss:.4g}")
        else:
            self.training_label.setText("")

    def _update_undo_actions(self) -> None:
        s = self.state
        for action, word, able, text in ((self.undo_action, "Undo", s.can_undo, s.undo_text),
                                         (self.redo_action, "Redo", s.can_redo, s.redo_text)):
            action.setEnabled(able)
            action.setText(f"{word} {text}" if text else word)
            action.setIconText(word)  # the toolbar button keeps its width as the text changes
            action.setToolTip(f"{word} {text}" if text else f"Nothing to {word.lower()}")

    def _step_back(self, redo: bool) -> bool:
        """Undo (or redo) one edit, and say which: a notice about the edit it leaves
        ("trained weights kept and adjusted: ×1.3") is taken down, no longer true."""
        s = self.state
        text = s.redo_text if redo else s.undo_text
        if not (s.redo() if redo else s.undo()):
            return False
        self.banner.clear("notice")
        message = f"{'Redone' if redo else 'Undone'}: {text}" if text else ""
        self.statusBar().showMessage(message, 5000)
        return True

    def _on_notice(self, message: str) -> None:
        """Something the user must not miss (trained weights redrawn, a partial save)."""
        from html import escape

        self.statusBar().showMessage(message, 10000)
        self.banner.show_message("notice", escape(message), 10000)

    def _on_error(self, message: str) -> None:
        from html import escape

        self.statusBar().showMessage(message, 10000)
        self.banner.show_message("error", f"<b>Problem:</b> {escape(message)}", 15000)

    def _on_nonfinite(self, message: str) -> None:
        from html import escape

        if not message:
            self.banner.clear("nonfinite")
            return
        self.banner.show_message(
            "nonfinite",
            f"<b>Non-finite values (NaN or Inf):</b> {escape(message)}<br>"
            "Activations or gradients grew past what the number format can hold. The lab "
            "keeps working: lower the recurrent scale, switch gradient clipping on, lower "
            "the learning rate, or choose float64.")
        self.statusBar().showMessage("Non-finite values: " + message, 10000)

    def _on_training_state(self, value: str) -> None:
        running = value == RUNNING
        # While the worker trains, the probes of its weights come many times a second:
        # drawing each would keep the GUI thread from the user.
        self._result_throttle.set_min_ms(RESULT_TRAINING_MIN_MS if running else RESULT_MIN_MS)
        self.train_action.setText("Pause" if running else "Train")
        self.train_action.setIcon(self._icons["pause" if running else "play"])
        self.train_action.setToolTip("Pause training (Space)" if running
                                     else "Train the network (Space)")
        self.step_action.setEnabled(not running)
        if not running:
            self.progress.hide()
        notes = {PAUSED: "Training paused", FINISHED: "Training run finished",
                 DIVERGED: "Training stopped: non-finite values (last finite weights kept)"}
        if value in notes:
            self.statusBar().showMessage(notes[value], 5000)

    def _on_experiment(self, exp: Experiment) -> None:
        self.backend_label.setText(self.state.backend_label)
        self._note_change()
        self._update_title()

    def _on_file_changed(self) -> None:
        self._update_title()
        if self.state.modified:
            self._note_change()
        else:  # saved, opened or undone back to the file: nothing to recover
            self._autosave_pending = False
            if self.autosave is not None:
                self.autosave.clear()

    def _update_title(self) -> None:
        s = self.state
        name = s.path.name if s.path else (s.experiment.title or "untitled")
        title = f"{name}[*] — Gradient Flow Lab"
        if title != self.windowTitle():
            self.setWindowTitle(title)
        if s.modified != self.isWindowModified():  # each call retitles the window (0.3 ms)
            self.setWindowModified(s.modified)

    # ------------------------------------------------------------------ files and lessons

    def _ask_discard(self) -> bool:
        """Save / Discard / Cancel when there are unsaved changes; True: go on."""
        if not self.state.modified:
            return True
        s = self.state
        name = s.path.name if s.path else (s.experiment.title or "The experiment")
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Unsaved changes",
            f"{name} has unsaved changes (settings, trained weights or training history). "
            "Save them first?", buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def _ask_long_probe(self, seconds: float) -> bool:
        """Before a probe estimated to take very long: run it, or leave it for F5."""
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "A long probe",
            f"This model's probe (forward pass, BPTT, eigenvalues, Jacobian products and "
            f"connectivity map) is estimated to take about {seconds:.0f} s. Run it now? "
            "You can cancel it while it runs, or run it later with Training → Run probe (F5).",
            buttons.Yes | buttons.No, buttons.No)
        return answer == buttons.Yes

    def new_experiment(self) -> None:
        if self.confirm_discard():
            self.state.load(Experiment(task=TaskConfig()))

    def open_dialog(self) -> None:
        """File → Open…: an experiment, a saved archive or weights for the current model."""
        path, _ = QFileDialog.getOpenFileName(self, "Open", self._folder(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | os.PathLike[str]) -> bool:
        """Open ``path`` (see :meth:`LabState.open_file`), asking first about unsaved
        changes it would replace; a failure changes nothing and says why."""
        kind = file_kind(path)
        if kind is None:
            self._on_error(f"{path}: not a file Gradient Flow Lab opens (it opens "
                           f"{', '.join(OPENABLE_SUFFIXES)} files and sweep.zarr folders)")
            return False
        if kind == "sweep":  # shown beside the lab's work; it replaces nothing
            if not self.show_sweep(path):
                return False
            self._add_recent(str(path))
            self.statusBar().showMessage(f"Opened the sweep {Path(path).name}", 5000)
            return True
        try:  # read and check everything before asking or changing anything
            if kind == "weights":
                loaded: Any = read_weights(path, self.state.experiment.model)
            else:
                loaded = read_document(path)
        except UserError as exc:
            self._on_error(str(exc))
            return False
        replaces_work = kind != "weights" or bool(self.state.history["step"])
        if replaces_work and not self.confirm_discard():
            return False
        if kind == "weights":
            self.state.set_weights(loaded)
        elif not self.state.load_document(loaded, path=path):
            return False
        self._add_recent(path)
        what = "Loaded weights from" if kind == "weights" else "Opened"
        self.statusBar().showMessage(f"{what} {Path(path).name}", 5000)
        return True

    def load_data_dialog(self) -> None:
        """File → Load data…: an input array, then its target array (.npy each)."""
        x, _ = QFileDialog.getOpenFileName(self, "Input sequences (T, B, D)", self._folder(),
                                           "NumPy arrays (*.npy)")
        if not x:
            return
        y, _ = QFileDialog.getOpenFileName(self, "Targets", str(Path(x).parent),
                                           "NumPy arrays (*.npy)")
        if y:
            self.load_data_files([x, y])

    def open_sweep_dialog(self) -> None:
        """File → Open sweep…: a sweep.zarr folder (or the folder that holds one)."""
        path = QFileDialog.getExistingDirectory(self, "Open sweep (sweep.zarr)", self._folder())
        if path:
            self.show_sweep(path)

    def run_sweep_dialog(self) -> Any:
        """File → Run sweep…: the dialog; its finished sweep opens in the phase diagram."""
        from .sweep_dialog import SweepDialog

        dialog = SweepDialog(self.state.lab, self)
        dialog.finished_sweep.connect(self.show_sweep)
        dialog.open()
        return dialog

    def show_sweep(self, path: str | os.PathLike[str]) -> bool:
        """Show the sweep at ``path`` in the phase-diagram dock (made on first use)."""
        from pyqtgraph.dockarea import Dock

        from .plots.phase import PhaseView

        if getattr(self, "phase_view", None) is None:
            self.phase_view = PhaseView(self.state.lab)
            self.phase_dock = Dock("phase", size=(520, 440), widget=self.phase_view,
                                   label=DockTitle(PhaseView.title))
            self.phase_dock.label.setToolTip(PhaseView.tooltip)
            beside = self.docks.get("plot.gradients")  # a tab beside the gradient plot
            self.area.addDock(self.phase_dock, "above" if beside else "right", beside)
        if not self.phase_view.load(str(path)):
            self._on_error(self.phase_view.status.text())
            return False
        raise_dock(self.phase_dock)
        return True

    def load_data_files(self, paths: Sequence[str]) -> bool:
        """Use the input and target arrays in ``paths`` (in either order) as the data.

        Two .npy files: the one that fits as the (T, B, input_size) input is the input.
        """
        if len(paths) != 2:
            self._on_error("give two .npy files together: the input sequences (T, B, D) "
                           "and their targets")
            return False
        first, second = paths
        import numpy as np

        try:
            shape = np.load(first, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError):
            shape = ()
        D = self.state.experiment.model.input_size
        if not (len(shape) == 3 and shape[2] == D):
            first, second = second, first
        if not self.state.load_data(first, second):
            return False
        self.statusBar().showMessage(
            f"Using your data: {Path(first).name} → {Path(second).name} (undo with Ctrl+Z)",
            8000)
        return True

    def save(self) -> bool:
        """File → Save: into the open ``.gradlab`` file, else as a new one."""
        path = self.state.path
        if path is None or file_kind(path) != "archive":
            return self.save_as()
        return self._save_to(path)

    def save_as(self, path: str | os.PathLike[str] | None = None) -> bool:
        """File → Save As…: ``path``, or one asked for (``.gradlab`` unless chosen)."""
        if path is None:
            stem = (self.state.path.stem if self.state.path
                    else self.state.lesson or "experiment")
            suggestion = str(Path(self._folder()) / f"{stem}{ARCHIVE_SUFFIX}")
            chosen, selected = QFileDialog.getSaveFileName(
                self, "Save experiment", suggestion, ";;".join(SAVE_FILTERS))
            if not chosen:
                return False
            if Path(chosen).suffix.lower() not in DOCUMENT_SUFFIXES:
                chosen += SAVE_FILTERS.get(selected, ARCHIVE_SUFFIX)
            path = chosen
        return self._save_to(path)

    def _save_to(self, path: str | os.PathLike[str]) -> bool:
        resume = self.state.wait_for_rest()  # save the weights of the latest step
        ok = self.state.save(path)
        if ok:
            self._add_recent(path)
            self.statusBar().showMessage(f"Saved {Path(path).name}", 5000)
        if resume:
            self.state.train()
        return ok

    def _folder(self) -> str:
        return str(self.state.path.parent) if self.state.path else str(Path.home())

    # ------------------------------------------------------------------ recent files

    def _add_recent(self, path: str | os.PathLike[str]) -> None:
        self._set_recent(add_recent(self._recent, path))

    def _set_recent(self, paths: list[str]) -> None:
        self._recent = paths
        if self.settings is not None:
            self.settings.setValue("files/recent", json.dumps(paths))
        self._fill_recent_menu(prune=False)

    def recent_files(self) -> list[str]:
        """The Open Recent list, most recent first."""
        return list(self._recent)

    def _fill_recent_menu(self, prune: bool = True) -> None:
        """Rebuild Open Recent; files no longer there are dropped, with a message."""
        if prune:
            kept, gone = split_missing(self._recent)
            if gone:
                self._set_recent(kept)
                names = ", ".join(Path(p).name for p in gone)
                self.statusBar().showMessage(
                    f"Removed from Open Recent (no longer found): {names}", 8000)
                return
        menu = self.recent_menu
        menu.clear()
        for i, path in enumerate(self._recent, 1):
            p = Path(path)
            action = menu.addAction(f"&{i} {p.name} — {p.parent}")
            action.setData(path)
            action.setToolTip(path)
            action.triggered.connect(lambda _checked=False, path=path: self.open_recent(path))
        if not self._recent:
            menu.addAction("No recent files").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list").triggered.connect(lambda: self._set_recent([]))

    def open_recent(self, path: str) -> bool:
        """Open a file (or sweep folder) of the Open Recent list; one that is gone
        leaves the list."""
        if not (Path(path).is_file() or file_kind(path) == "sweep"):
            self._set_recent([p for p in self._recent if p != path])
            self._on_error(f"{path}: no longer there; removed from Open Recent")
            return False
        return self.open_path(path)

    # ------------------------------------------------------------------ drag and drop

    @staticmethod
    def _dropped_file(mime: QMimeData) -> str | None:
        """The first local file among ``mime``'s URLs that the lab opens, or None."""
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile() and file_kind(url.toLocalFile()) is not None:
                return url.toLocalFile()
        return None

    def keyPressEvent(self, event: Any) -> None:
        """Space, not taken by the focused widget, trains or pauses."""
        if event.key() == Qt.Key.Key_Space and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            self.train_action.trigger()
            event.accept()
            return
        super().keyPressEvent(event)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if self._dropped_file(event.mimeData()) or any(
                u.toLocalFile().lower().endswith(".npy") for u in urls):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        arrays = [u.toLocalFile() for u in event.mimeData().urls()
                  if u.isLocalFile() and u.toLocalFile().lower().endswith(".npy")]
        if arrays:
            event.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.load_data_files(arrays))
            return
        path = self._dropped_file(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        QTimer.singleShot(0, lambda: self.open_path(path))  # not inside the drag's loop

    # ------------------------------------------------------------------ autosave and recovery

    def _note_change(self, *_args: Any) -> None:
        if self.state.modified:
            self._autosave_pending = True

    def autosave_now(self) -> bool:
        """Write the autosave if there are unsaved changes it does not hold yet."""
        if self.autosave is None or not self.state.modified or not self._autosave_pending:
            return False
        try:
            self.autosave.write(self.state.document(), self.state.path)
        except Exception as exc:  # never interrupt the user's work for this
            self.statusBar().showMessage(f"Autosave failed: {exc}", 10000)
            return False
        self._autosave_pending = False
        return True

    def _ask_recover(self, entry: AutosaveEntry) -> str | None:
        """Ask about an autosave left by a run that did not exit cleanly:
        ``"recover"``, ``"discard"`` or None (ask again next time)."""
        from datetime import datetime

        when = datetime.fromtimestamp(entry.time).strftime("%Y-%m-%d %H:%M")
        what = (Path(entry.path).name if entry.path
                else f"“{entry.title}”" if entry.title else "an untitled experiment")
        box = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved work?",
                          f"Gradient Flow Lab did not close properly. Unsaved changes to "
                          f"{what} were kept automatically at {when}.",
                          QMessageBox.StandardButton.NoButton, self)
        box.setInformativeText("Recover them, or discard them for good?")
        recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton(QMessageBox.StandardButton.Discard)
        box.setDefaultButton(recover)
        try:
            box.exec()
            clicked = box.clickedButton()
        finally:
            box.deleteLater()
        return {id(recover): "recover", id(discard): "discard"}.get(id(clicked))

    def offer_recovery(self) -> bool:
        """Offer the newest autosave of a run that did not exit cleanly; Recover
        opens it as an unsaved document that remembers its file.  True if recovered."""
        if self.autosave is None:
            return False
        entries = self.autosave.orphans()
        if not entries:
            return False
        entry = entries[0]
        choice = self.ask_recover(entry)
        if choice == "discard":
            entry.discard()
        if choice != "recover" or not self.confirm_discard():
            return False
        try:
            doc = read_document(entry.archive)
        except UserError as exc:
            self._on_error(f"could not recover the autosave: {exc}")
            return False
        if not self.state.load_document(doc, path=entry.path, modified=True):
            return False
        self._autosave_pending = True
        if self.autosave_now():  # the work belongs to this run now
            entry.discard()
        self.statusBar().showMessage("Recovered unsaved work; save it to keep it", 8000)
        return True

    def open_lesson(self, name: str) -> bool:
        """Open lesson ``name`` (a preset); False if it cannot be loaded."""
        if not self.confirm_discard():
            return False
        try:
            exp = load_lesson(name)
        except UserError as exc:
            self._on_error(str(exc))
            return False
        ok = self.state.load(exp, lesson=name)
        if ok:
            self.show_lesson_views(exp, name)
        return ok

    def show_lesson_views(self, exp: Experiment, name: str) -> None:
        """Bring forward what lesson ``name`` (just loaded as ``exp``) is about: its
        text, the plots it names, its data instead of an empty gate plot where the
        model has no gates, and its sweep if it has one."""
        raise_dock(self.docks["lesson"])
        if (data := self._data_instead_of_gates(exp)) is not None:
            raise_dock(data)
        self.show_mentioned_panels(exp.description)
        from core.lessons import lesson_sweep

        if (sweep := lesson_sweep(name)) is not None:
            self.show_sweep(sweep)

    def show_mentioned_panels(self, text: str) -> None:
        """Bring to the front every plot whose quoted title ``text`` mentions (the first
        mention wins where two share a place)."""
        for p in self._mentioned_panels(text)[::-1]:
            raise_dock(self.docks[f"plot.{p.name}"])

    def _mentioned_panels(self, text: str) -> list[Any]:
        """The plot panels whose quoted title ``text`` mentions, in order of mention."""
        mentioned = [(text.find(f'"{p.title}"'), p) for p in self.panels]
        return [p for _pos, p in sorted((m for m in mentioned if m[0] >= 0),
                                        key=lambda m: m[0])]

    def _data_instead_of_gates(self, exp: Experiment) -> Any | None:
        """The data plot's dock where ``exp``'s model has no gates (its gate plot would
        only say so), else None."""
        if any(GATES[layer.cell] for layer in exp.model.layers):
            return None
        return self.docks.get("plot.signals")

    def _lesson_docks(self) -> list[Any]:
        """The docks the open lesson brings forward (none without a lesson): kept in
        front, too, where a switch to the compact arrangement merges places."""
        if not getattr(self.state, "lesson", None):
            return []
        exp = self.state.experiment
        docks = [self.docks[f"plot.{p.name}"] for p in self._mentioned_panels(exp.description)]
        data = self._data_instead_of_gates(exp)
        return docks if data is None else [*docks, data]

    def export_all(self, folder: str | None = None) -> bool:
        """Write every plot (PNG, SVG, CSV) and the experiment into ``folder`` (asked
        for when None); see :mod:`gui.export`."""
        from .export import export_all

        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Export every plot into",
                                                      self._folder())
        if not folder:
            return False
        self.complete_result()  # the maps of hidden views too
        self.flush_redraws()
        self.progress.setRange(0, 0)
        self.progress.show()
        QApplication.processEvents()
        try:
            written = export_all(self.panels, self.state.experiment, folder,
                                 history=self.state.history_arrays())
        except (OSError, UserError) as exc:
            self._on_error(f"export: {exc}")
            return False
        finally:
            self.progress.hide()
        self.statusBar().showMessage(f"Exported {len(written)} files to {folder}", 8000)
        return True

    def about(self) -> None:
        QMessageBox.about(
            self, "About Gradient Flow Lab",
            "<h3>Gradient Flow Lab</h3><p>Build a recurrent network, turn its weight "
            "scales and watch backpropagation through time: hidden states, gates, "
            "cell states and the gradient reaching every timestep.</p>"
            f"<p>Backend: {self.state.backend_label}</p>")

    # ------------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        st = self.settings
        if st is None:
            return
        geometry = st.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        docks = st.value("window/docks")
        if isinstance(docks, str) and docks:
            try:
                self.area.restoreState(json.loads(docks), missing="ignore")
            except Exception:  # a layout from another version: keep the default
                self.area.restoreState(self._default_layout, missing="ignore")
            self._sync_tab_titles()
            self._placed = True  # the remembered sizes, not the default ones

    def restore_last_experiment(self) -> bool:
        """Reopen what the previous run ended with: its file, else its settings (unless
        they were discarded), else its lesson."""
        st = self.settings
        if st is None:
            return False
        path = st.value("experiment/path") or ""
        lesson = st.value("experiment/lesson") or None
        if isinstance(path, str) and path and Path(path).is_file():
            try:
                doc = read_document(path)
            except UserError:
                pass  # changed or broken since: fall back to the remembered settings
            else:
                return self.state.load_document(doc, path=path, lesson=lesson)
        text = st.value("experiment/last")
        if isinstance(text, str) and text:
            try:
                exp = experiment_from_dict(json.loads(text))
            except (ValueError, UserError):
                exp = None
            if exp is not None and self.state.load(exp, lesson=lesson):
                return True
        if isinstance(lesson, str) and lesson:
            try:
                return self.state.load(load_lesson(lesson), lesson=lesson)
            except UserError:
                return False
        return False

    def save_settings(self) -> None:
        """Remember the layout, recent files and the experiment (unless its changes
        were just discarded)."""
        st = self.settings
        if st is None:
            return
        s = self.state
        st.setValue("window/geometry", self.saveGeometry())
        st.setValue("window/docks", json.dumps(self.area.saveState()))
        kept = "" if s.modified else json.dumps(experiment_to_dict(s.experiment))
        st.setValue("experiment/last", kept)
        document = s.path is not None and file_kind(s.path) in ("archive", "experiment")
        st.setValue("experiment/path", str(s.path) if document else "")
        st.setValue("experiment/lesson", s.lesson or "")
        st.remove("experiment/modified")
        st.setValue("files/recent", json.dumps(self._recent))
        st.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            super().closeEvent(event)
            return
        if not self.confirm_discard():  # Save / Discard / Cancel
            event.ignore()
            return
        self._closed = True
        self.autosave_timer.stop()
        self.save_settings()
        if self.autosave is not None:
            self.autosave.clear()  # a clean exit: nothing to recover
        self.state.shutdown()
        super().closeEvent(event)


# ----------------------------------------------------------------------------- entry


def _needs_offscreen() -> bool:
    if os.environ.get("QT_QPA_PLATFORM"):
        return False
    return sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                     or os.environ.get("WAYLAND_DISPLAY"))


def _screenshot_when_ready(app: QApplication, window: MainWindow, path: str,
                           timeout_ms: int = 120_000) -> None:
    """Save the window to ``path`` after the first probe result has been drawn; quit."""
    state = window.state
    outcome: dict[str, Any] = {}

    def shoot() -> None:
        if outcome.get("done"):
            return
        outcome["done"] = True
        window.flush_redraws()
        app.processEvents()
        ok = window.grab().save(path)
        if not ok:
            outcome["error"] = f"{path}: could not write the screenshot"
        app.exit(0 if ok and "error" not in outcome else 1)

    def on_result(_result: Any) -> None:
        if state.probe_runner.is_busy:
            return  # a newer request is on its way; wait for the latest
        QTimer.singleShot(400, shoot)  # let every plot paint

    def on_error(message: str) -> None:
        if state.result is None and not state.probe_runner.is_busy:
            outcome["error"] = message
            QTimer.singleShot(400, shoot)

    def on_timeout() -> None:
        outcome["error"] = "no probe result arrived in time"
        shoot()

    state.result_changed.connect(on_result)
    state.error.connect(on_error)
    QTimer.singleShot(timeout_ms, on_timeout)
    window._screenshot_outcome = outcome  # type: ignore[attr-defined]


def larger_than_screen(window: QWidget) -> bool:
    """Whether ``window`` at its present size would not fit its screen's free area."""
    screen = window.screen()
    if screen is None:
        return False
    room = screen.availableGeometry()
    return window.width() > room.width() or window.height() > room.height()


def run_app(argv: list[str] | None = None, preset: str | None = None,
            screenshot: str | None = None, size: tuple[int, int] | None = None) -> int:
    """Launch the desktop app; return its exit status.

    preset: open this lesson instead of the last experiment.  screenshot: open,
    wait for the first probe to be drawn, save the window as a PNG there and exit
    (0, or 1 if no result came; an unknown preset is reported and returns 2).
    size: the window's size in pixels (a screenshot's default: SCREENSHOT_SIZE).
    """
    exp = None
    if preset is not None:
        try:
            exp = load_lesson(preset)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if screenshot and _needs_offscreen():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = QApplication.instance() or QApplication(list(argv) if argv else [sys.argv[0]])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Gradient Flow Lab")
    collector = collect_in_gui_thread(app)  # cycles of Qt objects die in the GUI thread
    # A screenshot is independent of (and leaves alone) the user's remembered layout,
    # files and autosave, and never asks anything.
    settings = None if screenshot else QSettings(ORGANISATION, APPLICATION)
    window = MainWindow(settings=settings, data_dir=None if screenshot else data_dir())
    if screenshot:
        window.confirm_discard = lambda: True
    if exp is not None:
        if window.state.load(exp, lesson=preset):
            window.show_lesson_views(exp, preset)  # as the Lessons menu does
    elif not window.restore_last_experiment():
        window.open_lesson(DEFAULT_LESSON)
    collector.freeze_startup()  # what lives as long as the app: out of every collection
    if screenshot:
        window.resize(*(size or SCREENSHOT_SIZE))
        _screenshot_when_ready(app, window, screenshot)
        window.show()
    elif size is not None:
        window.resize(*size)
        window.show()
    elif larger_than_screen(window):
        window.showMaximized()  # a laptop: the window takes the screen, docks compact
    else:
        window.show()
    if not screenshot:
        QTimer.singleShot(0, window.offer_recovery)
    status = app.exec()
    outcome = getattr(window, "_screenshot_outcome", {})
    if window.isVisible():
        window.close()
    # Destroy the window (and its threads' receivers) while QApplication still exists.
    window.deleteLater()
    del window
    app.sendPostedEvents(None, 0)
    app.processEvents()
    gc.collect()
    if outcome.get("error"):
        print(f"error: {outcome['error']}", file=sys.stderr)
        return 1
    return status
