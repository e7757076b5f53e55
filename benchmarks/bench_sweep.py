"""Sweep throughput: runs per second on an embedded Dask LocalCluster of 1 and 2 workers.

Two workloads on the ``vanishing_tanh`` lesson (tanh RNN, 32 units, adding problem,
50 steps, batch 16):

- *probe*: ``--grid init.scales.recurrent=0.5:4:N --grid model.layers.0.cell=rnn,lstm``,
  the initial weights probed (forward + BPTT), no training;
- *train*: a smaller grid of the same, 100 training steps a run, then the validation loss.

Each is timed ``--repeats`` times per cluster size, from the first job submitted to
the last result written (the cluster's start-up is reported apart); the median,
fastest and slowest rate are printed, with the load average before and after.
``--here`` adds the same runs in this process, without Dask, for reference.

    python benchmarks/bench_sweep.py [--repeats 3] [--probe-points 60] [--train-points 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(sweep, client) -> float:
    from core.sweep import run_sweep

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        stats = run_sweep(sweep, out, client=client)
        dt = time.perf_counter() - t0
    return stats.computed / dt


def report(name: str, rates: list[float]) -> None:
    print(f"  {name:24s} median {statistics.median(rates):6.1f} runs/s  "
          f"(min {min(rates):.1f}, max {max(rates):.1f}, n={len(rates)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--probe-points", type=int, default=60, help="scales (x2 cells)")
    ap.add_argument("--train-points", type=int, default=12, help="scales (x2 cells)")
    ap.add_argument("--here", action="store_true", help="also run in this process, no Dask")
    args = ap.parse_args()

    from core.lessons import load_lesson
    from core.sweep import embedded_client, parse_grid, plan

    exp = load_lesson("vanishing_tanh")
    cells = parse_grid("model.layers.0.cell=rnn,lstm", exp)
    probe = plan(exp, [parse_grid(f"init.scales.recurrent=0.5:4:{args.probe_points}", exp), cells])
    train = plan(exp, [parse_grid(f"init.scales.recurrent=0.5:4:{args.train_points}", exp), cells],
                 train_steps=100)
    print(f"{os.cpu_count()} CPU cores; {load()}")
    print(f"probe: {probe.jobs} runs a sweep; train: {train.jobs} runs of 100 steps a sweep")
    if args.here:
        print("in this process (no Dask):")
        report("probe", [timed(probe, None) for _ in range(args.repeats)])
        report("train 100 steps", [timed(train, None) for _ in range(args.repeats)])
    for workers in (1, 2):
        t0 = time.perf_counter()
        with embedded_client(workers) as client:
            start = time.perf_counter() - t0
            print(f"LocalCluster, {workers} worker(s) (start-up {start:.1f} s):")
            timed(probe, client)  # warm up: imports and compiled steps in the workers
            report("probe", [timed(probe, client) for _ in range(args.repeats)])
            report("train 100 steps", [timed(train, client) for _ in range(args.repeats)])
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
