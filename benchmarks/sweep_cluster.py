"""A sweep on an existing Dask cluster that loses a worker mid-run gives the embedded run's numbers.

Starts ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (one thread
each, PYTHONPATH at this repository so they import ``core``), runs

    gradlab sweep --preset vanishing_tanh --grid init.scales.recurrent=0.5:2.0:6
                  --grid model.layers.0.cell=rnn,lstm --seeds 3 --train-steps 60
                  --scheduler tcp://127.0.0.1:PORT --out DIR

and, once ``--kill-after`` of the runs are written, kills the first worker (its
whole process group, SIGKILL).  The same sweep then runs embedded (a LocalCluster),
and every variable of the two ``sweep.zarr`` is compared exactly.  Exit status 0
when they are equal, 1 otherwise.

    python benchmarks/sweep_cluster.py [--train-steps 60] [--kill-after 0.3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).with_name("dask"))


def sweep_argv(out: Path, steps: int) -> list[str]:
    return [sys.executable, str(ROOT / "main.py"), "sweep", "--preset", "vanishing_tanh",
            "--grid", "init.scales.recurrent=0.5:2.0:6", "--grid", "model.layers.0.cell=rnn,lstm",
            "--seeds", "3", "--train-steps", str(steps), "--out", str(out)]


def written(store: Path) -> int:
    """Runs whose status is on disk (one chunk file per run)."""
    folder = store / "status"
    return sum(1 for p in folder.iterdir() if p.name[0].isdigit()) if folder.exists() else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--kill-after", type=float, default=0.3,
                    help="fraction of the 36 runs written before a worker is killed")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        sched_file = tmp_path / "scheduler.json"
        try:
            procs.append(subprocess.Popen(
                [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(sched_file)], env=env, cwd=tmp,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            while not sched_file.exists():
                time.sleep(0.1)
            time.sleep(0.5)
            import json

            address = json.loads(sched_file.read_text())["address"]
            for _ in range(2):
                procs.append(subprocess.Popen(
                    [DASK, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                     "--no-dashboard"], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True))
            from distributed import Client

            with Client(address, timeout="30s") as c:
                c.wait_for_workers(2, timeout=60)
            out = tmp_path / "cluster"
            t0 = time.monotonic()
            sweep = subprocess.Popen([*sweep_argv(out, args.train_steps), "--scheduler", address],
                                     env=env, stderr=subprocess.PIPE, text=True)
            victim = procs[1]
            killed_at = None
            while sweep.poll() is None:
                n = written(out / "sweep.zarr")
                if killed_at is None and n >= args.kill_after * 36:
                    os.killpg(victim.pid, signal.SIGKILL)
                    killed_at = n
                time.sleep(0.02)
            cluster_s = time.monotonic() - t0
            err = sweep.stderr.read() if sweep.stderr else ""
            print(f"cluster sweep: exit {sweep.returncode} in {cluster_s:.1f} s; worker killed "
                  f"after {killed_at} of 36 runs were written")
            if sweep.returncode != 0:
                print(err)
                return 1
            t0 = time.monotonic()
            embedded = subprocess.run([*sweep_argv(tmp_path / "embedded", args.train_steps),
                                       "--workers", "2"], env=env, capture_output=True, text=True)
            print(f"embedded sweep: exit {embedded.returncode} in {time.monotonic() - t0:.1f} s")
            if embedded.returncode != 0:
                print(embedded.stderr)
                return 1
            import numpy as np
            import xarray as xr

            a = xr.open_zarr(out / "sweep.zarr").load()
            b = xr.open_zarr(tmp_path / "embedded" / "sweep.zarr").load()
            same = True
            for name in a.data_vars:
                eq = np.array_equal(a[name].values, b[name].values,
                                    equal_nan=a[name].dtype.kind == "f")
                same &= eq
                print(f"  {name:16s} {'equal' if eq else 'DIFFERENT'}")
            print("results equal to the embedded run" if same else "results DIFFER")
            return 0 if same and killed_at is not None else 1
        finally:
            for p in procs:
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    p.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
