"""Sweep throughput: runs per second on an embedded Dask LocalCluster of 1 and 2 workers.

Two workloads on the ``vanishing_tanh`` lesson (tanh RNN, 32 units, adding problem,
50 steps, batch 16):

- *probe*: ``--grid init.scales.recurrent=0.5:4:N --grid model.layers.0.cell=rnn,lstm``,
  the initial weights probed (forward + BPTT), no training;
- *train*: a smaller grid of the same, 100 training steps a run, then the validation loss.

Both clusters are up at once and each sweep is timed on one, then the other, ``--repeats``
times, so that the two see the same load; a time runs from the first job submitted to
the last result written (start-up is reported apart).  The median, fastest and slowest
rate, and the median of the paired 2-worker / 1-worker ratios, are printed with the
load average before and after.
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
    t0 = time.perf_counter()
    with embedded_client(1) as one, embedded_client(2) as two:
        print(f"LocalClusters of 1 and 2 workers up in {time.perf_counter() - t0:.1f} s; "
              "timed in turns, so both see the same load")
        clients = {1: one, 2: two}
        for c in clients.values():
            timed(probe, c)  # warm up: imports and compiled steps in the workers
        for name, sweep in (("probe", probe), ("train 100 steps", train)):
            rates: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(args.repeats):
                for n, c in clients.items():
                    rates[n].append(timed(sweep, c))
            for n in (1, 2):
                report(f"{name}, {n} worker{'s' if n > 1 else ''}", rates[n])
            ratios = [b / a for a, b in zip(rates[1], rates[2], strict=True)]
            print(f"  {name}: 2 workers / 1 worker, median of the pairs "
                  f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})")
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
