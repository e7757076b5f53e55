"""minGRU / minLSTM analyses: the step Jacobian is diagonal and read off the gates."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis import jacobian_norms, spectra
from core.diagonal import keep_factors, keep_theory, step_jacobian_spectra
from core.experiment import Experiment, TaskConfig
from core.init import init_params
from core.probe import probe
from tests.core.helpers import network, small_data, small_model


def _dense_jacobian_norms(net, x, key):
    """‖∂h_last/∂h_t‖₂ by brute force: a run over the steps after t from a perturbed
    initial state h_t, central differences one unit at a time."""
    reverse = key.endswith("_reverse")
    T = x.shape[0]
    h = net.run(x[:, :1], None).layers[key].h[:, 0]  # (T, H)
    H = h.shape[-1]
    out = np.empty(T)
    for t in range(T):
        part = x[:t, :1] if reverse else x[t + 1:, :1]  # the steps processed after t
        if part.shape[0] == 0:
            out[t] = 1.0
            continue
        J = np.empty((H, H))
        for j in range(H):
            ends = []
            for s in (1e-6, -1e-6):
                h0 = h[t][None].copy()
                h0[0, j] += s
                r = net.run(part, None, initial={key: (h0, None)})
                ends.append(r.layers[key].h[0 if reverse else -1, 0])
            J[:, j] = (ends[0] - ends[1]) / 2e-6
        out[t] = np.linalg.norm(J, 2)
    return out


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("bidir", [False, True])
def test_jacobian_norms_are_the_products_of_the_keep_factors(cell, bidir):
    model = small_model(cell, "many_to_many", bidir, 1, H=4)
    net = network(model)
    x, _ = small_data(model, T=6)
    got = jacobian_norms(net, net.run(x, None))
    for key in (["l0", "l0_reverse"] if bidir else ["l0"]):
        np.testing.assert_allclose(got[key], _dense_jacobian_norms(net, x, key), rtol=1e-7)


def test_no_recurrent_matrix_no_eigenvalues_but_the_diagonal_instead():
    model = small_model("mingru", "many_to_many", True, 2, H=4)
    net = network(model)
    x, _ = small_data(model, T=8, B=3)
    arrays = net.run(x, None).to_arrays()
    eigs, radius = spectra(model, net.params)
    assert eigs == {} and radius == {}
    eigs, radius = step_jacobian_spectra(model, arrays, sample=1)
    assert set(eigs) == {"step_jacobian_l0", "step_jacobian_l0_reverse", "step_jacobian_l1",
                         "step_jacobian_l1_reverse"}
    z = arrays["gate.z.l1_reverse"][:, 1]  # (T, H)
    blocks = eigs["step_jacobian_l1_reverse"]
    np.testing.assert_allclose(blocks["last"].real, 1 - z[0])  # a reverse cell ends at t = 0
    geo = np.prod(1 - z, axis=0) ** (1 / 8)
    np.testing.assert_allclose(blocks["mean"].real, geo, rtol=1e-12)
    assert radius["step_jacobian_l1_reverse"] == pytest.approx(geo.max(), rel=1e-12)


def test_output_recurrence_keeps_the_feedback_loop_blocks():
    model = small_model("minlstm", "output_recurrence", H=3)
    eigs, _ = spectra(model, network(model).params)
    assert set(eigs["loop_l0"]) == {"f", "i", "h̃"}


def test_minlstm_keep_factor_is_the_normalised_forget_gate():
    model = small_model("minlstm", "many_to_one", H=3)
    net = network(model)
    x, y = small_data(model, T=5)
    arrays = net.run(x, y).to_arrays()
    keep = keep_factors("minlstm", {"f": arrays["gate.f.l0"], "i": arrays["gate.i.l0"]})
    np.testing.assert_array_equal(keep, arrays["gate.f.l0"])
    with pytest.raises(ValueError, match="full step Jacobian"):
        keep_factors("gru", {})


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_theory_is_exact_for_a_loss_on_the_last_step(cell):
    model = small_model(cell, "many_to_one", H=5)
    net = network(model)
    x, y = small_data(model, T=40, B=3)
    arrays = net.run(x, y).to_arrays()
    np.testing.assert_allclose(keep_theory(arrays, "l0", cell), arrays["gradnorm.l0"],
                               rtol=1e-10)


def test_theory_is_only_the_last_steps_share_when_every_step_has_a_loss():
    model = small_model("mingru", "many_to_many", H=5)
    net = network(model)
    x, y = small_data(model, T=20, B=3)
    arrays = net.run(x, y).to_arrays()
    theory = keep_theory(arrays, "l0", "mingru")
    assert theory[-1] == pytest.approx(arrays["gradnorm.l0"][-1])
    assert not np.allclose(theory[:-1], arrays["gradnorm.l0"][:-1])


def test_probe_reports_the_diagonal_spectral_radius():
    model = small_model("minlstm", "many_to_many", H=4, D=1, O=1)
    exp = Experiment(model=model, task=TaskConfig(name="sine", seq_len=12, batch_size=2))
    params = init_params(exp.model, exp.init)
    x, y = small_data(exp.model, T=12)
    res = probe(exp, params, x, y, connectivity=False)
    assert set(res.spectral_radius) == {"step_jacobian_l0"}
    assert 0 < res.spectral_radius["step_jacobian_l0"] < 1
    assert res.jacobian["l0"][-1] == pytest.approx(1.0)
