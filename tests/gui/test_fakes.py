"""The synthetic probe results the GUI tests draw are shaped like real ones.

The plot tests run on :func:`make_fake_result` for speed and for values that make
vanishing or exploding gradients plain to see.  If the engine changes what a probe
returns (a trace key, a spectrum's name, the connectivity map's shape) and the fake
does not follow, those tests would keep passing on a shape the app never sees; here
the fake is compared with a real probe of a tiny model of the same cell and sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.init import init_params
from core.lab import run_probe
from core.probe import ProbeResult

from .conftest import VARIANTS, make_fake_result

T, B, H = 6, 2, 4

# name: (cell, layers, bidirectional, pattern, loss, output size, task)
MODELS: dict[str, tuple[str, int, bool, str, str, int, str]] = {
    "lstm": ("lstm", 1, False, "many_to_many", "mse", 1, "sine"),
    "gru_bidir2": ("gru", 2, True, "many_to_many", "mse", 1, "sine"),
    "rnn_final": ("rnn", 1, False, "many_to_one", "mse", 1, "sine"),
    "rnn_feedback": ("rnn", 1, False, "output_recurrence", "mse", 1, "sine"),
    "gru_feedback2": ("gru", 2, False, "output_recurrence", "mse", 1, "sine"),
    "lstm_classes": ("lstm", 1, False, "many_to_many", "cross_entropy", 2, "parity"),
    "lstm_classes_final": ("lstm", 1, False, "many_to_one", "cross_entropy", 2, "parity"),
}


def _shapes(d: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: np.shape(v) for k, v in d.items()}


def _kinds(d: dict[str, Any]) -> dict[str, str]:
    """The dtype kind of each array: float, integer, bool or complex."""
    return {k: np.asarray(v).dtype.kind for k, v in d.items()}


def _pair(name: str) -> tuple[ProbeResult, ProbeResult]:
    cell, n_layers, bidir, pattern, loss, out, task = MODELS[name]
    model = ModelConfig(input_size=1, output_size=out, pattern=pattern, loss=loss,
                        layers=[LayerConfig(cell=cell, hidden_size=H, bidirectional=bidir)
                                for _ in range(n_layers)])
    exp = Experiment(model=model, task=TaskConfig(name=task, seq_len=T, batch_size=B))
    real = run_probe(exp, init_params(exp.model, exp.init), None)
    fake = make_fake_result(cell, num_layers=n_layers, bidirectional=bidir, pattern=pattern,
                            loss=loss, T=T, B=B, H=H, D=1, O=out)
    return real, fake


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_fake_is_a_probe_result(variant):
    result = make_fake_result(**VARIANTS[variant])
    assert type(result) is ProbeResult
    assert result.backend_label
    assert result.nonfinite is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fake_has_the_keys_and_shapes_of_a_real_probe(name):
    real, fake = _pair(name)
    assert isinstance(real, ProbeResult) and isinstance(fake, ProbeResult)
    assert fake.experiment.model == real.experiment.model
    assert np.shape(fake.x) == np.shape(real.x)
    assert (fake.y is None) == (real.y is None)
    assert np.shape(fake.y) == np.shape(real.y)
    assert np.asarray(fake.y).dtype.kind == np.asarray(real.y).dtype.kind

    assert sorted(fake.arrays) == sorted(real.arrays)
    assert _shapes(fake.arrays) == _shapes(real.arrays)
    assert _kinds(fake.arrays) == _kinds(real.arrays)

    assert sorted(fake.spectra) == sorted(real.spectra)
    for matrix, blocks in real.spectra.items():
        assert sorted(fake.spectra[matrix]) == sorted(blocks), matrix
        assert _shapes(fake.spectra[matrix]) == _shapes(blocks), matrix
    assert sorted(fake.spectral_radius) == sorted(real.spectral_radius)

    assert sorted(fake.jacobian) == sorted(real.jacobian)
    assert _shapes(fake.jacobian) == _shapes(real.jacobian)

    assert (fake.connectivity is None) == (real.connectivity is None)
    assert np.shape(fake.connectivity) == np.shape(real.connectivity)

    assert (fake.teacher_mask is None) == (real.teacher_mask is None)
    assert np.shape(fake.teacher_mask) == np.shape(real.teacher_mask)
    assert bool(fake.backend_label) == bool(real.backend_label)
