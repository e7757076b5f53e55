"""CIFG, minGRU and minLSTM against a PyTorch autograd unroll of their equations.

PyTorch has no such cells, so the reference is the equations written out step by step
with torch tensors (float64) and differentiated by autograd: loss, outputs, every h_t,
every dL/dh_t and every parameter gradient, stacked and bidirectional, many-to-many and
many-to-one, on the compiled and on the NumPy steps.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.backend import resolve_backend
from core.experiment import LayerConfig, ModelConfig
from core.layout import param_shapes
from core.network import Network

torch = pytest.importorskip("torch")


def _step(cell: str, p: dict, k: str, x, h, c):
    """One step of ``cell`` with the parameters of direction ``k`` ("l0", "l1_reverse")."""
    a = x @ p["weight_ih_" + k].T + p["bias_ih_" + k]
    if cell == "cifg":
        a = a + h @ p["weight_hh_" + k].T + p["bias_hh_" + k]
        af, ag, ao = a.chunk(3, dim=-1)
        f, g, o = torch.sigmoid(af), torch.tanh(ag), torch.sigmoid(ao)
        c = f * c + (1 - f) * g
        return o * torch.tanh(c), c
    if cell == "mingru":
        az, ah = a.chunk(2, dim=-1)
        z = torch.sigmoid(az)
        return (1 - z) * h + z * ah, c
    af, ai, ah = a.chunk(3, dim=-1)
    f, i = torch.sigmoid(af), torch.sigmoid(ai)
    return f / (f + i) * h + i / (f + i) * ah, c


def _unroll(cell: str, model: ModelConfig, p: dict, x):
    """The network's forward in torch: (output, {layer key: [h_t tensors, time order]})."""
    T = x.shape[0]
    inp, hs = x, {}
    feat = None
    for k, layer in enumerate(model.layers):
        outs = []
        for d in ("", "_reverse") if layer.bidirectional else ("",):
            key = f"l{k}{d}"
            h = torch.zeros(x.shape[1], layer.hidden_size, dtype=torch.float64)
            c = torch.zeros_like(h)
            seq = [None] * T
            for t in (range(T - 1, -1, -1) if d else range(T)):
                h, c = _step(cell, p, key, inp[t], h, c)
                h.retain_grad()
                seq[t] = h
            hs[key] = seq
            outs.append(torch.stack(seq))
        inp = torch.cat(outs, dim=-1)
    top = model.layers[-1]
    if model.pattern == "many_to_one":  # the forward state at T−1 beside the reverse at 0
        last = len(model.layers) - 1
        final = [hs[f"l{last}"][T - 1]] + ([hs[f"l{last}_reverse"][0]] if top.bidirectional else [])
        feat = torch.cat(final, dim=-1)
    else:
        feat = inp
    return feat @ p["head.weight"].T + p["head.bias"], hs


@pytest.mark.parametrize(("compiled", "scan", "T"), [(True, False, 7), (False, False, 7),
                                                     (True, True, 20), (False, True, 20)],
                         ids=["compiled", "numpy", "scan-compiled", "scan-numpy"])
@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["cifg", "mingru", "minlstm"])
def test_matches_a_pytorch_unroll(cell, bidirectional, pattern, compiled, scan, T):
    """Every step path: the step loop on the compiled and NumPy steps, and the scan over
    time of minGRU/minLSTM (core.scan; a CIFG has none, so it runs its loop there)."""
    B, D, H, O = 3, 4, 5, 2
    model = ModelConfig(input_size=D, output_size=O, pattern=pattern,
                        layers=[LayerConfig(cell=cell, hidden_size=H, bidirectional=bidirectional),
                                LayerConfig(cell=cell, hidden_size=H + 1,
                                            bidirectional=bidirectional)])
    rng = np.random.default_rng(0)
    params = {n: rng.uniform(-0.8, 0.8, size=s) for n, s in param_shapes(model).items()}
    if cell != "cifg":
        assert not any(n.startswith(("weight_hh", "bias_hh")) for n in params)
    x = rng.normal(size=(T, B, D))
    y = rng.normal(size=(T, B, O) if pattern == "many_to_many" else (B, O))

    tp = {n: torch.tensor(v, requires_grad=True) for n, v in params.items()}
    pred, hs = _unroll(cell, model, tp, torch.tensor(x))
    loss = torch.nn.functional.mse_loss(pred, torch.tensor(y))
    loss.backward()

    backend = replace(resolve_backend("numpy", "float64"), compiled=compiled)
    net = Network(model, params, backend)
    net.scan = scan
    tr = net.run(x, y)
    assert tr.loss == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(tr.output, pred.detach().numpy(), rtol=1e-10, atol=1e-12)
    for key, seq in hs.items():
        np.testing.assert_allclose(tr.layers[key].h, torch.stack(seq).detach().numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=key)
        # dL/dh_t: the total gradient reaching each state (None where it has no effect)
        want = torch.stack([h.grad if h.grad is not None else torch.zeros_like(h)
                            for h in seq]).numpy()
        np.testing.assert_allclose(tr.layers[key].dh, want, rtol=1e-9, atol=1e-13,
                                   err_msg=f"dL/dh {key}")
    assert set(tr.grads) == set(tp)
    for name, t in tp.items():
        np.testing.assert_allclose(tr.grads[name], t.grad.numpy(), rtol=1e-9, atol=1e-13,
                                   err_msg=name)


def test_gate_traces_are_the_named_gates():
    """gate.f/g/o of a CIFG, gate.z of a minGRU and the normalised f′, i′ of a minLSTM."""
    T, B, D, H = 4, 2, 3, 3
    rng = np.random.default_rng(5)
    x = rng.normal(size=(T, B, D))
    for cell, names in (("cifg", ("f", "g", "o")), ("mingru", ("z",)), ("minlstm", ("f", "i"))):
        model = ModelConfig(input_size=D, output_size=1,
                            layers=[LayerConfig(cell=cell, hidden_size=H)])
        params = {n: rng.uniform(-1, 1, size=s) for n, s in param_shapes(model).items()}
        tr = Network(model, params, resolve_backend("numpy", "float64")).run(x, None)
        gates = tr.layers["l0"].gates
        assert tuple(gates) == names
        a = x @ params["weight_ih_l0"].T + params["bias_ih_l0"]  # (T, B, G·H)
        a = a + params.get("bias_hh_l0", 0.0)  # a CIFG's h-projection at t = 0 is b_hh
        sig = 1 / (1 + np.exp(-a))
        if cell == "mingru":
            np.testing.assert_allclose(gates["z"], sig[..., :H], rtol=1e-12)
        elif cell == "minlstm":
            f, i = sig[..., :H], sig[..., H:2 * H]
            np.testing.assert_allclose(gates["f"], f / (f + i), rtol=1e-12)
            np.testing.assert_allclose(gates["i"], i / (f + i), rtol=1e-12)
            np.testing.assert_allclose(gates["f"] + gates["i"], 1.0, rtol=1e-12)
        else:  # the CIFG's first step starts from h = 0: its gates see x only
            np.testing.assert_allclose(gates["f"][0], sig[0, :, :H], rtol=1e-12)
            np.testing.assert_allclose(gates["g"][0], np.tanh(a[0, :, H:2 * H]), rtol=1e-12)


def test_mingru_gradient_ratio_is_the_product_of_one_minus_z():
    """With a loss on the last output only, ‖dL/dh_t‖ / ‖dL/dh_{T−1}‖ per unit is exactly
    ∏_{s=t+1}^{T−1} (1 − z_s): the gradient's fate read off the gates."""
    T, B, D, H = 30, 1, 2, 4
    model = ModelConfig(input_size=D, output_size=1, pattern="many_to_one",
                        layers=[LayerConfig(cell="mingru", hidden_size=H)])
    rng = np.random.default_rng(2)
    params = {n: rng.uniform(-1, 1, size=s) for n, s in param_shapes(model).items()}
    x = rng.normal(size=(T, B, D))
    tr = Network(model, params, resolve_backend("numpy", "float64")).run(x, np.zeros((B, 1)))
    dh, z = tr.layers["l0"].dh[:, 0], tr.layers["l0"].gates["z"][:, 0]  # (T, H)
    keep = np.cumprod((1 - z)[::-1], axis=0)[::-1]  # keep[t] = ∏_{s≥t} (1 − z_s)
    want = np.ones((T, H))
    want[:-1] = keep[1:]
    np.testing.assert_allclose(np.abs(dh) / np.abs(dh[-1]), want, rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(dh, axis=1) / np.linalg.norm(dh[-1]),
                               np.linalg.norm(dh[-1] * want, axis=1) / np.linalg.norm(dh[-1]),
                               rtol=1e-10)
