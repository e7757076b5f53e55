"""Export every plot as PNG, SVG and CSV: from the app's live panels or headless.

Files, for a panel whose ``name`` is ``gradients``:

``gradients.png``
    the panel's plots as an image, at the panel's size times ``scale``.
``gradients.svg``
    the same as vector graphics (heatmaps are embedded as images).
``gradients.csv``
    the panel's 1-D columns (:meth:`PlotPanel.to_csv_table`): a header row of column
    names, then one row per point.  A shorter column leaves its trailing cells empty.
``gradients.<key>.csv``
    one file per 2-D heatmap ``key`` (e.g. ``hidden.h.l0.csv``): a header row
    ``index,0,1,…`` of column indices (timesteps), then one row per heatmap row
    (unit, or output timestep) led by its index — ``pandas.read_csv(f, index_col=0)``
    or ``numpy.loadtxt(f, delimiter=",", skiprows=1)[:, 1:]`` read it back.

Numbers are written in the shortest form that reads back exactly (a column or heatmap
row of whole numbers without a decimal point); non-finite values as ``nan``, ``inf``
and ``-inf``.  A panel that plots no numbers (the cell state of a GRU) gets no CSV
file.  Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from core.experiment import Experiment, save_experiment
from core.fileio import atomic_write_bytes, ensure_folder

FORMATS = ("png", "svg", "csv")
DEFAULT_SIZE = (900, 600)  # panels hidden behind a tab are rendered at this size

__all__ = ["DEFAULT_SIZE", "FORMATS", "ExportError", "columns_csv", "csv_files", "export_all",
           "export_headless", "export_panels", "headless_params", "matrix_csv"]


class ExportError(UserError):
    """An export could not be completed; the message names the plot or file.

    ``written`` lists the files that were written before (or despite) the failure.
    """

    def __init__(self, message: str, written: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.written = list(written)


# ----------------------------------------------------------------------------- CSV


def _cells(values: np.ndarray) -> list[str]:
    """Shortest exact text of each value; ``nan``, ``inf``, ``-inf`` for non-finite ones."""
    a = np.asarray(values).ravel()
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    elif a.dtype.kind == "c":
        a = a.real
    elif a.dtype.kind not in "iuf":
        a = a.astype(np.float64)
    if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a) & (a == np.round(a))
                                                 & (np.abs(a) < 2**53)):
        a = a.astype(np.int64)  # whole numbers (timesteps, steps) read as such
    return [str(v) for v in a]


def _csv_bytes(rows: Iterable[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8")


def columns_csv(columns: dict[str, np.ndarray]) -> bytes:
    """1-D columns as CSV: a header of names, then one row per index."""
    cells = [_cells(v) for v in columns.values()]
    n = max((len(c) for c in cells), default=0)
    rows = [list(columns)]
    rows += [[c[i] if i < len(c) else "" for c in cells] for i in range(n)]
    return _csv_bytes(rows)


def matrix_csv(matrix: np.ndarray) -> bytes:
    """A 2-D array as CSV: header ``index,0,1,…``, each row led by its index."""
    m = np.asarray(matrix)
    rows = [["index", *map(str, range(m.shape[1]))]]
    rows += [[str(i), *_cells(m[i])] for i in range(m.shape[0])]
    return _csv_bytes(rows)


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._") or "table"


def csv_files(name: str, table: dict[str, Any]) -> dict[str, bytes]:
    """The CSV files of one panel's table: file name → contents (empty for no numbers)."""
    arrays = {k: np.asarray(v) for k, v in table.items()}
    files: dict[str, bytes] = {}
    columns = {k: v.ravel() for k, v in arrays.items() if v.ndim <= 1}
    if columns:
        files[f"{name}.csv"] = columns_csv(columns)
    for key, v in arrays.items():
        if v.ndim >= 2:
            files[f"{name}.{_slug(key)}.csv"] = matrix_csv(v.reshape(v.shape[0], -1))
    return files


# ----------------------------------------------------------------------------- images


def _png_bytes(item: Any, scale: float) -> bytes:
    from pyqtgraph.exporters import ImageExporter
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    exporter = ImageExporter(item)
    width = int(exporter.parameters()["width"])
    if width < 1 or int(exporter.parameters()["height"]) < 1:
        raise ValueError("the plot has no size")
    if scale != 1.0:
        exporter.parameters()["width"] = max(1, round(width * scale))
    image = exporter.export(toBytes=True)
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buf, "PNG"):
        raise ValueError("Qt could not encode the PNG image")
    buf.close()
    return bytes(data.data())


def _svg_bytes(item: Any) -> bytes:
    from pyqtgraph.exporters import SVGExporter

    data = SVGExporter(item).export(toBytes=True)
    return bytes(data) if not isinstance(data, str) else data.encode("utf-8")


def _svg_hint() -> str:
    try:
        import pyqtgraph
        import PySide6

        versions = f"pyqtgraph {pyqtgraph.__version__}, PySide6 {PySide6.__version__}"
    except Exception:  # pragma: no cover - only for the message
        versions = "unknown versions"
    return (f"({versions}; pyqtgraph 0.14.0's SVG exporter fails under PySide6 6.11 and 6.12, "
            "pyqtgraph issue #3485: install PySide6 < 6.11, or export png,csv only)")


# ----------------------------------------------------------------------------- layout


def _settle() -> None:
    """Let pending layout requests run (only those: no queued results get delivered)."""
    from PySide6.QtCore import QCoreApplication, QEvent

    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)


class _Sized:
    """Lay a panel out at ``size`` while exporting, then put its old size back.

    A panel hidden behind a dock tab has never been laid out (its scene is a few
    pixels wide); resizing it and grabbing it sends the pending resize events.
    """

    def __init__(self, panel: Any, size: tuple[int, int] | None) -> None:
        self.panel = panel
        self.visible = panel.isVisible()
        self.size = size if size is not None else (None if self.visible else DEFAULT_SIZE)
        self.old = panel.size()

    def __enter__(self) -> Any:
        _settle()
        if self.size is not None:
            # grab() delivers pending resize events at once, even to a hidden panel:
            # first its parents' (which would size it back), then its own.  No layout
            # pass may run between the resize and the export.
            if not self.visible:
                self.panel.grab()
            self.panel.resize(*self.size)
            self.panel.grab()
        return self.panel

    def __exit__(self, *exc: Any) -> None:
        if self.size is not None and self.panel.size() != self.old:
            self.panel.resize(self.old)
            self.panel.grab()


# ----------------------------------------------------------------------------- export


def _write(path: Path, data: bytes, written: list[Path]) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write ({exc.strerror or exc})", written) from None
    written.append(path)


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise ExportError(f"formats {','.join(bad) or '(none)'}: choose from {','.join(FORMATS)}")
    return chosen


def _make_dir(out_dir: str | os.PathLike[str]) -> Path:
    return ensure_folder(out_dir, error=ExportError)


def export_panels(panels: Sequence[Any], out_dir: str | os.PathLike[str],
                  formats: Iterable[str] = FORMATS, scale: float = 1.0,
                  size: tuple[int, int] | None = None) -> list[Path]:
    """Write ``<name>.png``, ``<name>.svg`` and the CSV files of every panel into ``out_dir``.

    Visible panels are drawn at their current size (``size`` overrides it), panels
    hidden behind a tab at ``size`` or :data:`DEFAULT_SIZE`; PNGs are ``scale`` times
    that.  Returns the written paths.  Raises :class:`ExportError` naming the plot or
    file; a plot that fails in one format does not stop the others, and the error's
    ``written`` lists what was written.
    """
    chosen = _check_formats(formats)
    if not (0 < scale <= 16):
        raise ExportError(f"scale {scale}: must be above 0 and at most 16")
    out = _make_dir(out_dir)
    written: list[Path] = []
    failures: list[str] = []
    for panel in panels:
        name = panel.name or type(panel).__name__.lower()
        label = f'"{panel.title or name}" plot'
        items = panel.export_items()
        stems = [name] if len(items) == 1 else [f"{name}.{i}" for i in range(len(items))]
        with _Sized(panel, size):
            for item, stem in zip(items, stems, strict=True):
                if "png" in chosen:
                    try:
                        data = _png_bytes(item, scale)
                    except Exception as exc:
                        failures.append(f"{label}: PNG export failed ({type(exc).__name__}: {exc})")
                    else:
                        _write(out / f"{stem}.png", data, written)
                if "svg" in chosen:
                    try:
                        data = _svg_bytes(item)
                    except Exception as exc:
                        failures.append(f"{label}: SVG export failed ({type(exc).__name__}: "
                                        f"{exc}) {_svg_hint()}")
                    else:
                        _write(out / f"{stem}.svg", data, written)
            if "csv" in chosen:  # at the exported size: what a plot shows may depend on it
                for file_name, data in csv_files(name, panel.to_csv_table()).items():
                    _write(out / file_name, data, written)
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise ExportError(failures[0] + more, written)
    return written


def _save_experiment(exp: Experiment, out: Path, written: list[Path]) -> None:
    path = out / "experiment.json"
    try:
        save_experiment(exp, path)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write ({exc.strerror or exc})", written) from None
    written.append(path)


def export_all(window_panels: Sequence[Any], exp: Experiment, out_dir: str | os.PathLike[str],
               formats: Iterable[str] = FORMATS, scale: float = 1.0) -> list[Path]:
    """File → Export all: the window's panels as they are, plus ``experiment.json``."""
    written = export_panels(window_panels, out_dir, formats, scale=scale)
    _save_experiment(exp, Path(out_dir), written)
    return written


def _application() -> Any:
    """The running QApplication, or a new one (offscreen where there is no display)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        if not isinstance(app, QApplication):
            raise ExportError("exporting plots needs a QApplication, not a QCoreApplication")
        return app
    no_display = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if no_display and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return QApplication([sys.argv[0] if sys.argv and sys.argv[0] else "gradlab"])


def headless_params(exp: Experiment) -> dict[str, np.ndarray]:
    """The weights the app starts from: the experiment's own, else a fresh initialisation."""
    if exp.weights is not None:
        return {k: np.array(v, dtype=np.float64) for k, v in exp.weights.items()}
    from core.init import init_params

    return init_params(exp.model, exp.init)


def export_headless(exp: Experiment, out_dir: str | os.PathLike[str],
                    formats: Iterable[str] = FORMATS, *,
                    params: dict[str, np.ndarray] | None = None,
                    data: tuple[Any, Any] | None = None,
                    history: dict[str, Any] | None = None, width: int = DEFAULT_SIZE[0],
                    height: int = DEFAULT_SIZE[1], scale: float = 1.0) -> list[Path]:
    """Probe ``exp`` as the app does and export every plot panel, plus ``experiment.json``.

    ``params`` default to the experiment's weights or its initialisation; the data is
    ``data = (x, y)`` when given (checked by :func:`core.userdata.check_arrays`), else
    the app's probe batch of the task (:func:`gui.state.probe_experiment`); an
    experiment without a task needs ``data``.  Panels are laid out at ``width`` ×
    ``height`` (PNGs ``scale`` times that).  Returns the written paths.
    """
    chosen = _check_formats(formats)
    if width < 1 or height < 1:
        raise ExportError(f"size {width}x{height}: width and height must be positive")
    if data is None and exp.task is None:
        from core.tasks import NO_TASK

        raise ExportError(f"{NO_TASK}: give input and target arrays to export its plots "
                          "(gradlab export EXPERIMENT --input X.npy --target Y.npy)")
    if data is not None:
        from core.userdata import check_arrays

        try:
            data = check_arrays(exp.model, *data)
        except UserError as exc:
            raise ExportError(str(exc)) from None
    out = _make_dir(out_dir)
    app = _application()

    from PySide6.QtCore import Qt

    from .plots import ALL_PANELS
    from .state import probe_experiment

    weights = headless_params(exp) if params is None else params
    if data is None:
        result = probe_experiment(exp, weights)
    else:
        from core.probe import probe

        with np.errstate(all="ignore"):  # as probe_experiment runs it, on the given arrays
            result = probe(exp, weights, *data)
    panels = []
    try:
        for cls in ALL_PANELS:
            panel = cls()
            panel.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
            panel.resize(width, height)
            panel.show()
            panels.append(panel)
            panel.show_result(result)
            if history is not None:
                panel.set_history(history)
        app.processEvents()
        _settle()
        written = export_panels(panels, out, chosen, scale=scale)
    finally:
        for panel in panels:
            panel.close()
        app.processEvents()
    _save_experiment(exp, out, written)
    return written
