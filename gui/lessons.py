"""The lesson panel: the open lesson's title and explanation (its ``description``)."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from core.experiment import Experiment
from core.lessons import list_lessons, load_lesson

from .state import LabState

__all__ = ["LessonPanel", "list_lessons", "load_lesson"]

EMPTY = ("**No lesson open.** Pick one from the *Lessons* menu: each sets up a network "
         "and explains what to look at and which knob to turn.")


class LessonPanel(QWidget):
    """Shows the current experiment's title and description as light markdown."""

    def __init__(self, state: LabState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setToolTip("What this lesson shows, and what to try")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.browser)
        state.experiment_changed.connect(self.show_experiment)
        self.show_experiment(state.experiment)

    def show_experiment(self, exp: Experiment) -> None:
        text = exp.description.strip()
        if not text and not exp.title:
            self.browser.setMarkdown(EMPTY)
            return
        title = exp.title or "Experiment"
        self.browser.setMarkdown(f"### {html.escape(title)}\n\n{text}")

    def text(self) -> str:
        return self.browser.toPlainText()
