"""Compare speed: ``core.compare.compare`` of 2 variants × 5 seeds at lesson sizes.

Target: under 1 s for one comparison (10 runs of a Lab: initial draw, probe without
the Jacobian products and the connectivity map).  Each lesson is compared once to
warm up (imports, compiled steps, workspaces), then timed ``--repeats`` times; the
median, fastest and slowest are reported, with the machine's load average before
and after.  ``--cli`` also times the whole command in a fresh process
(``gradlab compare … --out DIR``: start-up, Qt and the figure included).

    python benchmarks/bench_compare.py [--repeats 7] [--seeds 5] [--cli]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.compare import compare
from core.lessons import load_lesson

ROOT = Path(__file__).resolve().parents[1]

TARGET_S = 1.0
# lesson, the path varied and its two values
CASES = (
    ("forget_gate", "init.forget_bias", ["0", "2"]),
    ("vanishing_tanh", "init.scales.recurrent", ["1", "2"]),
    ("exploding_clipping", "training.clip.mode", ["none", "norm"]),
)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def time_core(lesson: str, path: str, values: list[str], seeds: int, repeats: int) -> list[float]:
    exp = load_lesson(lesson)
    compare(exp, [(path, values)], seeds=seeds)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compare(exp, [(path, values)], seeds=seeds)
        times.append(time.perf_counter() - t0)
    return times


def time_cli(lesson: str, path: str, values: list[str], seeds: int, repeats: int) -> list[float]:
    times = []
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            argv = [sys.executable, str(ROOT / "main.py"), "compare", "--preset", lesson,
                    "--vary", f"{path}={','.join(values)}", "--seeds", str(seeds),
                    "--out", str(Path(tmp) / str(i))]
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - t0)
    return times


def report(name: str, times: list[float], target: float | None) -> None:
    med = statistics.median(times)
    verdict = "" if target is None else ("  ok" if med < target else f"  OVER {target:g} s")
    print(f"{name:<44} median {med * 1000:7.0f} ms  (min {min(times) * 1000:.0f}, "
          f"max {max(times) * 1000:.0f}, n={len(times)}){verdict}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed comparisons per lesson")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per variant (default: 5)")
    ap.add_argument("--cli", action="store_true", help="also time the whole command")
    args = ap.parse_args(argv)
    print(load())
    slow = False
    for lesson, path, values in CASES:
        times = time_core(lesson, path, values, args.seeds, args.repeats)
        report(f"{lesson}: 2 variants × {args.seeds} seeds", times, TARGET_S)
        slow |= statistics.median(times) >= TARGET_S
    if args.cli:
        lesson, path, values = CASES[0]
        report(f"gradlab compare --preset {lesson} (process)",
               time_cli(lesson, path, values, args.seeds, max(3, args.repeats // 2)), None)
    print(load())
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
