"""Lab.set_paths: fields set by dotted path as one undoable edit (a sweep's grid point)."""

from __future__ import annotations

import numpy as np

from core.lab import Lab


def test_set_paths_is_one_undoable_edit():
    lab = Lab.from_preset("vanishing_tanh")
    before = lab.experiment
    w_before = lab.params["weight_hh_l0"]
    assert lab.set_paths([("init.scales.recurrent", 1.5), ("task.seq_len", 20)])
    assert lab.experiment.init.scales.recurrent == 1.5
    assert lab.experiment.task.seq_len == 20
    np.testing.assert_allclose(lab.params["weight_hh_l0"], w_before * 1.5)  # the draw, rescaled
    assert lab.undo_text.endswith("init.scales.recurrent 1.5, task.seq_len 20")
    assert lab.undo()
    assert lab.experiment == before
    assert lab.params["weight_hh_l0"] is w_before


def test_a_cell_change_fits_the_layer_and_says_so():
    lab = Lab.from_preset("vanishing_tanh")
    assert lab.set_paths([("model.layers.0.activation", "relu")])
    notices: list[str] = []
    lab.notice.connect(notices.append)
    assert lab.set_paths([("model.layers.0.cell", "lstm")])
    layer = lab.experiment.model.layers[0]
    assert (layer.cell, layer.activation) == ("lstm", "tanh")
    assert any("activation tanh" in n for n in notices)
    assert "weight_hh_l0" in lab.params and lab.params["weight_hh_l0"].shape[0] == 4 * 32


def test_a_bad_path_changes_nothing():
    lab = Lab.from_preset("vanishing_tanh")
    errors: list[str] = []
    lab.error.connect(errors.append)
    before = lab.version
    assert not lab.set_paths([("init.scales.recurent", 2.0)])
    assert lab.version is before and not lab.can_undo
    assert "init.scales.recurent: no such field" in errors[-1]
