"""Training throughput: updates per second for the default experiment sizes.

Each model (hidden 32, T = 100, batch 16, the sine task, Adam, norm clipping) is
trained without probes or validation; after a warm-up, blocks of steps are timed
and the median block's rate is reported, beside a fused PyTorch loop of the same model
(``nn.LSTM``/``nn.GRU``/``nn.RNN`` and a linear head, MSE, Adam, ``clip_grad_norm_``)
when PyTorch is installed.  As ``bench_core.py`` does, it restarts itself without
``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` and prints the BLAS kernels, and the other
processes' CPU load over each block; blocks above ``--max-load`` cores are dropped.

    python benchmarks/bench_train.py [--device numpy|cupy|auto] [--dtype float32|float64]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conditions import LoadMeter, blas_summary, clean_blas_env, removed_env

if __name__ == "__main__":
    clean_blas_env()  # before NumPy loads OpenBLAS

import argparse
import statistics
import time

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


def bench(cell: str, device: str, dtype: str, blocks: int, block: int, warmup: int,
          meter: LoadMeter | None = None, max_load: float = float("inf")) -> list[float]:
    """Steps per second of each timed block whose other load stayed under ``max_load``."""
    exp = Experiment(
        model=ModelConfig(layers=[LayerConfig(cell=cell, hidden_size=32)]),
        task=TaskConfig(name="sine", seq_len=100, batch_size=16),
        training=TrainingConfig(steps=warmup + blocks * block, eval_every=0, trace_every=0),
        backend=BackendConfig(device=device, dtype=dtype),
    )
    meter = meter or LoadMeter()
    rates, t0, mark = [], None, None
    for snap in train(exp, probe_every=0):
        if snap.step == warmup:
            t0, mark = time.perf_counter(), meter.mark()
        elif snap.step > warmup and (snap.step - warmup) % block == 0:
            now, end = time.perf_counter(), meter.mark()
            load = meter.other(mark, end)
            if load is None or load <= max_load:
                rates.append(block / (now - t0))
            t0, mark = now, end
    return rates


def bench_torch(cell: str, blocks: int, block: int, warmup: int,
                meter: LoadMeter | None = None, max_load: float = float("inf")) -> list[float]:
    """The same model and update in PyTorch, fused module: steps per second per block."""
    import torch

    torch.manual_seed(0)
    Seq = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    rnn, head = Seq(1, 32), torch.nn.Linear(32, 1)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    t = torch.linspace(0, 20, 101)
    phase = torch.rand(16) * 6.28
    wave = torch.sin(t[:, None] + phase[None, :])[..., None]  # (101, 16, 1)
    x, y = wave[:-1], wave[1:]

    def step() -> None:
        opt.zero_grad()
        out, _ = rnn(x)
        loss = torch.nn.functional.mse_loss(head(out), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(warmup):
        step()
    meter = meter or LoadMeter()
    rates = []
    while len(rates) < blocks:
        mark, t0 = meter.mark(), time.perf_counter()
        for _ in range(block):
            step()
        now, end = time.perf_counter(), meter.mark()
        load = meter.other(mark, end)
        if load is None or load <= max_load:
            rates.append(block / (now - t0))
        elif len(rates) == 0 and meter.available and end.wall - mark.wall > 60:
            break
    return rates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="numpy", choices=("auto", "numpy", "cupy"))
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks (median reported)")
    ap.add_argument("--block", type=int, default=60,
                    help="steps per block (default 60: at least 0.2 s, over which the other "
                         "load is read in 10-ms ticks)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--max-load", type=float, default=0.25,
                    help="drop blocks in which other processes kept more than this many "
                         "cores busy (default 0.25)")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE as they are set")
    ap.add_argument("--no-torch", action="store_true", help="time the lab only")
    args = ap.parse_args(argv)
    backend = resolve_backend(args.device, args.dtype)
    torch = None
    if not args.no_torch and args.dtype == "float32" and backend.name == "numpy":
        try:
            import torch
        except ImportError:
            torch = None
    meter = LoadMeter()
    removed = removed_env()
    print(f"training throughput · {backend.label} · hidden 32, T=100, batch 16, "
          f"median of {args.blocks} blocks of {args.block} steps"
          + (f" · torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ""))
    print(f"BLAS: {blas_summary()}")
    print("OpenBLAS variables: " + (f"unset for this run (were {removed})" if removed
                                    else "none unset"))
    print(f"{'cell':<6} {'steps/s':>9} {'min':>9} {'max':>9}"
          + (f" {'torch/s':>9} {'lab/torch':>9}" if torch else ""))
    for cell in CELLS:
        rates = bench(cell, args.device, args.dtype, args.blocks, args.block, args.warmup,
                      meter, args.max_load)
        if not rates:
            print(f"{cell:<6} every block ran under more than {args.max_load:g} cores of other load")
            continue
        line = f"{cell:<6} {statistics.median(rates):9.1f} {min(rates):9.1f} {max(rates):9.1f}"
        if torch:
            ref = bench_torch(cell, args.blocks, args.block, args.warmup, meter, args.max_load)
            if ref:
                line += (f" {statistics.median(ref):9.1f} "
                         f"{statistics.median(rates) / statistics.median(ref):8.2f}×")
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
