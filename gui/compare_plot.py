"""The figure of a comparison (:mod:`core.compare`): ``compare.png`` and ``compare.svg``.

One plot per layer key, ‖dL/dh_t‖ over t on a log axis, and below them, when the
runs were trained, the training loss per step (log axis too).  Each variant is one
colour: its mean curve over the seeds, and the band between its low and high
curves (min–max, or the middle 95 % from ten seeds: the ``band`` in
``compare.json``) filled in the same colour, faint.  A legend under the plots names
the variants.  A log axis cannot show zero: points at or below 0 (and NaN) are left
out of the curves, and a band reaching down to 0 is drawn to the smallest positive
value of the plot.  The numbers themselves are in ``compare.csv``.

Drawn headless with pyqtgraph's exporters, as :mod:`gui.export` does (offscreen
where there is no display).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .export import application, png_bytes, svg_bytes

if TYPE_CHECKING:
    from core.compare import CompareResult

FORMATS = ("png", "svg")
WIDTH = 900
ROW_HEIGHT = 300
BAND_ALPHA = 50
LEGEND_COLUMNS = 2
LEGEND_ROW = 24  # pixels per row of the legend

__all__ = ["FORMATS", "compare_figure", "plotted_keys", "write_figure"]


def plotted_keys(result: CompareResult) -> list[str]:
    """The curves the figure shows, top to bottom: every ``gradnorm`` key, then ``loss``."""
    keys = result.keys()
    return [k for k in keys if k.startswith("gradnorm.")] + [k for k in keys if k == "loss"]


def _title(key: str, band: str) -> str:
    if key == "loss":
        what = "training loss per step"
    else:
        layer = key.removeprefix("gradnorm.")
        body = layer[1:].removesuffix("_reverse")
        what = (f"‖dL/dh_t‖, layer {body}" + (" (reverse)" if layer.endswith("_reverse") else "")
                + f" ({key})")
    return f"{what} · mean and band ({band})"


def _positive(y: np.ndarray) -> np.ndarray:
    y = np.array(y, dtype=np.float64, copy=True)
    y[~(np.isfinite(y) & (y > 0))] = np.nan
    return y


def compare_figure(result: CompareResult, width: int = WIDTH,
                   row_height: int = ROW_HEIGHT) -> Any:
    """A ``pg.GraphicsLayoutWidget`` with the figure (a QApplication must exist)."""
    import pyqtgraph as pg

    from .colormaps import line_color
    from .plots.base import LogAxis

    keys = plotted_keys(result)
    glw = pg.GraphicsLayoutWidget()
    rows = (len(result.variants) + LEGEND_COLUMNS - 1) // LEGEND_COLUMNS
    glw.resize(width, row_height * max(len(keys), 1) + LEGEND_ROW * rows)
    band = {"min-max": "min–max", "p2.5-p97.5": "2.5–97.5 %"}.get(result.band, result.band)
    band = f"{band} over {result.seeds} seed{'s' if result.seeds != 1 else ''}"
    named: list[tuple[Any, str]] = []
    for row, key in enumerate(keys):
        plot = glw.addPlot(row=row, col=0, axisItems={"left": LogAxis("left")})
        plot.setTitle(_title(key, band), size="10pt")
        plot.setLogMode(x=False, y=True)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setLabel("bottom", "training step" if key == "loss" else "timestep t")
        stats = {v.label: result.stats(v.label, key) for v in result.variants
                 if key in result.curves[v.label]}
        shown = np.concatenate([_positive(a).ravel() for s in stats.values() for a in s]
                               or [np.array([np.nan])])
        floor = np.nanmin(shown) if np.isfinite(shown).any() else 1.0
        for i, v in enumerate(result.variants):
            if v.label not in stats:
                continue
            mean, low, high = stats[v.label]
            t = result.t_of(key, mean.size).astype(np.float64)
            colour = pg.mkColor(line_color(i))
            lo = _positive(low)
            lo[np.isnan(lo) & np.isfinite(_positive(high))] = floor
            hi = _positive(high)
            edge = pg.mkColor(colour)
            edge.setAlpha(2 * BAND_ALPHA)
            lo_item = pg.PlotDataItem(t, lo, pen=pg.mkPen(edge, width=1), connect="finite")
            hi_item = pg.PlotDataItem(t, hi, pen=pg.mkPen(edge, width=1), connect="finite")
            plot.addItem(lo_item)
            plot.addItem(hi_item)
            fill = pg.mkColor(colour)
            fill.setAlpha(BAND_ALPHA)
            plot.addItem(pg.FillBetweenItem(lo_item, hi_item, brush=pg.mkBrush(fill)))
            curve = plot.plot(t, _positive(mean), pen=pg.mkPen(colour, width=2),
                              connect="finite")
            if row == 0:
                named.append((curve, v.label))
    # The legend in a row of its own under the plots: it never hides a curve.
    legend = pg.LegendItem(labelTextSize="9pt", colCount=LEGEND_COLUMNS, horSpacing=24)
    glw.addItem(legend, row=len(keys), col=0)
    for curve, label in named:
        legend.addItem(curve, label)
    return glw


def write_figure(result: CompareResult, out_dir: str | os.PathLike[str],
                 formats: Iterable[str] = FORMATS, width: int = WIDTH,
                 row_height: int = ROW_HEIGHT) -> list[Path]:
    """Write ``compare.png`` and/or ``compare.svg`` into ``out_dir``; the PNG is
    ``width`` pixels wide and ``row_height`` per plot.  Returns the written paths."""
    from PySide6.QtCore import QCoreApplication, QEvent, Qt

    from core.fileio import atomic_write_bytes
    from core.tracefile import writing

    chosen = [f for f in formats if f in FORMATS]
    application()
    glw = compare_figure(result, width, row_height)
    glw.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    glw.show()
    for _ in range(3):  # let the layout settle before drawing
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)
    glw.grab()
    out = Path(out_dir)
    written = []
    try:
        for fmt in chosen:
            path = out / f"compare.{fmt}"
            if fmt == "png":
                data = png_bytes(glw.ci, (glw.width(), glw.height()), 1.0)
            else:
                data = svg_bytes(glw.ci)
            writing(path, lambda p=path, d=data: atomic_write_bytes(p, d))  # OSError: names it
            written.append(path)
    finally:
        glw.close()
        glw.deleteLater()
    return written
