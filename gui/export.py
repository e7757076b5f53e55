"""Export every plot as PNG, SVG and CSV: from the app's live panels or headless.

Every plot is drawn at one chosen size (:data:`DEFAULT_SIZE`, or ``size``), whether it
is on screen, behind a tab or headless, in one of :data:`THEMES`: ``dark``, the
window's own look (the default), or ``light``, dark text on white for print.  The
theme is applied to the exported files only; the window keeps its look.

A plot exports *everything it can show*: where it has selectors — layer and
direction, gate, matrix, block — every combination is drawn in turn and written, and
the user's selection is put back afterwards.  Files, for a plot ``gates``:

``gates.png``, ``gates.svg``
    the plot as an image and as vector graphics (heatmaps embedded as images), for a
    plot with one view.  With several, one of each per view, named by its choices in
    the order gate (or matrix, block), then layer: ``gates.f.l0_reverse.png``,
    ``eigen.weight_hh_l0.i.png``.
``gates.csv``
    the plot's 1-D columns: a header row of column names, then one row per point; a
    shorter column leaves its trailing cells empty.  With several views, one file
    whose column names say which view they come from — ``l0_reverse.mean_f``,
    ``weight_hh_l0.i.real`` — except the shared ``timestep`` column.  A selector
    that only picks what a heatmap shows (the gate) is left out of those names.
``gates.<key>.csv``
    one file per 2-D heatmap ``key``, which names its layer and gate
    (``hidden.h.l0_reverse.csv``, ``gates.gate.f.l0.csv``): a header row
    ``index,0,1,…`` of column indices (timesteps), then one row per heatmap row (unit,
    or output timestep) led by its index — ``pandas.read_csv(f, index_col=0)`` or
    ``numpy.loadtxt(f, delimiter=",", skiprows=1)[:, 1:]`` read it back.

A plot of one sample of the batch shows the sample selected in the window (sample 0
headless); any other sample is named at the end of its files' names:
``hidden.h.l0.sample3.csv``, ``gates.f.l0.sample3.png``.

Numbers are written in the shortest form that reads back exactly (a column or heatmap
row of whole numbers without a decimal point); non-finite values as ``nan``, ``inf``
and ``-inf``.  A plot that shows no numbers (the cell state of a GRU) gets no CSV
file, and a headless export without a training history no training plot.  Every file
is written atomically, with the permissions the user's umask gives.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from core.experiment import Experiment, save_experiment
from core.fileio import atomic_write_bytes, ensure_folder

FORMATS = ("png", "svg", "csv")
DEFAULT_SIZE = (900, 600)  # every plot, in pixels (PNGs are ``scale`` times this)
MIN_SIZE = (240, 160)  # a panel's smallest layout
MAX_SIZE = (10_000, 10_000)
# Background and foreground (text, axes, ticks) of each theme; None: the window's own.
THEMES: dict[str, tuple[str, str] | None] = {"dark": None, "light": ("#ffffff", "#1a1a1a")}
DEFAULT_THEME = "dark"
# Selectors that choose only which heatmap a panel draws: its 1-D columns (every gate's
# mean) are the same whatever they choose, so column names leave them out.
HEATMAP_ONLY_SELECTORS = frozenset({"gate_selector"})
LAYER_SELECTOR = "layer_selector"  # named last: trace keys end in the layer (gate.f.l0)
SHARED_COLUMNS = ("timestep",)  # the time axis: one column however many views

__all__ = ["DEFAULT_SIZE", "DEFAULT_THEME", "FORMATS", "MAX_SIZE", "MIN_SIZE", "THEMES",
           "ExportError", "columns_csv",
           "csv_files", "export_all", "export_headless", "export_panels", "headless_params",
           "matrix_csv"]


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


def _matrix(v: np.ndarray) -> bytes:
    return matrix_csv(v.reshape(v.shape[0], -1))


def csv_files(name: str, table: dict[str, Any], tag: str = "") -> dict[str, bytes]:
    """The CSV files of one panel's table: file name → contents (empty for no numbers).

    ``tag`` (e.g. ``".sample3"``) ends every file's name, before ``.csv``.
    """
    arrays = {k: np.asarray(v) for k, v in table.items()}
    files: dict[str, bytes] = {}
    columns = {k: v.ravel() for k, v in arrays.items() if v.ndim <= 1}
    if columns:
        files[f"{name}{tag}.csv"] = columns_csv(columns)
    for key, v in arrays.items():
        if v.ndim >= 2:
            files[f"{name}.{_slug(key)}{tag}.csv"] = _matrix(v)
    return files


# ----------------------------------------------------------------------------- views


@dataclass
class _View:
    """One combination of a panel's selectors, and what the panel drew for it."""

    choices: tuple[tuple[str, str], ...]  # (selector attribute, chosen key), in bar order
    images: dict[str, list[bytes]] = field(default_factory=dict)  # format → one per item
    table: dict[str, np.ndarray] = field(default_factory=dict)

    def label(self, leave_out: frozenset[str] = frozenset()) -> str:
        """The choices as a name: ``f.l0_reverse`` (the layer last, as in trace keys)."""
        kept = [(n, k) for n, k in self.choices if n not in leave_out]
        kept.sort(key=lambda nk: nk[0] == LAYER_SELECTOR)  # stable: bar order otherwise
        return ".".join(_slug(k) for _n, k in kept)


def _selectors(panel: Any) -> list[tuple[str, Any]]:
    """The panel's choice selectors (``layer_selector``, ``gate_selector``, …) in bar order."""
    from PySide6.QtWidgets import QComboBox

    order = {id(w): i for i, w in enumerate(panel.findChildren(QComboBox))}
    found = [(n, w) for n, w in vars(panel).items() if isinstance(w, QComboBox)]
    return sorted(found, key=lambda nw: order.get(id(nw[1]), len(order)))


def _walk(selectors: list[tuple[str, Any]], chosen: tuple[tuple[str, str], ...] = ()
          ) -> Iterator[tuple[tuple[str, str], ...]]:
    """Select every combination in turn (the panel redraws on each), yielding its choices.

    A later selector's items may depend on an earlier choice (a layer's gates, a
    matrix's blocks): they are read after that choice is made.  An empty or disabled
    selector (the gates of a plain RNN layer) offers no choice.
    """
    if not selectors:
        yield chosen
        return
    (name, combo), rest = selectors[0], selectors[1:]
    if combo.count() == 0 or not combo.isEnabled():
        yield from _walk(rest, chosen)
        return
    keys = [combo.itemData(i) for i in range(combo.count())]
    for i, key in enumerate(keys):
        index = i if key is None else combo.findData(key)
        if not 0 <= index < combo.count():
            continue
        combo.setCurrentIndex(index)
        text = combo.itemText(index) if key is None else str(key)
        yield from _walk(rest, (*chosen, (name, text)))


class _Selection:
    """Put the user's choices back after the export has gone through every combination."""

    def __init__(self, selectors: list[tuple[str, Any]]) -> None:
        self.saved = [(combo, combo.currentData(), combo.currentIndex())
                      for _name, combo in selectors]

    def __enter__(self) -> _Selection:
        return self

    def __exit__(self, *exc: Any) -> None:
        for combo, key, index in self.saved:  # in bar order: a layer's gates refill first
            if key is not None:
                index = combo.findData(key)
            if 0 <= index < combo.count() and index != combo.currentIndex():
                combo.setCurrentIndex(index)


def _sample_tag(panel: Any) -> str:
    """``".sample3"`` for a panel showing sample 3 of the batch; empty for sample 0."""
    spin = getattr(panel, "sample_selector", None)
    value = int(spin.value()) if spin is not None else 0
    return f".sample{value}" if value else ""


# ----------------------------------------------------------------------------- images


def png_bytes(item: Any, size: tuple[int, int], scale: float) -> bytes:
    from pyqtgraph.exporters import ImageExporter
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    exporter = ImageExporter(item)
    params = exporter.parameters()
    if int(params["width"]) < 1 or int(params["height"]) < 1:
        raise ValueError("the plot has no size")
    # both set exactly: the exporter would round one from the other's aspect ratio
    params.param("width").setValue(max(1, round(size[0] * scale)), blockSignal=exporter.widthChanged)
    params.param("height").setValue(max(1, round(size[1] * scale)),
                                    blockSignal=exporter.heightChanged)
    image = exporter.export(toBytes=True)
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buf, "PNG"):
        raise ValueError("Qt could not encode the PNG image")
    buf.close()
    return bytes(data.data())


def svg_bytes(item: Any) -> bytes:
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


# ----------------------------------------------------------------------------- theme


def _same_rgb(a: Any, b: Any) -> bool:
    return a.rgb() == b.rgb()


class _Themed:
    """Draw a panel in an export theme, then give every item back its own colours.

    The panels take the window's background and foreground (pyqtgraph's configuration)
    when their items are made; a theme recolours, for the export only, the view's
    background and every axis, title, label, message, legend and line drawn in those
    two colours.  Data colours (lines, colour maps) are kept: they read on both.
    """

    def __init__(self, panel: Any, theme: str) -> None:
        import pyqtgraph as pg

        self.panel = panel
        colours = THEMES[theme]
        self.undo: dict[int, Any] = {}  # id(item) → how to put its own colours back
        self.active = colours is not None
        if colours is not None:
            self.old_bg = pg.mkColor(pg.getConfigOption("background"))
            self.old_fg = pg.mkColor(pg.getConfigOption("foreground"))
            self.bg, self.fg = pg.mkColor(colours[0]), pg.mkColor(colours[1])
            self.active = not (_same_rgb(self.bg, self.old_bg) and _same_rgb(self.fg, self.old_fg))

    def __enter__(self) -> _Themed:
        self.apply()
        return self

    def __exit__(self, *exc: Any) -> None:
        for restore in reversed(list(self.undo.values())):
            restore()
        self.undo.clear()

    def _keep(self, item: Any, restore: Any) -> None:
        self.undo.setdefault(id(item), restore)  # the first: the item's own colours

    def _pen(self, pen: Any) -> Any:
        import pyqtgraph as pg

        new = pg.mkPen(pen)
        colour = pg.mkColor(self.fg)
        colour.setAlpha(new.color().alpha())
        new.setColor(colour)
        return new

    def _is_fg(self, colour: Any) -> bool:
        import pyqtgraph as pg

        return colour is not None and _same_rgb(pg.mkColor(colour), self.old_fg)

    def apply(self) -> None:
        """Recolour what is drawn now (again after a redraw: new items, reset colours)."""
        if not self.active:
            return
        import pyqtgraph as pg

        glw = self.panel.glw
        if glw.backgroundBrush().color() != self.bg:
            self._keep(glw, functools.partial(glw.setBackgroundBrush, glw.backgroundBrush()))
            glw.setBackgroundBrush(pg.mkBrush(self.bg))
        for item in glw.scene().items():
            if isinstance(item, pg.AxisItem):
                self._axis(item)
            elif isinstance(item, pg.LabelItem):
                colour = item.opts.get("color")
                if self._is_fg(colour if colour is not None else self.old_fg):
                    self._keep(item, lambda i=item, c=colour: i.setText(i.text, color=c))
                    item.setText(item.text, color=self.fg.name())
            elif isinstance(item, pg.TextItem):
                if self._is_fg(item.color):
                    self._keep(item, functools.partial(item.setColor, pg.mkColor(item.color)))
                    item.setColor(self.fg)
            elif isinstance(item, pg.LegendItem):
                brush = pg.mkBrush(item.brush())
                if _same_rgb(brush.color(), self.old_bg):
                    self._keep(item, functools.partial(item.setBrush, brush))
                    colour = pg.mkColor(self.bg)
                    colour.setAlpha(brush.color().alpha())
                    item.setBrush(pg.mkBrush(colour))
            elif isinstance(item, pg.PlotDataItem):
                self._curve(item)
            elif isinstance(item, pg.InfiniteLine):
                if self._is_fg(item.pen.color()):
                    self._keep(item, functools.partial(item.setPen, pg.mkPen(item.pen)))
                    item.setPen(self._pen(item.pen))

    def _axis(self, axis: Any) -> None:
        pen, text = axis.pen(), axis.textPen()
        if not (self._is_fg(pen.color()) or self._is_fg(text.color())):
            return

        def restore(a: Any = axis, p: Any = pen, t: Any = text) -> None:
            a.setPen(p)
            a.setTextPen(t)

        self._keep(axis, restore)
        if self._is_fg(pen.color()):
            axis.setPen(self._pen(pen))
        if self._is_fg(text.color()):
            axis.setTextPen(self._pen(text))

    def _curve(self, item: Any) -> None:
        import pyqtgraph as pg

        pen, symbol_pen = item.opts.get("pen"), item.opts.get("symbolPen")
        pen_fg = pen is not None and self._is_fg(pg.mkPen(pen).color())
        symbol_fg = symbol_pen is not None and self._is_fg(pg.mkPen(symbol_pen).color())
        if not (pen_fg or symbol_fg):
            return

        def restore(i: Any = item, p: Any = pen, s: Any = symbol_pen) -> None:
            i.setPen(p)
            i.setSymbolPen(s)

        self._keep(item, restore)
        if pen_fg:
            item.setPen(self._pen(pen))
        if symbol_fg:
            item.setSymbolPen(self._pen(symbol_pen))


# ----------------------------------------------------------------------------- layout


def _settle() -> None:
    """Let pending layout requests run (only those: no queued results get delivered)."""
    from PySide6.QtCore import QCoreApplication, QEvent

    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)


class _Sized:
    """Lay a panel's plots out at exactly ``size`` while exporting, then put its size back.

    The plots (the panel's graphics view) get ``size``; the panel around them is
    that plus its selector row and margins.  A panel hidden behind a dock tab has
    never been laid out (its scene is a few pixels wide): grabbing it sends the
    pending resize events, its parents' first (which would size it back), then its
    own.  :meth:`ensure` sizes it again after a redraw's layout pass.
    """

    def __init__(self, panel: Any, size: tuple[int, int]) -> None:
        self.panel = panel
        self.size = size
        self.visible = panel.isVisible()
        self.old = panel.size()

    def __enter__(self) -> _Sized:
        _settle()
        if not self.visible:
            self.panel.grab()
        self.ensure()
        return self

    def ensure(self) -> None:
        glw, (w, h) = self.panel.glw, self.size
        for _ in range(4):
            if (glw.width(), glw.height()) == (w, h):
                return
            self.panel.resize(max(1, self.panel.width() + w - glw.width()),
                              max(1, self.panel.height() + h - glw.height()))
            self.panel.grab()

    def __exit__(self, *exc: Any) -> None:
        if self.panel.size() != self.old:
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


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if not (MIN_SIZE[0] <= w <= MAX_SIZE[0] and MIN_SIZE[1] <= h <= MAX_SIZE[1]):
        raise ExportError(f"size {w}x{h}: width must be {MIN_SIZE[0]} to {MAX_SIZE[0]} pixels and "
                    f"height {MIN_SIZE[1]} to {MAX_SIZE[1]}")
    return w, h


def _check_theme(theme: str) -> str:
    if theme not in THEMES:
        raise ExportError(f"theme {theme!r}: choose from {', '.join(THEMES)}")
    return theme


def _make_dir(out_dir: str | os.PathLike[str]) -> Path:
    return ensure_folder(out_dir, error=ExportError)


def _draw_views(panel: Any, chosen: tuple[str, ...], size: tuple[int, int], scale: float,
                theme: str, failures: dict[tuple[str, str], str]) -> list[_View]:
    """Draw every combination of the panel's selectors at ``size`` in ``theme``; the
    panel's size, colours and selection are put back afterwards."""
    name = panel.name or type(panel).__name__.lower()
    label = f'"{panel.title or name}" plot'
    panel.export_items()  # draws a result the panel has not drawn yet, filling the selectors
    selectors = _selectors(panel)
    views: list[_View] = []
    with _Sized(panel, size) as sized, _Themed(panel, theme) as themed, _Selection(selectors):
        for choices in _walk(selectors):
            _settle()  # the redraw's layout (titles, axis widths) before drawing
            sized.ensure()
            themed.apply()
            view = _View(choices)
            for item in panel.export_items():
                for fmt in ("png", "svg"):
                    if fmt not in chosen or (name, fmt) in failures:
                        continue
                    try:
                        data = png_bytes(item, size, scale) if fmt == "png" else svg_bytes(item)
                    except Exception as exc:
                        hint = f" {_svg_hint()}" if fmt == "svg" else ""
                        failures[(name, fmt)] = (f"{label}: {fmt.upper()} export failed "
                                                 f"({type(exc).__name__}: {exc}){hint}")
                    else:
                        view.images.setdefault(fmt, []).append(data)
            if "csv" in chosen:  # at the exported size: what a plot shows may depend on it
                view.table = panel.to_csv_table()
            views.append(view)
    return views


def _view_csvs(name: str, views: list[_View], tag: str) -> dict[str, bytes]:
    """The CSV files of a panel's views (see the module's description)."""
    if len(views) == 1:
        return csv_files(name, views[0].table, tag)
    arrays = [{k: np.asarray(v) for k, v in view.table.items()} for view in views]
    qualifiers = [view.label(HEATMAP_ONLY_SELECTORS) for view in views]
    several = len(set(qualifiers)) > 1
    columns: dict[str, np.ndarray] = {}
    shared = set()
    for key in SHARED_COLUMNS if several else ():
        found = [a[key] for a in arrays if key in a and a[key].ndim <= 1]
        if found and all(np.array_equal(found[0], f, equal_nan=True) for f in found):
            columns[key] = found[0].ravel()
            shared.add(key)
    matrices: dict[str, list[tuple[_View, np.ndarray]]] = {}
    for view, table, qualifier in zip(views, arrays, qualifiers, strict=True):
        for key, v in table.items():
            if v.ndim >= 2:
                matrices.setdefault(key, []).append((view, v))
            elif key not in shared:
                columns.setdefault(f"{qualifier}.{key}" if several and qualifier else key,
                                   v.ravel())
    files: dict[str, bytes] = {}
    if columns:
        files[f"{name}{tag}.csv"] = columns_csv(columns)
    for key, found in matrices.items():
        for view, v in found:  # a key that does not name its view gets the view's name
            middle = f"{view.label()}.{_slug(key)}" if len(found) > 1 else _slug(key)
            files[f"{name}.{middle}{tag}.csv"] = _matrix(v)
    return files


def export_panels(panels: Sequence[Any], out_dir: str | os.PathLike[str],
                  formats: Iterable[str] = FORMATS, scale: float = 1.0,
                  size: tuple[int, int] | None = None, theme: str = DEFAULT_THEME) -> list[Path]:
    """Write every view of every panel — PNG, SVG and CSV files — into ``out_dir``.

    Every plot, on screen or behind a tab, is drawn at ``size`` (default
    :data:`DEFAULT_SIZE`) in ``theme``; PNGs are ``scale`` times that.  Panels get
    back their size, colours and selection.  Returns the written paths.  Raises
    :class:`ExportError` naming the plot or file; a plot that fails in one format does
    not stop the others, and the error's ``written`` lists what was written.
    """
    chosen = _check_formats(formats)
    if not (0 < scale <= 16):
        raise ExportError(f"scale {scale}: must be above 0 and at most 16")
    size = _check_size(DEFAULT_SIZE if size is None else size)
    _check_theme(theme)
    out = _make_dir(out_dir)
    written: list[Path] = []
    failures: dict[tuple[str, str], str] = {}
    for panel in panels:
        name = panel.name or type(panel).__name__.lower()
        tag = _sample_tag(panel)
        views = _draw_views(panel, chosen, size, scale, theme, failures)
        for view in views:
            stem = name if len(views) == 1 else f"{name}.{view.label()}"
            for fmt in ("png", "svg"):
                images = view.images.get(fmt, [])
                for i, data in enumerate(images):
                    part = f".{i}" if len(images) > 1 else ""
                    _write(out / f"{stem}{part}{tag}.{fmt}", data, written)
        if "csv" in chosen:
            for file_name, data in _view_csvs(name, views, tag).items():
                _write(out / file_name, data, written)
    if failures:
        first, *rest = failures.values()
        more = f" (and {len(rest)} more)" if rest else ""
        raise ExportError(first + more, written)
    return written


def _save_experiment(exp: Experiment, out: Path, written: list[Path]) -> None:
    path = out / "experiment.json"
    try:
        save_experiment(exp, path)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write ({exc.strerror or exc})", written) from None
    written.append(path)


def export_all(window_panels: Sequence[Any], exp: Experiment, out_dir: str | os.PathLike[str],
               formats: Iterable[str] = FORMATS, scale: float = 1.0,
               size: tuple[int, int] | None = None, theme: str = DEFAULT_THEME,
               history: dict[str, Any] | None = None) -> list[Path]:
    """File → Export all: every view of the window's panels, plus ``experiment.json``.

    Each panel is drawn at ``size`` (default :data:`DEFAULT_SIZE`) whatever its size
    on screen, in ``theme``, with the sample it shows; the window is left as it was.
    Given a ``history`` without rows, the training plot is left out, as headless
    export leaves it out (it would only say "No training yet").
    """
    if history is not None and not _has_rows(history):
        window_panels = [p for p in window_panels if getattr(p, "name", "") != "training"]
    written = export_panels(window_panels, out_dir, formats, scale=scale, size=size, theme=theme)
    _save_experiment(exp, Path(out_dir), written)
    return written


def application() -> Any:
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


def _has_rows(history: dict[str, Any] | None) -> bool:
    if not history:
        return False
    return any(np.size(history.get(k, ())) for k in ("step", "loss"))


def owns(name: str) -> bool:
    """Whether a file name in an export folder is an export's own (``experiment.json``,
    or a plot's ``NAME….png/.svg/.csv``): an earlier export's files of such names are
    replaced as a whole, never kept beside a new export's; any other file stays."""
    from .plots import ALL_PANELS

    if name == "experiment.json":
        return True
    stem, dot, fmt = name.rpartition(".")
    return bool(dot) and fmt in FORMATS and any(
        stem == p.name or stem.startswith(p.name + ".") for p in ALL_PANELS)


def export_headless(exp: Experiment, out_dir: str | os.PathLike[str],
                    formats: Iterable[str] = FORMATS, *,
                    params: dict[str, np.ndarray] | None = None,
                    data: tuple[Any, Any] | None = None,
                    history: dict[str, Any] | None = None,
                    size: tuple[int, int] = DEFAULT_SIZE, scale: float = 1.0,
                    theme: str = DEFAULT_THEME) -> list[Path]:
    """Probe ``exp`` as the app does and export every view of every plot, plus
    ``experiment.json``.

    ``params`` default to the experiment's weights or its initialisation; the data is
    ``data = (x, y)`` when given (checked by :func:`core.userdata.check_arrays`), else
    the app's probe batch of the task (:func:`gui.state.probe_experiment`); an
    experiment without a task needs ``data``.  The training plot is written only for
    a ``history`` with rows (the columns of ``history.csv``).  Every plot is ``size``
    pixels (PNGs ``scale`` times that), in ``theme``.  Returns the written paths.
    """
    chosen = _check_formats(formats)
    size = _check_size(size)
    _check_theme(theme)
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
    app = application()

    from PySide6.QtCore import Qt

    from .plots import ALL_PANELS, TrainingPanel
    from .state import probe_experiment

    weights = headless_params(exp) if params is None else params
    if data is None:
        result = probe_experiment(exp, weights)
    else:
        from core.probe import probe

        with np.errstate(all="ignore"):  # as probe_experiment runs it, on the given arrays
            result = probe(exp, weights, *data)
    trained = _has_rows(history)
    panels = []
    try:
        for cls in ALL_PANELS:
            if cls is TrainingPanel and not trained:
                continue  # it would only say "No training yet"
            panel = cls()
            panel.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
            panel.resize(*size)
            panel.show()
            panels.append(panel)
            panel.show_result(result)
            if trained:
                panel.set_history(history)
        app.processEvents()
        _settle()
        written = export_panels(panels, out, chosen, scale=scale, size=size, theme=theme)
    finally:
        for panel in panels:
            panel.close()
        app.processEvents()
    _save_experiment(exp, out, written)
    return written
