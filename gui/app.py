"""The main window: docks for the builder, the controls, the lesson and every plot.

``run_app`` is the entry point of the desktop app and of ``--screenshot``.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.experiment import Experiment, experiment_from_dict, experiment_to_dict
from core.lessons import list_lessons, load_lesson

from .builder import BuilderPanel
from .controls import ControlPanel
from .lessons import LessonPanel
from .state import DIVERGED, FINISHED, PAUSED, RUNNING, LabState
from .worker import Throttle

ORGANISATION, APPLICATION = "GradientFlowLab", "gradlab"
DEFAULT_LESSON = "vanishing_tanh"
SCREENSHOT_SIZE = (1600, 1000)
BUSY_DELAY_MS = 250
# Where the plot panels go: columns of cells, a cell's panels share it as tabs.
PLOT_LAYOUT = (
    (("gradients",), ("hidden", "cell"), ("training",)),
    (("signals", "graph"), ("gates",), ("jacobian", "eigen", "connectivity")),
)  # show the progress bar only for work that takes a while

BANNER_STYLES = {
    "nonfinite": "background:#fff4ce; color:#5c4400; border:1px solid #e0b400;",
    "error": "background:#fde7e9; color:#6e0b14; border:1px solid #d13438;",
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


class MainWindow(QMainWindow):
    """Gradient Flow Lab's window.  ``settings=None`` remembers nothing between runs."""

    def __init__(self, state: LabState | None = None, settings: QSettings | None = None,
                 panels: Sequence[type] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from pyqtgraph.dockarea import Dock, DockArea

        self.state = state or LabState(parent=self)
        self.settings = settings
        self.confirm_discard = self._ask_discard  # replaceable (tests)
        self.setWindowTitle("Gradient Flow Lab")
        self.resize(1500, 950)

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
            from pyqtgraph.dockarea.Dock import DockLabel

            d = Dock(name, size=size, widget=widget, label=DockLabel(title))
            d.label.setToolTip(tip or title)
            self.docks[name] = d
            return d

        arch = dock("architecture", "Architecture", self.builder, (330, 560),
                    "Drag blocks from the palette onto the stack")
        lesson = dock("lesson", "Lesson", self.lesson_panel, (330, 380),
                      "What the open lesson shows and what to try")
        controls = dock("controls", "Controls", self.controls, (340, 900),
                        "Weight scales, initialisation, data, training and backend")
        self.area.addDock(arch, "left")
        plot_docks = [dock(f"plot.{p.name}", p.title, p,
                           (450, 420 if p.name == "gradients" else 300), p.tooltip)
                      for p in self.panels]
        self._arrange_plots(plot_docks, arch)
        self.area.addDock(lesson, "bottom", arch)
        self.area.addDock(controls, "right")
        self._default_layout = self.area.saveState()

        for p in self.panels:
            p.timestep_clicked.connect(self.mark_timestep)
        self._build_status_bar()
        self._build_actions()
        self._connect_state()
        self._restore_settings()
        self._update_title()
        self._on_training_state(self.state.training_state)
        if self.state.result is None:
            self.state.request_probe()

    # ------------------------------------------------------------------ layout

    def _arrange_plots(self, docks: list[Any], left: Any) -> None:
        """Plots in a grid of :data:`PLOT_LAYOUT` cells right of ``left``; a cell holding
        several plots shows them as tabs.  Unknown panels join the last cell."""
        if not docks:
            return
        by_name = {d.name().removeprefix("plot."): d for d in docks}
        columns = [[[by_name.pop(n) for n in cell if n in by_name] for cell in column]
                   for column in PLOT_LAYOUT]
        columns = [[cell for cell in column if cell] for column in columns]
        columns = [column for column in columns if column]
        if not columns:
            columns = [[[]]]
        columns[-1][-1].extend(by_name.values())
        anchor = left
        for column in columns:  # the top row first, so each column is its own splitter
            self.area.addDock(column[0][0], "right", anchor)
            anchor = column[0][0]
        for column in columns:
            above = None
            for cell in column:
                first = cell[0]
                if above is not None:
                    self.area.addDock(first, "bottom", above)
                for other in cell[1:]:
                    self.area.addDock(other, "below", first)
                raise_dock(first)
                above = first

    def reset_layout(self) -> None:
        """Put every dock back where it starts."""
        for d in self.docks.values():
            if d.area is not self.area:
                self.area.moveDock(d, "bottom", None)
        self.area.restoreState(self._default_layout, missing="ignore")

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
        self.probe_label = QLabel("probe: –")
        self.probe_label.setToolTip("Time of the last forward + backward pass and its analysis")
        self.backend_label = QLabel()
        self.backend_label.setToolTip("Array backend and precision of the maths")
        for w in (self.training_label, self.progress, self.probe_label, self.backend_label):
            bar.addPermanentWidget(w)
        self._busy_timer = QTimer(self)
        self._busy_timer.setSingleShot(True)
        self._busy_timer.timeout.connect(self._show_busy)

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self._busy_timer.start(BUSY_DELAY_MS)
        else:
            self._busy_timer.stop()
            if self.state.training_state != RUNNING:
                self.progress.hide()

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
        self.undo_action = s.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = s.undo_stack.createRedoAction(self, "Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"),
                                       QKeySequence(QKeySequence.StandardKey.Redo)])
        for a in (self.undo_action, self.redo_action):
            self.addAction(a)
        self.train_action = self._action("▶ Train", s.toggle_training, Qt.Key.Key_Space,
                                         "Train the network / pause (Space)")
        self.step_action = self._action("Step", s.step, "Ctrl+T", "One training step")
        self.reset_action = self._action("Reset", s.reset, "Ctrl+R",
                                         "Stop training and re-draw the weights from the seed")

        menu = self.menuBar().addMenu("&File")
        menu.addAction(self._action("&New", self.new_experiment, QKeySequence.StandardKey.New))
        menu.addAction(self._action("&Open…", self.open_dialog, QKeySequence.StandardKey.Open))
        menu.addAction(self._action("&Save", self.save, QKeySequence.StandardKey.Save))
        menu.addAction(self._action("Save &As…", self.save_as, "Ctrl+Shift+S"))
        menu.addSeparator()
        menu.addAction(self._action("&Export all…", self.export_all, "Ctrl+E",
                                    "Write every plot as PNG, SVG and CSV into a folder"))
        menu.addSeparator()
        menu.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))

        menu = self.menuBar().addMenu("&Edit")
        menu.addAction(self.undo_action)
        menu.addAction(self.redo_action)

        menu = self.menuBar().addMenu("&Training")
        for a in (self.train_action, self.step_action, self.reset_action):
            menu.addAction(a)

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
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for a in (self.train_action, self.step_action, self.reset_action):
            bar.addAction(a)
        bar.addSeparator()
        bar.addAction(self.undo_action)
        bar.addAction(self.redo_action)
        self.addToolBar(bar)

    # ------------------------------------------------------------------ state → window

    def _connect_state(self) -> None:
        s = self.state
        self._result_throttle = Throttle(self._on_result, parent=self)
        self._history_throttle = Throttle(self._on_history, parent=self)
        s.result_changed.connect(self._result_throttle.push)
        s.history_changed.connect(self._history_throttle.push)
        s.error.connect(self._on_error)
        s.nonfinite.connect(self._on_nonfinite)
        s.busy.connect(self._on_busy)
        s.training_state_changed.connect(self._on_training_state)
        s.training_progress.connect(self._on_progress)
        s.experiment_changed.connect(self._on_experiment)
        s.file_changed.connect(self._update_title)
        s.params_reset.connect(lambda: self.statusBar().showMessage(
            f"Weights drawn afresh from seed {s.experiment.init.seed}", 3000))
        self._on_experiment(s.experiment)

    def _on_result(self, result: Any) -> None:
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

    def _on_history(self, history: dict) -> None:
        for p in self.panels:
            p.set_history(history)
        steps = history.get("step")
        if steps is not None and len(steps):
            loss = history["loss"][-1]
            self.training_label.setText(f"step {int(steps[-1])} · loss {loss:.4g}")
        else:
            self.training_label.setText("")

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
        self.train_action.setText("⏸ Pause" if running else "▶ Train")
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
        self._update_title()

    def _update_title(self) -> None:
        s = self.state
        name = s.experiment.title or (s.path.name if s.path else "untitled")
        self.setWindowTitle(f"{name}[*] — Gradient Flow Lab")
        self.setWindowModified(s.modified)

    # ------------------------------------------------------------------ files and lessons

    def _ask_discard(self) -> bool:
        if not self.state.modified:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", "The experiment has unsaved changes. Save them first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def new_experiment(self) -> None:
        if self.confirm_discard():
            self.state.load(Experiment())

    def open_dialog(self) -> None:
        if not self.confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open experiment", self._folder(),
                                              "Experiments (*.json);;All files (*)")
        if path:
            self.state.open_file(path)

    def save(self) -> bool:
        if self.state.path is None:
            return self.save_as()
        return self.state.save()

    def save_as(self) -> bool:
        suggestion = str(Path(self._folder()) / f"{self.state.lesson or 'experiment'}.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save experiment", suggestion,
                                              "Experiments (*.json)")
        if not path:
            return False
        if not path.endswith(".json"):
            path += ".json"
        return self.state.save(path)

    def _folder(self) -> str:
        return str(self.state.path.parent) if self.state.path else str(Path.home())

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
            raise_dock(self.docks["lesson"])
            self.show_mentioned_panels(exp.description)
        return ok

    def show_mentioned_panels(self, text: str) -> None:
        """Bring to the front every plot whose quoted title ``text`` mentions (the first
        mention wins where two share a place)."""
        mentioned = [(text.find(f'"{p.title}"'), p) for p in self.panels]
        for _pos, p in sorted((m for m in mentioned if m[0] >= 0), key=lambda m: -m[0]):
            raise_dock(self.docks[f"plot.{p.name}"])

    def export_all(self) -> None:
        """Export every plot (PNG, SVG, CSV) into a chosen folder (see gui.export)."""
        try:
            from .export import export_panels
        except ImportError:
            self._on_error("exporting from the app is not available in this build; "
                           "use `gradlab export` on the command line")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export every plot into", self._folder())
        if not folder:
            return
        self.flush_redraws()
        try:
            written = export_panels(self.panels, folder)
        except (OSError, UserError, ValueError) as exc:
            self._on_error(f"export failed: {exc}")
            return
        count = len(written) if hasattr(written, "__len__") else 0
        self.statusBar().showMessage(f"Exported {count} files to {folder}", 8000)

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

    def restore_last_experiment(self) -> bool:
        """Reopen the experiment of the previous run, if one was remembered."""
        st = self.settings
        if st is None:
            return False
        text = st.value("experiment/last")
        if not isinstance(text, str) or not text:
            return False
        try:
            exp = experiment_from_dict(json.loads(text))
        except (ValueError, UserError):
            return False
        path = st.value("experiment/path") or None
        lesson = st.value("experiment/lesson") or None
        if not self.state.load(exp, path=path, lesson=lesson):
            return False
        if st.value("experiment/modified") in (True, "true"):
            self.state._set_modified(True)
        return True

    def save_settings(self) -> None:
        st = self.settings
        if st is None:
            return
        st.setValue("window/geometry", self.saveGeometry())
        st.setValue("window/docks", json.dumps(self.area.saveState()))
        st.setValue("experiment/last", json.dumps(experiment_to_dict(self.state.experiment)))
        st.setValue("experiment/path", str(self.state.path) if self.state.path else "")
        st.setValue("experiment/lesson", self.state.lesson or "")
        st.setValue("experiment/modified", self.state.modified)
        st.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()  # the experiment is remembered, so closing loses nothing
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


def run_app(argv: list[str] | None = None, preset: str | None = None,
            screenshot: str | None = None) -> int:
    """Launch the desktop app; return its exit status.

    preset: open this lesson instead of the last experiment.  screenshot: open,
    wait for the first probe to be drawn, save the window as a PNG there and exit
    (0, or 1 if no result came; an unknown preset is reported and returns 2).
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
    # A screenshot is independent of (and leaves alone) the user's remembered layout.
    settings = None if screenshot else QSettings(ORGANISATION, APPLICATION)
    window = MainWindow(settings=settings)
    if exp is not None:
        window.state.load(exp, lesson=preset)
    elif not window.restore_last_experiment():
        window.open_lesson(DEFAULT_LESSON)
    if screenshot:
        window.resize(*SCREENSHOT_SIZE)
        _screenshot_when_ready(app, window, screenshot)
    window.show()
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
