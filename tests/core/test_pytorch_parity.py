"""Same weights, same numbers as PyTorch: outputs, loss and every parameter gradient.

PyTorch is optional (the ``bench`` extra); without it these tests skip.  They pin
the conventions a user relies on when bringing a PyTorch model's weights: gate
order, bias placement, bidirectional concatenation and ``h_n`` for many-to-one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.backend import resolve_backend
from core.experiment import LayerConfig, ModelConfig
from core.network import Network
from tests.core.test_native import compiled_kernels

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one"])
@pytest.mark.parametrize(("cell", "act"), [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"),
                                           ("gru", "tanh")])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("path", ["loop", "compiled", "numpy"])
def test_matches_pytorch(cell, act, pattern, bidirectional, path):
    """On every CPU path: the compiled time loop, the compiled steps in the Python loop
    over t, and the NumPy steps."""
    if path != "numpy":
        compiled_kernels()
    torch.manual_seed(0)
    T, B, D, H, O = 7, 3, 4, 5, 2
    kw = {"nonlinearity": act} if cell == "rnn" else {}
    Seq = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = Seq(D, H, num_layers=2, bidirectional=bidirectional, **kw).double()
    head = torch.nn.Linear(H * (2 if bidirectional else 1), O).double()
    x = torch.randn(T, B, D, dtype=torch.float64)
    y = torch.randn(T, B, O, dtype=torch.float64) if pattern == "many_to_many" else \
        torch.randn(B, O, dtype=torch.float64)
    out, hidden = rnn(x)
    if pattern == "many_to_one":
        h_n = hidden[0] if cell == "lstm" else hidden
        feat = torch.cat([h_n[-2], h_n[-1]], dim=-1) if bidirectional else h_n[-1]
    else:
        feat = out
    pred = head(feat)
    loss = torch.nn.functional.mse_loss(pred, y)
    loss.backward()

    params = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    params |= {"head." + k: v.detach().numpy() for k, v in head.state_dict().items()}
    model = ModelConfig(input_size=D, output_size=O, pattern=pattern,
                        layers=[LayerConfig(cell=cell, hidden_size=H, bidirectional=bidirectional,
                                            activation=act)] * 2)
    backend = dataclasses.replace(resolve_backend("numpy", "float64"),
                                  compiled=path != "numpy", time_loop=path == "loop")
    net = Network(model, params, backend)
    tr = net.run(x.numpy(), y.numpy())
    assert tr.loss == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(tr.output, pred.detach().numpy(), rtol=1e-10, atol=1e-12)
    top = "l1"
    np.testing.assert_allclose(tr.layers[top].h, out.detach().numpy()[..., :H], atol=1e-12)
    if bidirectional:
        np.testing.assert_allclose(tr.layers[top + "_reverse"].h, out.detach().numpy()[..., H:],
                                   atol=1e-12)
    grads = {k: p.grad.numpy() for k, p in rnn.named_parameters()}
    grads |= {"head." + k: p.grad.numpy() for k, p in head.named_parameters()}
    for name, g in grads.items():
        np.testing.assert_allclose(tr.grads[name], g, rtol=1e-9, atol=1e-12, err_msg=name)
