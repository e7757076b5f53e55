"""minGRU / minLSTM: the scan over time (core.scan) against the step loop.

Times ``Network.run`` (forward, loss and BPTT, full traces) with ``net.scan`` True and
False, interleaved in one process, float32 on the CPU (compiled steps where they build),
and checks that both give the same trace.

    python benchmarks/bench_scan.py                         # T = 100, 1000, 10000
    python benchmarks/bench_scan.py --lengths 8,16,32 --sizes 1,32 16,64
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.backend import resolve_backend
from core.experiment import InitConfig, LayerConfig, ModelConfig
from core.init import init_params
from core.network import Network


def networks(cell: str, B: int, H: int, T: int, D: int = 8):
    model = ModelConfig(input_size=D, output_size=1, layers=[LayerConfig(cell=cell, hidden_size=H)])
    params = init_params(model, InitConfig())
    be = resolve_backend("numpy", "float32")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    y = rng.standard_normal((T, B, 1)).astype(np.float32)
    nets = {}
    for scan in (True, False):
        net = Network(model, params, be)
        net.scan = scan
        nets["scan" if scan else "loop"] = net
    return nets, x, y


def agree(nets: dict, x: np.ndarray, y: np.ndarray) -> float:
    """The largest difference between the two traces, relative to each array's scale."""
    a = nets["scan"].run(x, y).to_arrays()
    b = nets["loop"].run(x, y).to_arrays()
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(b[k]).max(), 1e-30)) for k in b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="mingru,minlstm")
    ap.add_argument("--sizes", nargs="*", default=["1,32", "16,64"], help="B,H pairs")
    ap.add_argument("--lengths", default="100,1000,10000")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"# {os.cpu_count()} CPUs · NumPy {np.__version__} · "
          f"{resolve_backend('numpy', 'float32').label} · load {os.getloadavg()[0]:.2f}")
    print("| cell | B | H | T | scan ms (min–max) | loop ms (min–max) | loop / scan | max rel. diff |")
    print("|---" * 8 + "|")
    for cell in args.cells.split(","):
        for size in args.sizes:
            B, H = (int(v) for v in size.split(","))
            for T in (int(v) for v in args.lengths.split(",")):
                nets, x, y = networks(cell, B, H, T)
                diff = agree(nets, x, y)
                times: dict[str, list[float]] = {k: [] for k in nets}
                for _ in range(args.repeats):
                    for k, net in nets.items():  # interleaved: drift hits both alike
                        t0 = time.perf_counter()
                        net.run(x, y)
                        times[k].append(time.perf_counter() - t0)
                med = {k: statistics.median(v) for k, v in times.items()}
                span = {k: f"{1e3 * med[k]:.1f} ({1e3 * min(v):.1f}–{1e3 * max(v):.1f})"
                        for k, v in times.items()}
                print(f"| {cell} | {B} | {H} | {T} | {span['scan']} | {span['loop']} | "
                      f"{med['loop'] / med['scan']:.1f}× | {diff:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
