"""The adding problem (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015).

Two input channels: channel 0 holds values drawn from U(0, 1), channel 1 is zero
except for exactly two markers (1.0).  The single target, read after the last step,
is the sum of the two marked values.  Always predicting 1 scores an MSE of 1/6,
the bar a model must beat to show it has remembered anything.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import Option, Sizes, TaskSpec, choice

OPTIONS = {
    "placement": Option("halves", choice("halves", "anywhere"),
                        "halves: one marker in each half (Le et al.); "
                        "anywhere: any two distinct steps"),
}


def check(opts: dict, seq_len: int) -> None:
    if seq_len < 2:
        raise ConfigError(f"task.seq_len: the adding task needs at least 2 steps for its two "
                          f"markers, got {seq_len}")


def marker_positions(rng: np.random.Generator, T: int, B: int, placement: str) -> np.ndarray:
    """(2, B) int array: the two marked timesteps of each sequence, first < second."""
    if placement == "halves":
        half = T // 2
        first = rng.integers(0, half, size=B)
        second = rng.integers(half, T, size=B)
    else:
        first = rng.integers(0, T, size=B)
        second = (first + rng.integers(1, T, size=B)) % T  # distinct from first
        first, second = np.minimum(first, second), np.maximum(first, second)
    return np.stack([first, second])


def batch(opts: dict, rng: np.random.Generator, split: str, T: int, B: int,
          pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """x (T,B,2): values and markers; y (B,1): the sum of the two marked values."""
    check(opts, T)
    x = np.zeros((T, B, 2))
    x[:, :, 0] = rng.uniform(0.0, 1.0, size=(T, B))
    pos = marker_positions(rng, T, B, opts["placement"])
    cols = np.arange(B)
    x[pos[0], cols, 1] = 1.0
    x[pos[1], cols, 1] = 1.0
    y = (x[pos[0], cols, 0] + x[pos[1], cols, 0])[:, None]
    return x, y


SPEC = TaskSpec(
    name="adding",
    description=("The adding problem: add the two numbers flagged by markers somewhere in a long "
                 "sequence. The answer comes only at the end, so the gradient must travel back "
                 "to the markers; predicting 1 every time scores an MSE of about 0.167."),
    options=OPTIONS,
    loss="mse",
    patterns=("many_to_one",),
    default_pattern="many_to_one",
    sizes=lambda opts: Sizes(2, 1, " (a value and a marker)", " (the sum of the marked values)"),
    batch=batch,
    check=check,
)
