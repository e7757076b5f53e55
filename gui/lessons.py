"""The lesson panel: the open lesson's title and explanation (its ``description``)."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QPushButton, QTextBrowser, QVBoxLayout, QWidget

from core.errors import ConfigError
from core.experiment import Experiment
from core.lessons import lesson_pair, list_lessons, load_lesson

from .state import LabState

__all__ = ["LessonPanel", "list_lessons", "load_lesson"]

EMPTY = ("**No lesson open.** Pick one from the *Lessons* menu: each sets up a network "
         "and explains what to look at and which knob to turn.")


class LessonPanel(QWidget):
    """Shows the current experiment's title and description as light markdown, and the
    lesson's one-click "Compare" step (:func:`core.lessons.lesson_pair`) as a button."""

    def __init__(self, state: LabState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setToolTip("What this lesson shows, and what to try")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.browser)
        self.state = state
        self.pair = None
        self._pair_of: object = ()  # the lesson whose Compare step is shown (read once)
        self._markdown: str | None = None  # the text shown
        self.compare_button = QPushButton()
        self.compare_button.setToolTip("Run the lesson's other setting (same seed and data), "
                                       "pin it as A, and keep this lesson's setting live")
        self.compare_button.clicked.connect(self._compare)
        self.compare_button.hide()
        layout.addWidget(self.compare_button)
        state.experiment_changed.connect(self.show_experiment)
        self.show_experiment(state.experiment)

    def _compare(self) -> None:
        if self.pair is not None:
            self.state.compare_pair(self.pair)

    def _show_pair(self) -> None:
        """The lesson's Compare button; its file is read when the lesson changes, not on
        every edit."""
        name = getattr(self.state, "lesson", None)
        if name == self._pair_of:
            return
        self._pair_of = name
        try:
            self.pair = lesson_pair(name) if name else None
        except ConfigError:
            self.pair = None
        if self.pair is not None:
            self.compare_button.setText(self.pair.title)
        self.compare_button.setVisible(self.pair is not None)

    def show_experiment(self, exp: Experiment) -> None:
        self._show_pair()
        text = exp.description.strip()
        if not text and not exp.title:
            markdown = EMPTY
        else:
            markdown = f"### {html.escape(exp.title or 'Experiment')}\n\n{text}"
        # Laid out again only when it changed (not on every knob nudge), which also
        # keeps the reader's scroll position.
        if markdown != self._markdown:
            self._markdown = markdown
            self.browser.setMarkdown(markdown)

    def text(self) -> str:
        return self.browser.toPlainText()
