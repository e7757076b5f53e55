"""Experiment files in the app: save and open, dirty flag, recent files, autosave, recovery."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import gc
import json

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QMessageBox

import core.archive
from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.weights import save_weights
from gui.app import MainWindow, run_app
from gui.files import Autosave, Document, add_recent, parse_recent, split_missing

WAIT_MS = 20_000
Button = QMessageBox.StandardButton


def small_experiment() -> Experiment:
    """A quick model: RNN(8) on 20-step sine sequences."""
    return Experiment(model=ModelConfig(layers=[LayerConfig(cell="rnn", hidden_size=8)]),
                      task=TaskConfig(name="sine", seq_len=20, batch_size=4))


def dispose(win) -> None:
    """Close and destroy a window now, then collect its garbage at once."""
    win.confirm_discard = lambda: True
    win.close()
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


def wait_result(qtbot, win):
    s = win.state
    qtbot.waitUntil(lambda: s.result is not None and not s.probe_runner.is_busy
                    and s.result.experiment == s.experiment, timeout=WAIT_MS)
    win.flush_redraws()
    return s.result


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "gradlab.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def make_window(qtbot, settings, data_dir):
    """Factory for windows on the test's settings and data folder; all disposed at the end."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("settings", settings)
        kwargs.setdefault("data_dir", data_dir)
        win = MainWindow(**kwargs)
        made.append(win)
        win.state.load(small_experiment())
        wait_result(qtbot, win)
        return win

    yield make
    for win in made:
        dispose(win)


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture(autouse=True)
def answers(monkeypatch):
    """Scripted answers to Save / Discard / Cancel (records every question); any other
    dialog fails the test instead of waiting for a click."""
    script: list = []
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        if not script:
            raise AssertionError(f"unexpected question: {text}")
        return script.pop(0)

    def unexpected(*args, **kwargs):
        raise AssertionError("unexpected dialog")

    monkeypatch.setattr(QMessageBox, "question", question)
    monkeypatch.setattr(QMessageBox, "exec", unexpected)
    for name in ("getOpenFileName", "getSaveFileName", "getExistingDirectory"):
        monkeypatch.setattr(QFileDialog, name, unexpected)
    return script, asked


def answer_recovery(monkeypatch, label: str) -> None:
    """Make the recovery box click its button ``label`` instead of showing itself."""
    def exec_(box):
        next(b for b in box.buttons() if b.text().replace("&", "") == label).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_)


def trained(qtbot, win, steps: int = 3) -> None:
    s = win.state
    for _ in range(steps):
        s.step()
        qtbot.waitUntil(lambda: s.at_rest and not s.trainer.running, timeout=WAIT_MS)
    assert len(s.history["step"]) == steps


# ----------------------------------------------------------------------------- round trip


def test_save_then_open_restores_everything(qtbot, window, tmp_path, monkeypatch):
    s = window.state
    s.set_init(seed=4)
    trained(qtbot, window)
    s.request_probe()
    before = wait_result(qtbot, window)
    params = {k: v.copy() for k, v in s.params.items()}
    history = s.history_arrays()
    exp = s.experiment
    opt = {k: np.array(v) for k, v in s.optimizer_state.items()}
    assert s.modified and window.isWindowModified()

    target = tmp_path / "run"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(target), next(iter(a[3].split(";;")))))
    assert window.save()  # no file yet: Save asks for a name; .gradlab is added
    path = tmp_path / "run.gradlab"
    assert s.path == path and path.is_file()
    assert not s.modified and not window.isWindowModified()
    assert window.windowTitle().startswith("run.gradlab[*]")

    window.new_experiment()
    wait_result(qtbot, window)
    assert s.experiment != exp and s.history["step"] == []
    assert window.open_path(path)
    after = wait_result(qtbot, window)
    assert s.experiment == exp and not s.modified
    assert params.keys() == s.params.keys()
    for k, v in params.items():
        assert s.params[k].dtype == v.dtype and s.params[k].tobytes() == v.tobytes(), k
    for k, v in history.items():
        np.testing.assert_array_equal(s.history_arrays()[k], v)
    for k, v in opt.items():
        np.testing.assert_array_equal(s.optimizer_state[k], v)
    assert before.arrays.keys() == after.arrays.keys()
    for k, v in before.arrays.items():
        assert np.array_equal(after.arrays[k], v, equal_nan=True), k
    # Train resumes from the file's step count and optimizer state
    s.step()
    qtbot.waitUntil(lambda: len(s.history["step"]) == 4, timeout=WAIT_MS)
    assert s.history["step"][-1] == 4


def test_experiment_json_opens_and_save_writes_an_archive(qtbot, window, tmp_path, monkeypatch):
    s = window.state
    s.set_task(seq_len=31)
    settings_file = tmp_path / "exp.json"
    assert window.save_as(settings_file)  # settings only, by name
    assert json.loads(settings_file.read_text())["task"]["seq_len"] == 31
    s.set_task(seq_len=32)
    offered = []

    def ask(parent, caption, suggestion, filters, *args):
        offered.append(suggestion)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", ask)
    assert not window.save()  # a .json is not overwritten by Ctrl+S: Save As is offered
    assert offered == [str(tmp_path / "exp.gradlab")]
    assert json.loads(settings_file.read_text())["task"]["seq_len"] == 31


def test_saving_while_training_saves_the_latest_weights_and_goes_on(qtbot, window, tmp_path):
    from core.archive import load_archive
    from gui.state import RUNNING

    s = window.state
    window.train_action.trigger()
    qtbot.waitUntil(lambda: len(s.history["step"]) >= 3, timeout=WAIT_MS)
    path = tmp_path / "busy.gradlab"
    assert window.save_as(path)
    saved = load_archive(path)
    rows = len(saved.history["step"])
    assert rows >= 3 and saved.optimizer_state is not None
    assert int(saved.optimizer_state["step"]) == rows
    assert s.training_state == RUNNING  # training went on after the save
    qtbot.waitUntil(lambda: len(s.history["step"]) > rows, timeout=WAIT_MS)
    assert s.modified
    s.pause()


# ----------------------------------------------------------------------------- dirty flag


def test_edits_mark_dirty_and_close_asks(qtbot, window, tmp_path, answers):
    script, asked = answers
    s = window.state
    window.show()
    assert not window.isWindowModified()
    s.set_task(seq_len=25)
    assert s.modified and window.isWindowModified()
    assert window.windowTitle() == "untitled[*] — Gradient Flow Lab"

    script.append(Button.Cancel)
    assert not window.close()
    assert window.isVisible() and len(asked) == 1

    assert window.save_as(tmp_path / "kept.gradlab")
    assert not window.isWindowModified()
    trained(qtbot, window, 1)  # a training step is a change too
    assert window.isWindowModified()

    script.append(Button.Discard)
    assert window.close()
    assert not window.isVisible() and len(asked) == 2


def test_new_and_lessons_ask_before_discarding(qtbot, window, answers):
    script, asked = answers
    s = window.state
    s.set_task(seq_len=26)
    script.append(Button.Cancel)
    window.new_experiment()
    assert s.experiment.task.seq_len == 26
    script.append(Button.Cancel)
    assert not window.open_lesson("forget_gate")
    assert s.experiment.task.seq_len == 26 and len(asked) == 2
    script.append(Button.Discard)
    assert window.open_lesson("forget_gate")
    assert not s.modified and s.lesson == "forget_gate"


def test_interrupted_save_keeps_the_previous_file(qtbot, window, tmp_path, monkeypatch):
    s = window.state
    path = tmp_path / "safe.gradlab"
    assert window.save_as(path)
    saved = path.read_bytes()
    s.set_task(seq_len=29)
    real = core.archive.zipfile.ZipFile.writestr
    calls = []

    def failing(self, name, *args, **kwargs):
        calls.append(name)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(core.archive.zipfile.ZipFile, "writestr", failing)
    assert not window.save()  # Ctrl+S into the open archive, failing after one member
    assert len(calls) == 2
    assert path.read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert s.modified and window.isWindowModified()
    assert "could not save" in window.banner.text()
    assert "No space left on device" in window.banner.text()
    monkeypatch.undo()
    assert window.save() and not s.modified


# ----------------------------------------------------------------------------- opening


def test_failed_opens_change_nothing(qtbot, window, tmp_path):
    s = window.state
    s.set_task(seq_len=28)
    params = {k: v.copy() for k, v in s.params.items()}
    broken = tmp_path / "broken.gradlab"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    assert not window.open_path(broken)
    assert "not a Gradient Flow Lab archive" in window.banner.text()

    model = dataclasses.replace(s.experiment.model,
                                layers=[LayerConfig(cell="rnn", hidden_size=5)])
    from core.init import init_params

    wrong = tmp_path / "wrong.safetensors"
    save_weights(wrong, init_params(model, s.experiment.init))
    assert not window.open_path(wrong)
    text = window.banner.text()
    assert "cannot load these weights onto the current model" in text
    assert "wrong.safetensors: weight_ih_l0: expected shape (8, 1), got (5, 1)" in text

    assert s.experiment.task.seq_len == 28 and s.modified
    assert all(np.array_equal(s.params[k], v) for k, v in params.items())
    assert window.recent_files() == []


def test_weights_load_onto_the_current_model(qtbot, window, tmp_path):
    s = window.state
    new = {k: v * 0.5 for k, v in s.params.items()}
    path = tmp_path / "half.npz"
    save_weights(path, new)
    assert not s.modified
    assert window.open_path(path)
    assert s.modified and window.isWindowModified()
    assert all(np.array_equal(s.params[k], v) for k, v in new.items())
    assert s.path is None  # weights are not the document
    result = wait_result(qtbot, window)
    from core.lab import run_probe

    expected = run_probe(s.experiment, new, None, None)
    assert float(result.arrays["loss"]) == float(expected.arrays["loss"])  # probes them


def test_open_recent_lists_saved_files_and_prunes_missing(qtbot, make_window, tmp_path,
                                                          settings):
    win = make_window()
    a, b = tmp_path / "a.gradlab", tmp_path / "b.gradlab"
    assert win.save_as(a) and win.save_as(b)
    assert win.recent_files() == [str(b), str(a)]
    texts = [act.text() for act in win.recent_menu.actions()]
    assert texts[0].startswith("&1 b.gradlab") and texts[1].startswith("&2 a.gradlab")

    b.unlink()
    win.recent_menu.aboutToShow.emit()
    assert win.recent_files() == [str(a)]
    assert "b.gradlab" in win.statusBar().currentMessage()

    win.state.load(Experiment())
    win.recent_menu.actions()[0].trigger()
    assert win.state.path == a

    other = make_window()  # remembered in the settings
    assert other.recent_files() == [str(a)]


def test_dropping_a_file_opens_it(qtbot, window, tmp_path):
    s = window.state
    s.set_task(seq_len=22)
    path = tmp_path / "dropped.gradlab"
    assert window.save_as(path)
    s.load(small_experiment())

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt")), QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(window.rect().center(), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(window.rect().center()), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(drop)
    qtbot.waitUntil(lambda: s.path == path, timeout=WAIT_MS)
    assert s.experiment.task.seq_len == 22

    text_only = QMimeData()
    text_only.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt"))])
    refused = QDragEnterEvent(window.rect().center(), Qt.DropAction.CopyAction, text_only,
                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(refused)
    assert not refused.isAccepted()


# ----------------------------------------------------------------------------- autosave


def autosaves(data_dir):
    folder = data_dir / "autosave"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_autosave_recovery_after_a_crash(qtbot, make_window, data_dir, tmp_path, monkeypatch,
                                         answers):
    script, _asked = answers
    first = make_window(autosave_ms=30)
    original = tmp_path / "orig.gradlab"
    assert first.save_as(original)
    first.state.set_task(seq_len=27)
    qtbot.waitUntil(lambda: len(autosaves(data_dir)) == 2, timeout=WAIT_MS)
    marker = json.loads((first.autosave.marker).read_text())
    assert marker["pid"] == os.getpid() and marker["path"] == str(original)
    first.autosave_timer.stop()  # the first run "crashes": its files stay behind

    second = make_window()
    answer_recovery(monkeypatch, "Recover")
    assert second.offer_recovery()
    s = second.state
    assert s.experiment.task.seq_len == 27
    assert s.modified and s.path == original
    assert second.windowTitle().startswith("orig.gradlab[*]") and second.isWindowModified()
    assert autosaves(data_dir) == sorted([second.autosave.archive.name,
                                          second.autosave.marker.name])
    assert not second.offer_recovery()  # nothing left from a dead run

    script.append(Button.Discard)  # a clean exit, even without saving
    assert second.close()
    assert autosaves(data_dir) == []


def test_recovery_discard_and_clean_save_remove_autosaves(qtbot, make_window, data_dir,
                                                          tmp_path, monkeypatch):
    first = make_window(autosave_ms=30)
    first.state.set_task(seq_len=24)
    qtbot.waitUntil(lambda: len(autosaves(data_dir)) == 2, timeout=WAIT_MS)
    first.autosave_timer.stop()

    second = make_window()
    answer_recovery(monkeypatch, "Discard")
    assert not second.offer_recovery()
    assert autosaves(data_dir) == []
    assert second.state.experiment.task.seq_len == 20

    first.autosave_timer.start()
    first.state.set_task(seq_len=23)
    qtbot.waitUntil(lambda: len(autosaves(data_dir)) == 2, timeout=WAIT_MS)
    assert first.save_as(tmp_path / "clean.gradlab")
    assert autosaves(data_dir) == []


def test_screenshot_never_asks_nor_autosaves(qtbot, tmp_path, monkeypatch):
    data = tmp_path / "data"
    crashed = Autosave(data / "autosave", pid=2**22 + 12345)
    crashed.write(Document(small_experiment()), None)
    before = autosaves(data)

    def never(*args, **kwargs):
        raise AssertionError("a dialog was shown")

    for name in ("question", "warning", "critical", "information", "exec"):
        monkeypatch.setattr(QMessageBox, name, never)
    monkeypatch.setenv("GRADLAB_DATA_DIR", str(data))
    out = tmp_path / "shot.png"
    assert run_app(preset="vanishing_tanh", screenshot=str(out)) == 0
    assert out.is_file() and autosaves(data) == before


# ----------------------------------------------------------------------------- Qt-free parts


def test_recent_list_rules(tmp_path):
    paths = [str(tmp_path / f"{i}.gradlab") for i in range(10)]
    recent: list[str] = []
    for p in paths:
        recent = add_recent(recent, p)
    assert recent == paths[::-1][:8]
    assert add_recent(recent, paths[5])[:2] == [paths[5], paths[9]]
    assert len(set(add_recent(recent, paths[5]))) == 8
    (tmp_path / "9.gradlab").touch()
    assert split_missing(recent[:2]) == ([paths[9]], [paths[8]])
    assert parse_recent(json.dumps(paths[:2])) == paths[:2]
    assert parse_recent("not json") == parse_recent(None) == parse_recent('{"a": 1}') == []


def test_orphans_are_autosaves_of_ended_runs(tmp_path):
    folder = tmp_path / "autosave"
    doc = Document(small_experiment())
    mine = Autosave(folder, pid=100)
    alive = Autosave(folder, pid=200)
    dead = Autosave(folder, pid=300)
    same_pid = Autosave(folder, pid=100)  # an earlier run that had this pid
    for a in (mine, alive, dead, same_pid):
        a.write(doc, None)
    (folder / "junk.json").write_text("{")
    found = mine.orphans(alive=lambda pid: pid == 200)
    assert {e.run for e in found} == {dead.run, same_pid.run}
    for e in found:
        e.discard()
    assert mine.orphans(alive=lambda pid: pid == 200) == []
    mine.clear()
    assert not mine.exists and alive.exists
