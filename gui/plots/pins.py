"""Pinned runs (``core.lab.Lab.pin``) drawn behind the live run: muted colours, one
dash pattern per pin, and a legend entry naming each pin and what differs."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from .. import colormaps
from .base import PlotPanel, faint, positive

PIN_ALPHA = 210
PIN_STYLES = (Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine,
              Qt.PenStyle.DashDotDotLine)
PIN_DIFFERENCES = 2  # differences named in a pin's legend entry, then "+N more"


def pin_legend_text(label: str, differences: Sequence[str]) -> str:
    """``"A: init.forget_bias 0 → 2"``: the pin and what differs from the live run."""
    shown = "; ".join(differences[:PIN_DIFFERENCES]) or "same settings"
    more = len(differences) - PIN_DIFFERENCES
    return html.escape(f"{label}: {shown}" + (f"; +{more} more" if more > 0 else ""))


def pin_color(color_index: int, alpha: int = PIN_ALPHA) -> Any:
    color = pg.mkColor(colormaps.line_color(color_index))
    color.setAlpha(alpha)
    return color


def pin_pen(pin_index: int, color_index: int, width: float = 2.0) -> Any:
    """The pen of pin ``pin_index``'s curve in line colour ``color_index``: muted by
    mixing it with the background in advance (a translucent pen paints several times
    slower, on every repaint of the plot)."""
    muted = faint(pin_color(color_index, 255), pg.mkColor(pg.getConfigOption("background")),
                  PIN_ALPHA / 255)
    return pg.mkPen(muted, width=width, style=PIN_STYLES[pin_index % len(PIN_STYLES)])


class PinnedCurves:
    """The pinned runs' curves in one plot (a pool of items, only ever grown), behind
    the live curves, with their own legend in the plot's other corner.

    :meth:`show` takes ``(pin index, colour index, name, x, y)`` per curve and the
    legend text of each pin; ``curves[name]`` is the item drawing ``name``.
    """

    def __init__(self, plot: pg.PlotItem, log_y: bool = True) -> None:
        self.plot = plot
        self.log_y = log_y
        self._pool: list[pg.PlotDataItem] = []
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.legend_texts: list[str] = []
        self._first: dict[int, pg.PlotDataItem] = {}  # pin index → its first curve
        self.legend = PlotPanel._add_legend(plot, offset=(-5, -5))
        self.legend.setVisible(False)

    def show(self, series: Sequence[tuple[int, int, str, np.ndarray, np.ndarray]],
             legends: Sequence[str]) -> None:
        while len(self._pool) < len(series):
            item = pg.PlotDataItem()
            item.setZValue(-2)
            self.plot.addItem(item)
            self._pool.append(item)
        self.curves.clear()
        for item in self._pool:
            item.setData([], [])
            item.setVisible(False)
        self._first: dict[int, pg.PlotDataItem] = {}
        for item, (i, j, name, x, y) in zip(self._pool, series, strict=False):
            y = np.asarray(y, dtype=np.float64).ravel()
            item.setPen(pin_pen(i, j))
            item.setData(np.asarray(x, dtype=np.float64).ravel(),
                         positive(y) if self.log_y else y, connect="finite")
            item.setVisible(True)
            self.curves[name] = item
            self._first.setdefault(i, item)
        self.legend_texts = []  # the curves were redrawn: rebuild the legend's samples
        self.show_legends(legends)

    def show_legends(self, legends: Sequence[str]) -> None:
        """Name the pins drawn: one entry per pin, ``legends[i]`` for pin ``i``."""
        if list(legends) == self.legend_texts and self.legend.isVisible() == bool(self._first):
            return
        self.legend.clear()
        self.legend_texts = list(legends)
        for i, text in enumerate(self.legend_texts):
            if i in self._first:
                self.legend.addItem(self._first[i], text)
        self.legend.setVisible(bool(self._first))

    def values(self) -> list[np.ndarray]:
        """The y values drawn (for an axis range that takes them in)."""
        return [np.asarray(item.yData, dtype=np.float64) for item in self.curves.values()
                if item.yData is not None]


def runs_legends(runs: Sequence[tuple[Any, Sequence[str]]]) -> list[str]:
    """The legend text of every ``(pin, differences)``."""
    return [pin_legend_text(pin.label, diffs) for pin, diffs in runs]




class PinAware:
    """``set_pinned`` for a panel that draws the pinned runs in its ``_draw``: it keeps
    ``runs`` — ``(pin, differences)`` pairs — and redraws when the pins themselves
    change (a new result redraws anyway)."""

    _runs: tuple = ()

    def set_pinned(self, runs: Sequence[tuple[Any, Sequence[str]]]) -> None:
        runs = tuple((pin, tuple(diffs)) for pin, diffs in runs)
        changed = [p for p, _d in runs] != [p for p, _d in self._runs]
        self._runs = runs
        if changed:
            self._pins_changed()
        else:
            self._relabel()

    def _relabel(self) -> None:
        """What differs changed, not the pins (a panel that redraws on every result
        relabels then)."""

    def _pins_changed(self) -> None:
        panel: Any = self
        if panel._result is not None:
            panel._stale = True
            if not panel._hidden_in_window():
                panel._catch_up()

    @property
    def pins(self) -> list[Any]:
        return [pin for pin, _diffs in self._runs]

    @property
    def pin_legends(self) -> list[str]:
        return runs_legends(self._runs)


__all__ = ["PIN_ALPHA", "PIN_DIFFERENCES", "PIN_STYLES", "PinAware", "PinnedCurves",
           "pin_color", "pin_legend_text", "pin_pen", "runs_legends"]
