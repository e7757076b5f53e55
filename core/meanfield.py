"""Mean-field theory of a single-layer tanh RNN: where gradients neither vanish nor explode.

For a wide RNN ``h_t = tanh(a_t)``, ``a_t = W_hh h_{t−1} + W_ih x_t + b`` with
independent weights of variance ``σ_w²/H`` (recurrent), the pre-activation variance
of a unit follows the mean-field map (Poole et al. 2016; for recurrent networks
Chen, Pennington & Schoenholz, "Dynamical Isometry and a Mean Field Theory of RNNs:
Gating Enables Signal Propagation in Recurrent Neural Networks", ICML 2018)

    q_t = σ_w² · E_{z~N(0, q_{t−1})}[tanh(z)²] + σ_d²,

where ``σ_d²`` is the variance the input and the biases add every step.  At its
fixed point ``q*`` one step back in time multiplies a gradient's squared norm on
average by

    χ = σ_w² · E_{z~N(0, q*)}[tanh′(z)²].

χ < 1: gradients vanish geometrically (order); χ > 1: they explode (chaos); the
critical line χ = 1 is the edge between them.  Gilboa et al. (2019, "Dynamical
isometry and a mean field theory of LSTMs and GRUs") extend the picture to gated
cells; here only the tanh RNN has a line.

:func:`recurrent_variance` and :func:`drive_variance` read ``σ_w²`` (per unit of the
recurrent scale squared) and ``σ_d²`` off an experiment: the initialisation
scheme's weight variances (:mod:`core.init`) and the mean power of the task's
probe batch.  :func:`critical_scale` gives the recurrent scale on the line.
Expectations are Gauss–Hermite quadratures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from .experiment import Experiment

__all__ = ["SCHEMES", "chi", "critical_scale", "critical_sigma_w2", "drive_variance",
           "fixed_point", "gaussian_mean", "recurrent_variance", "supported"]

QUADRATURE_POINTS = 121
# σ_w² per unit scale² of a recurrent H×H block, by scheme (core.init): uniform draws
# U(±1/√H), variance 1/(3H); normal N(0, 1/H); xavier U(±√(3/H)), variance 1/H;
# orthogonal rows of unit norm, variance 1/H per entry (its mean field is taken as iid).
SCHEMES = {"uniform": 1.0 / 3.0, "normal": 1.0, "xavier": 1.0, "orthogonal": 1.0}


@functools.cache
def _nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / math.sqrt(2.0 * math.pi)


def gaussian_mean(f: Callable[[np.ndarray], np.ndarray], q: float,
                  n: int = QUADRATURE_POINTS) -> float:
    """E[f(z)] for z ~ N(0, q), q ≥ 0."""
    x, w = _nodes(n)
    return float(np.dot(w, f(math.sqrt(max(q, 0.0)) * x)))


def _tanh2(z: np.ndarray) -> np.ndarray:
    return np.tanh(z) ** 2


def _dtanh2(z: np.ndarray) -> np.ndarray:
    return (1.0 - np.tanh(z) ** 2) ** 2


def fixed_point(sigma_w2: float, drive: float, tol: float = 1e-13) -> float:
    """q*: the stable fixed point of ``q ↦ σ_w² E[tanh(z)²] + drive`` (0 when the map
    has no positive one, that is drive = 0 and σ_w² ≤ 1)."""
    if sigma_w2 < 0 or drive < 0:
        raise ValueError("sigma_w2 and drive must be ≥ 0")

    def excess(q: float) -> float:
        return sigma_w2 * gaussian_mean(_tanh2, q) + drive - q

    lo, hi = 1e-300, sigma_w2 + drive + 1.0
    if excess(lo) <= 0:
        return 0.0
    # the map is increasing and concave in q: one positive root, excess > 0 below it
    while hi - lo > tol * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if excess(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def chi(sigma_w2: float, drive: float) -> float:
    """χ = σ_w² E[tanh′(z)²] at the fixed-point variance q*: the mean factor by which one
    step back multiplies a gradient's squared norm."""
    return sigma_w2 * gaussian_mean(_dtanh2, fixed_point(sigma_w2, drive))


def critical_sigma_w2(drive: float, high: float = 1e4) -> float:
    """The σ_w² where χ = 1 for a given ``drive`` (σ_d²): 1 without drive, larger with
    it (a driven tanh saturates, and saturation damps the gradient).  χ rises with σ_w²
    across the line; found by bisection."""
    lo, hi = 0.0, 1.0
    while chi(hi, drive) < 1.0:
        lo, hi = hi, hi * 2.0
        if hi > high:
            return math.inf  # so strong a drive that no scale reaches the edge
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if chi(mid, drive) < 1.0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def supported(exp: Experiment) -> str | None:
    """None when the mean-field line applies to ``exp`` — one layer, a tanh RNN with a
    hidden-to-hidden matrix, an iid-variance scheme, a task — else why not."""
    model = exp.model
    if len(model.layers) != 1:
        return "the mean-field line is drawn for one layer"
    layer = model.layers[0]
    if layer.cell != "rnn" or layer.activation != "tanh":
        return "the mean-field line is drawn for a tanh RNN"
    if model.pattern == "output_recurrence":
        return "an output-recurrent network has no hidden-to-hidden weights"
    if exp.init.scheme not in SCHEMES:
        return f"no mean-field line for the {exp.init.scheme} scheme"
    if exp.task is None:
        return "the mean-field line needs a task for the input's power"
    return None


def recurrent_variance(exp: Experiment) -> float:
    """σ_w² of ``exp``: the scheme's recurrent variance × H × scale²."""
    return SCHEMES[exp.init.scheme] * exp.init.scales.recurrent ** 2


def drive_variance(exp: Experiment, x: np.ndarray | None = None) -> float:
    """σ_d²: the variance the input (``x`` (T, B, D), default the probe batch) and the
    biases add to a unit's pre-activation every step."""
    from .lab import probe_batch

    if x is None:
        x = probe_batch(exp, None)[0]
    H = exp.model.layers[0].hidden_size
    D = int(np.shape(x)[-1])
    power = float(np.mean(np.sum(np.asarray(x, dtype=np.float64) ** 2, axis=-1)))  # Σ_d E[x_d²]
    s = exp.init.scales.input
    scheme = exp.init.scheme
    if scheme == "uniform":
        var_in, var_b = s * s / (3.0 * H), 2.0 / (3.0 * H)  # b_ih and b_hh, U(±1/√H) each
    elif scheme == "normal":
        var_in, var_b = s * s / D, 0.0
    elif scheme == "xavier":
        var_in, var_b = s * s * 2.0 / (H + D), 0.0
    else:  # orthogonal: semi-orthogonal H×D input block
        var_in, var_b = s * s / max(H, D), 0.0
    return var_in * power + var_b


def critical_scale(exp: Experiment, x: np.ndarray | None = None) -> float:
    """The recurrent scale (``init.scales.recurrent``) on the critical line χ = 1 for
    ``exp``'s other settings; ValueError when :func:`supported` says no."""
    why = supported(exp)
    if why is not None:
        raise ValueError(why)
    return math.sqrt(critical_sigma_w2(drive_variance(exp, x)) / SCHEMES[exp.init.scheme])
