"""The architecture canvas: input → layer 0 … layer N−1 → head → loss, edited by drag and drop.

Blocks come from the :mod:`gui.palette`; layers are reordered by dragging them
within the canvas or with the arrow buttons, deleted with ✕ and edited in the
property form below the stack.  Every edit goes through :class:`gui.state.LabState`
(undoable, validated); a refused edit shows the reason under the stack until the
next edit that goes through.

No dead ends: a pattern or loss the task cannot have brings a task that can
(:meth:`core.lab.Lab.set_design`, one undo step, said under the stack), the loss is
chosen on its card, and the dense head's card holds its output size (fixed by a
task; free on your own data, where cross-entropy needs two classes or more).
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QDrag, QDragEnterEvent, QDragMoveEvent, QDropEvent, QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.experiment import ACTIVATIONS, CELLS, LOSSES, PATTERNS, Experiment, LayerConfig
from core.limits import limit

from .controls import IntField, with_message
from .palette import Palette, spec_from_mime
from .state import LabState, layer_label

LAYER_MIME = "application/x-gradlab-layer"
NOTICE_STYLE = "color: palette(text); background: palette(alternate-base); padding: 2px;"
REFUSAL_STYLE = "color: #b3261e;"

PATTERN_HELP = {
    "many_to_many": "many to many — an output at every step, hidden-to-hidden recurrence",
    "many_to_one": "many to one — read the whole sequence, one output at the end",
    "output_recurrence": "output recurrence — no hidden-to-hidden link; the previous "
                         "output is fed back",
}
LOSS_NAMES = {"mse": "mean squared error", "cross_entropy": "softmax cross-entropy"}
CELL_LABELS = {"cifg": "CIFG (coupled LSTM)", "mingru": "minGRU", "minlstm": "minLSTM"}

CARD_STYLE = """
QFrame[card="fixed"] { background: palette(alternate-base); border: 1px solid palette(mid);
                       border-radius: 6px; }
QFrame[card="layer"] { background: palette(base); border: 1px solid palette(mid);
                       border-radius: 6px; }
QFrame[card="layer"][selected="true"] { border: 2px solid palette(highlight); }
QFrame#dropLine { background: palette(highlight); }
"""


def _layer_from_spec(spec: dict[str, Any], hidden: int) -> LayerConfig:
    return LayerConfig(cell=spec.get("cell", "lstm"), hidden_size=int(spec.get("hidden_size",
                                                                                hidden)),
                       bidirectional=bool(spec.get("bidirectional", False)),
                       peephole=bool(spec.get("peephole", False)),
                       activation=spec.get("activation", "tanh"))


class _Card(QFrame):
    """One box of the stack; layer cards are selectable and draggable."""

    clicked = Signal(int)

    def __init__(self, text: str, index: int | None = None, tooltip: str = "") -> None:
        super().__init__()
        self.index = index
        self.setProperty("card", "fixed" if index is None else "layer")
        self.setProperty("selected", "false")
        self.setToolTip(tooltip)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel(text)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        # The card, not its label, takes the mouse: a drag may start anywhere on it.
        self.label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._row.addWidget(self.label, 1)
        self._press: QPoint | None = None

    def add_button(self, text: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        self._row.addWidget(button)
        return button

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.index is not None and event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
            self.clicked.emit(self.index)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is None or self.index is None:
            return
        if (event.position().toPoint() - self._press).manhattanLength() < 8:
            return
        self._press = None
        mime = QMimeData()
        mime.setData(LAYER_MIME, json.dumps({"index": self.index}).encode())
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.setPixmap(self.grab())
        drag.exec(Qt.DropAction.MoveAction)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._press = None
        super().mouseReleaseEvent(event)


class StackView(QWidget):
    """The vertical stack of cards; accepts palette blocks and layer moves."""

    def __init__(self, canvas: ArchitectureCanvas) -> None:
        super().__init__()
        self.canvas = canvas
        self.setAcceptDrops(True)
        self.column = QVBoxLayout(self)
        self.column.setSpacing(2)
        self.cards: list[_Card] = []
        self.drop_line = QFrame(self)
        self.drop_line.setObjectName("dropLine")
        self.drop_line.setFixedHeight(3)
        self.drop_line.hide()

    def clear(self) -> None:
        while self.column.count():
            item = self.column.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.cards = []

    def insertion_index(self, pos: QPoint) -> int:
        """Where a layer dropped at ``pos`` would go (0 … number of layers)."""
        layers = [c for c in self.cards if c.index is not None]
        for card in layers:
            if pos.y() < card.geometry().center().y():
                return card.index
        return len(layers)

    def layer_at(self, pos: QPoint) -> int | None:
        for card in self.cards:
            if card.index is not None and card.geometry().contains(pos):
                return card.index
        return None

    def _accepts(self, mime: QMimeData) -> bool:
        return mime.hasFormat(LAYER_MIME) or spec_from_mime(mime) is not None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._accepts(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if not self._accepts(event.mimeData()):
            return
        event.acceptProposedAction()
        pos = event.position().toPoint()
        spec = spec_from_mime(event.mimeData())
        if spec is not None and spec["kind"] != "layer":
            self.drop_line.hide()
            return
        index = self.insertion_index(pos)
        layers = [c for c in self.cards if c.index is not None]
        if layers:
            ref = layers[index] if index < len(layers) else layers[-1]
            y = ref.geometry().top() - 2 if index < len(layers) else ref.geometry().bottom() + 1
            self.drop_line.setGeometry(8, y, self.width() - 16, 3)
            self.drop_line.show()
            self.drop_line.raise_()

    def dragLeaveEvent(self, event: Any) -> None:
        self.drop_line.hide()

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_line.hide()
        if self.canvas.handle_drop(event.mimeData(), event.position().toPoint()):
            event.acceptProposedAction()
        else:
            event.ignore()


class ArchitectureCanvas(QWidget):
    """Pattern chooser, the stack of cards and the selected layer's properties."""

    def __init__(self, state: LabState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.selected: int | None = 0
        self._syncing = False
        self.setStyleSheet(CARD_STYLE)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)

        row = QHBoxLayout()
        row.addWidget(QLabel("Pattern:"))
        self.pattern = QComboBox()
        for p in PATTERNS:
            self.pattern.addItem(p.replace("_", " "), p)
            self.pattern.setItemData(self.pattern.count() - 1, PATTERN_HELP[p],
                                     Qt.ItemDataRole.ToolTipRole)
        self.pattern.setToolTip("Design pattern (Goodfellow et al., ch. 10):\n"
                                + "\n".join(PATTERN_HELP.values()))
        self.pattern.currentIndexChanged.connect(self._pattern_chosen)
        row.addWidget(self.pattern, 1)
        outer.addLayout(row)

        self.stack = StackView(self)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.stack)
        scroll.setToolTip("Drop blocks here. Drag a layer to reorder it; click it to edit.")
        outer.addWidget(scroll, 1)

        self.message = QLabel()  # why an edit was refused, or what else a change brought
        self.message.setWordWrap(True)
        self.message.setStyleSheet(REFUSAL_STYLE)
        self.message.hide()
        outer.addWidget(self.message)
        self.outputs: IntField | None = None  # on the dense head's card, rebuilt with it
        self.loss: QComboBox | None = None  # on the loss card

        self.props = QGroupBox("Selected layer")
        form = QFormLayout(self.props)
        self.cell = QComboBox()
        for c in CELLS:
            self.cell.addItem(CELL_LABELS.get(c, c.upper()), c)
        self.cell.currentIndexChanged.connect(
            lambda: self._edit(cell=self.cell.currentData()))
        self.hidden = IntField(limit("model.layers[k].hidden_size"), "Hidden units H of this layer")
        self.hidden.valueChanged.connect(self._hidden_typed)
        self.activation = QComboBox()
        for a in ACTIVATIONS:
            self.activation.addItem(a, a)
        self.activation.setToolTip("Nonlinearity φ of an RNN cell (LSTM and GRU gates are fixed)")
        self.activation.currentIndexChanged.connect(
            lambda: self._edit(activation=self.activation.currentData()))
        self.bidirectional = QCheckBox("run a second cell backwards in time")
        self.bidirectional.toggled.connect(lambda v: self._edit(bidirectional=v))
        self.peephole = QCheckBox("gates see the cell state (LSTM only)")
        self.peephole.toggled.connect(lambda v: self._edit(peephole=v))
        form.addRow("Cell", self.cell)
        form.addRow("Hidden size", with_message(self.hidden))
        form.addRow("Activation", self.activation)
        form.addRow("Bidirectional", self.bidirectional)
        form.addRow("Peephole", self.peephole)
        outer.addWidget(self.props)

        state.experiment_changed.connect(self.sync)
        self.sync(state.experiment)

    # ------------------------------------------------------------------ rendering

    def sync(self, exp: Experiment) -> None:
        """Redraw the stack and the property form from the experiment."""
        self._syncing = True
        try:
            m = exp.model
            self.pattern.setCurrentIndex(PATTERNS.index(m.pattern))
            n = len(m.layers)
            if self.selected is not None and self.selected >= n:
                self.selected = n - 1 if n else None
            task = exp.task.name if exp.task is not None else None
            shown = (repr(m), task, self.selected)  # a snapshot, not a reference
            if shown != getattr(self, "_shown", None):  # a scale or training edit changes nothing here
                if shown[:2] != getattr(self, "_shown", (None, None))[:2]:
                    self.message.hide()  # the architecture changed: an old refusal is stale
                self._rebuild(exp)
                self._shown = shown
            if self.loss is not None:  # a refused loss snaps back
                self.loss.setCurrentIndex(LOSSES.index(m.loss))
            self._sync_props(exp)
        finally:
            self._syncing = False

    def _rebuild(self, exp: Experiment) -> None:
        m = exp.model
        st = self.stack
        st.clear()
        source = "your own data" if exp.task is None else f"{exp.task.name} task"
        st.cards.append(_Card(f"<b>Input</b> x<sub>t</sub> · {m.input_size} "
                              f"feature{'s' if m.input_size != 1 else ''} "
                              f"<span style='color:gray'>({source})</span>",
                              tooltip="The sequence fed in, one vector per timestep"))
        for k, layer in enumerate(m.layers):
            text = (f"<b>{k}</b>&nbsp; {layer_label(layer)} · {layer.hidden_size} "
                    f"unit{'s' if layer.hidden_size != 1 else ''}")
            if m.pattern == "output_recurrence" and k == 0:
                text += " <span style='color:gray'>← y<sub>t−1</sub></span>"
            card = _Card(text, k, "Click to edit, drag to reorder")
            card.setProperty("selected", "true" if k == self.selected else "false")
            card.clicked.connect(self.select)
            up = card.add_button("▲", "Move this layer up, towards the input")
            up.setEnabled(k > 0)
            up.clicked.connect(lambda _=False, i=k: self._move(i, i - 1))
            down = card.add_button("▼", "Move this layer down, towards the head")
            down.setEnabled(k < len(m.layers) - 1)
            down.clicked.connect(lambda _=False, i=k: self._move(i, i + 1))
            delete = card.add_button("✕", "Delete this layer")
            delete.clicked.connect(lambda _=False, i=k: self._delete(i))
            st.cards.append(card)
        head = self._head_card(exp)
        st.cards.append(head)
        st.cards.append(self._loss_card(exp))
        for i, card in enumerate(st.cards):
            if i:
                arrow = QLabel("↓")
                arrow.setAlignment(Qt.AlignmentFlag.AlignCenter)
                arrow.setStyleSheet("color: gray;")
                st.column.addWidget(arrow)
            st.column.addWidget(card)
            if card is head and self.outputs is not None:
                st.column.addWidget(self.outputs.message)
        st.column.addStretch(1)

    def _head_card(self, exp: Experiment) -> _Card:
        """The dense head, with its output size: a field of its own on your own data,
        the task's size (shown, not editable) with a task."""
        m = exp.model
        card = _Card("<b>Dense head</b> ·", tooltip="Linear read-out o = W h + b")
        classes = m.loss == "cross_entropy"
        noun = "class" if classes else "output"
        plural = ("es" if classes else "s") if m.output_size != 1 else ""
        if exp.task is None:
            tip = ("Outputs O of the dense head; with cross-entropy, the number of classes "
                   "(at least 2). Your target arrays must have as many.")
        else:
            tip = (f"The {exp.task.name} task has {m.output_size} {noun}{plural}: its sizes come "
                   "with it. Choose another task, or work on your own data, to change it.")
        self.outputs = IntField(limit("model.output_size"), tip)
        self.outputs.set_value(m.output_size)
        self.outputs.setEnabled(exp.task is None)
        self.outputs.valueChanged.connect(self._outputs_typed)
        card._row.insertWidget(1, self.outputs)
        where = "on the last step" if m.pattern == "many_to_one" else "at every step"
        note = ("" if exp.task is None else
                f" <span style='color:gray'>(set by the {exp.task.name} task)</span>")
        text = QLabel(f"{noun}{plural} {where}{note}")
        text.setTextFormat(Qt.TextFormat.RichText)
        text.setWordWrap(True)
        card._row.insertWidget(2, text, 1)
        card._row.setStretch(0, 0)
        return card

    def _loss_card(self, exp: Experiment) -> _Card:
        """The loss, chosen here (or by dropping a loss block)."""
        card = _Card("<b>Loss</b> ·", tooltip="Choose the loss here, or drop a loss block")
        self.loss = QComboBox()
        for loss in LOSSES:
            self.loss.addItem(LOSS_NAMES.get(loss, loss), loss)
        self.loss.setCurrentIndex(LOSSES.index(exp.model.loss))
        self.loss.setToolTip("Mean squared error for regression targets, softmax cross-entropy "
                             "for classes. A task that cannot have the loss is replaced by one "
                             "that can (Ctrl+Z goes back).")
        self.loss.currentIndexChanged.connect(self._loss_chosen)
        card._row.insertWidget(1, self.loss, 1)
        card._row.setStretch(0, 0)
        return card

    def _sync_props(self, exp: Experiment) -> None:
        k = self.selected
        self.props.setEnabled(k is not None)
        if k is None:
            self.props.setTitle("Selected layer (none)")
            return
        layer = exp.model.layers[k]
        self.props.setTitle(f"Layer {k}: {layer_label(layer)}")
        self.cell.setCurrentIndex(CELLS.index(layer.cell))
        self.hidden.set_value(layer.hidden_size)
        self.activation.setCurrentIndex(ACTIVATIONS.index(layer.activation))
        self.activation.setEnabled(layer.cell == "rnn")
        self.bidirectional.setChecked(layer.bidirectional)
        self.peephole.setChecked(layer.peephole)

    # ------------------------------------------------------------------ edits

    def select(self, index: int | None) -> None:
        """Make layer ``index`` the one the property form edits."""
        if index != self.selected:
            self.hidden.clear_flag()  # it spoke of another layer
        self.selected = index
        for card in self.stack.cards:
            if card.index is not None:
                card.setProperty("selected", "true" if card.index == index else "false")
                card.style().unpolish(card)
                card.style().polish(card)
        self._syncing = True
        try:
            self._sync_props(self.state.experiment)
        finally:
            self._syncing = False

    def _report(self, ok: bool) -> bool:
        if ok:
            self.message.hide()
        else:
            self.show_refusal(self.state.last_error)
        return ok

    def show_refusal(self, message: str) -> None:
        """Show under the stack why the last edit was refused."""
        if "cross_entropy needs at least 2 classes" in message and self.state.experiment.task is None:
            message += " — set the dense head's outputs to 2 or more first"
        self.message.setStyleSheet(REFUSAL_STYLE)
        self.message.setText(f"Not applied: {message}")
        self.message.show()

    def show_notice(self, message: str) -> None:
        """Show under the stack what else an edit brought (a new task, …)."""
        self.message.setStyleSheet(NOTICE_STYLE)
        self.message.setText(message)
        self.message.show()

    def _edit(self, **changes: Any) -> None:
        if self._syncing or self.selected is None:
            return
        changes = dict(changes)
        layer = self.state.experiment.model.layers[self.selected]
        if changes.get("cell") not in (None, "rnn") and layer.activation != "tanh":
            changes["activation"] = "tanh"  # gated cells have no activation choice
        if not self._report(self.state.update_layer(self.selected, **changes)):
            self.sync(self.state.experiment)

    def _hidden_typed(self, value: int) -> None:
        """A hidden size outside the table, or refused, stays in the field with the reason."""
        if self._syncing or self.selected is None or not self.hidden.check(value):
            return
        if self.state.update_layer(self.selected, hidden_size=value):
            self.message.hide()
        else:
            self.hidden.refuse(value, self.state.last_error)

    def _outputs_typed(self, value: int) -> None:
        field = self.outputs
        if self._syncing or field is None or not field.check(value):
            return
        if self.state.set_output_size(value):
            self.message.hide()
        else:
            field.refuse(value, self.state.last_error)

    def _design(self, **changes: str) -> bool:
        """A new pattern or loss; when the task cannot have it, the lab brings a task that
        can and the reason is shown under the stack."""
        notes: list[str] = []

        def heard(text: str) -> None:
            notes.append(text)

        self.state.notice.connect(heard)
        try:
            ok = self.state.set_design(**changes)
        finally:
            self.state.notice.disconnect(heard)
        if not ok:
            self.show_refusal(self.state.last_error)
            self.sync(self.state.experiment)
        elif notes:
            self.show_notice(" ".join(notes))
        else:
            self.message.hide()
        return ok

    def _loss_chosen(self) -> None:
        if self._syncing or self.loss is None:
            return
        loss = self.loss.currentData()
        if loss != self.state.experiment.model.loss:
            self._design(loss=loss)  # the card is rebuilt: this combo is deleted later

    def _move(self, src: int, dst: int) -> None:
        if self._report(self.state.move_layer(src, dst)):
            self.select(dst)

    def _delete(self, index: int) -> None:
        self._report(self.state.remove_layer(index))

    def _pattern_chosen(self) -> None:
        if self._syncing:
            return
        self._design(pattern=self.pattern.currentData())

    def add_block(self, spec: dict[str, Any], index: int | None = None,
                  layer: int | None = None) -> bool:
        """Apply a palette block: insert a layer at ``index`` (default: on top), make
        ``layer`` (default: the selected one) bidirectional, or set the loss."""
        kind = spec.get("kind")
        model = self.state.experiment.model
        if kind == "layer":
            at = len(model.layers) if index is None else index
            hidden = model.layers[-1].hidden_size if model.layers else 32
            ok = self._report(self.state.insert_layer(at, _layer_from_spec(spec, hidden)))
            if ok:
                self.select(at)
            return ok
        if kind == "bidirectional":
            target = self.selected if layer is None else layer
            if target is None:
                self.show_refusal("select a layer first: bidirectional modifies a layer")
                return False
            self.selected = target
            return self._report(self.state.update_layer(target, bidirectional=True))
        if kind == "loss":
            return self._design(loss=spec.get("loss", "mse"))
        if kind == "head":
            self.show_refusal("the model already has its dense head; there is always "
                              "exactly one, on top of the last layer")
            return False
        return False

    def handle_drop(self, mime: QMimeData, pos: QPoint) -> bool:
        """Apply a drop at ``pos`` (stack coordinates): a palette block or a layer move."""
        if mime.hasFormat(LAYER_MIME):
            try:
                src = int(json.loads(bytes(mime.data(LAYER_MIME).data()))["index"])
            except (ValueError, KeyError, TypeError):
                return False
            dst = self.stack.insertion_index(pos)
            if dst > src:
                dst -= 1
            if dst == src:
                return False
            # The dragged card is rebuilt by the move: do it once the drag has returned.
            QTimer.singleShot(0, lambda: self._move(src, dst))
            return True
        spec = spec_from_mime(mime)
        if spec is None:
            return False
        if spec["kind"] == "layer":
            return self.add_block(spec, index=self.stack.insertion_index(pos))
        if spec["kind"] == "bidirectional":
            return self.add_block(spec, layer=self.stack.layer_at(pos))
        return self.add_block(spec)


class BuilderPanel(QWidget):
    """The palette of blocks above the architecture canvas."""

    def __init__(self, state: LabState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.palette = Palette()
        self.canvas = ArchitectureCanvas(state)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        title = QLabel("<b>Blocks</b> <span style='color:gray'>— drag onto the stack, "
                       "or double-click</span>")
        title.setContentsMargins(6, 4, 4, 0)
        lay.addWidget(title)
        lay.addWidget(self.palette)
        lay.addWidget(self.canvas, 1)
        self.palette.activated_block.connect(self.canvas.add_block)
