"""Learning-rate schedules: constant, step decay and cosine annealing.

``step`` counts the updates already taken (0 for the first update), like
``torch.optim.lr_scheduler``'s ``last_epoch`` stepped once per update.
"""

from __future__ import annotations

import math

from ..experiment import TrainingConfig


def lr_at(cfg: TrainingConfig, step: int) -> float:
    """The learning rate of update ``step`` (0-based) under ``cfg.schedule``.

    - ``constant``: ``lr``.
    - ``step``: ``lr · gamma^(step // step_size)``.
    - ``cosine``: from ``lr`` down to ``min_lr`` over ``cfg.steps`` updates,
      ``min_lr + (lr − min_lr)·(1 + cos(π·step/steps))/2``, then ``min_lr``.
    """
    s = cfg.schedule
    step = max(int(step), 0)
    if s.name == "constant":
        return float(cfg.lr)
    if s.name == "step":
        return float(cfg.lr * s.gamma ** (step // max(s.step_size, 1)))
    if s.name == "cosine":
        total = max(cfg.steps, 1)
        frac = min(step, total) / total
        return float(s.min_lr + (cfg.lr - s.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac)))
    raise ValueError(f"unknown schedule {s.name!r}")
