"""The README's "From Python" examples run as written, so the API they show cannot drift.

The blocks run in order in one namespace, in a temporary working folder (the files they
write land there).  The files and arrays they take as given — ``experiment.json``,
``model.safetensors``, ``x`` and ``y`` — are made here first: an experiment without a
task, as the README's own-data example assumes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## From Python"


def python_blocks(text: str, heading: str = SECTION) -> list[str]:
    """The fenced ```python blocks between ``heading`` and the next ``## `` heading."""
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    section = text[start:end if end != -1 else len(text)]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.M | re.S)


@pytest.fixture
def given(tmp_path, monkeypatch):
    """What the examples take as given, in a fresh working folder."""
    from core import load_experiment
    from core.init import init_params
    from core.weights import save_weights

    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiment.json").write_text(json.dumps({
        "format": "gradlab-experiment", "version": 1,
        "model": {"input_size": 3, "output_size": 2,
                  "layers": [{"cell": "gru", "hidden_size": 4}]}}))
    exp = load_experiment(tmp_path / "experiment.json")
    save_weights(tmp_path / "model.safetensors", init_params(exp.model, exp.init))
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(7, 5, 3)), "y": rng.normal(size=(7, 5, 2))}


def test_the_section_has_the_examples():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    code = "\n".join(blocks)
    for call in ("load_experiment(", "trace(", "Lab.from_preset(", ".train(", ".undo()",
                 ".probe()", ".save(", "Lab.open(", ".connect(", ".set_data("):
        assert call in code, f"the From Python section no longer shows {call}"


def test_the_examples_run(given, tmp_path, capsys):
    namespace = {"__name__": "__readme__", **given}
    for i, block in enumerate(python_blocks(README.read_text(encoding="utf-8"))):
        exec(compile(block, f"README.md (From Python, block {i + 1})", "exec"), namespace)
    assert (tmp_path / "run.gradlab").is_file()
    lab = namespace["lab"]
    assert len(lab.history) == 20  # the own-data example trained the no-task experiment
    assert lab.result.arrays["gradnorm.l0"].shape == (7,)
    assert "150 steps" in capsys.readouterr().out  # the event handler saw the training
