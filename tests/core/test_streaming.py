"""Window-by-window truncated BPTT equals the full pass with the same truncation."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DataError
from core.streaming import stream
from tests.core.helpers import network, small_data, small_model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one"])
@pytest.mark.parametrize("window", [1, 4, 7])
def test_stream_equals_truncated_full_pass(cell, pattern, window):
    model = small_model(cell, pattern, depth=2, peephole=cell == "lstm")
    net = network(model)
    x, y = small_data(model, T=17, B=3)
    full = net.run(x, y, tbptt=window)
    got = stream(net, x, y, window)
    assert got.loss == pytest.approx(full.loss, rel=1e-12)
    for name, g in full.grads.items():
        np.testing.assert_allclose(got.grads[name], g, rtol=1e-10, atol=1e-13, err_msg=name)
    for key in ("l0", "l1"):
        np.testing.assert_allclose(got.gradnorm[key], full.gradnorm(key), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(got.final_state[key][0], full.layers[key].h[-1])


def test_stream_refuses_what_it_cannot_do():
    bi = small_model("lstm", bidirectional=True)
    with pytest.raises(DataError, match="unidirectional"):
        stream(network(bi), *small_data(bi), 2)
    fb = small_model("rnn", "output_recurrence")
    with pytest.raises(DataError, match="many_to_many and many_to_one"):
        stream(network(fb), *small_data(fb), 2)
