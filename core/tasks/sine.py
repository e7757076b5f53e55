"""Sine waves: predict the next value(s) of a sinusoid with a random phase and frequency.

Each sequence gets its own frequency ``f`` (cycles per timestep, drawn from
``frequencies``) and phase; the input is ``sin(2π f t + φ)`` plus optional Gaussian
noise, the target at ``t`` the clean values at ``t+1 … t+horizon``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import HORIZON, Option, TaskSpec, describe, forecast_sizes, number

NYQUIST = 0.5


def parse_frequencies(value: Any, where: str) -> dict:
    """A list of frequencies to choose from, or ``{"min": a, "max": b}`` for a range.

    Returns ``{"choices": [...]}`` or ``{"min": a, "max": b}`` (cycles per timestep).
    """
    check = number(0.0, NYQUIST, low_open=True)
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: give at least one frequency")
        return {"choices": [check(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        extra = set(value) - {"min", "max"}
        if extra or not {"min", "max"} <= set(value):
            raise ConfigError(f"{where}: a range is written {{\"min\": a, \"max\": b}}, "
                              f"got {describe(value)}")
        lo, hi = check(value["min"], f"{where}.min"), check(value["max"], f"{where}.max")
        if lo > hi:
            raise ConfigError(f"{where}: min {lo:g} is larger than max {hi:g}")
        return {"min": lo, "max": hi}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"choices": [check(value, where)]}
    raise ConfigError(f"{where}: expected a list of frequencies or {{\"min\": a, \"max\": b}}, "
                      f"got {describe(value)}")


OPTIONS = {
    "frequencies": Option({"min": 0.02, "max": 0.1}, parse_frequencies,
                          "cycles per timestep: a list to pick from, or {min, max}"),
    "noise": Option(0.0, number(0.0, 10.0), "standard deviation of noise added to the input"),
    "horizon": HORIZON,
}


def batch(opts: dict, rng: np.random.Generator, split: str, T: int, B: int,
          pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """x (T,B,1); y (T,B,h) for many_to_many/output_recurrence, (B,h) for many_to_one."""
    freq = opts["frequencies"]
    if "choices" in freq:
        f = rng.choice(np.asarray(freq["choices"], dtype=np.float64), size=B)
    else:
        f = rng.uniform(freq["min"], freq["max"], size=B)
    phase = rng.uniform(0.0, 2 * np.pi, size=B)
    h = opts["horizon"]
    t = np.arange(T + h, dtype=np.float64)[:, None]
    clean = np.sin(2 * np.pi * f[None, :] * t + phase[None, :])  # (T+h, B)
    x = clean[:T, :, None].copy()
    if opts["noise"] > 0:
        x += rng.normal(0.0, opts["noise"], size=x.shape)
    if pattern == "many_to_one":
        return x, clean[T:T + h].T.copy()
    y = np.stack([clean[1 + k:T + 1 + k] for k in range(h)], axis=-1)
    return x, y


SPEC = TaskSpec(
    name="sine",
    description=("Predict the next value of a sine wave whose frequency and phase change from "
                 "sequence to sequence; a gentle first task where short memory suffices."),
    options=OPTIONS,
    loss="mse",
    patterns=("many_to_many", "output_recurrence", "many_to_one"),
    default_pattern="many_to_many",
    sizes=forecast_sizes(),
    batch=batch,
    forecasting=True,
)
