"""The block palette: recurrent layers, modifiers, head and loss, dragged onto the canvas.

A block travels as JSON under the MIME type :data:`BLOCK_MIME`, e.g.
``{"kind": "layer", "cell": "lstm", "peephole": true}``.  Double-clicking a block
does what dropping it at the end of the stack would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QWidget,
)

BLOCK_MIME = "application/x-gradlab-block"


@dataclass(frozen=True)
class Block:
    label: str
    spec: dict[str, Any]
    tooltip: str


BLOCKS: tuple[Block, ...] = (
    Block("RNN (tanh)", {"kind": "layer", "cell": "rnn", "activation": "tanh"},
          "Elman RNN: h_t = tanh(W_ih x_t + W_hh h_{t-1} + b). The classic case of "
          "vanishing gradients."),
    Block("RNN (ReLU)", {"kind": "layer", "cell": "rnn", "activation": "relu"},
          "Elman RNN with ReLU: unbounded activations, gradients can explode."),
    Block("RNN (linear)", {"kind": "layer", "cell": "rnn", "activation": "linear"},
          "Elman RNN without a nonlinearity: the gradient is a pure power of W_hh."),
    Block("RNN (sigmoid)", {"kind": "layer", "cell": "rnn", "activation": "sigmoid"},
          "Elman RNN with the logistic sigmoid: its slope is at most 1/4."),
    Block("LSTM", {"kind": "layer", "cell": "lstm"},
          "Long short-term memory: input, forget and output gates around a cell state."),
    Block("Peephole LSTM", {"kind": "layer", "cell": "lstm", "peephole": True},
          "LSTM whose gates also look at the cell state (Gers & Schmidhuber 2000)."),
    Block("GRU", {"kind": "layer", "cell": "gru"},
          "Gated recurrent unit: reset and update gates, no separate cell state."),
    Block("CIFG LSTM", {"kind": "layer", "cell": "cifg"},
          "LSTM with coupled input and forget gates: c_t = f c_{t-1} + (1 − f) g, so "
          "forgetting and writing are one decision (colah's LSTM variants)."),
    Block("minGRU", {"kind": "layer", "cell": "mingru"},
          "minGRU (Feng et al. 2024): h_t = (1 − z) h_{t-1} + z h̃, with z and h̃ from the "
          "input only. No W_hh: the gradient's fate is the product of (1 − z)."),
    Block("minLSTM", {"kind": "layer", "cell": "minlstm"},
          "minLSTM (Feng et al. 2024): h_t = f′ h_{t-1} + i′ h̃ with f′ + i′ = 1, gates from "
          "the input only. No W_hh: the gradient's fate is the product of f′."),
    Block("Bidirectional", {"kind": "bidirectional"},
          "Modifier: drop it on a layer to add a second cell that reads the sequence "
          "backwards (past and future)."),
    Block("Dense head", {"kind": "head"},
          "The linear read-out o = W h + b. Every model has exactly one, on top."),
    Block("Loss: MSE", {"kind": "loss", "loss": "mse"},
          "Mean squared error, for regression targets."),
    Block("Loss: cross-entropy", {"kind": "loss", "loss": "cross_entropy"},
          "Softmax cross-entropy, for class targets (needs 2 or more outputs)."),
)


def block_mime(spec: dict[str, Any]) -> QMimeData:
    """The drag payload for a block."""
    mime = QMimeData()
    mime.setData(BLOCK_MIME, json.dumps(spec).encode("utf-8"))
    mime.setText(json.dumps(spec))
    return mime


def spec_from_mime(mime: QMimeData) -> dict[str, Any] | None:
    """The block carried by ``mime``, or None if it carries none."""
    if not mime.hasFormat(BLOCK_MIME):
        return None
    try:
        spec = json.loads(bytes(mime.data(BLOCK_MIME).data()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return spec if isinstance(spec, dict) and "kind" in spec else None


class Palette(QListWidget):
    """Draggable blocks; ``activated_block(dict)`` on double-click or Enter."""

    activated_block = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setFlow(QListView.Flow.LeftToRight)  # a wrapped row of chips
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSpacing(3)
        # A selected chip keeps its label readable: the highlight's own text colour.
        self.setStyleSheet("QListWidget::item { border: 1px solid palette(mid); "
                           "border-radius: 4px; padding: 1px 4px; }"
                           "QListWidget::item:selected { background: palette(highlight); "
                           "color: palette(highlighted-text); }")
        self.setToolTip("Drag a block onto the architecture (or double-click it)")
        for block in BLOCKS:
            item = QListWidgetItem(block.label)
            item.setData(Qt.ItemDataRole.UserRole, block.spec)
            item.setToolTip(block.tooltip)
            self.addItem(item)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(96)
        self.itemActivated.connect(
            lambda item: self.activated_block.emit(dict(item.data(Qt.ItemDataRole.UserRole))))

    def mimeTypes(self) -> list[str]:
        return [BLOCK_MIME]

    def mimeData(self, items: list[QListWidgetItem]) -> QMimeData:
        spec = items[0].data(Qt.ItemDataRole.UserRole) if items else {}
        return block_mime(dict(spec))
