"""Forward + BPTT with full per-step traces: Gradient Flow Lab's engine against PyTorch.

For each cell and size (B, H, T) it times, interleaved in one process:

- ``trace``: ``core.trace(exp, x, y)``, what a user calls (forward, loss, BPTT; every h,
  c, gate, dL/dh_t, dL/dc_t, parameter gradient and ‖dL/dh_t‖, as NumPy arrays);
- ``run``: ``Network.run`` on a network kept by the caller, plus the norms ‖dL/dh_t‖;
- ``steps`` (asked for with ``--engines``): the same pass with the cells' plain NumPy
  steps, the engine's baseline; with ``--device cupy`` the lab on the CPU instead;
- ``loop``: PyTorch's unrolled ``LSTMCell``/``GRUCell``/``RNNCell`` loop with
  ``retain_grad()`` on every h_t — what a user writes to get per-step gradients;
- ``fused``: PyTorch's fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` forward + backward,
  which gives no per-step gradients at all.

For ``cifg``, ``mingru`` and ``minlstm``, which PyTorch does not have, the loop unrolls
their equations (input projections of all steps at once, as the lab does) and there is
no fused column; the lab's own columns use whatever path it picks (on the CPU the
compiled time loop for all six cells; without it, the scan over time for minGRU/minLSTM
where that is faster, core.scan).

Honest conditions (:mod:`conditions`): the script restarts itself without
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (set on some machines for old OpenBLAS
builds; a user's machine runs OpenBLAS's own choice of kernels), prints the BLAS kernels
and thread counts threadpoolctl sees, measures the CPU load of other processes during
every round and drops rounds above ``--max-load`` cores.  Each engine's figure is the
median of its kept runs, with the spread (half the interquartile range, in %), the
other processes' median load and how many rounds were dropped.  PyTorch is optional
(``pip install -e '.[bench]'``); without it only the lab's columns are filled.

    python benchmarks/bench_core.py                  # all cells, all sizes
    python benchmarks/bench_core.py --cells lstm --sizes 32,128,200
    python benchmarks/bench_core.py --engines trace  # one engine, in its own process
    python benchmarks/bench_core.py --device cupy    # on a GPU: CuPy against NumPy on the
                                                     # same machine and PyTorch CUDA
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
import dataclasses
import math
import os
import platform
import re
import statistics
import time
from datetime import datetime, timezone

import numpy as np

import core
from core.backend import BackendError, resolve_backend
from core.experiment import BackendConfig, Experiment, InitConfig, LayerConfig, ModelConfig
from core.init import init_params
from core.layout import BLOCKS, INPUT_ONLY
from core.network import Network

SIZES = [(1, 32, 100), (16, 32, 100), (32, 128, 200), (64, 256, 500)]
GPU_SIZES = [(256, 512, 256), (256, 1024, 512)]
ENGINES = ("trace", "run", "steps", "fused", "loop")


def matmul_peak(device: str = "numpy", repeats: int = 15) -> float:
    """float32 FLOP/s of one large square matrix product (the device's practical peak):
    the fastest of ``repeats``, so that one quiet moment on a shared machine is enough."""
    be = resolve_backend(device, "float32")
    n = 2048 if be.name == "numpy" else 8192
    a = be.asarray(np.random.default_rng(0).standard_normal((n, n)))
    b = a.copy()
    sync = be.xp.cuda.Device().synchronize if be.name == "cupy" else (lambda: None)
    a @ b
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times)


def flops(cell: str, B: int, H: int, T: int, D: int) -> float:
    """Matrix-product FLOPs of forward + BPTT: x W_ihᵀ and dL/dW_ih (dL/dx is not asked
    for, by either engine), h W_hhᵀ, dL/dh W_hh and dL/dW_hh (none for minGRU/minLSTM)."""
    GH = BLOCKS[cell] * H
    return 2.0 * T * B * GH * (2 * D + (0 if cell in INPUT_ONLY else 3 * H))


def _model(cell: str, H: int, D: int) -> ModelConfig:
    return ModelConfig(input_size=D, output_size=1, layers=[LayerConfig(cell=cell, hidden_size=H)])


def _data(T: int, B: int, D: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((T, B, D)).astype(np.float32),
            rng.standard_normal((T, B, 1)).astype(np.float32))


def lab_runner(cell: str, B: int, H: int, T: int, D: int, device: str = "numpy",
               compiled: bool = True):
    """``Network.run`` on a kept network, plus the norms ‖dL/dh_t‖; ``compiled=False``
    runs the cells' NumPy steps on the CPU."""
    model = _model(cell, H, D)
    be = dataclasses.replace(resolve_backend(device, "float32"), compiled=compiled)
    net = Network(model, init_params(model, InitConfig()), be)
    x_host, y_host = _data(T, B, D)
    x, y = be.asarray(x_host), be.asarray(y_host)

    def run() -> None:
        tr = net.run(x, y)
        norm = tr.gradnorm("l0")
        if be.name == "cupy":
            norm.get()

    return run


def trace_runner(cell: str, B: int, H: int, T: int, D: int, device: str = "numpy"):
    """``core.trace`` on host arrays, as a user calls it: NumPy arrays back."""
    model = _model(cell, H, D)
    exp = Experiment(model=model, backend=BackendConfig(device=device, dtype="float32"))
    exp.weights = init_params(model, InitConfig())
    x, y = _data(T, B, D)

    def run() -> None:
        core.trace(exp, x, y)

    return run


def torch_runners(cell: str, B: int, H: int, T: int, D: int, device: str = "cpu"):
    """PyTorch's unrolled loop and fused module on ``device`` ("cpu" or "cuda"); for
    the cells PyTorch does not have, the loop unrolls their equations and there is no
    fused module (None)."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(T, B, D, device=device)
    y = torch.randn(T, B, 1, device=device)
    if cell in UNROLLED:
        return unrolled_runner(cell, x, y, H, device), None
    Cell = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[cell]
    Seq = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    step_cell, head = Cell(D, H).to(device), torch.nn.Linear(H, 1).to(device)
    seq = Seq(D, H).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def loop() -> None:
        h = torch.zeros(B, H, device=device)
        c = torch.zeros(B, H, device=device)
        hs = []
        for t in range(T):
            if cell == "lstm":
                h, c = step_cell(x[t], (h, c))
            else:
                h = step_cell(x[t], h)
            h.retain_grad()
            hs.append(h)
        out = head(torch.stack(hs))
        loss = torch.nn.functional.mse_loss(out, y)
        step_cell.zero_grad()
        loss.backward()
        torch.stack([h.grad.norm(dim=1).mean() for h in hs]).cpu()

    def fused() -> None:
        out, _ = seq(x)
        loss = torch.nn.functional.mse_loss(head(out), y)
        seq.zero_grad()
        loss.backward()
        sync()

    return loop, fused


UNROLLED = ("cifg", "mingru", "minlstm")


def unrolled_runner(cell: str, x, y, H: int, device: str):
    """The loop a user writes in PyTorch for a cell it does not have: the equations of
    core/cells/{cifg,mingru,minlstm}.py with ``retain_grad()`` on every h_t."""
    import torch

    T, B, D = x.shape
    G = BLOCKS[cell]
    ih = torch.nn.Linear(D, G * H).to(device)
    hh = torch.nn.Linear(H, G * H).to(device) if cell == "cifg" else None
    head = torch.nn.Linear(H, 1).to(device)

    def loop() -> None:
        h = torch.zeros(B, H, device=device)
        c = torch.zeros(B, H, device=device)
        hs = []
        xa = ih(x)  # every step's input projection at once, as the lab does
        for t in range(T):
            a = xa[t] if hh is None else xa[t] + hh(h)
            if cell == "cifg":
                af, ag, ao = a.chunk(3, dim=-1)
                f = torch.sigmoid(af)
                c = f * c + (1 - f) * torch.tanh(ag)
                h = torch.sigmoid(ao) * torch.tanh(c)
            elif cell == "mingru":
                az, ah = a.chunk(2, dim=-1)
                z = torch.sigmoid(az)
                h = (1 - z) * h + z * ah
            else:
                af, ai, ah = a.chunk(3, dim=-1)
                f, i = torch.sigmoid(af), torch.sigmoid(ai)
                h = (f * h + i * ah) / (f + i)
            h.retain_grad()
            hs.append(h)
        loss = torch.nn.functional.mse_loss(head(torch.stack(hs)), y)
        ih.zero_grad()
        loss.backward()
        torch.stack([h.grad.norm(dim=1).mean() for h in hs]).cpu()

    return loop


@dataclasses.dataclass
class Timing:
    """One engine's kept run times (seconds), the other load of each kept round (cores),
    and the rounds dropped for load."""

    times: list[float] = dataclasses.field(default_factory=list)
    loads: list[float] = dataclasses.field(default_factory=list)
    dropped: int = 0
    loaded: list[float] = dataclasses.field(default_factory=list)  # times of dropped rounds

    @property
    def median(self) -> float:
        return statistics.median(self.times or self.loaded)

    @property
    def spread(self) -> float:
        """Half the interquartile range, as a fraction of the median."""
        ts = self.times or self.loaded
        if len(ts) < 4:
            return (max(ts) - min(ts)) / 2 / statistics.median(ts)
        q1, _, q3 = statistics.quantiles(ts, n=4)
        return (q3 - q1) / 2 / statistics.median(ts)

    def cell(self) -> str:
        ms = self.median * 1e3
        text = f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"
        flag = "" if self.times else " (loaded)"
        return f"{text} ±{100 * self.spread:.0f} %{flag}"


def interleaved(fns: dict, repeats: int, gap: float = 0.2, block: int = 3,
                max_load: float = 0.25, meter: LoadMeter | None = None,
                max_rounds: int | None = None) -> dict[str, Timing]:
    """Each function's run times over ``repeats`` kept runs, taken in rounds.

    In a round each engine runs ``block`` times back to back (after one untimed run), as
    it would in a training loop, and the engines take turns round by round, so drift hits
    all alike.  An engine's turn starts ``gap`` seconds after the one before: OpenBLAS's
    and OpenMP's worker threads keep spinning on the cores for a while after a product,
    and would otherwise slow whichever engine runs next.  The other processes' CPU load
    is measured over each turn (its gap included); a turn above ``max_load`` cores is
    dropped and taken again, up to ``max_rounds`` rounds in all; an engine left with no
    quiet turn reports its loaded ones, flagged."""
    meter = meter or LoadMeter()
    out = {k: Timing() for k in fns}
    rounds = max_rounds or 4 * math.ceil(repeats / block) + 2
    for _ in range(rounds):
        if min(len(t.times) for t in out.values()) >= repeats:
            break
        for k, fn in fns.items():
            if len(out[k].times) >= repeats:
                continue
            start = meter.mark()
            time.sleep(gap)
            fn()
            ts = []
            for _ in range(block):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            load = meter.other(start, meter.mark())
            if load is not None and load > max_load:
                out[k].dropped += 1
                out[k].loaded += ts
                continue
            out[k].times += ts
            out[k].loads.append(0.0 if load is None else load)
    return out


def _torch_line(torch) -> str:
    """torch's version, threads and the BLAS it was built with."""
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return (f"torch {torch.__version__} ({torch.get_num_threads()} threads, "
            f"{blas.group(1) if blas else 'unknown'} BLAS)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="lstm,gru,rnn,cifg,mingru,minlstm")
    ap.add_argument("--sizes", nargs="*", default=None,
                    help="B,H,T triples (default: 1,32,100 16,32,100 32,128,200 64,256,500)")
    ap.add_argument("--engines", default="trace,run,fused,loop",
                    help=f"which to time, of {','.join(ENGINES)} (default trace,run,fused,loop)")
    ap.add_argument("--repeats", type=int, default=9, help="kept runs per engine (default 9)")
    ap.add_argument("--gap", type=float, default=0.2,
                    help="seconds of rest before each engine's turn (default 0.2; the load is "
                         "read over each turn in 10-ms ticks, so shorter turns read it coarsely)")
    ap.add_argument("--max-load", type=float, default=0.25,
                    help="drop rounds in which other processes kept more than this many "
                         "cores busy (default 0.25)")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE as they are set")
    ap.add_argument("--device", default="numpy", choices=["numpy", "cupy"],
                    help="the lab's backend; with cupy, PyTorch runs on CUDA and the lab on "
                         "NumPy is timed beside it (default sizes 256,512,256 256,1024,512)")
    ap.add_argument("--no-torch", action="store_true", help="time the lab's engines only")
    args = ap.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        print(f"error: --engines: unknown {', '.join(unknown) or '(none given)'}; "
              f"choose from {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    gpu = args.device == "cupy"
    if gpu:
        try:
            resolve_backend("cupy")
        except BackendError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if "steps" not in engines:
            engines.insert(2, "steps")  # the lab on this machine's CPU, for the ratio
    sizes = ([tuple(int(v) for v in s.split(",")) for s in args.sizes] if args.sizes
             else GPU_SIZES if gpu else SIZES)
    torch = None
    if not args.no_torch and {"fused", "loop"} & set(engines):
        try:
            import torch

            torch.set_grad_enabled(True)
        except ImportError:
            torch = None
        if torch is not None and gpu and not torch.cuda.is_available():
            print("error: --device cupy compares against PyTorch on CUDA, which this torch "
                  "cannot use (or pass --no-torch)", file=sys.stderr)
            return 2
    if torch is None:
        engines = [e for e in engines if e not in ("fused", "loop")]
    peak = matmul_peak(args.device)
    where = f"{os.cpu_count()} CPUs · NumPy {np.__version__}"
    if gpu:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        where += f" · {name} · CuPy {cupy.__version__}"
    meter = LoadMeter()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# {now} · {platform.processor() or platform.machine()} · {where}"
          + (f" · {_torch_line(torch)}" if torch is not None else "")
          + f" · float32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"# BLAS (threadpoolctl): {blas_summary()}")
    removed = removed_env()
    print("# OpenBLAS variables: " + (f"unset for this run (were {removed})" if removed
                                      else "kept as set (--keep-blas-env)" if args.keep_blas_env
                                      and any(k in os.environ for k in ("OPENBLAS_CORETYPE",
                                                                        "OPENBLAS_L2_SIZE"))
                                      else "none set"))
    print(f"# lab: {resolve_backend(args.device).label}")
    print(f"# medians of {args.repeats} runs per engine (± half the interquartile range); "
          + (f"rounds with other processes above {args.max_load:g} cores dropped"
             if meter.available else "other load not measurable here (no /proc/stat)"))
    names = {"trace": "trace ms", "run": "run ms", "steps": ("CPU ms" if gpu else "NumPy steps ms"),
             "fused": "torch fused ms", "loop": "torch loop ms"}
    ratio_of = "trace" if "trace" in engines else engines[0]
    cols = ["cell", "B", "H", "T"]
    for e in engines:
        cols.append(names[e])
        if e != ratio_of:
            cols.append(f"{ratio_of} / {e}")
    cols += [f"{ratio_of} % of peak", "other load (cores)", "dropped rounds"]
    print("| " + " | ".join(cols) + " |")
    print("|---" * len(cols) + "|")
    for cell in args.cells.split(","):
        for B, H, T in sizes:
            D = H
            fns = {}
            if "trace" in engines:
                fns["trace"] = trace_runner(cell, B, H, T, D, args.device)
            if "run" in engines:
                fns["run"] = lab_runner(cell, B, H, T, D, args.device)
            if "steps" in engines:
                fns["steps"] = lab_runner(cell, B, H, T, D, "numpy", compiled=gpu)
            if torch is not None:
                loop, fused = torch_runners(cell, B, H, T, D, "cuda" if gpu else "cpu")
                fns.update({e: f for e, f in (("fused", fused), ("loop", loop))
                            if e in engines and f is not None})  # no fused module: no column
            fns = {e: fns[e] for e in engines if e in fns}
            res = interleaved(fns, args.repeats, args.gap, max_load=args.max_load, meter=meter)
            base = res[ratio_of].median
            row = [cell, B, H, T]
            for e in engines:
                row.append(res[e].cell() if e in res else "–")
                if e != ratio_of:
                    row.append(f"{base / res[e].median:.2f}×" if e in res else "–")
            row.append(f"{100 * flops(cell, B, H, T, D) / base / peak:.0f} %")
            loads = [v for t in res.values() for v in t.loads]
            row.append(f"{statistics.median(loads):.2f}" if loads else "–")
            dropped = sum(t.dropped for t in res.values())
            taken = dropped + sum(len(t.loads) for t in res.values())
            row.append(f"{dropped}/{taken}")
            print("| " + " | ".join(str(c) for c in row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
