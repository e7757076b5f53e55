"""The control panel: weight-scale knobs, initialisation, data, training and backend.

Every widget writes straight into :class:`gui.state.LabState`, which re-runs the
probe; the panel redraws itself from ``experiment_changed`` (signals blocked, so
nothing loops) and shows the live spectral radius of every recurrent matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
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

from core.experiment import SCHEMES, Experiment

from .state import LabState

SCALE_MIN, SCALE_MAX = 0.1, 4.0
SLIDER_STEPS = 1000
MAX_SEQ_LEN = 10_000
MAX_BATCH = 4096

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


def slider_to_scale(pos: int) -> float:
    """Slider position 0 … SLIDER_STEPS → scale SCALE_MIN … SCALE_MAX on a log axis."""
    return SCALE_MIN * (SCALE_MAX / SCALE_MIN) ** (pos / SLIDER_STEPS)


def scale_to_slider(value: float) -> int:
    value = min(max(value, SCALE_MIN), SCALE_MAX)
    return round(SLIDER_STEPS * math.log(value / SCALE_MIN) / math.log(SCALE_MAX / SCALE_MIN))


def matrix_label(name: str) -> str:
    """``weight_hh_l1_reverse`` → ``W_hh, layer 1 (reverse)``; ``loop_l0`` → the
    output feedback loop ``W_oh · W_head`` of output recurrence."""
    base, _, tail = name.partition("_l")
    k, _, rev = tail.partition("_")
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
    """A log slider and a spin box for one weight-scale family; ``value_changed(float)``."""

    value_changed = Signal(float)

    def __init__(self, family: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.family = family
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setPageStep(SLIDER_STEPS // 20)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(SCALE_MIN, SCALE_MAX)
        self.spin.setDecimals(2)
        self.spin.setSingleStep(0.05)
        self.spin.setKeyboardTracking(False)
        self.spin.setSuffix(" ×")
        for w in (self, self.slider, self.spin):
            w.setToolTip(SCALE_HELP[family])
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        self.slider.valueChanged.connect(self._slid)
        self.spin.valueChanged.connect(self._typed)

    def value(self) -> float:
        return self.spin.value()

    def set_value(self, value: float) -> None:
        """Show ``value`` without emitting; a slider the user is dragging, or a widget
        that already shows the value, is left alone (no echo of the user's own move)."""
        if self.spin.value() != value:
            self.spin.blockSignals(True)
            self.spin.setValue(value)
            self.spin.blockSignals(False)
        shown = round(slider_to_scale(self.slider.value()), 3)
        if not self.slider.isSliderDown() and shown != round(value, 3):
            self.slider.blockSignals(True)
            self.slider.setValue(scale_to_slider(value))
            self.slider.blockSignals(False)

    def _slid(self, pos: int) -> None:
        value = round(slider_to_scale(pos), 3)
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.value_changed.emit(value)

    def _typed(self, value: float) -> None:
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


def _spin(lo: int, hi: int, tip: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setKeyboardTracking(False)
    spin.setToolTip(tip)
    return spin


def _dspin(lo: float, hi: float, decimals: int, step: float, tip: str = "") -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setKeyboardTracking(False)
    spin.setToolTip(tip)
    return spin


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

    def _on(self, signal: Any, apply: Callable[..., Any]) -> None:
        signal.connect(lambda *args: apply(*args))

    def _weights_group(self) -> QGroupBox:
        box = QGroupBox("Weights")
        form = QFormLayout(box)
        self.scales: dict[str, ScaleControl] = {}
        for family in ("input", "recurrent", "output"):
            ctl = self._track(ScaleControl(family))
            ctl.value_changed.connect(lambda v, f=family: self.state.set_scale(f, v))
            self.scales[family] = ctl
            form.addRow(f"{family.capitalize()} scale", ctl)
            if family == "recurrent":
                self.radius = QLabel("ρ: waiting for the first probe…")
                self.radius.setWordWrap(True)
                self.radius.setTextFormat(Qt.TextFormat.RichText)
                self.radius.setToolTip(
                    "Spectral radius ρ of each recurrent matrix (largest |eigenvalue|). "
                    "Roughly: ρ < 1 makes gradients fade with distance in time, ρ > 1 lets "
                    "them grow.")
                form.addRow("", self.radius)
        self.scheme = self._track(_combo([(s, s) for s in SCHEMES],
                                         "How the weights are drawn before scaling"))
        self.scheme.currentIndexChanged.connect(
            lambda: self.state.set_init(scheme=self.scheme.currentData()))
        form.addRow("Init scheme", self.scheme)
        self.forget_bias = self._track(_dspin(-10.0, 10.0, 2, 0.5,
                                              "Added to the LSTM forget-gate bias: 1–2 keeps "
                                              "the gate open so memory (and gradient) survives"))
        self.forget_bias.valueChanged.connect(lambda v: self.state.set_init(forget_bias=v))
        form.addRow("Forget-gate bias", self.forget_bias)
        self.seed = self._track(_spin(0, 2**31 - 1, "Random seed of the weights and the data"))
        self.seed.valueChanged.connect(lambda v: self.state.set_init(seed=v))
        form.addRow("Seed", self.seed)
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
        self.seq_len = self._track(_spin(1, MAX_SEQ_LEN, "Timesteps T per sequence. The "
                                                          "weights do not depend on it."))
        self.seq_len.valueChanged.connect(lambda v: self.state.set_task(seq_len=v))
        form.addRow("Sequence length", self.seq_len)
        self.batch = self._track(_spin(1, MAX_BATCH, "Sequences per batch B"))
        self.batch.valueChanged.connect(lambda v: self.state.set_task(batch_size=v))
        form.addRow("Batch size", self.batch)
        return box

    def _training_group(self) -> QGroupBox:
        box = QGroupBox("Training")
        form = QFormLayout(box)
        self.optimizer = self._track(_combo([("Adam", "adam"), ("RMSprop", "rmsprop"),
                                             ("SGD", "sgd")], "Update rule"))
        self.optimizer.currentIndexChanged.connect(
            lambda: self.state.set_training(optimizer=self.optimizer.currentData()))
        form.addRow("Optimizer", self.optimizer)
        self.lr = self._track(_dspin(1e-6, 10.0, 6, 0.001, "Learning rate"))
        self.lr.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.lr.valueChanged.connect(lambda v: self.state.set_training(lr=v))
        form.addRow("Learning rate", self.lr)
        self.clip_mode = self._track(_combo(
            [("none", "none"), ("by global norm", "norm"), ("by value", "value")],
            "Gradient clipping: rescale the whole gradient when its norm exceeds the "
            "threshold, or cap each element"))
        self.clip_mode.currentIndexChanged.connect(self._clip_changed)
        form.addRow("Clipping", self.clip_mode)
        self.clip_value = self._track(_dspin(1e-4, 1e6, 4, 0.5, "Clipping threshold"))
        self.clip_value.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.clip_value.valueChanged.connect(self._clip_changed)
        form.addRow("Clip threshold", self.clip_value)
        self.tbptt = self._track(_spin(0, MAX_SEQ_LEN, "Truncated BPTT: cut the recurrent "
                                                       "gradient every k steps (0: full BPTT)"))
        self.tbptt.setSpecialValueText("off (full BPTT)")
        self.tbptt.valueChanged.connect(lambda v: self.state.set_training(tbptt=v or None))
        form.addRow("TBPTT window", self.tbptt)
        self.teacher = self._track(_dspin(0.0, 1.0, 2, 0.1,
                                          "Output recurrence: the chance that step t is fed "
                                          "the true previous target instead of the model's "
                                          "own previous output"))
        self.teacher.valueChanged.connect(lambda v: self.state.set_training(teacher_forcing=v))
        form.addRow("Teacher forcing", self.teacher)
        self.steps = self._track(_spin(1, 1_000_000, "Updates each press of Train runs"))
        self.steps.valueChanged.connect(lambda v: self.state.set_training(steps=v))
        form.addRow("Steps per run", self.steps)
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

    def _clip_changed(self, *_: Any) -> None:
        mode = self.clip_mode.currentData()
        value = self.clip_value.value()
        changes: dict[str, Any] = {"mode": mode}
        if mode == "value":
            changes["max_value"] = value
        else:
            changes["max_norm"] = value
        self.state.set_clip(**changes)

    def sync(self, exp: Experiment) -> None:
        """Show the experiment's values (without emitting edits)."""
        for w in self._widgets:
            w.blockSignals(True)
        try:
            for family, ctl in self.scales.items():
                ctl.set_value(getattr(exp.init.scales, family))
            _select(self.scheme, exp.init.scheme)
            self.forget_bias.setValue(exp.init.forget_bias)
            has_lstm = any(layer.cell == "lstm" for layer in exp.model.layers)
            self.forget_bias.setEnabled(has_lstm)
            self.seed.setValue(exp.init.seed)
            self._sync_task(exp)
            tr = exp.training
            _select(self.optimizer, tr.optimizer)
            self.lr.setValue(tr.lr)
            _select(self.clip_mode, tr.clip.mode)
            self.clip_value.setValue(tr.clip.max_value if tr.clip.mode == "value"
                                     else tr.clip.max_norm)
            self.clip_value.setEnabled(tr.clip.mode != "none")
            self.tbptt.setValue(tr.tbptt or 0)
            self.teacher.setValue(tr.teacher_forcing)
            self.teacher.setEnabled(exp.model.pattern == "output_recurrence")
            self.steps.setValue(tr.steps)
            _select(self.device, exp.backend.device)
            _select(self.dtype, exp.backend.dtype)
        finally:
            for w in self._widgets:
                w.blockSignals(False)

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
        for w in (self.task, self.seq_len, self.batch):
            w.setEnabled(t is not None)
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
        self.seq_len.setValue(t.seq_len)
        self.batch.setValue(t.batch_size)

    def show_result(self, result: Any) -> None:
        """Show the spectral radius of each recurrent matrix of the latest probe."""
        radii = getattr(result, "spectral_radius", None) or {}
        lines = []
        for name, rho in radii.items():
            colour = "#1b7f3b" if rho < 0.95 else ("#b26a00" if rho <= 1.05 else "#b3261e")
            lines.append(f"ρ({matrix_label(name)}) = "
                         f"<b style='color:{colour}'>{rho:.3g}</b>")
        self.radius.setText("<br>".join(lines) if lines else "ρ: no recurrent matrix")
