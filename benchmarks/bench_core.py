"""Forward + BPTT with full per-step traces: Gradient Flow Lab's engine against PyTorch.

For each cell and size (B, H, T) it times, interleaved in one process:

- ``lab``: ``Network.run`` (forward, loss, BPTT; every h, c, gate, dL/dh_t, dL/dc_t and
  parameter gradient kept) plus the per-step norms ‖dL/dh_t‖;
- ``NumPy steps`` (CPU) or ``CPU`` (with ``--device cupy``): the same pass with the
  cells' plain NumPy steps, or on the CPU, for the ratio against the engine's baseline;
- ``torch-loop``: PyTorch's unrolled ``LSTMCell``/``GRUCell``/``RNNCell`` loop with
  ``retain_grad()`` on every h_t — what a user writes to get per-step gradients;
- ``torch-fused``: PyTorch's fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` forward + backward,
  which gives no per-step gradients at all.

For ``cifg``, ``mingru`` and ``minlstm``, which PyTorch does not have, the loop unrolls
their equations (input projections of all steps at once, as the lab does) and there is
no fused column; the lab's own column uses whatever path it picks (the scan over time
for minGRU/minLSTM where that is faster, core.scan).

and reports medians, ratios, and the FLOP rate reached as a fraction of this machine's
own float32 matrix-product peak, measured in the same run.  PyTorch is optional
(``pip install -e '.[bench]'``); without it only the lab's column is filled.

    python benchmarks/bench_core.py                  # all cells, all sizes
    python benchmarks/bench_core.py --cells lstm --sizes 32,128,200
    python benchmarks/bench_core.py --device cupy    # on a GPU: CuPy against NumPy on the
                                                     # same machine and PyTorch CUDA
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.backend import BackendError, resolve_backend
from core.experiment import InitConfig, LayerConfig, ModelConfig
from core.init import init_params
from core.layout import BLOCKS, INPUT_ONLY
from core.network import Network

SIZES = [(1, 32, 100), (32, 128, 200), (64, 256, 500)]
GPU_SIZES = [(256, 512, 256), (256, 1024, 512)]


def matmul_peak(device: str = "numpy", repeats: int = 5) -> float:
    """float32 FLOP/s of one large square matrix product (the device's practical peak)."""
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


def lab_runner(cell: str, B: int, H: int, T: int, D: int, device: str = "numpy",
               compiled: bool = True):
    """The lab's pass; ``compiled=False`` runs the cells' NumPy steps on the CPU."""
    model = ModelConfig(input_size=D, output_size=1,
                        layers=[LayerConfig(cell=cell, hidden_size=H)])
    be = dataclasses.replace(resolve_backend(device, "float32"), compiled=compiled)
    net = Network(model, init_params(model, InitConfig()), be)
    rng = np.random.default_rng(0)
    x = be.asarray(rng.standard_normal((T, B, D)))
    y = be.asarray(rng.standard_normal((T, B, 1)))

    def run() -> None:
        tr = net.run(x, y)
        norm = tr.gradnorm("l0")
        if be.name == "cupy":
            norm.get()

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


def interleaved(fns: dict, repeats: int, gap: float = 0.2, block: int = 3) -> dict[str, float]:
    """Median seconds of each function over ``repeats`` runs, taken in blocks.

    Each engine runs ``block`` times back to back (after one untimed run), as it would
    in a training loop, and the engines take turns block by block, so drift hits all
    alike.  A block starts ``gap`` seconds after the one before: OpenBLAS's and
    OpenMP's worker threads keep spinning on the cores for a while after a product,
    and would otherwise slow whichever engine runs next."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    while min(len(v) for v in times.values()) < repeats:
        for k, fn in fns.items():
            time.sleep(gap)
            fn()
            for _ in range(block):
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="lstm,gru,rnn,cifg,mingru,minlstm")
    ap.add_argument("--sizes", nargs="*", default=None,
                    help="B,H,T triples (default: 1,32,100 32,128,200 64,256,500)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--gap", type=float, default=0.2,
                    help="seconds of rest before each engine's turn (default 0.2)")
    ap.add_argument("--device", default="numpy", choices=["numpy", "cupy"],
                    help="the lab's backend; with cupy, PyTorch runs on CUDA and the lab on "
                         "NumPy is timed beside it (default sizes 256,512,256 256,1024,512)")
    ap.add_argument("--no-torch", action="store_true", help="time the lab's engine only")
    args = ap.parse_args(argv)
    gpu = args.device == "cupy"
    if gpu:
        try:
            resolve_backend("cupy")
        except BackendError as exc:
            raise SystemExit(f"error: {exc}") from None
    sizes = ([tuple(int(v) for v in s.split(",")) for s in args.sizes] if args.sizes
             else GPU_SIZES if gpu else SIZES)
    try:
        if args.no_torch:
            raise ImportError
        import torch

        torch.set_grad_enabled(True)
        have_torch = True
        threads = torch.get_num_threads()
        if gpu and not torch.cuda.is_available():
            raise SystemExit("error: --device cupy compares against PyTorch on CUDA, which "
                             "this torch cannot use (or pass --no-torch)")
    except ImportError:
        have_torch = False
        threads = None
    peak = matmul_peak(args.device)
    where = f"{os.cpu_count()} CPUs · NumPy {np.__version__}"
    if gpu:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        where += f" · {name} · CuPy {cupy.__version__}"
    print(f"# {date.today()} · {platform.processor() or platform.machine()} · {where}"
          + (f" · torch {torch.__version__} ({threads} threads)" if have_torch else "")
          + f" · float32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    base = "CPU" if gpu else "NumPy steps"
    print(f"# lab: {resolve_backend(args.device).label}")
    print(f"| cell | B | H | T | lab ms | {base} ms | {base} / lab |"
          + " torch loop ms | lab / loop | torch fused ms | lab / fused | lab GFLOP/s | % of peak |")
    print("|---" * 13 + "|")
    for cell in args.cells.split(","):
        for B, H, T in sizes:
            D = H
            fns = {"lab": lab_runner(cell, B, H, T, D, args.device)}
            fns["base"] = lab_runner(cell, B, H, T, D, "numpy", compiled=gpu)
            if have_torch:
                fns["loop"], fns["fused"] = torch_runners(cell, B, H, T, D,
                                                          "cuda" if gpu else "cpu")
                if fns["fused"] is None:  # no PyTorch module for this cell
                    del fns["fused"]
            med = interleaved(fns, args.repeats, args.gap)
            lab = med["lab"]
            rate = flops(cell, B, H, T, D) / lab
            cols = [cell, B, H, T, f"{lab * 1e3:.1f}"]
            cols += [f"{med['base'] * 1e3:.1f}", f"{med['base'] / lab:.2f}×"]
            if have_torch:
                cols += [f"{med['loop'] * 1e3:.1f}", f"{lab / med['loop']:.2f}×"]
                cols += ([f"{med['fused'] * 1e3:.1f}", f"{lab / med['fused']:.2f}×"]
                         if "fused" in med else ["–", "–"])
            else:
                cols += ["–", "–", "–", "–"]
            cols += [f"{rate / 1e9:.1f}", f"{100 * rate / peak:.0f} %"]
            print("| " + " | ".join(str(c) for c in cols) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
