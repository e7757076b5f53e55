"""All-or-nothing output folders and the removal of what killed writes left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from core import outputs
from core.errors import UserError
from core.fileio import atomic_write_text, remove_stale_temporaries
from core.outputs import RUN_OUTPUTS, OutputFolder, remove_stale


def dead_pid() -> int:
    """The id of a process that has ended."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def listing(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_a_new_folder_appears_whole(tmp_path):
    target = tmp_path / "out"
    with OutputFolder(target) as out:
        (out.path / "trace.npz").write_bytes(b"t")
        assert not target.exists()  # nothing shows before the commit
        out.commit()
    assert listing(target) == {"trace.npz"}
    assert listing(tmp_path) == {"out"}  # no staging folder left
    assert out.final(out.path / "trace.npz") == target / "trace.npz"


@pytest.mark.parametrize("atomic_swap", [True, False])
def test_an_existing_folder_keeps_the_users_files_and_drops_an_earlier_runs(tmp_path,
                                                                            monkeypatch,
                                                                            atomic_swap):
    if not atomic_swap:
        monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)
    target = tmp_path / "out"
    (target / "sub").mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    (target / "sub" / "a.txt").write_text("a")
    for name in RUN_OUTPUTS:
        (target / name).write_text("old")
    (target / ".trace.npz.1234-abcdef01.tmp").write_text("torn")
    with OutputFolder(target) as out:
        (out.path / "trace.npz").write_text("new")
        out.commit()
    assert listing(target) == {"notes.txt", "sub", "trace.npz"}
    assert (target / "trace.npz").read_text() == "new"
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "sub" / "a.txt").read_text() == "a"
    assert listing(tmp_path) == {"out"}


def test_leaving_without_commit_changes_nothing(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "trace.npz").write_text("old")
    with pytest.raises(KeyboardInterrupt), OutputFolder(target) as out:
        (out.path / "trace.npz").write_text("new")
        raise KeyboardInterrupt
    assert listing(target) == {"trace.npz"} and (target / "trace.npz").read_text() == "old"
    assert listing(tmp_path) == {"out"}


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(UserError, match=r"--out .*out: exists and is not a folder"):
        OutputFolder(tmp_path / "out")


def test_leftovers_of_killed_runs_are_removed_or_put_back(tmp_path):
    pid = dead_pid()
    target = tmp_path / "out"
    stage = tmp_path / f".out.gradlab-{pid}-0123abcd.staging"
    (stage / "deep").mkdir(parents=True)
    live = tmp_path / f".out.gradlab-{os.getpid()}-0123abce.staging"
    live.mkdir()
    old = tmp_path / f".out.gradlab-{pid}-0123abcf.old"  # a swap cut in half
    old.mkdir()
    (old / "trace.npz").write_text("old")
    other = tmp_path / f".other.gradlab-{pid}-0123abcd.staging"
    other.mkdir()
    assert remove_stale(tmp_path, "out") == [stage]
    assert (target / "trace.npz").read_text() == "old"  # the old folder is back
    assert live.exists() and other.exists()  # a live run's, and another folder's


def test_atomic_write_removes_the_temporaries_of_killed_writes(tmp_path):
    pid = dead_pid()
    dead = tmp_path / f".doc.gradlab.{pid}-0123abcd.tmp"
    alive = tmp_path / f".doc.gradlab.{os.getpid()}-0123abcd.tmp"
    unowned_old = tmp_path / ".doc.gradlab.0123abcd.tmp"
    unowned_new = tmp_path / ".doc.gradlab.0123abce.tmp"
    for p in (dead, alive, unowned_old, unowned_new):
        p.write_text("torn")
    long_ago = time.time() - 2 * 3600
    os.utime(unowned_old, (long_ago, long_ago))
    other = tmp_path / f".other.json.{pid}-0123abcd.tmp"
    other.write_text("torn")
    atomic_write_text(tmp_path / "doc.gradlab", "saved")
    assert listing(tmp_path) == {"doc.gradlab", alive.name, unowned_new.name, other.name}
    assert remove_stale_temporaries(tmp_path) == [other]


def test_a_rule_can_say_which_files_a_command_owns(tmp_path):
    """export's file names depend on the model: a rule on the name, not a list."""
    target = tmp_path / "out"
    target.mkdir()
    for name in ("hidden.h.l1.png", "signals.csv", "photo.png"):
        (target / name).write_text("old")
    with OutputFolder(target, replaces=lambda n: n.startswith(("hidden.", "signals."))) as out:
        (out.path / "signals.csv").write_text("new")
        out.commit()
    assert listing(target) == {"signals.csv", "photo.png"}
    assert (target / "signals.csv").read_text() == "new"
