"""The "Run sweep" dialog: a small sweep over two knobs of the current experiment.

Two axes (a dotted path and its values, as ``gradlab sweep --grid`` takes them),
seeds, training steps and a folder; the runs go one after another in a thread of
their own (:func:`core.sweep.run_sweep` without a cluster — a sweep too large for
that belongs on the command line, which runs on Dask), with a progress bar and
Cancel; what finished stays written.  ``finished(path)`` gives the ``sweep.zarr``.
"""

from __future__ import annotations

import tempfile
import threading
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.jobs import Cancelled
from core.lab import Lab

MAX_DIALOG_RUNS = 2000  # past this: gradlab sweep, on a Dask cluster
KNOBS = (  # (path, default values)
    ("init.scales.recurrent", "0.5:3.5:7"),
    ("task.seq_len", "10,25,50,100"),
    ("model.layers.0.cell", "rnn,lstm,gru"),
    ("init.forget_bias", "0,1,2,4"),
    ("init.scales.input", "0.5:2:4"),
    ("model.layers.0.hidden_size", "8,16,32,64"),
)


class _Worker(QObject):
    progress = Signal(int, int)
    done = Signal(str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, sweep: Any, out: str) -> None:
        super().__init__()
        self.sweep, self.out = sweep, out
        self.stop = threading.Event()

    def run(self) -> None:
        from core.sweep import run_sweep

        try:
            stats = run_sweep(self.sweep, self.out, resume=True,
                              on_progress=lambda p: self.progress.emit(p.done, p.total),
                              cancel=self.stop.is_set)
        except Cancelled:
            self.cancelled.emit()
            return
        except UserError as exc:
            self.failed.emit(str(exc))
            return
        self.done.emit(str(stats.path))


class SweepDialog(QDialog):
    """Run a small sweep of ``lab``'s experiment; emits ``finished(sweep.zarr path)``."""

    finished_sweep = Signal(str)

    def __init__(self, lab: Lab, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab = lab
        self.setWindowTitle("Run sweep")
        self._thread: QThread | None = None
        self._worker: _Worker | None = None
        form = QFormLayout()
        self.paths: list[QComboBox] = []
        self.values: list[QLineEdit] = []
        for k in range(2):
            path = QComboBox()
            path.setEditable(True)
            for p, _v in KNOBS:
                path.addItem(p)
            value = QLineEdit()
            path.currentTextChanged.connect(lambda text, v=value: self._default_values(text, v))
            path.setCurrentIndex(k)
            self._default_values(path.currentText(), value)
            value.setToolTip("a,b,c · START:STOP:N (linear) · START:STOP:Nlog")
            row = QHBoxLayout()
            row.addWidget(path, 2)
            row.addWidget(value, 1)
            form.addRow(f"Axis {k + 1}", row)
            self.paths.append(path)
            self.values.append(value)
        self.seeds = QSpinBox()
        self.seeds.setRange(1, 20)
        self.seeds.setValue(2)
        self.train_steps = QSpinBox()
        self.train_steps.setRange(0, 5000)
        self.train_steps.setSingleStep(50)
        form.addRow("Seeds", self.seeds)
        form.addRow("Training steps", self.train_steps)
        self.folder = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setVisible(False)
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(self.message)
        col.addWidget(self.bar)
        col.addWidget(self.buttons)

    @staticmethod
    def _default_values(path: str, edit: QLineEdit) -> None:
        defaults = dict(KNOBS)
        if path in defaults:
            edit.setText(defaults[path])

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for sweep.zarr")
        if folder:
            self.folder.setText(folder)

    def set_axis(self, k: int, path: str, values: str) -> None:
        self.paths[k].setCurrentText(path)
        self.values[k].setText(values)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> bool:
        """Check the axes and start the runs; False (the reason shown) when they do not fit."""
        from core.sweep import parse_grid, plan

        if self.running:
            return False
        exp = self.lab.experiment
        try:
            axes = [parse_grid(f"{p.currentText().strip()}={v.text().strip()}", exp)
                    for p, v in zip(self.paths, self.values, strict=True)]
            sweep = plan(exp, axes, seeds=self.seeds.value(), train_steps=self.train_steps.value())
        except UserError as exc:
            self.message.setText(f"<b>Problem:</b> {exc}")
            return False
        if sweep.jobs > MAX_DIALOG_RUNS:
            self.message.setText(f"<b>Problem:</b> {sweep.jobs} runs is more than this window "
                                 f"runs ({MAX_DIALOG_RUNS}); use <code>gradlab sweep</code>, "
                                 "which runs on a Dask cluster")
            return False
        out = self.folder.text().strip() or tempfile.mkdtemp(prefix="gradlab-sweep-")
        self.folder.setText(out)
        self.message.setText(f"{sweep.jobs} runs…")
        self.bar.setRange(0, max(sweep.jobs, 1))
        self.bar.setValue(0)
        self.bar.setVisible(True)
        self.run_button.setEnabled(False)
        thread = QThread(self)
        worker = _Worker(sweep, out)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        worker.done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        worker.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        worker.cancelled.connect(self._on_cancelled, Qt.ConnectionType.QueuedConnection)
        self._thread, self._worker = thread, worker
        thread.start()
        return True

    def cancel(self) -> None:
        """Stop a running sweep (what finished stays written), else close."""
        if self._worker is not None:
            self._worker.stop.set()
        else:
            self.reject()

    def _on_progress(self, done: int, total: int) -> None:
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(done)

    def _end(self) -> None:
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()
        self._thread, self._worker = None, None
        self.run_button.setEnabled(True)

    def _on_done(self, path: str) -> None:
        self._end()
        self.message.setText(f"Written: {path}")
        self.finished_sweep.emit(path)
        self.accept()

    def _on_failed(self, message: str) -> None:
        self._end()
        self.message.setText(f"<b>Problem:</b> {message}")

    def _on_cancelled(self) -> None:
        self._end()
        self.message.setText("Cancelled; the runs that finished are kept in "
                             f"{self.folder.text()} (Run again finishes the rest)")

    def done(self, result: int) -> None:  # closing stops a running sweep first
        if self._worker is not None:
            self._worker.stop.set()
            self._end()
        super().done(result)
