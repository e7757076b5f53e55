"""Colour choices shared by the plots: perceptually uniform maps and a line palette.

Magnitudes use a sequential map, signed quantities a diverging map whose
levels are kept symmetric about zero so that zero is always the neutral colour.
"""

from __future__ import annotations

import functools

import numpy as np
import pyqtgraph as pg

SEQUENTIAL = "viridis"
HOT = "inferno"
DIVERGING = "CET-D1"

# Colour-blind friendly line colours (Okabe & Ito), readable on dark and light backgrounds.
LINE_COLORS = (
    "#56B4E9",  # sky blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#999999",  # grey
)


@functools.cache
def colormap(name: str) -> pg.ColorMap:
    """A pyqtgraph colour map by name, loaded once."""
    return pg.colormap.get(name)


def sequential() -> pg.ColorMap:
    return colormap(SEQUENTIAL)


def hot() -> pg.ColorMap:
    return colormap(HOT)


def diverging() -> pg.ColorMap:
    return colormap(DIVERGING)


def line_color(i: int) -> str:
    """The i-th line colour, cycling."""
    return LINE_COLORS[i % len(LINE_COLORS)]


def symmetric_levels(values: np.ndarray, bounded: float | None = 1.0) -> tuple[float, float]:
    """Levels ``(-m, m)`` covering the finite values; ``m = bounded`` when they fit inside it.

    Keeping ``±1`` for tanh-bounded states means a colour has the same meaning
    from one redraw to the next.
    """
    finite = values[np.isfinite(values)] if values.size else values
    m = float(np.max(np.abs(finite))) if finite.size else 0.0
    if bounded is not None and m <= bounded:
        return (-bounded, bounded)
    m = m if m > 0 else 1.0
    return (-m, m)
