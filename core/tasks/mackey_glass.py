"""The Mackey–Glass series: next-step prediction of a chaotic delay system.

    dx/dt = β x(t-τ) / (1 + x(t-τ)ⁿ) − γ x(t),   β = 0.2, γ = 0.1, n = 10

integrated with fourth-order Runge–Kutta at a fixed step of 0.1 time units from a
constant history x = 1.2; the first 500 time units are discarded as transient and
the rest sampled every ``sample_step``.  For τ ≥ 17 the motion is chaotic; smaller τ
gives periodic orbits.  The resulting series is windowed, split in time and
normalised exactly like a real series (see :mod:`core.tasks.series`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import HORIZON, VAL_FRACTION, Option, TaskSpec, forecast_sizes, integer, number
from .series import PATTERNS, PreparedSeries, cached, max_seq_len_for, min_length, prepare, windows

BETA, GAMMA, EXPONENT = 0.2, 0.1, 10.0
DT = 0.1
BURN_IN = 500.0
X0 = 1.2
MAX_STEPS = 1_000_000

OPTIONS = {
    "tau": Option(17.0, number(1.0, 200.0), "the delay τ in time units (chaotic from about 17)"),
    "sample_step": Option(1.0, number(0.1, 10.0), "time units between two samples"),
    "length": Option(5000, integer(100, 200_000), "samples in the generated series"),
    "horizon": HORIZON,
    "val_fraction": VAL_FRACTION,
}


def integrate(tau: float, sample_step: float, length: int) -> np.ndarray:
    """(length,) samples of the Mackey–Glass series after the burn-in."""
    lag = max(1, round(tau / DT))
    every = max(1, round(sample_step / DT))
    burn = round(BURN_IN / DT)
    steps = burn + (length - 1) * every + 1
    hist = [X0] * (lag + steps)  # hist[lag + k] is x at step k; earlier entries the history
    x = X0
    half, b, g, n = DT / 2, BETA, GAMMA, EXPONENT
    for k in range(steps - 1):
        d0 = hist[k]
        d1 = hist[k + 1]
        dm = 0.5 * (d0 + d1)
        p0, pm, p1 = b * d0 / (1 + d0**n), b * dm / (1 + dm**n), b * d1 / (1 + d1**n)
        k1 = p0 - g * x
        k2 = pm - g * (x + half * k1)
        k3 = pm - g * (x + half * k2)
        k4 = p1 - g * (x + DT * k3)
        x += DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        hist[lag + k + 1] = x
    series = np.asarray(hist[lag + burn::every], dtype=np.float64)
    return series[:length]


def check(opts: dict, seq_len: int) -> None:
    every = max(1, round(opts["sample_step"] / DT))
    if opts["length"] * every > MAX_STEPS:
        raise ConfigError(f"task.length: {opts['length']} samples every {opts['sample_step']:g} "
                          f"time units take too long to integrate; keep length × sample_step "
                          f"under {MAX_STEPS * DT:g}")
    h, f = opts["horizon"], opts["val_fraction"]
    if max_seq_len_for(opts["length"], h, f) < seq_len:
        need = min_length(seq_len, h, f)
        raise ConfigError(f"task.length: a series of {opts['length']} samples is too short for "
                          f"one training and one validation window of seq_len {seq_len} + "
                          f"horizon {h} (val_fraction {f:g}); at least {need} are needed")


def load(opts: dict) -> PreparedSeries:
    """The generated series for these options, split and normalised (cached)."""
    lag = max(1, round(opts["tau"] / DT))
    every = max(1, round(opts["sample_step"] / DT))

    def build() -> PreparedSeries:
        raw = integrate(opts["tau"], opts["sample_step"], opts["length"])
        return prepare(raw, opts["val_fraction"], f"Mackey–Glass (tau {opts['tau']:g})")

    return cached(("mackey_glass", lag, every, opts["length"], opts["val_fraction"]), build)


def batch(opts: dict, rng: np.random.Generator, split: str, T: int, B: int,
          pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """x (T,B,1); y (T,B,h) or (B,h): windows of the normalised series."""
    check(opts, T)
    return windows(load(opts), split, rng, T, B, opts["horizon"], pattern)


def _max_seq_len(opts: dict) -> int | None:
    return max_seq_len_for(opts["length"], opts["horizon"], opts["val_fraction"])


SPEC = TaskSpec(
    name="mackey_glass",
    description=("Predict the next value of the Mackey–Glass series, a chaotic system whose "
                 "rate of change depends on its state τ = 17 time units ago; a classic "
                 "benchmark for remembering the right moment in the past."),
    options=OPTIONS,
    loss="mse",
    patterns=PATTERNS,
    default_pattern="many_to_many",
    sizes=forecast_sizes(),
    batch=batch,
    forecasting=True,
    check=check,
    max_seq_len=_max_seq_len,
)
