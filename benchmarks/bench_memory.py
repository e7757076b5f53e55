"""Memory of long sequences: T = 100 000 with truncated BPTT (window 100), H = 256.

Streams the sequence window by window (``core.streaming.stream``) and reports the
process's peak resident memory, beside what a full-trace pass of the same size would
need (the estimate the lab uses to refuse impossible runs).

    python benchmarks/bench_memory.py [--T 100000] [--window 100] [--hidden 256] [--batch 4]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.backend import resolve_backend
from core.experiment import InitConfig, LayerConfig, ModelConfig
from core.init import init_params
from core.memory import format_bytes
from core.network import Network, estimate_trace_bytes
from core.streaming import stream


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--cell", default="lstm")
    args = ap.parse_args(argv)
    model = ModelConfig(input_size=1, output_size=1,
                        layers=[LayerConfig(cell=args.cell, hidden_size=args.hidden)])
    net = Network(model, init_params(model, InitConfig()), resolve_backend("numpy", "float32"))
    rng = np.random.default_rng(0)
    t = np.arange(args.T + 1, dtype=np.float32)[:, None, None]
    s = np.sin(0.05 * t + rng.uniform(0, 6.3, size=(1, args.batch, 1))).astype(np.float32)
    x, y = s[:-1], s[1:]
    before = peak_rss()
    start = time.perf_counter()
    res = stream(net, x, y, args.window)
    wall = time.perf_counter() - start
    after = peak_rss()
    g = res.gradnorm["l0"]
    print(f"{args.cell} T={args.T} window={args.window} H={args.hidden} B={args.batch}: "
          f"{wall:.1f} s ({args.T / wall:,.0f} steps/s), loss {res.loss:.4f}")
    print(f"peak RSS {format_bytes(after)} (data and interpreter before the run: "
          f"{format_bytes(before)})")
    print(f"one window's full trace (estimate): "
          f"{format_bytes(estimate_trace_bytes(model, args.window, args.batch))}; "
          f"the whole sequence at once would need "
          f"{format_bytes(estimate_trace_bytes(model, args.T, args.batch))}")
    print(f"‖dL/dh_t‖ over the sequence: min {g.min():.3g}, max {g.max():.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
