"""Real time series: the bundled data sets and a user's CSV file.

Both tasks forecast the next value(s) of a single series.  The series is split
in time: the first part trains, the last ``val_fraction`` validates, and no window
straddles the split.  Values are normalised with the mean and standard deviation
of the training part only, so nothing about the validation part leaks into training.

A window starting at ``s`` gives ``x[t] = z[s+t]`` and, for ``k < horizon``,
``y[t, k] = z[s+t+1+k]`` (many_to_many) or ``y[k] = z[s+T+k]`` (many_to_one).
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..resources import resource_path
from .base import HORIZON, VAL_FRACTION, Option, TaskSpec, choice, describe, forecast_sizes

DATA_DIR = resource_path("datasets")
MAX_CSV_BYTES = 64 * 1024 * 1024  # with MAX_CSV_VALUES: read in seconds, in little memory
MAX_CSV_VALUES = 1_000_000  # values kept from one column (8 MB as float64)


@dataclass(frozen=True)
class Dataset:
    """A bundled series: its CSV file, the value column and a one-line description."""

    file: str
    column: str
    title: str


DATASETS: dict[str, Dataset] = {
    "sunspots": Dataset("sunspots.csv", "sunspots", "Yearly mean sunspot number, 1700–2008"),
    "nile": Dataset("nile.csv", "flow", "Annual flow of the Nile at Aswan, 1871–1970 (10⁸ m³)"),
    "co2": Dataset("co2.csv", "co2", "Monthly mean CO₂ at Mauna Loa, 1958–2001 (ppm)"),
    "elnino": Dataset("elnino.csv", "sst",
                      "Monthly sea-surface temperature, Niño 1+2 region, 1950–2010 (°C)"),
}


# ----------------------------------------------------------------------------- CSV reading

def _number(cell: str, decimal_comma: bool) -> float | None:
    """The cell as a float, or None when it is not a number."""
    try:
        return float(cell)
    except ValueError:
        pass
    if decimal_comma and cell.count(",") == 1 and "." not in cell:
        try:
            return float(cell.replace(",", "."))
        except ValueError:
            return None
    return None


def _delimiter(text: str) -> str:
    """Tab, semicolon or comma, judged from the first line that holds data."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            for delim in ("\t", ";", ","):
                if delim in line:
                    return delim
            break
    return ","


def _open_csv(path: Path, display: str) -> tuple[io.BufferedReader, str]:
    """The CSV file opened for streaming (a regular file within the size cap, not
    binary, not empty) and its text encoding: UTF-8 (with or without a BOM), else
    Latin-1."""
    from ..safeio import open_regular

    fh = open_regular(path, 2**62, display, DataError, "a CSV series")
    try:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_CSV_BYTES:
            raise DataError(f"{display}: the file is {size / 2**20:.0f} MB; a CSV series may "
                            f"be at most {MAX_CSV_BYTES // 2**20} MB")
        if size == 0:
            raise DataError(f"{display}: the file is empty")
        head = fh.read(65536)
        if b"\0" in head:
            raise DataError(f"{display}: this looks like a binary file, not CSV text")
        encoding = "utf-8-sig"
        try:  # a whole pass over the bytes, in blocks: no copy of the file in memory
            decoder = codecs.getincrementaldecoder("utf-8")()
            fh.seek(0)
            for block in iter(lambda: fh.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            encoding = "latin-1"
        except OSError as exc:
            raise DataError(f"{display}: cannot read ({exc.strerror or exc})") from None
        fh.seek(0)
        return fh, encoding
    except BaseException:
        fh.close()
        raise


def _choose_column(first: list[str], line: int, display: str, column: str | int | None,
                   has_header: bool | str, decimal_comma: bool) -> tuple[int, bool, str]:
    """From the first row: ``(column index, whether that row is a header, label)``."""
    cells = [c.strip() for c in first]
    if isinstance(column, str):
        if has_header is False:
            raise ConfigError(f"task.column: a column name ({column!r}) needs a header row, "
                              "but has_header is false; give the column's index instead")
        header = True
    elif isinstance(column, int):
        if column >= len(cells):
            raise DataError(f"{display} line {line}: there is no column {column}; the first "
                            f"row has {len(cells)} (numbered from 0)")
        header = (has_header if isinstance(has_header, bool)
                  else _number(cells[column], decimal_comma) is None)
    else:
        header = (has_header if isinstance(has_header, bool)
                  else _number(cells[-1], decimal_comma) is None)
    if isinstance(column, str):
        names = [c.casefold() for c in cells]
        if column in cells:
            index = cells.index(column)
        elif column.strip().casefold() in names:
            index = names.index(column.strip().casefold())
        else:
            listed = ", ".join(describe(c) for c in cells[:12]) + (
                f" and {len(cells) - 12} more" if len(cells) > 12 else "")
            raise DataError(f"{display} line {line}: no column {column!r} (columns: {listed})")
    else:
        index = len(cells) - 1 if column is None else column
    label = f"column {cells[index]!r}" if header and cells[index] else f"column {index}"
    return index, header, label


def read_csv_column(path: str | os.PathLike[str], column: str | int | None = None,
                    has_header: bool | str = "auto",
                    display: str | None = None) -> tuple[np.ndarray, str]:
    """One numeric column of a CSV file as a (N,) float64 array, and its label.

    ``column`` is a header name, a 0-based index, or None for the last column.
    ``has_header`` is True, False or "auto" (a header when the first row's cell in
    that column is not a number).  Blank lines and lines starting with ``#`` are
    skipped; the delimiter is a comma, semicolon or tab.  Every problem raises
    :class:`DataError` naming the file (as ``display``), the line and the column.
    """
    p = Path(path).expanduser()
    display = display or str(path)
    fh, encoding = _open_csv(p, display)
    with fh, io.TextIOWrapper(fh, encoding=encoding, newline="") as text:
        return _parse_csv(text, display, column, has_header)


def _parse_csv(text: io.TextIOBase, display: str, column: str | int | None,
               has_header: bool | str) -> tuple[np.ndarray, str]:
    """:func:`read_csv_column` on an open text stream, line by line, at most
    :data:`MAX_CSV_VALUES` values kept (8 bytes each)."""
    delim = _delimiter(text.read(65536))
    text.seek(0)
    decimal_comma = delim != ","
    reader = csv.reader(text, delimiter=delim)
    index, label, header = -1, "", False
    values = array("d")
    try:
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            if index < 0:
                index, header, label = _choose_column(row, line, display, column, has_header,
                                                      decimal_comma)
                if header:
                    continue
            if index >= len(row):
                cells = "1 cell" if len(row) == 1 else f"{len(row)} cells"
                raise DataError(f"{display} line {line}: only {cells}, so no {label}")
            cell = row[index].strip()
            if not cell:
                raise DataError(f"{display} line {line}, {label}: empty cell")
            value = _number(cell, decimal_comma)
            if value is None:
                raise DataError(f"{display} line {line}, {label}: {describe(cell)} "
                                "is not a number")
            if math.isnan(value):
                raise DataError(f"{display} line {line}, {label}: missing value ({cell})")
            if math.isinf(value):
                shown = cell if len(cell) <= 40 else cell[:37] + "..."
                raise DataError(f"{display} line {line}, {label}: {shown} is not finite")
            if len(values) >= MAX_CSV_VALUES:
                raise DataError(f"{display} line {line}: more than {MAX_CSV_VALUES:,} values; "
                                "a CSV series may hold at most that many")
            values.append(value)
    except csv.Error as exc:
        raise DataError(f"{display} line {reader.line_num}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise DataError(f"{display}: cannot read ({exc.strerror or exc})") from None
    if index < 0:
        raise DataError(f"{display}: holds no data (only blank or comment lines)")
    if not values:
        raise DataError(f"{display}: has a header row but no data rows")
    return np.frombuffer(values, dtype=np.float64).copy(), label


# ----------------------------------------------------------------------------- split and windows

def split_index(n: int, val_fraction: float) -> int:
    """Number of leading values that train; the remaining ``≈ n·val_fraction`` validate."""
    n_val = max(1, math.floor(n * val_fraction + 0.5))
    return n - n_val


def max_seq_len_for(n: int, horizon: int, val_fraction: float) -> int:
    """The longest window (without the horizon) that fits both parts; < 1 if none does."""
    n_train = split_index(n, val_fraction)
    return min(n_train, n - n_train) - horizon


def min_length(seq_len: int, horizon: int, val_fraction: float) -> int:
    """The shortest series that holds one training and one validation window."""
    m = seq_len + horizon
    if m > 2**40:  # beyond float precision (n += 1 no longer moves n·f): a close upper bound
        f = Fraction(val_fraction)
        return math.ceil(m / min(f, 1 - f)) + 1
    n = max(2 * m, math.floor((m - 0.5) / val_fraction) - 2, math.floor(m / (1 - val_fraction)) - 2)
    while max_seq_len_for(n, horizon, val_fraction) < seq_len:
        n += 1
    return n


@dataclass(frozen=True)
class PreparedSeries:
    """A series ready for windowing: raw (N,), normalised values (N,), the split point."""

    raw: np.ndarray
    values: np.ndarray
    n_train: int
    mean: float
    std: float
    label: str


def prepare(raw: np.ndarray, val_fraction: float, label: str) -> PreparedSeries:
    """Split ``raw`` (N,) in time and normalise it with the training part's mean and std."""
    n_train = split_index(len(raw), val_fraction)
    if n_train < 1:
        raise DataError(f"{label}: only {len(raw)} value(s), too few to split")
    train = raw[:n_train]
    with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused just below
        mean, std = float(train.mean()), float(train.std())
        values = (raw - mean) / std if std > 0 else raw
    if not (math.isfinite(mean) and math.isfinite(std) and np.isfinite(values).all()):
        i = int(np.argmax(np.abs(raw)))
        raise DataError(f"{label}: value {i + 1} of the series ({raw[i]:g}) is too large to "
                        "normalise (the mean and spread overflow); rescale the column")
    if not std > 0:
        raise DataError(f"{label}: the training part is constant ({mean:g}); nothing to learn")
    raw = raw.copy()
    raw.flags.writeable = False
    values.flags.writeable = False
    return PreparedSeries(raw, values, n_train, mean, std, label)


def windows(series: PreparedSeries, split: str, rng: np.random.Generator, T: int, B: int,
            horizon: int, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """B random windows from one side of the split: x (T,B,1); y (T,B,h) or (B,h)."""
    lo, hi = (0, series.n_train) if split == "train" else (series.n_train, len(series.values))
    last = hi - T - horizon
    if last < lo:
        raise DataError(f"{series.label}: the {split} part has {hi - lo} values, fewer than "
                        f"seq_len {T} + horizon {horizon}")
    starts = rng.integers(lo, last + 1, size=B)
    z = series.values
    idx = starts[None, :] + np.arange(T)[:, None]  # (T, B)
    x = z[idx][:, :, None]
    ahead = np.arange(horizon)
    if pattern == "many_to_one":
        return x, z[starts[:, None] + T + ahead[None, :]]
    return x, z[idx[:, :, None] + 1 + ahead]


_CACHE: OrderedDict[tuple, PreparedSeries] = OrderedDict()
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()


def cached(key: tuple, build: Callable[[], PreparedSeries]) -> PreparedSeries:
    """``build()`` once per ``key`` (a few recent series are kept; safe across threads)."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    series = build()
    with _CACHE_LOCK:
        _CACHE[key] = series
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return series


# ----------------------------------------------------------------------------- the two tasks

def load_dataset(opts: dict) -> PreparedSeries:
    """The bundled series named by ``opts["series"]``, split and normalised."""
    ds = DATASETS[opts["series"]]

    def build() -> PreparedSeries:
        raw, label = read_csv_column(DATA_DIR / ds.file, ds.column, True, display=ds.file)
        return prepare(raw, opts["val_fraction"], f"{ds.file}, {label}")

    return cached(("dataset", opts["series"], opts["val_fraction"]), build)


def load_csv(opts: dict) -> PreparedSeries:
    """The user's CSV column named by the options, split and normalised."""
    if opts["path"] is None:
        raise ConfigError("task.path: the csv task needs the path of a CSV file")
    path = Path(opts["path"]).expanduser()
    display = opts["path"]
    try:
        st = path.stat()
        stamp: tuple = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except (OSError, ValueError):  # ValueError: a NUL character in the path
        stamp = (str(path), None, None)

    def build() -> PreparedSeries:
        raw, label = read_csv_column(path, opts["column"], opts["has_header"], display=display)
        return prepare(raw, opts["val_fraction"], f"{display}, {label}")

    key = ("csv", *stamp, display, opts["column"], opts["has_header"], opts["val_fraction"])
    return cached(key, build)


def check_length(series: PreparedSeries, seq_len: int, horizon: int, val_fraction: float,
                 error: Callable[[str], Exception], prefix: str) -> None:
    """Raise ``error`` unless one training and one validation window fit the series."""
    n = len(series.values)
    if max_seq_len_for(n, horizon, val_fraction) >= seq_len:
        return
    need = min_length(seq_len, horizon, val_fraction)
    longest = max_seq_len_for(n, horizon, val_fraction)
    hint = f"; use seq_len {longest} or less" if longest >= 1 else ""
    raise error(f"{prefix}too few values: {n} found, at least {need} needed for one training "
                f"and one validation window of seq_len {seq_len} + horizon {horizon} "
                f"(val_fraction {val_fraction:g}){hint}")


def _check_dataset(opts: dict, seq_len: int) -> None:
    series = load_dataset(opts)
    check_length(series, seq_len, opts["horizon"], opts["val_fraction"], ConfigError,
                 f"task.seq_len: the {opts['series']} series has ")


def _check_csv(opts: dict, seq_len: int) -> None:
    series = load_csv(opts)
    check_length(series, seq_len, opts["horizon"], opts["val_fraction"], DataError,
                 f"{series.label}: ")


def _dataset_batch(opts: dict, rng: np.random.Generator, split: str, T: int, B: int,
                   pattern: str) -> tuple[np.ndarray, np.ndarray]:
    _check_dataset(opts, T)
    return windows(load_dataset(opts), split, rng, T, B, opts["horizon"], pattern)


def _csv_batch(opts: dict, rng: np.random.Generator, split: str, T: int, B: int,
               pattern: str) -> tuple[np.ndarray, np.ndarray]:
    _check_csv(opts, T)
    return windows(load_csv(opts), split, rng, T, B, opts["horizon"], pattern)


def _dataset_max(opts: dict) -> int | None:
    return max_seq_len_for(len(load_dataset(opts).values), opts["horizon"], opts["val_fraction"])


def _csv_max(opts: dict) -> int | None:
    if opts["path"] is None:
        return None
    return max_seq_len_for(len(load_csv(opts).values), opts["horizon"], opts["val_fraction"])


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected the path of a CSV file, got {describe(value)}")
    return value


def _column(value: Any, where: str) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"{where}: expected a column name or a 0-based column index, "
                      f"got {describe(value)}")


def _has_header(value: Any, where: str) -> bool | str:
    if isinstance(value, bool) or value == "auto":
        return value
    raise ConfigError(f"{where}: expected true, false or \"auto\", got {describe(value)}")


PATTERNS = ("many_to_many", "output_recurrence", "many_to_one")

DATASET_SPEC = TaskSpec(
    name="dataset",
    description=("Forecast the next value of a real, bundled time series (sunspots, the Nile, "
                 "CO₂ at Mauna Loa, El Niño sea temperature). Training uses the earlier part, "
                 "validation the most recent years."),
    options={
        "series": Option("sunspots", choice(*DATASETS), "which bundled series"),
        "horizon": HORIZON,
        "val_fraction": VAL_FRACTION,
    },
    loss="mse",
    patterns=PATTERNS,
    default_pattern="many_to_many",
    sizes=forecast_sizes(),
    batch=_dataset_batch,
    forecasting=True,
    check=_check_dataset,
    max_seq_len=_dataset_max,
)

CSV_SPEC = TaskSpec(
    name="csv",
    description=("Forecast the next value of a column from your own CSV file. The series is "
                 "split in time (the last part validates) and scaled with the training "
                 "part's mean and spread."),
    options={
        "path": Option(None, _path, "the CSV file (relative paths from the working folder)"),
        "column": Option(None, _column, "header name or 0-based index; default the last column"),
        "has_header": Option("auto", _has_header, "true, false or \"auto\""),
        "horizon": HORIZON,
        "val_fraction": VAL_FRACTION,
    },
    loss="mse",
    patterns=PATTERNS,
    default_pattern="many_to_many",
    sizes=forecast_sizes(),
    batch=_csv_batch,
    forecasting=True,
    check=_check_csv,
    max_seq_len=_csv_max,
)
