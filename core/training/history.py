"""Training history: snapshots recorded into columns, written as ``history.csv``."""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

import numpy as np

from ..fileio import atomic_write_text

COLUMNS = ("step", "loss", "val_loss", "grad_norm_before", "grad_norm_after", "lr", "elapsed_s")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # nan, inf, -inf
    return str(value)


class History:
    """One row per recorded :class:`~core.training.loop.Snapshot`, kept as columns.

    ``val_loss`` is missing on most steps: an empty CSV cell, NaN in :meth:`column`.
    """

    columns = COLUMNS

    def __init__(self) -> None:
        self._data: dict[str, list[Any]] = {c: [] for c in COLUMNS}

    def record(self, snap: Any) -> None:
        """Append a snapshot's step, losses, gradient norms, learning rate and time."""
        for c in COLUMNS:
            self._data[c].append(getattr(snap, c))

    def __len__(self) -> int:
        return len(self._data["step"])

    def column(self, name: str) -> np.ndarray:
        """One column as an array: ``step`` (N,) int64, the others (N,) float64."""
        if name == "step":
            return np.asarray(self._data[name], dtype=np.int64)
        return np.array([np.nan if v is None else v for v in self._data[name]], dtype=np.float64)

    def to_csv(self) -> str:
        """The CSV text: a header row, then one row per step."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for row in zip(*(self._data[c] for c in COLUMNS), strict=True):
            w.writerow([_cell(v) for v in row])
        return buf.getvalue()

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_csv` to ``path`` atomically."""
        atomic_write_text(path, self.to_csv())
