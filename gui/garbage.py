"""Python's cyclic garbage, collected in the GUI thread only.

CPython collects reference cycles in whichever thread's allocation crosses a
threshold.  The training and probe threads allocate the most, so it is mostly one of
them; a Qt object caught in a cycle (a closed dialog, a rebuilt layer card and the
lambdas connected to it) is then deleted outside the thread it lives in.  Its timers
stay registered with the GUI thread's event loop, which later delivers one of them
to freed memory and crashes.  While a :class:`GuiThreadCollector` runs, automatic
collection is off and a timer in the GUI thread collects instead.

What the app makes at startup (modules, classes, the window and its plots: some
170 000 objects) lives as long as the app.  Once the window is built,
:meth:`GuiThreadCollector.freeze_startup` collects once and exempts the survivors from
every later collection; otherwise each full collection walked them all again
(140-230 ms here), a stall in the middle of training.
"""

from __future__ import annotations

import gc
import time

from PySide6.QtCore import QObject, QTimer

FULL_EVERY_S = 60.0  # a full collection takes tens of milliseconds: at most this often


class GuiThreadCollector(QObject):
    """Collects as CPython's thresholds would, but from a timer of the GUI thread.

    Every ``interval_ms`` it collects the oldest generation whose count is over its
    threshold (the youngest first crossing it, as CPython does); the oldest
    generation, a full collection, at most every :data:`FULL_EVERY_S`.  :meth:`stop`
    hands collection back to Python.
    """

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        self._froze = False
        self._last_full = time.monotonic()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.collect)
        self._timer.start(interval_ms)

    def collect(self) -> int:
        """Collect what is due now; returns the number of unreachable objects found."""
        counts, limits = gc.get_count(), self._thresholds
        if counts[0] <= limits[0]:
            return 0
        full_due = time.monotonic() - self._last_full >= FULL_EVERY_S
        generation = next(g for g in (2, 1, 0) if g == 0 or (
            counts[g] > limits[g] and (g < 2 or full_due)))
        if generation == 2:
            self._last_full = time.monotonic()
        return gc.collect(generation)

    def freeze_startup(self) -> int:
        """Collect everything now and leave what survives out of every later
        collection (:func:`gc.freeze`); call once, when the window is built.  Returns
        the number of unreachable objects found.

        What of it dies later in a cycle (a layer card of the first model, rebuilt)
        is not freed: at most part of what startup made, never more as the app runs."""
        found = gc.collect()
        gc.freeze()
        self._froze = True
        return found

    def stop(self) -> None:
        """Stop collecting here; Python collects on its own again if it did before
        (what :meth:`freeze_startup` set aside is collected again too)."""
        self._timer.stop()
        if self._froze:
            gc.unfreeze()
            self._froze = False
        if self._was_enabled:
            gc.enable()


def collect_in_gui_thread(app: QObject) -> GuiThreadCollector:
    """The application's collector, started now if it has none (one per application)."""
    return app.findChild(GuiThreadCollector) or GuiThreadCollector(app)
