"""(g) Eigenvalues of a recurrent matrix (or one gate block) in the complex plane."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox

from core.diagonal import PREFIX as STEP_JACOBIAN

from .. import colormaps
from .base import Overlay, PlotPanel, fit_title, mkpen
from .pins import PinAware, pin_pen

if TYPE_CHECKING:
    from core.probe import ProbeResult

BLOCK_LABELS = {
    "all": "whole matrix",
    "h": "h (recurrent)",
    "i": "i — input gate",
    "f": "f — forget gate",
    "g": "g — candidate values",
    "o": "o — output gate",
    "r": "r — reset",
    "z": "z — update",
    "n": "n — candidate",
    "h̃": "h̃ — candidate (input only)",
    "mean": "diagonal: geometric mean over steps",
    "last": "diagonal: last step processed",
}
DEFAULT_BLOCKS = ("all", "h", "mean", "f", "z")  # whole matrix, else the gate that keeps memory
INSIDE = colormaps.line_color(0)
OUTSIDE = colormaps.line_color(6)


def matrix_label(name: str) -> str:
    """A short selector text: ``weight_hh_l1_reverse`` → ``W_hh l1 ←``; a minGRU/minLSTM's
    ``step_jacobian_l0`` (no W_hh: its diagonal step Jacobian) → ``J_t (diag) l0``."""
    if name.startswith(STEP_JACOBIAN):
        name = "J_t (diag)_" + name.removeprefix(STEP_JACOBIAN)
    label = name.replace("weight_", "W_").replace("_l", " l", 1)
    return label.replace("_reverse", " ←")


class EigenPanel(PinAware, PlotPanel):
    name = "eigen"
    title = "Recurrent eigenvalues"
    tooltip = ("Eigenvalues λ of the recurrent weight matrix (or of one gate's H×H block) "
               "with the unit circle. The spectral radius ρ = max|λ| is in the title: "
               "ρ < 1 tends to shrink gradients over time, ρ > 1 to grow them. Points "
               "outside the circle are drawn in orange. minGRU and minLSTM have no W_hh: "
               "their step Jacobian ∂h_t/∂h_{t−1} is diagonal, diag(1 − z_t) or diag(f′_t), "
               "so its eigenvalues are those entries, on the real axis in (0, 1): shown "
               "per unit at the last step processed, or as each unit's geometric mean over "
               "the steps (ρ then is the per-step rate of the slowest-fading unit).")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.matrix_selector = QComboBox(self._bar)
        self.matrix_selector.setToolTip("Which recurrent weight matrix")
        self.matrix_selector.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.matrix_selector.currentIndexChanged.connect(self._matrix_changed)
        self._add_control("", self.matrix_selector)
        self.block_selector = QComboBox(self._bar)
        self.block_selector.setToolTip("The whole matrix or one gate's block")
        self.block_selector.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.block_selector.currentIndexChanged.connect(self._redraw)
        self._add_control("", self.block_selector)

        self.plot = self._add_plot(0, 0, "Eigenvalues", "Re λ", "Im λ", time_axis=False)
        self.plot.setAspectLocked(True)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        fg = pg.getConfigOption("foreground")
        theta = np.linspace(0, 2 * np.pi, 241)
        self.circle = pg.PlotDataItem(np.cos(theta), np.sin(theta), pen=mkpen(fg, 1.5, "dash"))
        self.plot.addItem(self.circle)
        self.rho_circle = pg.PlotDataItem(pen=mkpen(OUTSIDE, 1, "dot"))
        self.plot.addItem(self.rho_circle)
        self.plot.addLine(x=0, pen=pg.mkPen((128, 128, 128), width=1))
        self.plot.addLine(y=0, pen=pg.mkPen((128, 128, 128), width=1))
        self.points = pg.ScatterPlotItem(size=8, pen=pg.mkPen(None), brush=INSIDE)
        self.outside = pg.ScatterPlotItem(size=9, pen=pg.mkPen(None), brush=OUTSIDE)
        self.plot.addItem(self.points)
        self.plot.addItem(self.outside)
        self.overlay = Overlay(self.plot)
        self._theta = theta
        # Pinned runs' eigenvalues of the same matrix and block: hollow, muted, behind.
        self._pin_pool: list[pg.ScatterPlotItem] = []
        self.pinned_points: dict[str, pg.ScatterPlotItem] = {}
        self.pin_legend = self._add_legend(self.plot, offset=(-5, -5))
        self.pin_legend.setVisible(False)

    def _matrix_changed(self, *_: Any) -> None:
        if self._result is not None:
            self._sync_blocks()
            self._draw()

    def _sync_selectors(self, result: ProbeResult) -> None:
        spectra = result.spectra
        self._fill_combo(self.matrix_selector, [(matrix_label(name), name) for name in spectra])
        self._sync_blocks()

    def _sync_blocks(self) -> None:
        spectra = self._result.spectra
        blocks = spectra.get(self.matrix_selector.currentData(), {})
        order = ["all", *[b for b in blocks if b != "all"]]
        keys = [b for b in order if b in blocks]
        keep = self.block_selector.currentData()
        self._fill_combo(self.block_selector, [(BLOCK_LABELS.get(b, b), b) for b in keys])
        if keys and keep not in keys:  # a new kind of matrix: start on the telling block
            default = next(b for b in (*DEFAULT_BLOCKS, keys[0]) if b in keys)
            self.block_selector.blockSignals(True)
            self.block_selector.setCurrentIndex(keys.index(default))
            self.block_selector.blockSignals(False)

    def _draw(self) -> None:
        spectra = self._result.spectra
        name = self.matrix_selector.currentData()
        block = self.block_selector.currentData()
        eig = spectra.get(name, {}).get(block) if name else None
        if eig is None or len(eig) == 0:
            self.points.setData([], [])
            self.outside.setData([], [])
            self.rho_circle.setData([], [])
            self._table = {}
            self.overlay.set("No recurrent weight matrix in this model.<br>"
                             "(output recurrence feeds back outputs, not hidden states)"
                             if not spectra else "No eigenvalues for this block.")
            fit_title(self.plot, "Eigenvalues")
            return
        self.overlay.set(None)
        eig = np.asarray(eig).astype(np.complex128).ravel()
        ok = np.isfinite(eig)
        eig = eig[ok]
        mag = np.abs(eig)
        rho = float(mag.max()) if mag.size else float("nan")
        out = mag > 1
        self.points.setData(eig.real[~out], eig.imag[~out])
        self.outside.setData(eig.real[out], eig.imag[out])
        if np.isfinite(rho) and abs(rho - 1) > 1e-3:
            self.rho_circle.setData(rho * np.cos(self._theta), rho * np.sin(self._theta))
        else:
            self.rho_circle.setData([], [])
        extent = max(1.15, 1.1 * rho if np.isfinite(rho) else 1.15)
        self.plot.setRange(xRange=(-extent, extent), yRange=(-extent, extent), padding=0)
        where = f" · {block} block" if block not in ("all", "h") else ""
        short = f" · {block}" if block not in ("all", "h") else ""
        if name.startswith(STEP_JACOBIAN):  # no matrix: the diagonal of ∂h_t/∂h_{t−1}
            key = name.removeprefix(STEP_JACOBIAN)
            what = "geometric mean over steps" if block == "mean" else "last step"
            fit_title(self.plot, f"Diagonal step Jacobian of {key} (no W_hh), {what} — "
                      f"ρ = {rho:.3f}", f"diag J_t of {key} · {block} · ρ = {rho:.3f}",
                      f"ρ = {rho:.3f}")
            self._table = {"real": eig.real.copy(), "imag": eig.imag.copy(), "abs": mag}
            return
        fit_title(self.plot, f"Eigenvalues of {name}{where} — ρ = {rho:.3f}",
                  f"λ of {name}{short} · ρ = {rho:.3f}", f"ρ = {rho:.3f}")
        self._table = {"real": eig.real.copy(), "imag": eig.imag.copy(), "abs": mag}
        self._draw_pins(name, block)

    def _draw_pins(self, name: str, block: str) -> None:
        """Each pinned run's eigenvalues of this matrix and block, as hollow rings."""
        found = [(i, pin, pin.eigenvalues(name, block)) for i, pin in enumerate(self.pins)]
        found = [(i, pin, e) for i, pin, e in found if e is not None and np.size(e)]
        while len(self._pin_pool) < len(found):
            item = pg.ScatterPlotItem(size=11, brush=None)
            item.setZValue(-2)
            self.plot.addItem(item)
            self._pin_pool.append(item)
        self.pinned_points.clear()
        self.pin_legend.clear()
        for item in self._pin_pool:
            item.setData([], [])
        legends = self.pin_legends
        for item, (i, pin, e) in zip(self._pin_pool, found, strict=False):
            e = np.asarray(e, dtype=np.complex128).ravel()
            e = e[np.isfinite(e)]
            item.setPen(pin_pen(i, 3 + i, 1.5))
            item.setSymbol(("o", "s", "t", "d")[i % 4])
            item.setData(e.real, e.imag)
            self.pinned_points[pin.label] = item
            self.pin_legend.addItem(item, legends[i])
            if e.size == self._table["real"].size:  # one table: columns of one length
                self._table[f"pinned.{pin.label}.real"] = e.real.copy()
                self._table[f"pinned.{pin.label}.imag"] = e.imag.copy()
        self.pin_legend.setVisible(bool(found))
