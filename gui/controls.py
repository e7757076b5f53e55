"""The control panel: weight-scale knobs, initialisation, data, training and backend.

Every widget writes straight into :class:`gui.state.LabState`, which re-runs the
probe; the panel redraws itself from ``experiment_changed`` (signals blocked, so
nothing loops) and shows the live spectral radius of every recurrent matrix.

Number fields (:class:`IntField`, :class:`FloatField`) take their ranges from
:mod:`core.limits`, the table the experiment schema checks.  They never change a typed
value into another one: a value outside the range, or one the lab refuses, stays in
the field, tinted red, with the reason and the allowed range right under it,
and nothing is applied; a valid value clears the message.  Learning rates and other
numbers may be typed in scientific notation (``1e-7``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QFocusEvent, QKeyEvent, QPalette, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.diagonal import PREFIX as STEP_JACOBIAN
from core.experiment import SCHEMES, Experiment
from core.knob_effects import idle_knobs
from core.limits import Limit, format_number, limit

from .state import LabState

# The slider's log axis; the spin box beside it takes the table's whole range.
SCALE_MIN, SCALE_MAX = 0.1, 4.0
SLIDER_STEPS = 1000

OWN_DATA = "your own data"
OWN_DATA_HELP = ("This experiment has no task section: it runs on input and target arrays "
                 "you give (gradlab analyze/train --input X.npy --target Y.npy), so there is "
                 "no task to set here.")

SCALE_HELP = {
    "input": "Multiplies every input-to-hidden matrix W_ih after initialisation.",
    "recurrent": "Multiplies every hidden-to-hidden matrix W_hh (and the output feedback "
                 "W_oh, peepholes). Its spectral radius ρ decides whether gradients shrink "
                 "(ρ < 1) or may grow (ρ > 1) as they travel back in time.",
    "output": "Multiplies the dense head's weight matrix.",
}
FORGET_HELP = ("Added to the forget-gate bias (LSTM, CIFG, minLSTM): 1–2 keeps the gate open "
               "so memory (and gradient) survives")


_INTEGER = re.compile(r"[+-]?\d+")
_INTEGER_START = re.compile(r"[+-]?")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NUMBER_START = re.compile(r"[+-]?\d*\.?\d*([eE][+-]?\d*)?")
INVALID_BASE = "#fde7e9"  # the field's background while it holds a value not applied
INVALID_TEXT = "#b3261e"
MESSAGE_STYLE = f"color: {INVALID_TEXT};"
INT_LIMIT = 2**31 - 1  # what a QSpinBox holds
FLOAT_LIMIT = 1e9  # the widest a number field holds; every table bound is far inside


class _RangeField:
    """What :class:`IntField` and :class:`FloatField` share (mixed into a spin box).

    The spin box itself holds far more than the table allows, so that Qt never clamps
    what a user types; :meth:`check` decides what may be applied.  ``message`` is the
    label under the field (place it with :func:`with_message`).
    """

    limit: Limit
    _integer = False
    off = ""  # (class defaults: Qt asks validate() and textFromValue() during construction)
    flagged = False
    _synced: Any = None
    _base: Any = None

    def _init_field(self, limit: Limit, tip: str, off: str = "") -> None:
        self.limit = limit
        self.off = off  # the text of "null" (shown for the value just below the range)
        self.flagged = False
        self._synced = None  # the lab's value this field last showed
        self._base = None  # … when the message went up
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet(MESSAGE_STYLE)
        self.message.hide()
        self.setKeyboardTracking(False)
        allowed = f"{limit.rule()}{self._off_words()}"
        self.setToolTip(f"{tip}\nAllowed: {allowed}" if tip else f"Allowed: {allowed}")
        if off:
            self.setSpecialValueText(off)
        self.lineEdit().textEdited.connect(self._typing)

    # ------------------------------------------------------------------ reading text

    def _off_value(self) -> int:
        return int(self.limit.lo) - 1

    def _core(self, text: str) -> str:
        """``text`` without the prefix and suffix, trimmed."""
        prefix, suffix = self.prefix(), self.suffix()
        if prefix and text.startswith(prefix):
            text = text[len(prefix):]
        if suffix and text.endswith(suffix):
            text = text[:-len(suffix)]
        elif suffix.strip() and text.endswith(suffix.strip()):
            text = text[:-len(suffix.strip())]
        return text.strip()

    def _read(self, text: str) -> tuple[str, Any]:
        """("number", value), ("partial", None) for the start of one, ("empty", None)
        or ("junk", None)."""
        if self.off and text.strip() == self.off:
            return "number", self._off_value()
        core = self._core(text)
        if not core:
            return "empty", None
        full, start = (_INTEGER, _INTEGER_START) if self._integer else (_NUMBER, _NUMBER_START)
        if full.fullmatch(core):
            return "number", int(core) if self._integer else float(core)
        if start.fullmatch(core):
            return "partial", None
        return "junk", None

    def _holds(self, value: float) -> bool:
        """Whether the spin box itself can hold ``value`` (a finite number in its range)."""
        return bool(math.isfinite(value) and self.minimum() <= value <= self.maximum())

    def _lab_value(self, value: Any) -> Any:
        """The experiment's value for a shown one: None for "off"."""
        return None if self.off and value == self._off_value() else value

    def _off_words(self) -> str:
        return f", or {self._off_value()} for {self.limit.null or self.off}" if self.off else ""

    def _requirement(self, shown: str) -> str:
        return f"Not applied: must be {self.limit.rule()}{self._off_words()}; got {shown}"

    # ------------------------------------------------------------------ Qt's hooks

    def validate(self, text: str, pos: int) -> Any:
        kind, value = self._read(text)
        if kind == "number":
            state = (QValidator.State.Acceptable if self._holds(value)
                     else QValidator.State.Intermediate)
        elif kind in ("empty", "partial"):
            state = QValidator.State.Intermediate
        else:
            state = QValidator.State.Invalid
        return state, text, pos

    def fixup(self, text: str) -> str:
        return text  # never rewrite what was typed

    def valueFromText(self, text: str) -> Any:
        kind, value = self._read(text)
        return value if kind == "number" and self._holds(value) else self.value()

    def textFromValue(self, value: Any) -> str:
        return str(int(value)) if self._integer else format_number(float(value))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            kind, value = self._read(self.lineEdit().text())
            if kind == "partial":
                self._flag(f"Not applied: {self._core(self.lineEdit().text())!r} is not a "
                           f"number; allowed: {self.limit.rule()}")
                event.accept()
                return
            if kind == "number" and not self._holds(value):
                self._flag(self._requirement(self._core(self.lineEdit().text())))
                event.accept()
                return
            if (kind == "number" and value == self.value()
                    and self._lab_value(value) != self._synced):  # refused before: try again
                self.valueChanged.emit(value)  # type: ignore[attr-defined]
                event.accept()
                return
        super().keyPressEvent(event)  # type: ignore[misc]

    def focusOutEvent(self, event: QFocusEvent) -> None:
        text = self.lineEdit().text()
        kind, value = self._read(text)
        keep = kind == "partial" or (kind == "number" and not self._holds(value))
        super().focusOutEvent(event)  # type: ignore[misc]
        if keep:  # Qt put the last value back: show what was typed, and why it is not used
            self.lineEdit().setText(text)
            self._flag(self._requirement(self._core(text)) if kind == "number" else
                       f"Not applied: {self._core(text)!r} is not a number")

    def stepBy(self, steps: int) -> None:
        """Arrow keys and the wheel step within the table's range (never out of it)."""
        kind, value = self._read(self.lineEdit().text())
        if kind != "number" or not self._holds(value):
            value = self.value()
        new = value + steps * self._step(value, steps)
        if not self._integer:
            new = float(f"{new:.12g}")
        lim = self.limit
        if self.off and new <= self._off_value():
            new = self._off_value()
        elif not lim.contains(new):
            if new < lim.lo:
                new = lim.lo if not lim.lo_open else value
            else:
                new = lim.hi if not lim.hi_open else value
            if not lim.contains(new) and not (self.off and new == self._off_value()):
                return
        self.setValue(int(new) if self._integer else new)  # type: ignore[attr-defined]
        self.selectAll()  # type: ignore[attr-defined]

    def _step(self, value: float, steps: int) -> float:
        adaptive = self.stepType() == QAbstractSpinBox.StepType.AdaptiveDecimalStepType
        if not adaptive or value == 0 or self._integer:
            return self.singleStep()
        return 10.0 ** (math.floor(math.log10(abs(value))) - 1)  # 0.001 ↔ 0.0009, 0.0011

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:
        value = self.value()
        lo = self._off_value() if self.off else self.limit.lo
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if value > lo:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        if value < self.limit.hi:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        return flags

    # ------------------------------------------------------------------ the lab's side

    def set_value(self, value: Any) -> None:
        """Show the lab's ``value`` (None: off) without emitting.  A field showing a
        refused value keeps it, and its message, while the lab's value is the one it
        had when the message went up."""
        self._synced = value
        if self.flagged and value == self._base:
            return
        self.clear_flag()
        shown = self._off_value() if value is None else value
        if self._shows(shown):
            return  # Qt repaints a spin box on every setValue, even of the value it holds
        with QSignalBlocker(self):  # type: ignore[arg-type]
            self.setValue(shown)  # type: ignore[attr-defined]

    def _shows(self, value: Any) -> bool:
        """Whether the field holds ``value`` and its text is that value's."""
        if self.value() != value:  # type: ignore[attr-defined]
            return False
        special = self.specialValueText()  # type: ignore[attr-defined]
        text = (special if special and value == self.minimum() else  # type: ignore[attr-defined]
                f"{self.prefix()}{self.textFromValue(value)}{self.suffix()}")  # type: ignore[attr-defined]
        return self.lineEdit().text() == text  # type: ignore[attr-defined]

    def check(self, value: Any) -> bool:
        """Whether a value that reached the spin box may be applied; when not, the
        field is flagged with the allowed range and the value stays in it."""
        if self._holds(value) and self.limit.allowed(self._lab_value(value)):
            self.clear_flag()
            return True
        self._flag(self._requirement(self.textFromValue(value)))
        return False

    def refuse(self, value: Any, reason: str) -> None:
        """The lab refused ``value``: keep it in the field and say why."""
        with QSignalBlocker(self):  # type: ignore[arg-type]
            self.setValue(value)  # type: ignore[attr-defined]
        self._flag(f"Not applied: {reason}")

    def clear_flag(self) -> None:
        if not self.flagged:
            return
        self.flagged = False
        self.message.hide()
        self.message.clear()
        self.setPalette(QPalette())  # type: ignore[attr-defined]  # inherited again
        self.setProperty("invalid", False)  # type: ignore[attr-defined]

    def _flag(self, text: str) -> None:
        if not self.flagged:
            self._base = self._synced
        self.flagged = True
        self.message.setText(text)
        self.message.show()
        # Tinted through the palette, not a style sheet: the field keeps its native look.
        palette = self.palette()  # type: ignore[attr-defined]
        palette.setColor(QPalette.ColorRole.Base, QColor(INVALID_BASE))
        palette.setColor(QPalette.ColorRole.Text, QColor(INVALID_TEXT))
        self.setPalette(palette)  # type: ignore[attr-defined]
        self.setProperty("invalid", True)  # type: ignore[attr-defined]

    def _typing(self, text: str) -> None:
        """As the user types: a whole number outside the range is flagged at once; a
        valid one clears the message (it is applied on Enter or leaving the field)."""
        kind, value = self._read(text)
        if kind != "number":
            return
        if self._holds(value) and self.limit.allowed(self._lab_value(value)):
            self.clear_flag()
        else:
            self._flag(self._requirement(self._core(text)))


class IntField(_RangeField, QSpinBox):
    """An integer field with its range from :mod:`core.limits`; ``off`` names what the
    value just below the range means (it stands for null: "off (full BPTT)")."""

    _integer = True

    def __init__(self, limit: Limit, tip: str = "", off: str = "",
                 parent: QWidget | None = None) -> None:
        QSpinBox.__init__(self, parent)
        self.setRange(int(limit.lo) - 1 if off else -INT_LIMIT - 1, INT_LIMIT)
        self._init_field(limit, tip, off)


class FloatField(_RangeField, QDoubleSpinBox):
    """A number field with its range from :mod:`core.limits`; scientific notation
    welcome; ``adaptive`` steps by a tenth of the value's decade."""

    def __init__(self, limit: Limit, tip: str = "", step: float = 0.1, adaptive: bool = False,
                 parent: QWidget | None = None) -> None:
        QDoubleSpinBox.__init__(self, parent)
        self.setDecimals(323)  # Qt rounds to this many decimals: keep every typed digit
        self.setRange(-FLOAT_LIMIT, FLOAT_LIMIT)
        self.setSingleStep(step)
        if adaptive:
            self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self._init_field(limit, tip)


def with_message(field: _RangeField) -> QWidget:
    """The field with its message label right under it, for a form row."""
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(1)
    column.addWidget(field)  # type: ignore[arg-type]
    column.addWidget(field.message)
    return box


def slider_to_scale(pos: int) -> float:
    """Slider position 0 … SLIDER_STEPS → scale SCALE_MIN … SCALE_MAX on a log axis."""
    return SCALE_MIN * (SCALE_MAX / SCALE_MIN) ** (pos / SLIDER_STEPS)


def scale_to_slider(value: float) -> int:
    value = min(max(value, SCALE_MIN), SCALE_MAX)
    return round(SLIDER_STEPS * math.log(value / SCALE_MIN) / math.log(SCALE_MAX / SCALE_MIN))


def matrix_label(name: str) -> str:
    """``weight_hh_l1_reverse`` → ``W_hh, layer 1 (reverse)``; ``loop_l0`` → the
    output feedback loop ``W_oh · W_head`` of output recurrence."""
    if name.startswith(STEP_JACOBIAN):  # minGRU/minLSTM: no W_hh, a diagonal Jacobian
        name = "step Jacobian_l" + name.removeprefix(STEP_JACOBIAN).removeprefix("l")
    base, _, tail = name.partition("_l")
    k, _, rev = tail.partition("_")
    if base == "step Jacobian":
        base = "step Jacobian (diagonal, geometric mean)"
    if base == "loop":
        label = "W_oh·W_head, output loop"
    else:
        label = base.replace("weight_", "W_") if base.startswith("weight_") else base
    if k.isdigit():
        label += f", layer {int(k)}"
    if rev == "reverse":
        label += " (reverse)"
    return label


class ScaleControl(QWidget):
    """A log slider and a number field for one weight-scale family; ``value_changed(float)``.

    The slider spans SCALE_MIN … SCALE_MAX; the field takes the table's whole range
    (a value beyond the slider leaves it at its end)."""

    value_changed = Signal(float)

    def __init__(self, family: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.family = family
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(1)
        row = QHBoxLayout()
        column.addLayout(row)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setPageStep(SLIDER_STEPS // 20)
        self.spin = FloatField(limit(f"init.scales.{family}"), SCALE_HELP[family], step=0.05)
        self.spin.setSuffix(" ×")
        for w in (self, self.slider):
            w.setToolTip(SCALE_HELP[family])
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        column.addWidget(self.spin.message)
        self.slider.valueChanged.connect(self._slid)
        self.spin.valueChanged.connect(self._typed)

    def value(self) -> float:
        return self.spin.value()

    def set_value(self, value: float) -> None:
        """Show ``value`` without emitting; a slider the user is dragging, or a widget
        that already shows the value, is left alone (no echo of the user's own move)."""
        self.spin.set_value(value)
        shown = round(slider_to_scale(self.slider.value()), 3)
        if not self.slider.isSliderDown() and shown != round(value, 3):
            self.slider.blockSignals(True)
            self.slider.setValue(scale_to_slider(value))
            self.slider.blockSignals(False)

    def _slid(self, pos: int) -> None:
        value = round(slider_to_scale(pos), 3)
        self.spin.clear_flag()
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.value_changed.emit(value)

    def _typed(self, value: float) -> None:
        if not self.spin.check(value):
            return  # flagged in the field; the slider stays where the lab is
        self.slider.blockSignals(True)
        self.slider.setValue(scale_to_slider(value))
        self.slider.blockSignals(False)
        self.value_changed.emit(value)


def _combo(items: list[tuple[str, Any]], tip: str = "") -> QComboBox:
    combo = QComboBox()
    for text, data in items:
        combo.addItem(text, data)
    combo.setToolTip(tip)
    return combo


def _select(combo: QComboBox, data: Any) -> None:
    i = combo.findData(data)
    if i >= 0:
        combo.setCurrentIndex(i)


class ControlPanel(QScrollArea):
    """Every knob of the experiment except the architecture, in four groups."""

    def __init__(self, state: LabState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._widgets: list[QWidget] = []
        self.setWidgetResizable(True)
        self.setMinimumWidth(290)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(4, 4, 4, 4)
        column.addWidget(self._weights_group())
        column.addWidget(self._data_group())
        column.addWidget(self._training_group())
        column.addWidget(self._backend_group())
        column.addStretch(1)
        self.setWidget(body)
        state.experiment_changed.connect(self.sync)
        state.result_changed.connect(self.show_result)
        self.sync(state.experiment)

    # ------------------------------------------------------------------ groups

    def _track(self, widget: QWidget) -> QWidget:
        self._widgets.append(widget)
        return widget

    def _bind(self, field: IntField | FloatField, apply: Callable[[Any], bool]) -> None:
        """Apply what reaches ``field`` when the table allows it; otherwise, or when the
        lab refuses it, the value stays in the field with the reason under it."""
        def changed(value: Any) -> None:
            if field.check(value):
                self._refused(field, value, apply(field._lab_value(value)))

        field.valueChanged.connect(changed)

    def _refused(self, field: IntField | FloatField, value: Any, ok: bool) -> None:
        if not ok:
            field.refuse(value, self.state.last_error)

    def _weights_group(self) -> QGroupBox:
        box = QGroupBox("Weights")
        form = QFormLayout(box)
        self.scales: dict[str, ScaleControl] = {}
        for family in ("input", "recurrent", "output"):
            ctl = self._track(ScaleControl(family))
            ctl.value_changed.connect(
                lambda v, f=family, c=ctl: self._refused(c.spin, v, self.state.set_scale(f, v)))
            self.scales[family] = ctl
            form.addRow(f"{family.capitalize()} scale", ctl)
            if family == "recurrent":
                self.radius = QLabel("ρ: waiting for the first probe…")
                self.radius.setWordWrap(True)
                self.radius.setTextFormat(Qt.TextFormat.RichText)
                self.radius.setToolTip(
                    "Spectral radius ρ of each recurrent matrix (largest |eigenvalue|). "
                    "Roughly: ρ < 1 makes gradients fade with distance in time, ρ > 1 lets "
                    "them grow. minGRU and minLSTM have no recurrent matrix: their step "
                    "Jacobian is diagonal (1 − z or f′), and ρ is its largest per-unit "
                    "geometric mean over the probe's steps.")
                form.addRow("", self.radius)
        self.scheme = self._track(_combo([(s, s) for s in SCHEMES],
                                         "How the weights are drawn before scaling"))
        self.scheme.currentIndexChanged.connect(
            lambda: self.state.set_init(scheme=self.scheme.currentData()))
        form.addRow("Init scheme", self.scheme)
        self.forget_bias = self._track(FloatField(
            limit("init.forget_bias"), FORGET_HELP, step=0.5))
        self._bind(self.forget_bias, lambda v: self.state.set_init(forget_bias=v))
        form.addRow("Forget-gate bias", with_message(self.forget_bias))
        self.seed = self._track(IntField(limit("init.seed"),
                                         "Random seed of the weights and the data"))
        self._bind(self.seed, lambda v: self.state.set_init(seed=v))
        form.addRow("Seed", with_message(self.seed))
        from core.lab import MAX_BAND_SEEDS

        self.seeds = self._track(IntField(
            Limit("seeds", int, 1, MAX_BAND_SEEDS),
            "Probe the same settings with this many seeds (weights and batch drawn afresh "
            "from seed, seed + 1, …) and draw the mean gradient with a band: the spread "
            "over the seeds, min–max below 10 seeds, the middle 95 % from 10. One run "
            "alone can mislead: its curve is a trend plus the noise of one draw."))
        self.seeds.set_value(self.state.seeds)
        self._bind(self.seeds, self.state.set_seeds)
        self.state.seeds_changed.connect(self.seeds.set_value)
        form.addRow("Seeds (band)", with_message(self.seeds))
        return box

    def _data_group(self) -> QGroupBox:
        from core.tasks import DATASET_NAMES, TASK_NAMES, describe_task

        box = QGroupBox("Data")
        form = QFormLayout(box)
        self.task = self._track(_combo([(n.replace("_", " "), n) for n in TASK_NAMES],
                                       "Where the sequences come from"))
        for i, name in enumerate(TASK_NAMES):
            self.task.setItemData(i, describe_task(name), Qt.ItemDataRole.ToolTipRole)
        self.task.currentIndexChanged.connect(self._task_chosen)
        form.addRow("Task", self.task)
        self.series = self._track(_combo([(n, n) for n in DATASET_NAMES],
                                         "Which bundled real-world series"))
        self.series.currentIndexChanged.connect(
            lambda: self.state.set_task(series=self.series.currentData()))
        self.series_label = QLabel("Data set")
        form.addRow(self.series_label, self.series)
        self.csv_button = QPushButton("Choose CSV file…")
        self.csv_button.clicked.connect(self._choose_csv)
        self.csv_label = QLabel("CSV file")
        form.addRow(self.csv_label, self.csv_button)
        self.seq_len = self._track(IntField(limit("task.seq_len"), "Timesteps T per sequence. "
                                            "The weights do not depend on it."))
        self._bind(self.seq_len, lambda v: self.state.set_task(seq_len=v))
        form.addRow("Sequence length", with_message(self.seq_len))
        self.batch = self._track(IntField(limit("task.batch_size"), "Sequences per batch B"))
        self._bind(self.batch, lambda v: self.state.set_task(batch_size=v))
        form.addRow("Batch size", with_message(self.batch))
        return box

    def _training_group(self) -> QGroupBox:
        box = QGroupBox("Training")
        form = QFormLayout(box)
        self.optimizer = self._track(_combo([("Adam", "adam"), ("RMSprop", "rmsprop"),
                                             ("SGD", "sgd")], "Update rule"))
        self.optimizer.currentIndexChanged.connect(
            lambda: self.state.set_training(optimizer=self.optimizer.currentData()))
        form.addRow("Optimizer", self.optimizer)
        self.lr = self._track(FloatField(limit("training.lr"), "Learning rate (1e-4 works too)",
                                         step=0.001, adaptive=True))
        self._bind(self.lr, lambda v: self.state.set_training(lr=v))
        form.addRow("Learning rate", with_message(self.lr))
        self.clip_mode = self._track(_combo(
            [("none", "none"), ("by global norm", "norm"), ("by value", "value")],
            "Gradient clipping: rescale the whole gradient when its norm exceeds the "
            "threshold, or cap each element"))
        self.clip_mode.currentIndexChanged.connect(
            lambda: self.state.set_clip(mode=self.clip_mode.currentData()))
        form.addRow("Clipping", self.clip_mode)
        self.clip_value = self._track(FloatField(
            limit("training.clip.max_norm"), "Clipping threshold: the largest gradient norm "
            "(by global norm) or element (by value)", step=0.5, adaptive=True))
        self._bind(self.clip_value, self._clip_threshold)
        form.addRow("Clip threshold", with_message(self.clip_value))
        self.tbptt = self._track(IntField(limit("training.tbptt"), "Truncated BPTT: cut the "
                                          "recurrent gradient every k steps",
                                          off="off (full BPTT)"))
        self._bind(self.tbptt, lambda v: self.state.set_training(tbptt=v))
        form.addRow("TBPTT window", with_message(self.tbptt))
        self.teacher = self._track(FloatField(
            limit("training.teacher_forcing"), "Output recurrence: the chance that step t is "
            "fed the true previous target instead of the model's own previous output", step=0.1))
        self._bind(self.teacher, lambda v: self.state.set_training(teacher_forcing=v))
        form.addRow("Teacher forcing", with_message(self.teacher))
        self.steps = self._track(IntField(limit("training.steps"),
                                          "Updates each press of Train runs"))
        self._bind(self.steps, lambda v: self.state.set_training(steps=v))
        form.addRow("Steps per run", with_message(self.steps))
        return box

    def _backend_group(self) -> QGroupBox:
        box = QGroupBox("Backend")
        form = QFormLayout(box)
        self.device = self._track(_combo([("auto", "auto"), ("NumPy (CPU)", "numpy"),
                                          ("CuPy (GPU)", "cupy")],
                                         "auto uses CuPy when a GPU is present"))
        self.device.currentIndexChanged.connect(
            lambda: self.state.set_backend(device=self.device.currentData()))
        form.addRow("Device", self.device)
        self.dtype = self._track(_combo([("float32", "float32"), ("float64", "float64")],
                                        "Working precision; float32 overflows beyond ~3e38"))
        self.dtype.currentIndexChanged.connect(
            lambda: self.state.set_backend(dtype=self.dtype.currentData()))
        form.addRow("Precision", self.dtype)
        return box

    # ------------------------------------------------------------------ reactions

    def _task_chosen(self) -> None:
        name = self.task.currentData()
        current = self.state.experiment.task
        if current is None or name is None or name == current.name:
            return  # the task area is disabled for your own data
        if name == "csv":
            if not self._choose_csv():
                self.sync(self.state.experiment)
            return
        options = {"series": self.series.currentData()} if name == "dataset" else {}
        if not self.state.set_task(name, **options):
            self.sync(self.state.experiment)

    def _choose_csv(self) -> bool:
        path, _ = QFileDialog.getOpenFileName(self, "Open a CSV time series", "",
                                              "CSV files (*.csv *.txt);;All files (*)")
        if not path:
            return False
        return self.state.set_task("csv", path=path)

    def _clip_threshold(self, value: float) -> bool:
        """The threshold of the clipping mode in use (the other mode keeps its own)."""
        key = "max_value" if self.state.experiment.training.clip.mode == "value" else "max_norm"
        return self.state.set_clip(**{key: value})

    def sync(self, exp: Experiment) -> None:
        """Show the experiment's values (without emitting edits)."""
        for w in self._widgets:
            w.blockSignals(True)
        try:
            for family, ctl in self.scales.items():
                ctl.set_value(getattr(exp.init.scales, family))
            _select(self.scheme, exp.init.scheme)
            self.forget_bias.set_value(exp.init.forget_bias)
            self._say_idle(exp)
            self.seed.set_value(exp.init.seed)
            self._sync_task(exp)
            tr = exp.training
            _select(self.optimizer, tr.optimizer)
            self.lr.set_value(tr.lr)
            _select(self.clip_mode, tr.clip.mode)
            by_value = tr.clip.mode == "value"
            key = "max_value" if by_value else "max_norm"
            if self.clip_value.limit.path != f"training.clip.{key}":
                self.clip_value.clear_flag()  # the other mode's threshold
                self.clip_value.limit = limit(f"training.clip.{key}")
            self.clip_value.set_value(tr.clip.max_value if by_value else tr.clip.max_norm)
            self._enable(self.clip_value, tr.clip.mode != "none")
            self.tbptt.set_value(tr.tbptt)
            self.teacher.set_value(tr.teacher_forcing)
            self._enable(self.teacher, exp.model.pattern == "output_recurrence")
            self.steps.set_value(tr.steps)
            _select(self.device, exp.backend.device)
            _select(self.dtype, exp.backend.dtype)
        finally:
            for w in self._widgets:
                w.blockSignals(False)

    def _say_idle(self, exp: Experiment) -> None:
        """Knobs without effect on these cells are disabled, their tooltips saying why
        (core.knob_effects): the forget bias without a forget gate, the recurrent scale
        without hidden-to-hidden weights."""
        idle = idle_knobs(exp.model)
        recurrent = self.scales["recurrent"]
        knobs = {"init.forget_bias": [self.forget_bias],
                 "init.scales.recurrent": [recurrent, recurrent.slider, recurrent.spin]}
        self._enable(self.forget_bias, "init.forget_bias" not in idle)
        recurrent.setEnabled("init.scales.recurrent" not in idle)
        for path, widgets in knobs.items():
            reason = idle.get(path)
            for w in widgets:
                usual = w.property("usual_tip")
                if usual is None:
                    usual = w.toolTip()
                    w.setProperty("usual_tip", usual)
                w.setToolTip(usual if reason is None else f"{reason[0].upper()}{reason[1:]}.\n{usual}")

    @staticmethod
    def _enable(field: IntField | FloatField, on: bool) -> None:
        """A disabled field has nothing to say: its message goes with it."""
        field.setEnabled(on)
        if not on:
            field.clear_flag()

    def _sync_task(self, exp: Experiment) -> None:
        """The Data group: the task's fields, or "your own data" (all disabled) when the
        experiment has no task section."""
        t = exp.task
        own = self.task.findData(None)
        if t is None and own < 0:
            self.task.addItem(OWN_DATA, None)
            self.task.setItemData(self.task.count() - 1, OWN_DATA_HELP,
                                  Qt.ItemDataRole.ToolTipRole)
        elif t is not None and own >= 0:
            self.task.removeItem(own)
        self.task.setEnabled(t is not None)
        for field in (self.seq_len, self.batch):
            self._enable(field, t is not None)
        self.task.setToolTip(OWN_DATA_HELP if t is None else "Where the sequences come from")
        if t is None:
            _select(self.task, None)
            for w in (self.series, self.series_label, self.csv_button, self.csv_label):
                w.setVisible(False)
            return
        _select(self.task, t.name)
        is_dataset, is_csv = t.name == "dataset", t.name == "csv"
        if is_dataset:
            _select(self.series, t.options.get("series", "sunspots"))
        for w in (self.series, self.series_label):
            w.setVisible(is_dataset)
        for w in (self.csv_button, self.csv_label):
            w.setVisible(is_csv)
        if is_csv and t.options.get("path"):
            self.csv_button.setText(str(t.options["path"]).rsplit("/", 1)[-1])
        self.seq_len.set_value(t.seq_len)
        self.batch.set_value(t.batch_size)

    def show_result(self, result: Any) -> None:
        """Show the spectral radius of each recurrent matrix of the latest probe."""
        radii = getattr(result, "spectral_radius", None) or {}
        lines = []
        for name, rho in radii.items():
            colour = "#1b7f3b" if rho < 0.95 else ("#b26a00" if rho <= 1.05 else "#b3261e")
            lines.append(f"ρ({matrix_label(name)}) = "
                         f"<b style='color:{colour}'>{rho:.3g}</b>")
        self.radius.setText("<br>".join(lines) if lines else "ρ: no recurrent matrix")
