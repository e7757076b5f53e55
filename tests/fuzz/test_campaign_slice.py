"""A fast, seeded slice of the fuzz and fault campaign (benchmarks/fuzz_campaign.py):
generated bad inputs through analyze and train, and kill -9 of train, save, autosave,
export and compare; every check of the campaign's table must read 0."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fuzz_campaign as campaign  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork, FIFOs and kill -9")


def _failures(tally: campaign.Tally) -> dict[str, dict[str, int]]:
    return {kind: dict(fails) for kind, fails in tally.failures.items() if fails}


def test_generated_bad_inputs(tmp_path):
    tally = campaign.Tally()
    campaign.run_inputs(120, seed=2026, workers=2, base=tmp_path, tally=tally)
    assert sum(tally.runs.values()) == 120
    assert set(tally.runs) == set(campaign.KINDS)
    assert _failures(tally) == {}, dict(tally.examples)


def test_kill_9_of_train_save_autosave_export_and_compare(tmp_path):
    tally = campaign.Tally()
    campaign.run_kills(len(campaign.KILLED), seed=2026, base=tmp_path, tally=tally)
    assert all(tally.runs[f"kill -9 {what}"] == 1 for what in campaign.KILLED)
    assert tally.runs["next run after kills"] == 1
    assert _failures(tally) == {}, dict(tally.examples)
