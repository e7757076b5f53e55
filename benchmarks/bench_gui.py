"""GUI responsiveness: slider-to-redraw latency, and event-loop stalls while training.

Opens the real main window on the default lesson, then

(a) moves the recurrent-scale slider N times through the slider widget (as a drag
    does) and times each change until every plot panel has been given the complete
    probe result of the new weights (a panel behind a dock tab draws it when shown;
    when the Jacobian products are slow, the pass comes first, as an early result)
    and the window has finished painting it; the table splits the time into stages
    and gives the CPU time each change took (all threads, and the GUI thread's),
    which a busy machine disturbs less than the wall-clock time;
(b) presses Train and, for a while, records the gaps between the ticks of a 5 ms
    timer: the longest gap is the longest time the window could not react.  The
    worst gaps are shown with the GUI thread's CPU time in them and the plot redraws.

The targets are a 95th percentile latency of at most 50 ms and no stall over 100 ms.
The report also says how fast the machine was (a fixed workload timed before and after,
``conditions.reference_ms``) and how much CPU other processes took, the X server's
included: the same code's figures follow the machine's speed.
Runs headless (``QT_QPA_PLATFORM=offscreen`` is set when there is no display).

    python benchmarks/bench_gui.py [--changes 40] [--train-s 10] [--profile]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import pstats
import statistics
import sys
import time
from collections import defaultdict
from cProfile import Profile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from conditions import LoadMeter, reference_ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_P95_MS = 50.0
TARGET_STALL_MS = 100.0
TICK_MS = 5
QUIET_S = 0.06  # no paint for this long after a redraw: the window shows the result


def print_profile(profiler: Profile, what: str, lines: int = 30) -> None:
    """The GUI thread's functions by cumulative time (the worker threads are not in it)."""
    print(f"GUI thread profile, {what}:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(lines)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


class Watcher:
    """Watches a MainWindow: when each panel drew which result, and when the window painted.

    Wraps every panel's ``show_result``/``set_history`` (to time them and remember the
    result drawn) and filters paint events of every panel's graphics view.  Qt paints
    all dirty widgets of a window in one pass; a zero timer started at the pass's
    first paint event fires when the pass is over, which is when the paint is done.
    """

    def __init__(self, window: Any) -> None:
        from PySide6.QtCore import QEvent, QObject, QTimer

        self.window = window
        self.shown: dict[Any, tuple[Any, float]] = {}
        self.paints: list[float] = []  # end of each paint pass that touched a plot
        self.cpu: dict[float, tuple[float, float]] = {}  # pass end: (process, GUI thread) CPU
        self.costs: dict[str, list[float]] = defaultdict(list)  # per-panel redraw seconds
        self.spans: list[tuple[float, float, str]] = []  # (start, end, what) on the GUI thread
        self._in_pass = False
        watch = self

        class PaintFilter(QObject):
            def eventFilter(self, obj: Any, event: Any) -> bool:
                if event.type() == QEvent.Type.Paint and not watch._in_pass:
                    watch._in_pass = True
                    QTimer.singleShot(0, watch._pass_done)
                return False

        self._filter = PaintFilter()
        for panel in window.panels:
            self._wrap(panel, "show_result", True)
            self._wrap(panel, "set_history", False)
            panel.glw.viewport().installEventFilter(self._filter)

    def _wrap(self, panel: Any, method: str, remember: bool) -> None:
        original = getattr(panel, method)

        def wrapped(value: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(value)
            finally:
                t1 = time.perf_counter()
                self.costs[f"{panel.name}.{method}"].append(t1 - t0)
                self.spans.append((t0, t1, f"{panel.name}.{method}"))
                if remember:
                    self.shown[panel] = (value, t1)

        setattr(panel, method, wrapped)

    def _pass_done(self) -> None:
        self._in_pass = False
        now = time.perf_counter()
        self.paints.append(now)
        self.cpu[now] = (time.process_time(), time.thread_time())

    def drawn(self, result: Any) -> float | None:
        """When the last panel drew ``result``; None while one has not."""
        times = []
        for panel in self.window.panels:
            shown = self.shown.get(panel)
            if shown is None or shown[0] is not result:
                return None
            times.append(shown[1])
        return max(times)

    def settled(self, result: Any, quiet_s: float = QUIET_S) -> float | None:
        """When the window finished painting ``result``: the end of the last paint pass
        after every panel drew it, once nothing has painted for ``quiet_s``; else None."""
        drawn = self.drawn(result)
        now = time.perf_counter()
        if drawn is None or self._in_pass:
            return None
        after = [t for t in self.paints if t > drawn]
        end = after[-1] if after else drawn
        return end if now - end >= quiet_s else None


def run_until(app: Any, done: Any, timeout_s: float) -> bool:
    """Run the event loop until ``done()`` is true (checked every 2 ms)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.perf_counter() + timeout_s

    def check() -> None:
        if done() or time.perf_counter() > deadline:
            loop.quit()

    timer = QTimer()
    timer.setInterval(2)
    timer.timeout.connect(check)
    timer.start()
    QTimer.singleShot(0, check)
    loop.exec()
    timer.stop()
    return bool(done())


def idle(app: Any, seconds: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(0, round(1000 * seconds)), loop.quit)
    loop.exec()


def slider_latency(app: Any, window: Any, watch: Watcher, changes: int, gap_s: float) -> dict:
    """Move the recurrent-scale slider ``changes`` times; per change, the stage times (s)."""
    from gui.controls import scale_to_slider

    state = window.state
    control = window.controls.scales["recurrent"]
    published: list[tuple[Any, float]] = []
    state.result_changed.connect(lambda r: published.append((r, time.perf_counter())))
    start = scale_to_slider(0.6)
    stop = scale_to_slider(1.8)
    positions = np.round(np.linspace(start, stop, 12)).astype(int)
    sweep = [*positions, *positions[-2:0:-1]]
    stages: dict[str, list[float]] = defaultdict(list)
    failures = 0
    for i in range(changes):
        pos = int(sweep[i % len(sweep)])
        if pos == control.slider.value():
            pos += 1
        published.clear()
        cpu0 = (time.process_time(), time.thread_time())
        t0 = time.perf_counter()
        control.slider.setValue(pos)  # emits valueChanged, exactly as a drag does
        t_edit = time.perf_counter()
        target = state.experiment.init.scales.recurrent

        def latest(target: float = target) -> Any:
            """The complete result of the new weights (an early one lacks analyses)."""
            for result, _t in reversed(published):
                if (result.experiment.init.scales.recurrent == target
                        and not getattr(result, "pending", ())):
                    return result
            return None

        def done() -> bool:
            r = latest()
            return r is not None and watch.settled(r) is not None

        if not run_until(app, done, timeout_s=20.0):
            failures += 1
            continue
        result = latest()
        t_pub = next(t for r, t in published if r is result)
        t_first = next(t for r, t in published if r.arrays is result.arrays)  # early or not
        t_drawn = watch.drawn(result)
        t_end = watch.settled(result)
        stages["total"].append(t_end - t0)
        stages["edit (GUI thread)"].append(t_edit - t0)
        stages["probe (worker) + queue"].append(t_first - t_edit)
        stages["then its analyses"].append(t_pub - t_first)
        stages["probe elapsed_s"].append(float(getattr(result, "elapsed_s", 0.0) or 0.0))
        stages["throttle + redraw"].append(t_drawn - t_pub)
        stages["paint"].append(t_end - t_drawn)
        if t_end in watch.cpu:  # the CPU time the change took, all threads and the GUI's
            stages["CPU, all threads"].append(watch.cpu[t_end][0] - cpu0[0])
            stages["CPU, GUI thread"].append(watch.cpu[t_end][1] - cpu0[1])
        idle(app, gap_s)
    stages["failures"] = [failures]
    return stages


def training_stalls(app: Any, window: Any, watch: Watcher, seconds: float) -> dict:
    """Press Train for ``seconds``; the gaps (s) between 5 ms timer ticks and what ran."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    from gui.state import FINISHED

    state = window.state
    gaps: list[tuple[float, float, float]] = []  # (gap, tick time, GUI-thread CPU in the gap)
    last = [time.perf_counter(), time.thread_time()]

    def tick() -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        gaps.append((now - last[0], now, cpu - last[1]))
        last[:] = [now, cpu]

    def restart(value: str) -> None:
        if value == FINISHED:  # a short run ended: keep training for the whole window
            QTimer.singleShot(0, window.train_action.trigger)

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    state.training_state_changed.connect(restart)
    watch.spans.clear()
    steps_before = len(state.history["step"])
    last[:] = [time.perf_counter(), time.thread_time()]
    t_start = last[0]
    timer.start()
    window.train_action.trigger()  # the Train button
    loop = QEventLoop()
    QTimer.singleShot(round(1000 * seconds), loop.quit)
    loop.exec()
    state.training_state_changed.disconnect(restart)
    window.train_action.trigger()  # Pause
    timer.stop()
    steps = len(state.history["step"]) - steps_before
    spans = list(watch.spans)
    worst = sorted(gaps, reverse=True)[:5]
    attribution = []
    for gap, end, cpu in worst:
        begin = end - gap
        inside = defaultdict(float)
        for s0, s1, what in spans:
            overlap = min(s1, end) - max(s0, begin)
            if overlap > 0:
                inside[what.split(".")[1]] += overlap
        attribution.append((gap, cpu, dict(inside), begin - t_start))
    return {"gaps": [g for g, _t, _c in gaps], "steps": steps, "worst": attribution,
            "spans": spans, "seconds": seconds,
            "cpu_share": sum(c for _g, _t, c in gaps) / max(sum(g for g, _t, _c in gaps), 1e-9)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lesson", default=None, help="lesson to open (default: the app's default)")
    ap.add_argument("--changes", type=int, default=40, help="slider changes to time (>= 30)")
    ap.add_argument("--gap-ms", type=float, default=250.0,
                    help="idle time between slider changes (a user's pause)")
    ap.add_argument("--train-s", type=float, default=10.0, help="seconds of training")
    ap.add_argument("--size", default="1500x950", help="window size, WxH")
    ap.add_argument("--switch-interval-ms", type=float, default=None,
                    help="set Python's thread switch interval (default 5 ms) to see how much "
                         "of a stall is the GUI thread waiting for the GIL")
    ap.add_argument("--throttle-ms", type=float, default=None,
                    help="what-if: the least time between two redraws of the window's result "
                         "and history throttles (the app's own setting otherwise)")
    ap.add_argument("--profile", action="store_true",
                    help="profile the GUI thread (cProfile) and print where its time went")
    args = ap.parse_args(argv)
    speed_before = reference_ms()  # how fast the machine is now (its speed drifts)

    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6 import __version__ as pyside_version
    from PySide6.QtWidgets import QApplication

    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from gui.garbage import collect_in_gui_thread

    collector = collect_in_gui_thread(app)  # as the app does
    import pyqtgraph as pg

    from core.lessons import list_lessons
    from gui.app import DEFAULT_LESSON, MainWindow

    lessons = [name for name, _title in list_lessons()]
    lesson = args.lesson or (DEFAULT_LESSON if DEFAULT_LESSON in lessons else lessons[0])
    window = MainWindow(settings=None)
    window.confirm_discard = lambda: True
    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    if not window.open_lesson(lesson):
        print(f"error: cannot open lesson {lesson}", file=sys.stderr)
        return 1
    collector.freeze_startup()  # as the app does
    if args.throttle_ms is not None:
        for name in ("_result_throttle", "_history_throttle"):
            throttle = getattr(window, name, None)
            if throttle is None or not hasattr(throttle, "_min_s"):
                print(f"error: the window has no {name} to set", file=sys.stderr)
                return 1
            throttle._min_s = args.throttle_ms / 1000.0
    watch = Watcher(window)
    if not run_until(app, lambda: window.state.result is not None
                     and watch.settled(window.state.result) is not None, 60.0):
        print("error: the first probe result was never drawn", file=sys.stderr)
        return 1
    idle(app, 0.5)

    meter = LoadMeter()
    marks = [meter.mark()]
    profiler = Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    stages = slider_latency(app, window, watch, args.changes, args.gap_ms / 1000.0)
    if profiler is not None:
        profiler.disable()
        print_profile(profiler, "slider changes")
        profiler = Profile()
        profiler.enable()
    marks.append(meter.mark())
    redraw_costs = {k: list(v) for k, v in watch.costs.items() if k.endswith("show_result")}
    stalls = training_stalls(app, window, watch, args.train_s)
    marks.append(meter.mark())
    if profiler is not None:
        profiler.disable()
        print_profile(profiler, "training")

    # ------------------------------------------------------------------ report
    ms = 1000.0
    total = stages["total"]
    gaps = stalls["gaps"]
    exp = window.state.experiment
    layer = exp.model.layers[0]
    print(f"GUI responsiveness · {date.today().isoformat()} · {platform.platform()} · "
          f"{os.cpu_count()} CPUs · Python {platform.python_version()} · "
          f"PySide6 {pyside_version} · pyqtgraph {pg.__version__} · "
          f"Qt platform {app.platformName()} · switch interval "
          f"{1000 * sys.getswitchinterval():g} ms"
          + (f" · redraws at most every {args.throttle_ms:g} ms" if args.throttle_ms else ""))
    others = [meter.other(a, b) for a, b in itertools.pairwise(marks)]
    print(f"machine: a fixed workload (conditions.reference_ms) took {speed_before:.1f} ms "
          f"before and {reference_ms():.1f} ms after (lower is faster); other processes "
          "kept " + " and ".join("?" if o is None else f"{o:.2f}" for o in others)
          + " cores busy during (a) and (b)")
    print(f"lesson {lesson}: {layer.cell} H={layer.hidden_size}, T={exp.task.seq_len}, "
          f"B={exp.task.batch_size} · window {width}x{height} · backend "
          f"{window.state.backend_label}")
    print()
    print(f"(a) recurrent-scale slider → every plot redrawn and painted "
          f"({len(total)} changes, {args.gap_ms:.0f} ms apart"
          + (f", {stages['failures'][0]} timed out" if stages["failures"][0] else "") + ")")
    print(f"    {'stage':<26} {'median ms':>10} {'p95 ms':>9} {'max ms':>9}")
    for name in ("total", "edit (GUI thread)", "probe (worker) + queue", "then its analyses",
                 "probe elapsed_s", "throttle + redraw", "paint", "CPU, all threads",
                 "CPU, GUI thread"):
        v = stages[name]
        if not v:
            continue
        print(f"    {name:<26} {ms * statistics.median(v):10.1f} {ms * percentile(v, 95):9.1f} "
              f"{ms * max(v):9.1f}")
    print("    per-panel show_result, median ms: " + ", ".join(
        f"{k.split('.')[0]} {ms * statistics.median(v):.1f}"
        for k, v in sorted(redraw_costs.items(), key=lambda kv: -statistics.median(kv[1]))))
    print()
    print(f"(b) training for {stalls['seconds']:.0f} s ({stalls['steps']} steps): gaps between "
          f"{TICK_MS} ms timer ticks ({len(gaps)} ticks)")
    print(f"    median {ms * statistics.median(gaps):.1f} ms · p99 {ms * percentile(gaps, 99):.1f} ms"
          f" · max {ms * max(gaps):.1f} ms")
    redraw = defaultdict(list)
    for s0, s1, what in stalls["spans"]:
        redraw[what.split(".")[1]].append(s1 - s0)
    for what, v in redraw.items():
        print(f"    {what} calls: {len(v)}, total {ms * sum(v):.0f} ms, "
              f"longest single panel {ms * max(v):.1f} ms")
    print(f"    GUI thread busy (CPU) {100 * stalls['cpu_share']:.0f}% of the time")
    print("    longest gaps, with when they began after Train was pressed: GUI-thread CPU")
    print("    time in them, and plot redraws (show_result,")
    print("    set_history) in them; the rest of a gap is painting and other handlers, or")
    print("    waiting for the GIL while the training thread holds it")
    for gap, cpu, inside, at in stalls["worst"]:
        parts = ", ".join(f"{k} {ms * v:.1f} ms" for k, v in inside.items()) or "no redraw"
        print(f"      {ms * gap:7.1f} ms at {at:5.2f} s: CPU {ms * cpu:5.1f} ms; {parts}")
    print()
    p95, stall = ms * percentile(total, 95), ms * max(gaps)
    print(f"{'metric':<34} {'value':>9} {'target':>9}  ok")
    print(f"{'slider → redraw median (ms)':<34} {ms * statistics.median(total):9.1f} {'':>9}")
    print(f"{'slider → redraw p95 (ms)':<34} {p95:9.1f} {TARGET_P95_MS:9.0f}  "
          f"{'yes' if p95 <= TARGET_P95_MS else 'NO'}")
    print(f"{'training: p99 tick gap (ms)':<34} {ms * percentile(gaps, 99):9.1f} {'':>9}")
    print(f"{'training: longest stall (ms)':<34} {stall:9.1f} {TARGET_STALL_MS:9.0f}  "
          f"{'yes' if stall <= TARGET_STALL_MS else 'NO'}")

    window.close()
    window.deleteLater()
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
