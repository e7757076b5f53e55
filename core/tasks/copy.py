"""The copy-memory task (Hochreiter & Schmidhuber 1997; the form of Arjovsky et al. 2016).

With ``K`` symbols, pattern length ``L`` and delay ``d``, one sequence reads::

    step      0 … L-1       L … L+d-2     L+d-1       L+d … 2L+d-1    2L+d … T-1
    input     the pattern   blank         delimiter   blank           blank
    target    blank         blank         blank       the pattern     blank

Inputs are one-hot over ``K + 2`` channels (symbols ``0 … K-1``, blank ``K``,
delimiter ``K+1``); targets are class ids over ``K + 1`` classes (symbols and
blank).  Without ``delay`` the recall fills the end of the sequence
(``d = T - 2L``).  Predicting blanks and guessing the recalled symbols scores a
cross-entropy of ``L·log(K) / T``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import Option, Sizes, TaskSpec, integer, optional

OPTIONS = {
    "alphabet_size": Option(8, integer(1, 256), "number of distinct symbols K"),
    "pattern_length": Option(10, integer(1, 10_000), "symbols to remember, L"),
    "delay": Option(None, optional(integer(1, 1_000_000)),
                    "steps between the pattern and its recall (blanks, then the delimiter); "
                    "null fills the sequence"),
}


def layout(opts: dict, seq_len: int) -> tuple[int, int]:
    """``(L, d)`` for a sequence of ``seq_len`` steps; ConfigError if it does not fit."""
    L, d = opts["pattern_length"], opts["delay"]
    if d is None:
        if seq_len - 2 * L < 1:
            raise ConfigError(f"task.seq_len: the copy task with pattern_length {L} needs "
                              f"at least {2 * L + 1} steps (pattern, delimiter, recall), "
                              f"got {seq_len}")
        return L, seq_len - 2 * L
    if 2 * L + d > seq_len:
        raise ConfigError(f"task.seq_len: the copy task with pattern_length {L} and delay {d} "
                          f"needs at least {2 * L + d} steps, got {seq_len}")
    return L, d


def check(opts: dict, seq_len: int) -> None:
    layout(opts, seq_len)


def batch(opts: dict, rng: np.random.Generator, split: str, T: int, B: int,
          pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """x (T,B,K+2) one-hot float64; y (T,B) int64 class ids (blank = K)."""
    K = opts["alphabet_size"]
    L, d = layout(opts, T)
    blank, delim = K, K + 1
    symbols = rng.integers(0, K, size=(L, B))
    ids = np.full((T, B), blank, dtype=np.int64)
    ids[:L] = symbols
    ids[L + d - 1] = delim
    y = np.full((T, B), blank, dtype=np.int64)
    y[L + d:2 * L + d] = symbols
    x = np.zeros((T, B, K + 2))
    np.put_along_axis(x, ids[:, :, None], 1.0, axis=2)
    return x, y


def sizes(opts: dict) -> Sizes:
    K = opts["alphabet_size"]
    return Sizes(K + 2, K + 1, f" ({K} symbols, a blank and a delimiter, one-hot)",
                 f" ({K} symbols and a blank)")


SPEC = TaskSpec(
    name="copy",
    description=("Copy memory: read a short string of symbols, wait through a long stretch of "
                 "blanks, then reproduce the string after a delimiter. The delay sets how far "
                 "back in time the gradient has to reach."),
    options=OPTIONS,
    loss="cross_entropy",
    patterns=("many_to_many",),
    default_pattern="many_to_many",
    sizes=sizes,
    batch=batch,
    check=check,
)
