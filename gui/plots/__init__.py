"""The plot panels, one module each, in the order the main window shows them.

Every panel is a :class:`~gui.plots.base.PlotPanel`: ``show_result(result)``,
``set_history(history)``, ``mark_timestep(t)``, the ``timestep_clicked`` signal,
``export_items()`` and ``to_csv_table()``.
"""

from __future__ import annotations

from .anatomy import AnatomyPanel
from .base import PlotPanel
from .cell import CellPanel
from .connectivity import ConnectivityPanel
from .eigen import EigenPanel
from .gates import GatesPanel
from .gradients import GradientsPanel
from .graph import GraphPanel
from .hidden import HiddenPanel
from .jacobian import JacobianPanel
from .signals import SignalsPanel
from .training import TrainingPanel

ALL_PANELS: list[type[PlotPanel]] = [
    SignalsPanel,
    HiddenPanel,
    GatesPanel,
    CellPanel,
    AnatomyPanel,
    GradientsPanel,
    JacobianPanel,
    EigenPanel,
    TrainingPanel,
    ConnectivityPanel,
    GraphPanel,
]


def panel_by_name(name: str) -> type[PlotPanel]:
    """The panel class whose ``name`` slug is ``name``; KeyError if there is none."""
    for panel in ALL_PANELS:
        if panel.name == name:
            return panel
    raise KeyError(f"no plot panel named {name!r} (known: {', '.join(p.name for p in ALL_PANELS)})")


__all__ = [
    "ALL_PANELS",
    "AnatomyPanel",
    "CellPanel",
    "ConnectivityPanel",
    "EigenPanel",
    "GatesPanel",
    "GradientsPanel",
    "GraphPanel",
    "HiddenPanel",
    "JacobianPanel",
    "PlotPanel",
    "SignalsPanel",
    "TrainingPanel",
    "panel_by_name",
]
