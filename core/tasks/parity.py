"""Parity of a bit stream: is the number of ones so far odd?

The pattern decides the question: ``many_to_one`` asks for the parity of the whole
sequence (one answer at the end), ``many_to_many`` for the running parity at every
step.  Two classes: 0 = even, 1 = odd.  A single flipped bit anywhere changes the
final answer, so the end-only form needs gradient from the last step to the first.
"""

from __future__ import annotations

import numpy as np

from .base import Option, Sizes, TaskSpec, boolean, number

OPTIONS = {
    "signed": Option(False, boolean(), "inputs are -1/+1 instead of 0/1"),
    "p_one": Option(0.5, number(0.0, 1.0), "probability that a bit is 1"),
}


def batch(opts: dict, rng: np.random.Generator, split: str, T: int, B: int,
          pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """x (T,B,1) bits; y (B,) int64 for many_to_one, (T,B) int64 running parity otherwise."""
    bits = (rng.random((T, B)) < opts["p_one"]).astype(np.int64)
    running = np.cumsum(bits, axis=0) % 2
    x = bits.astype(np.float64)[:, :, None]
    if opts["signed"]:
        x = 2.0 * x - 1.0
    if pattern == "many_to_one":
        return x, running[-1].copy()
    return x, running


SPEC = TaskSpec(
    name="parity",
    description=("Parity: say whether a stream of bits holds an odd number of ones. Read to the "
                 "end (many_to_one) every bit matters to one answer; with many_to_many the "
                 "running parity is asked at each step."),
    options=OPTIONS,
    loss="cross_entropy",
    patterns=("many_to_one", "many_to_many"),
    default_pattern="many_to_one",
    sizes=lambda opts: Sizes(1, 2, " (one bit per step)", " (even and odd)"),
    batch=batch,
)
