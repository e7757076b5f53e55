"""Training throughput: updates per second for the default experiment sizes.

Each model (hidden 32, T = 100, batch 16, the sine task, Adam, norm clipping) is
trained without probes or validation; after a warm-up, blocks of steps are timed
and the median block's rate is reported.

    python benchmarks/bench_train.py [--device numpy|cupy|auto] [--dtype float32|float64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.backend import resolve_backend
from core.experiment import (
    BackendConfig,
    Experiment,
    LayerConfig,
    ModelConfig,
    TaskConfig,
    TrainingConfig,
)
from core.training.loop import train

CELLS = ("lstm", "gru", "rnn")


def bench(cell: str, device: str, dtype: str, blocks: int, block: int, warmup: int) -> list[float]:
    """Steps per second of each timed block."""
    exp = Experiment(
        model=ModelConfig(layers=[LayerConfig(cell=cell, hidden_size=32)]),
        task=TaskConfig(name="sine", seq_len=100, batch_size=16),
        training=TrainingConfig(steps=warmup + blocks * block, eval_every=0, trace_every=0),
        backend=BackendConfig(device=device, dtype=dtype),
    )
    rates, t0 = [], None
    for snap in train(exp, probe_every=0):
        if snap.step == warmup:
            t0 = time.perf_counter()
        elif snap.step > warmup and (snap.step - warmup) % block == 0:
            now = time.perf_counter()
            rates.append(block / (now - t0))
            t0 = now
    return rates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="numpy", choices=("auto", "numpy", "cupy"))
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks (median reported)")
    ap.add_argument("--block", type=int, default=20, help="steps per block")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    args = ap.parse_args(argv)
    backend = resolve_backend(args.device, args.dtype)
    print(f"training throughput · {backend.label} · hidden 32, T=100, batch 16, "
          f"median of {args.blocks} blocks of {args.block} steps")
    print(f"{'cell':<6} {'steps/s':>9} {'min':>9} {'max':>9}")
    for cell in CELLS:
        rates = bench(cell, args.device, args.dtype, args.blocks, args.block, args.warmup)
        print(f"{cell:<6} {statistics.median(rates):9.1f} {min(rates):9.1f} {max(rates):9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
