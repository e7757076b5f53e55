"""Reference cycles are collected in the GUI thread, never in a worker thread."""

from __future__ import annotations

import gc
import threading

from gui import garbage
from gui.garbage import GuiThreadCollector, collect_in_gui_thread


def test_a_cycle_dropped_while_a_worker_allocates_dies_in_the_gui_thread(
        qtbot, qapp, collect_in_the_gui_thread):
    assert not gc.isenabled()  # the session's collector (conftest) runs
    assert collect_in_gui_thread(qapp) is collect_in_the_gui_thread  # one per application
    died: list[str] = []

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

        def __del__(self) -> None:
            died.append(threading.current_thread().name)

    Node()
    kept: list[list] = []

    def allocate() -> None:  # would cross the collector's thresholds many times over
        kept.extend([] for _ in range(50_000))

    worker = threading.Thread(target=allocate, name="worker")
    worker.start()
    worker.join()
    assert died == []
    qtbot.waitUntil(lambda: bool(died), timeout=5000)
    assert died == [threading.main_thread().name]


def test_the_collector_collects_the_oldest_generation_due_and_rarely_all(qtbot, monkeypatch):
    collector = GuiThreadCollector(interval_ms=60_000)  # collected by hand here
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: collected.append(generation) or 0)
    counts = {"now": (10, 0, 0)}
    monkeypatch.setattr(gc, "get_count", lambda: counts["now"])
    limit0, limit1, limit2 = collector._thresholds
    for now, expected in [((limit0, 5, 5), []),  # nothing allocated past the threshold
                          ((limit0 + 1, 0, 0), [0]),
                          ((limit0 + 1, limit1 + 1, 0), [1]),
                          ((limit0 + 1, limit1 + 1, limit2 + 1), [1])]:  # a full one is not due
        counts["now"] = now
        collected.clear()
        collector.collect()
        assert collected == expected, now
    monkeypatch.setattr(collector, "_last_full", -garbage.FULL_EVERY_S)
    collected.clear()
    collector.collect()
    assert collected == [2]
    collected.clear()
    collector.collect()  # just done: not again
    assert collected == [1]
    collector.stop()
    assert not gc.isenabled()  # the session's collector still runs


def test_what_survives_startup_is_left_out_of_later_collections(qtbot):
    died: list[str] = []

    class Node:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            died.append("dead")

    class Kept:
        pass

    Node()
    kept = Kept()
    kept.me = kept  # alive, in a cycle: a full collection would walk it every time
    collector = GuiThreadCollector(interval_ms=60_000)
    try:
        assert collector.freeze_startup() >= 1
        assert died == ["dead"]  # startup's garbage is collected, not set aside
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # out of every generation
    finally:
        collector.stop()
    assert gc.get_freeze_count() == 0  # handed back with the rest
    assert any(o is kept for o in gc.get_objects())
    assert not gc.isenabled()  # the session's collector still runs
