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

    def copy(self) -> History:
        """An independent copy (a recorded row is never changed, so lists suffice)."""
        new = History()
        new._data = {c: list(v) for c, v in self._data.items()}
        return new

    def arrays(self) -> dict[str, np.ndarray]:
        """Every column as :meth:`column` gives it."""
        return {c: self.column(c) for c in COLUMNS}

    @classmethod
    def from_arrays(cls, columns: Any) -> History:
        """A history from columns (``step`` and any of the others; a missing column
        or a NaN cell reads as not measured)."""
        new = cls()
        if not columns:
            return new
        n = len(columns["step"]) if "step" in columns else len(next(iter(columns.values())))
        for c in COLUMNS:
            values = columns.get(c)
            if values is None:
                new._data[c] = list(range(1, n + 1)) if c == "step" else [None] * n
            elif c == "step":
                new._data[c] = [int(v) for v in values]
            else:
                new._data[c] = [None if v != v else float(v) for v in values]
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return all(np.array_equal(self.column(c), other.column(c), equal_nan=True)
                   for c in COLUMNS)

    __hash__ = None  # type: ignore[assignment]
