"""The probe's seed ensemble: Lab.set_seeds, the band it carries, and pinned bands."""

from __future__ import annotations

import numpy as np
import pytest

from core.compare import BAND_MINMAX, BAND_PERCENTILE, SeedBand, seed_band
from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.lab import MAX_BAND_SEEDS, Lab


def _exp() -> Experiment:
    exp = Experiment(task=TaskConfig(name="adding", seq_len=12, batch_size=4))
    exp.model = ModelConfig(input_size=2, output_size=1, pattern="many_to_one",
                            layers=[LayerConfig(cell="rnn", hidden_size=5,
                                                bidirectional=True)])
    exp.training.steps = 2
    return exp


@pytest.mark.parametrize("bad", [0, MAX_BAND_SEEDS + 1, True, "3", 2.5, -1])
def test_set_seeds_refuses_what_is_not_a_seed_count(bad):
    lab = Lab(_exp())
    errors: list[str] = []
    lab.error.connect(errors.append)
    assert lab.set_seeds(bad) is False
    assert lab.seeds == 1 and errors and "seeds" in errors[0]


def test_a_probe_over_seeds_carries_their_band_and_row_0_is_the_run_itself():
    lab = Lab(_exp())
    assert lab.set_seeds(4)
    result = lab.probe()
    band = result.seed_band
    assert isinstance(band, SeedBand) and band.seeds == 4 and band.band == BAND_MINMAX
    assert set(band.curves) == {"gradnorm.l0", "gradnorm.l0_reverse"}
    for key, rows in band.curves.items():
        assert rows.shape == (4, 12)
        # seed 0 of the ensemble is the live run: same weights, same probe batch
        np.testing.assert_allclose(rows[0], result.arrays[key], rtol=1e-6)
        assert not np.allclose(rows[1], rows[0])  # other seeds draw other weights
        mean, low, high = band.stats(key)
        assert np.all(low <= mean) and np.all(mean <= high)
        np.testing.assert_allclose(mean, rows.mean(axis=0))
    assert "mean of 4 seeds" in band.legend and "min–max" in band.legend


def test_from_ten_seeds_the_band_is_the_middle_95_percent():
    band = seed_band(_exp(), 10)
    assert band.band == BAND_PERCENTILE and "95 %" in band.legend
    rows = band.curves["gradnorm.l0"]
    _mean, low, high = band.stats("gradnorm.l0")
    np.testing.assert_allclose(low, np.percentile(rows, 2.5, axis=0))
    np.testing.assert_allclose(high, np.percentile(rows, 97.5, axis=0))


def test_trained_weights_get_no_band_and_a_reason():
    lab = Lab(_exp())
    lab.train(2)
    lab.set_seeds(3)
    result = lab.probe()
    assert result.seed_band is None
    assert "trained" in result.seed_note and "3 seeds" in result.seed_note


def test_a_result_for_another_seed_count_is_not_shown():
    lab = Lab(_exp())
    lab.set_seeds(3)
    job = lab.probe_job()
    result = job.run()
    lab.set_seeds(2)
    assert lab.publish(job, result) is False
    assert lab.result is not result


def test_train_then_edit_then_undo_keeps_the_band_honest():
    """A user's sequence: band on, train (no band), nudge a knob (fresh draws: band
    again), undo (the trained weights: no band)."""
    lab = Lab(_exp())
    lab.set_seeds(3)
    lab.train(2)
    assert lab.probe().seed_band is None
    assert lab.set_init(scheme="orthogonal")
    assert lab.probe().seed_band is not None  # new weights drawn from the seed
    assert lab.undo()
    assert lab.probe().seed_band is None  # the trained weights are back


def test_a_pinned_band_survives_save_and_open(tmp_path):
    lab = Lab(_exp())
    lab.set_seeds(3)
    band = lab.probe().seed_band
    pin = lab.pin()
    for kept, made in zip(pin.band("l0"), band.stats("gradnorm.l0"), strict=True):
        np.testing.assert_array_equal(kept, made)
    path = tmp_path / "band.gradlab"
    assert lab.save(path)
    again = Lab.open(path).pinned[0]
    for a, b in zip(again.band("l0_reverse"), pin.band("l0_reverse"), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.curves["jacobian.l0"], pin.curves["jacobian.l0"])
