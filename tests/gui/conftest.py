"""Shared fixtures for GUI tests: synthetic probe results and training histories.

The fake results are real ``core.probe.ProbeResult`` objects with the array keys
and shapes a probe of the same model gives (SPEC §3 trace keys; ``test_fakes.py``
checks them against a real probe), filled with plausible values: tanh-bounded
states, sigmoid gates and gradients that shrink geometrically as they travel back
in time.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from core.diagnosis import diagnose
from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.layout import GATES, layer_keys, param_shapes
from core.probe import ProbeResult, teacher_mask_for

FAKE_BACKEND = "NumPy · float32"  # the label a probe on a plain NumPy backend reports


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 0.3) -> np.ndarray:
    """A random walk along axis 0, so states change smoothly over time."""
    return np.cumsum(rng.normal(0.0, scale, size=shape), axis=0) / np.sqrt(shape[0] / 10)


def make_fake_result(cell: str = "lstm", *, num_layers: int = 1, bidirectional: bool = False,
                     pattern: str = "many_to_many", loss: str = "mse", T: int = 100,
                     B: int = 16, H: int = 32, D: int = 1, O: int = 1,
                     activation: str = "tanh", decay: float = 0.93, seed: int = 0,
                     jacobian: bool = True, connectivity: bool = True) -> ProbeResult:
    """A synthetic :class:`ProbeResult` with the keys and shapes a probe of this model gives.

    As in a real probe, ``output_recurrence`` has no Jacobian products, a one-layer
    one reports its output-to-hidden loop as the ``loop_l0`` spectrum, its
    ``teacher_mask`` is the experiment's teacher-forcing choice per step, and the
    ``diagnosis`` is core.diagnosis's of the fake gradient curves.
    """
    rng = np.random.default_rng(seed)
    if loss == "cross_entropy":
        O = max(O, 2)
    layers = [LayerConfig(cell=cell, hidden_size=H, bidirectional=bidirectional,
                          activation=activation if cell == "rnn" else "tanh")
              for _ in range(num_layers)]
    model = ModelConfig(input_size=D, output_size=O, layers=layers, pattern=pattern, loss=loss)
    exp = Experiment(model=model, task=TaskConfig(seq_len=T, batch_size=B))

    t = np.arange(T)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, size=(1, B, 1))
    x = np.sin(0.2 * t + phase + np.arange(D)[None, None, :]).astype(np.float32)

    final = pattern == "many_to_one"
    out_shape = (B, O) if final else (T, B, O)
    arrays: dict[str, np.ndarray] = {}
    if loss == "cross_entropy":
        y = rng.integers(0, O, size=out_shape[:-1])
        logits = rng.normal(0, 1.0, size=out_shape)
        np.put_along_axis(logits, y[..., None], 2.0, axis=-1)
        arrays["output"] = logits.astype(np.float32)
    else:
        target = np.sin(0.2 * (t + 1) + phase + np.arange(O)[None, None, :])
        y = (target[-1] if final else target).astype(np.float32)
        arrays["output"] = (y + rng.normal(0, 0.15, size=y.shape)).astype(np.float32)
    arrays["loss"] = np.array(0.123)  # float64, as the engine reports it

    for _k, suffix, key in layer_keys(model):
        reverse = suffix == "_reverse"
        steps_back = np.arange(T) if reverse else (T - 1 - np.arange(T))
        scale = (decay ** steps_back)[:, None, None]
        arrays[f"h.{key}"] = np.tanh(_smooth(rng, (T, B, H))).astype(np.float32)
        for gate in GATES[cell]:
            pre = _smooth(rng, (T, B, H)) + (1.0 if gate == "f" else 0.0)
            act = np.tanh(pre) if gate in ("g", "n") else 1 / (1 + np.exp(-pre))
            arrays[f"gate.{gate}.{key}"] = act.astype(np.float32)
        dh = rng.normal(0, 1 / np.sqrt(H), size=(T, B, H)) * scale * 0.05
        arrays[f"dh.{key}"] = dh.astype(np.float32)
        arrays[f"gradnorm.{key}"] = np.sqrt((dh**2).sum(-1)).mean(1).astype(np.float32)
        if cell == "lstm":
            arrays[f"c.{key}"] = (2.5 * np.tanh(_smooth(rng, (T, B, H)))).astype(np.float32)
            dc = rng.normal(0, 1 / np.sqrt(H), size=(T, B, H)) * scale**0.8 * 0.08
            arrays[f"dc.{key}"] = dc.astype(np.float32)

    spectra: dict[str, dict[str, np.ndarray]] = {}
    radius: dict[str, float] = {}
    gates = GATES[cell] or ("h",)

    def spectrum(name: str) -> None:
        """Eigenvalues of a random recurrent matrix, per gate block ("h" for an RNN)."""
        w = rng.normal(0, 1.0 / np.sqrt(H), size=(len(gates) * H, H))
        if cell == "rnn":  # match the fake gradient decay, as in a linear RNN
            w *= decay / np.abs(np.linalg.eigvals(w)).max()
        spectra[name] = {g: np.linalg.eigvals(w[i * H:(i + 1) * H]) for i, g in enumerate(gates)}
        radius[name] = float(max(np.abs(v).max() for v in spectra[name].values()))

    for name, shape in param_shapes(model).items():
        arrays[f"grad.{name}"] = rng.normal(0, 1e-3, size=shape).astype(np.float32)
        if name.startswith("weight_hh"):
            spectrum(name)
    feedback = pattern == "output_recurrence"
    if feedback and num_layers == 1:  # the loop weight_oh_l0 · head.weight
        spectrum("loop_l0")

    jac: dict[str, np.ndarray] = {}
    if jacobian and not feedback:
        for _k, suffix, key in layer_keys(model):
            back = np.arange(T) if suffix else T - 1 - np.arange(T)
            jac[key] = (0.9 ** back) * (1 + 0.1 * rng.random(T))
    conn = None
    if connectivity:
        s = np.arange(T)
        lag = s[:, None] - s[None, :]
        conn = np.where(lag >= 0, 0.5 * 0.85 ** np.abs(lag), 0.0)
        if bidirectional:
            conn = 0.5 * 0.85 ** np.abs(lag)
        if final:
            conn = conn[-1:]

    return ProbeResult(experiment=exp, x=x, y=y, arrays=arrays, spectra=spectra,
                       spectral_radius=radius, jacobian=jac, connectivity=conn, nonfinite=None,
                       elapsed_s=0.012, backend_label=FAKE_BACKEND,
                       teacher_mask=teacher_mask_for(exp, T),
                       diagnosis=diagnose(arrays, pattern, tbptt=exp.training.tbptt))


def make_fake_history(steps: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """A training history: decaying loss, validation every 10 steps, clipped gradient norms."""
    rng = np.random.default_rng(seed)
    step = np.arange(steps)
    loss = 0.5 * np.exp(-step / 60) + 0.01 + 0.01 * rng.random(steps)
    val = np.full(steps, np.nan)
    val[::10] = loss[::10] * 1.1
    before = 3 * np.exp(-step / 80) + 0.2 + 0.3 * rng.random(steps)
    return {"step": step, "loss": loss, "val_loss": val, "grad_norm_before": before,
            "grad_norm_after": np.minimum(before, 1.0)}


VARIANTS: dict[str, dict[str, Any]] = {
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    "bidir2": {"cell": "lstm", "num_layers": 2, "bidirectional": True},
    "many_to_one": {"cell": "gru", "pattern": "many_to_one", "O": 2},
    "rnn_linear": {"cell": "rnn", "activation": "linear", "decay": 0.95},
    "classes": {"cell": "lstm", "loss": "cross_entropy", "O": 3, "D": 3, "jacobian": False,
                "connectivity": False},
}


@pytest.fixture(scope="session", autouse=True)
def collect_in_the_gui_thread(qapp):
    """As in the app: reference cycles of Qt objects are collected in the GUI thread,
    never in a worker thread that happens to allocate (gui.garbage)."""
    from gui.garbage import collect_in_gui_thread

    collector = collect_in_gui_thread(qapp)
    yield collector
    collector.stop()


@pytest.fixture
def fake_result():
    """Factory: ``fake_result("gru", num_layers=2, ...)`` builds a synthetic ProbeResult."""
    return make_fake_result


@pytest.fixture(params=sorted(VARIANTS))
def any_result(request):
    """Each model variant in turn: LSTM, GRU, bidirectional 2-layer, many_to_one, …"""
    return make_fake_result(**VARIANTS[request.param])


@pytest.fixture
def fake_history():
    return make_fake_history()
