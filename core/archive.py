"""Saved experiments: one ``.gradlab`` file (a zip) with everything needed to come back.

Members, read in memory and never extracted to disk:

``meta.json``               ``{"format": "gradlab-archive", "version": 1, "app_version": …}``
``experiment.json``         the experiment file (:mod:`core.experiment`), required
``weights.safetensors``     PyTorch-named weights (:mod:`core.weights`), float64
``optimizer.safetensors``   the optimizer state for resuming training (needs the weights)
``history.csv``             training history, columns of :data:`core.training.history.COLUMNS`
``data.safetensors``        the user's own arrays, ``input`` (T, B, D) and ``target``, when the
                            document runs on them instead of its task
``pinned.json``             the pinned runs (:class:`Pinned`): label, experiment, gradient
                            curves and loss history of each, to compare with; optional

:func:`save_archive` writes atomically; :func:`load_archive` checks every member
(names, sizes, JSON, weights, optimizer state, CSV) before it returns anything, and
raises a :class:`~core.errors.UserError` naming the file and the member at fault.
(:mod:`core.document` reads either kind of document: an experiment ``.json`` or an
archive.)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataError, MemoryLimitError, UserError, WeightsError
from .experiment import Experiment, experiment_from_dict, experiment_to_dict
from .fileio import atomic_write
from .layout import param_shapes
from .memory import available_memory, format_bytes
from .training.history import COLUMNS

SUFFIX = ".gradlab"
FORMAT = "gradlab-archive"
VERSION = 1

META = "meta.json"
EXPERIMENT = "experiment.json"
WEIGHTS = "weights.safetensors"
OPTIMIZER = "optimizer.safetensors"
HISTORY = "history.csv"
DATA = "data.safetensors"
PINNED = "pinned.json"
MEMBERS = (META, EXPERIMENT, WEIGHTS, OPTIMIZER, HISTORY, DATA, PINNED)
MAX_PINNED = 4
PIN_FORMAT = "gradlab-pinned"
_PIN_CURVE = re.compile(r"(gradnorm\.l\d{1,4}(_reverse)?(\.(mean|low|high))?"
                        r"|jacobian\.l\d{1,4}(_reverse)?"
                        r"|eig\.[a-z_]{1,16}_l\d{1,4}(_reverse)?\.[a-z]{1,8}\.(re|im))")
_PIN_HISTORY = ("step", "loss", "val_loss")
_MAX_PIN_POINTS = 1_000_000  # values per curve

# Memory needed per byte of a member while loading it (bytes, arrays, float64 copies,
# Python objects for JSON and CSV), and the limits that stop zip bombs.
_LOAD_FACTOR = {META: 10, EXPERIMENT: 10, WEIGHTS: 3, OPTIMIZER: 3, HISTORY: 8, DATA: 3,
                PINNED: 10}
MAX_JSON_BYTES = 16 * 1024**2
MAX_RATIO = 100  # uncompressed / compressed size of a member larger than RATIO_FLOOR
RATIO_FLOOR = 1024**2
_MEMORY_SHARE = 0.8
MAX_ARCHIVE_BYTES = 64 * 1024**3  # a regular file at most this large; members are checked too

_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|nan)")
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass
class SavedExperiment:
    """What an archive holds.

    ``params``: name → float64 array, or None; also attached as ``experiment.weights``.
    ``history``: column → array (``step`` int64, the others float64 with NaN for an
    empty cell), or empty.  ``optimizer_state``: ``Optimizer.state_dict()`` form, or None.
    ``meta``: the archive's ``meta.json`` (format, version, app_version).
    """

    experiment: Experiment
    params: dict[str, np.ndarray] | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer_state: dict[str, np.ndarray] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    data: tuple[np.ndarray, np.ndarray] | None = None
    pinned: list[Pinned] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class Pinned:
    """A run kept to compare the live one with (``Lab.pin``): its ``label`` ("A"…), its
    ``experiment``, the curves the views draw — ``curves``: ``gradnorm.L`` (T,) per layer
    and direction; ``history``: ``step`` and ``loss`` (and ``val_loss``) of its training,
    empty when untrained — and, in the session that pinned it, the ``version`` and probe
    ``result`` themselves (None when it came from a file)."""

    label: str
    experiment: Experiment
    curves: Mapping[str, np.ndarray] = field(default_factory=dict)
    history: Mapping[str, np.ndarray] = field(default_factory=dict)
    version: Any = field(default=None, repr=False)
    result: Any = field(default=None, repr=False)

    @property
    def steps(self) -> int:
        """Training steps behind the pinned weights."""
        return len(self.history.get("step", ()))

    @property
    def layer_keys(self) -> list[str]:
        """The layer keys (``l0``, ``l0_reverse``, …) whose gradient curve was kept."""
        return [k.removeprefix("gradnorm.") for k in self.curves
                if k.startswith("gradnorm.") and k.count(".") == 1]

    def gradient(self, key: str) -> np.ndarray | None:
        """``gradnorm.L`` (T,) of layer key ``L`` (``l0``, ``l0_reverse``…), or None."""
        return self.curves.get(f"gradnorm.{key}")

    def band(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(mean, low, high)`` of layer ``key``'s gradient over the pinned run's seed
        ensemble, or None when it was pinned without one."""
        parts = [self.curves.get(f"gradnorm.{key}.{p}") for p in ("mean", "low", "high")]
        return None if any(p is None for p in parts) else (parts[0], parts[1], parts[2])

    def eigenvalues(self, name: str, block: str) -> np.ndarray | None:
        """Eigenvalues (complex) of matrix ``name``'s ``block`` at pinning, or None."""
        re_, im = (self.curves.get(f"eig.{name}.{block}.{p}") for p in ("re", "im"))
        return None if re_ is None or im is None else re_ + 1j * im


def pin_curves(result: Any) -> dict[str, np.ndarray]:
    """What a pinned run keeps of a probe result (:class:`core.probe.ProbeResult`), as
    named 1-D float64 arrays: ``gradnorm.L`` (T,), with a seed band also
    ``gradnorm.L.mean|low|high``; ``jacobian.L`` (T,); ``eig.NAME.BLOCK.re|im``."""
    out = {k: np.array(v, dtype=np.float64).ravel()
           for k, v in (getattr(result, "arrays", None) or {}).items()
           if k.startswith("gradnorm.")}
    band = getattr(result, "seed_band", None)
    if band is not None:
        for key in band.curves:
            for part, values in zip(("mean", "low", "high"), band.stats(key), strict=True):
                out[f"{key}.{part}"] = np.asarray(values, dtype=np.float64).ravel()
    for key, values in (getattr(result, "jacobian", None) or {}).items():
        out[f"jacobian.{key}"] = np.asarray(values, dtype=np.float64).ravel()
    for name, blocks in (getattr(result, "spectra", None) or {}).items():
        for block, eig in blocks.items():
            e = np.asarray(eig).ravel()
            out[f"eig.{name}.{block}.re"] = e.real.astype(np.float64)
            out[f"eig.{name}.{block}.im"] = e.imag.astype(np.float64)
    return {k: v for k, v in out.items() if _PIN_CURVE.fullmatch(k)}


def app_version() -> str:
    """The installed version of Gradient Flow Lab, or "unknown" when run from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradient-flow-lab")
    except PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- shared checks


def _optimizer_expected(exp: Experiment) -> dict[str, tuple[int, ...]]:
    """Names and shapes of ``Optimizer.state_dict()`` for the experiment (``step`` excluded)."""
    from .training.optim import make_optimizer

    slots = make_optimizer(exp.training, {}).slots
    shapes = param_shapes(exp.model)
    return {f"{slot}.{name}": shape for slot in slots for name, shape in shapes.items()}


def _step_count(label: str, value: Any) -> np.ndarray:
    a = np.asarray(value)  # a 0-d array or a Python int (np.ascontiguousarray would add a dim)
    if a.shape != () or a.dtype.kind not in "iu" or not 0 <= int(a) < 2**63:
        raise WeightsError(f"{label}: step: expected a whole number of steps, got "
                           f"{a.dtype} of shape {a.shape}")
    return np.array(int(a), dtype=np.int64)


def _optimizer_state(label: str, raw: Mapping[str, Any], exp: Experiment) -> dict[str, np.ndarray]:
    """Check an optimizer state against the experiment; float64 slots and an int64 ``step``."""
    from .weights import validate_arrays

    expected = _optimizer_expected(exp)
    if set(raw) != {"step", *expected}:  # raises, naming what is missing or unexpected
        validate_arrays(label, dict(raw), {"step": (), **expected})
    step = raw["step"]
    state = {"step": _step_count(label, step.get() if hasattr(step, "get") else step)}
    state.update(validate_arrays(label, {k: raw[k] for k in expected}, expected))
    return state


# ----------------------------------------------------------------------------- history


def _history_columns(history: Any) -> dict[str, np.ndarray]:
    """Columns of a History or a mapping, checked: known names, equal lengths, numbers."""
    if hasattr(history, "column") and hasattr(history, "columns"):
        history = {c: history.column(c) for c in history.columns}
    out: dict[str, np.ndarray] = {}
    for name, values in history.items():
        if name not in COLUMNS:
            raise DataError(f"history: unknown column {name!r} (expected {', '.join(COLUMNS)})")
        try:
            if name == "step":
                out[name] = np.asarray(values, dtype=np.int64)
            else:
                out[name] = np.array([np.nan if v is None else v for v in values],
                                     dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise DataError(f"history: {name}: not numbers ({_one_line(exc)})") from None
        if out[name].ndim != 1:
            raise DataError(f"history: {name}: expected one value per step")
    lengths = {len(v) for v in out.values()}
    if len(lengths) > 1:
        raise DataError(f"history: the columns differ in length ({sorted(lengths)})")
    return out


def _cell(value: float) -> str:
    if math.isnan(value):
        return ""
    return repr(float(value)) if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def history_to_csv(columns: Mapping[str, np.ndarray]) -> str:
    """CSV text of history columns; an empty cell is a missing value (NaN)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(columns))
    cols = [[str(int(v)) for v in a] if n == "step" else [_cell(float(v)) for v in a]
            for n, a in columns.items()]
    w.writerows(zip(*cols, strict=True))
    return buf.getvalue()


def history_from_csv(text: str, label: str) -> dict[str, np.ndarray]:
    """Parse ``history.csv`` strictly: known header, numbers or empty cells, one line each.

    ``step`` cells are whole numbers; the other cells numbers (``inf`` and ``nan``
    included) or empty (NaN).  Raises :class:`DataError` naming ``label`` and the line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header or header == [""]:
            raise DataError(f"{label} line 1: no header row (expected column names from "
                            f"{', '.join(COLUMNS)})")
        for name in header:
            if name not in COLUMNS:
                raise DataError(f"{label} line 1: unknown column {name[:40]!r} "
                                f"(expected {', '.join(COLUMNS)})")
        if len(set(header)) != len(header):
            raise DataError(f"{label} line 1: a column appears twice")
        cols: list[list[Any]] = [[] for _ in header]
        for row in reader:
            line = reader.line_num
            if len(row) != len(header):
                raise DataError(f"{label} line {line}: {len(row)} cells, expected {len(header)}")
            for name, cell, col in zip(header, row, cols, strict=True):
                col.append(_history_cell(cell.strip(), name, f"{label} line {line}"))
    except csv.Error as exc:
        raise DataError(f"{label} line {reader.line_num}: malformed CSV ({exc})") from None
    return {name: np.array(col, dtype=np.int64 if name == "step" else np.float64)
            for name, col in zip(header, cols, strict=True)}


def _history_cell(cell: str, name: str, where: str) -> int | float:
    if name == "step":
        if not _INTEGER.fullmatch(cell) or len(cell) > 19 or abs(int(cell)) >= 2**63:
            raise DataError(f"{where}, column step: expected a whole number, got {cell[:40]!r}")
        return int(cell)
    if not cell:
        return math.nan
    if not _NUMBER.fullmatch(cell.lower()):
        raise DataError(f"{where}, column {name}: expected a number or an empty cell, "
                        f"got {cell[:40]!r}")
    return float(cell)


# ----------------------------------------------------------------------------- save


def save_archive(path: str | os.PathLike[str], exp: Experiment,
                 params: Mapping[str, Any] | None,
                 history: Mapping[str, Any] | None = None,
                 optimizer_state: Mapping[str, Any] | None = None,
                 data: tuple[Any, Any] | None = None,
                 pinned: Sequence[Pinned] = ()) -> None:
    """Write ``exp`` with its weights, history, optimizer state, (``data``) the user's
    ``(input, target)`` arrays and the ``pinned`` runs to one ``.gradlab`` file.

    Everything is checked first (the experiment validates; weights and optimizer state
    fit its model and optimizer and are finite); the zip is built in a temporary file and renamed
    over ``path``, so a failure part-way leaves the previous file intact.
    """
    from safetensors.numpy import save as safetensors_bytes

    from .weights import validate_arrays

    p = Path(path)
    doc = experiment_to_dict(exp)
    try:  # never write an archive that would not load
        experiment_from_dict(json.loads(json.dumps(doc)))
    except UserError as exc:
        raise type(exc)(f"{p}: {EXPERIMENT}: {exc}") from None
    members: list[tuple[str, bytes, int]] = []
    meta = {"format": FORMAT, "version": VERSION, "app_version": app_version()}
    members.append((META, json.dumps(meta, indent=2).encode(), zipfile.ZIP_DEFLATED))
    text = json.dumps(doc, indent=2) + "\n"
    members.append((EXPERIMENT, text.encode("utf-8"), zipfile.ZIP_DEFLATED))
    if params is not None:
        weights = validate_arrays(f"{p}: {WEIGHTS}", dict(params), param_shapes(exp.model))
        members.append((WEIGHTS, safetensors_bytes(weights), zipfile.ZIP_STORED))
    if optimizer_state is not None:
        if params is None:
            raise WeightsError(f"{p}: an optimizer state is saved only with the weights it "
                               "belongs to")
        state = _optimizer_state(f"{p}: {OPTIMIZER}", optimizer_state, exp)
        members.append((OPTIMIZER, safetensors_bytes(state), zipfile.ZIP_STORED))
    if history is not None:
        columns = _history_columns(history)
        if columns:
            members.append((HISTORY, history_to_csv(columns).encode("utf-8"),
                            zipfile.ZIP_DEFLATED))
    if data is not None:
        x, y = _checked_data(f"{p}: {DATA}", exp, *data)
        members.append((DATA, safetensors_bytes({"input": np.ascontiguousarray(x),
                                                 "target": np.ascontiguousarray(y)}),
                        zipfile.ZIP_DEFLATED))
    if pinned:
        members.append((PINNED, pinned_to_json(pinned, f"{p}: {PINNED}").encode("utf-8"),
                        zipfile.ZIP_DEFLATED))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w") as zf:
                for name, data, method in members:
                    zf.writestr(name, data, compress_type=method)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(p, write)


# ----------------------------------------------------------------------------- load


def _unsafe(name: str) -> bool:
    parts = re.split(r"[/\\]", name)
    return (name.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", name))
            or ".." in parts or "\0" in name)


def _check_members(p: Path, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by name: safe, expected, unique, plain, and not a bomb."""
    found: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.orig_filename
        shown = repr(name[:80])
        if _unsafe(name) or _unsafe(info.filename):
            raise UserError(f"{p}: refusing entry {shown}: an absolute path or one that "
                            "leaves the archive")
        if name not in MEMBERS:
            raise UserError(f"{p}: unexpected entry {shown} (a Gradient Flow Lab archive "
                            f"holds {', '.join(MEMBERS)})")
        if name in found:
            raise UserError(f"{p}: the entry {shown} appears twice")
        if info.flag_bits & 0x1:
            raise UserError(f"{p}: {name}: encrypted entries are not supported")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UserError(f"{p}: {name}: unsupported compression method {info.compress_type}")
        if (info.file_size > RATIO_FLOOR
                and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise MemoryLimitError(
                f"{p}: {name}: would expand from {format_bytes(info.compress_size)} to "
                f"{format_bytes(info.file_size)} (more than {MAX_RATIO} times); refusing a "
                "suspected zip bomb")
        if name in (META, EXPERIMENT, PINNED) and info.file_size > MAX_JSON_BYTES:
            raise UserError(f"{p}: {name}: {format_bytes(info.file_size)}, larger than the "
                            f"{format_bytes(MAX_JSON_BYTES)} an experiment file may be")
        found[name] = info
    if EXPERIMENT not in found:
        raise UserError(f"{p}: no {EXPERIMENT} inside; not a Gradient Flow Lab archive")
    need = sum(info.file_size * _LOAD_FACTOR[name] for name, info in found.items())
    avail = available_memory()
    if need > _MEMORY_SHARE * avail:
        total = sum(info.file_size for info in found.values())
        raise MemoryLimitError(f"{p}: unpacks to {format_bytes(total)}; loading it would need "
                               f"about {format_bytes(need)}, more than 80% of the "
                               f"{format_bytes(avail)} of memory available")
    return found


def _read_members(p: Path) -> dict[str, bytes]:
    """Every entry's bytes, after the checks of :func:`_check_members`."""
    from .safeio import open_regular

    fh = open_regular(p, MAX_ARCHIVE_BYTES, str(p), UserError, f"a {SUFFIX} file")
    try:
        with fh, zipfile.ZipFile(fh) as zf:
            infos = _check_members(p, zf.infolist())
            out: dict[str, bytes] = {}
            for name, info in infos.items():
                try:
                    out[name] = zf.read(info)
                except UserError:
                    raise
                except MemoryError:
                    raise MemoryLimitError(f"{p}: {name}: not enough memory to read it") from None
                except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError, OSError
                    raise UserError(f"{p}: {name}: corrupt entry ({_one_line(exc)})") from None
            return out
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{p}: is a folder, not a {SUFFIX} file") from None
    except PermissionError as exc:
        raise UserError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except MemoryError:
        raise MemoryLimitError(f"{p}: not enough memory to open it") from None
    except Exception as exc:  # BadZipFile, a truncated file, a corrupt directory
        raise UserError(f"{p}: not a Gradient Flow Lab archive (not a readable zip file: "
                        f"{_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _json(p: Path, name: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: {name}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: {name}: not valid JSON (line {exc.lineno}, column "
                          f"{exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; deep nesting
        raise ConfigError(f"{p}: {name}: not usable JSON ({_one_line(exc)})") from None


def _check_meta(p: Path, data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {}
    meta = _json(p, META, data)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{p}: {META}: not a Gradient Flow Lab archive (format should be "
                        f"{FORMAT!r})")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"{p}: {META}: version: expected a positive integer, got "
                        f"{str(version)[:40]!r}")
    if version > VERSION:
        raise UserError(f"{p}: archive format version {version} is newer than this build "
                        f"reads (version {VERSION}); update Gradient Flow Lab")
    return meta


def load_archive(path: str | os.PathLike[str]) -> SavedExperiment:
    """Read and validate a ``.gradlab`` file; nothing is returned until every part checks out.

    Raises :class:`UserError` (a ConfigError, WeightsError, DataError or
    MemoryLimitError where one fits) naming the file, the member and the field or line.
    """
    from .weights import read_safetensors_bytes, weights_from_bytes

    p = Path(path)
    raw = _read_members(p)
    meta = _check_meta(p, raw.get(META))
    data = _json(p, EXPERIMENT, raw[EXPERIMENT])
    try:
        exp = experiment_from_dict(data)
    except UserError as exc:
        raise type(exc)(f"{p}: {EXPERIMENT}: {exc}") from None
    params = None
    if WEIGHTS in raw:
        params = weights_from_bytes(raw[WEIGHTS], exp.model, f"{p}: {WEIGHTS}")
    state = None
    if OPTIMIZER in raw:
        label = f"{p}: {OPTIMIZER}"
        if params is None:
            raise WeightsError(f"{label}: an optimizer state without {WEIGHTS} cannot be resumed")
        names = {"step": (), **_optimizer_expected(exp)}
        state = _optimizer_state(label, read_safetensors_bytes(raw[OPTIMIZER], label, names), exp)
    history: dict[str, np.ndarray] = {}
    if HISTORY in raw:
        try:
            text = raw[HISTORY].decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{p}: {HISTORY}: not UTF-8 text") from None
        history = history_from_csv(text, f"{p}: {HISTORY}")
    arrays = _data_from_bytes(f"{p}: {DATA}", raw[DATA], exp) if DATA in raw else None
    pins = (pinned_from_json(_json(p, PINNED, raw[PINNED]), f"{p}: {PINNED}")
            if PINNED in raw else [])
    exp.weights = params
    return SavedExperiment(exp, params, history, state, meta, arrays, pins)


def _checked_data(label: str, exp: Experiment, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    from .userdata import check_arrays

    try:
        return check_arrays(exp.model, x, y)
    except UserError as exc:
        raise DataError(f"{label}: {exc}") from None


_DATA_DTYPES = {"F64": np.float64, "F32": np.float32, "I64": np.int64, "I32": np.int32}


def _data_from_bytes(label: str, blob: bytes, exp: Experiment) -> tuple[np.ndarray, np.ndarray]:
    """The ``input`` and ``target`` arrays of the data member, checked against the model."""
    from .weights import safetensors_views

    views = safetensors_views(blob, label, DataError, MemoryLimitError)
    if set(views) != {"input", "target"}:
        raise DataError(f"{label}: expected the arrays 'input' and 'target', found "
                        f"{', '.join(sorted(views)) or 'none'}")
    arrays = []
    for name in ("input", "target"):
        view = views[name]
        dtype = _DATA_DTYPES.get(view["dtype"])
        if dtype is None:
            raise DataError(f"{label}: {name}: numbers of type {view['dtype']} are not read "
                            "(float64, float32, int64 or int32)")
        try:
            arrays.append(np.frombuffer(view["data"], dtype=dtype).reshape(view["shape"]))
        except ValueError as exc:
            raise DataError(f"{label}: {name}: {_one_line(exc)}") from None
    return _checked_data(label, exp, *arrays)


# ----------------------------------------------------------------------------- pinned runs


def _pin_number(v: float) -> float | str:
    return float(v) if math.isfinite(v) else ("nan" if math.isnan(v) else
                                               ("inf" if v > 0 else "-inf"))


def pinned_to_json(pinned: Sequence[Pinned], label: str = PINNED) -> str:
    """The ``pinned.json`` text of ``pinned``: numbers as JSON numbers, NaN and ±Inf as
    the strings ``"nan"``, ``"inf"``, ``"-inf"``.  Checked as a load checks it."""
    runs = []
    for pin in pinned:
        runs.append({
            "label": pin.label, "experiment": experiment_to_dict(pin.experiment),
            "curves": {k: [_pin_number(x) for x in np.asarray(v, np.float64).ravel()]
                       for k, v in pin.curves.items()},
            "history": {k: ([int(x) for x in v] if k == "step" else
                            [_pin_number(x) for x in np.asarray(v, np.float64).ravel()])
                        for k, v in pin.history.items()}})
    doc = {"format": PIN_FORMAT, "version": 1, "pinned": runs}
    text = json.dumps(doc, indent=1) + "\n"
    pinned_from_json(json.loads(text), label)  # never write what would not load
    return text


def pinned_from_json(doc: Any, label: str = PINNED) -> list[Pinned]:
    """The pinned runs of a parsed ``pinned.json``; :class:`UserError` (a ConfigError or
    DataError) naming ``label``, the run and the field at fault."""
    if not isinstance(doc, dict) or doc.get("format") != PIN_FORMAT:
        raise ConfigError(f"{label}: not a list of pinned runs (format should be "
                          f"{PIN_FORMAT!r})")
    if doc.get("version") != 1:
        raise ConfigError(f"{label}: version: expected 1, got {str(doc.get('version'))[:40]!r}")
    runs = doc.get("pinned")
    if not isinstance(runs, list):
        raise ConfigError(f"{label}: pinned: expected a list of runs")
    if len(runs) > MAX_PINNED:
        raise ConfigError(f"{label}: pinned: {len(runs)} runs, at most {MAX_PINNED}")
    out = []
    for i, run in enumerate(runs):
        where = f"{label}: pinned[{i}]"
        if not isinstance(run, dict) or set(run) != {"label", "experiment", "curves", "history"}:
            raise ConfigError(f"{where}: expected the fields label, experiment, curves, history")
        name = run["label"]
        if not isinstance(name, str) or not name.strip() or len(name) > 40:
            raise ConfigError(f"{where}.label: expected a name of 1 to 40 characters")
        try:
            exp = experiment_from_dict(run["experiment"])
        except UserError as exc:
            raise type(exc)(f"{where}.experiment: {exc}") from None
        curves = _pin_columns(f"{where}.curves", run["curves"], _PIN_CURVE.fullmatch)
        history = _pin_columns(f"{where}.history", run["history"], _PIN_HISTORY.__contains__)
        if len({len(v) for v in history.values()}) > 1:
            raise DataError(f"{where}.history: the columns differ in length")
        if history and "step" not in history:
            raise DataError(f"{where}.history: no step column")
        out.append(Pinned(name, exp, curves, history))
    return out


def _pin_columns(where: str, raw: Any, known: Any) -> dict[str, np.ndarray]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object of named lists of numbers")
    out: dict[str, np.ndarray] = {}
    for key, values in raw.items():
        if not known(key):
            raise DataError(f"{where}: unknown curve {str(key)[:40]!r}")
        if not isinstance(values, list) or len(values) > _MAX_PIN_POINTS:
            raise DataError(f"{where}.{key}: expected a list of at most "
                            f"{_MAX_PIN_POINTS} numbers")
        if key == "step":
            if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63
                       for v in values):
                raise DataError(f"{where}.step: expected whole numbers of steps")
            out[key] = np.array(values, dtype=np.int64)
            continue
        cells = []
        for j, v in enumerate(values):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(float(v))
            elif v in ("nan", "inf", "-inf"):
                cells.append(float(v))
            else:
                raise DataError(f"{where}.{key}[{j}]: expected a number, \"nan\", \"inf\" or "
                                f"\"-inf\", got {str(v)[:40]!r}")
        out[key] = np.array(cells, dtype=np.float64)
    return out
