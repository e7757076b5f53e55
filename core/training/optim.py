"""Optimizers that update ``dict[str, array]`` parameters in place, as PyTorch defines them.

Arrays may be NumPy or CuPy: only array methods and in-place operators are used,
so one implementation serves both backends.  Conventions follow ``torch.optim``
(no dampening, uncentred RMSprop, Adam with bias correction); weight decay is L2
added to the gradient, ``g ← g + wd·p``, before anything else.

``state_dict()`` returns plain host NumPy arrays (``"step"`` plus one entry per
slot and parameter, e.g. ``"exp_avg.weight_hh_l0"``) so the state can be saved
next to the weights (safetensors or npz) and restored with ``load_state_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import WeightsError
from ..experiment import TrainingConfig

Params = dict[str, Any]


def to_host(a: Any) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array."""
    if isinstance(a, np.ndarray):
        return a.copy()
    return a.get() if hasattr(a, "get") else np.array(a)


def assign(dst: Any, src: Any) -> None:
    """Copy ``src`` (host or device) into the existing array ``dst`` in place."""
    if isinstance(dst, np.ndarray):
        np.copyto(dst, to_host(src) if not isinstance(src, np.ndarray) else src,
                  casting="same_kind")
    elif isinstance(src, np.ndarray):
        dst.set(np.ascontiguousarray(src, dtype=dst.dtype))  # CuPy host → device
    else:
        dst[...] = src


class Optimizer:
    """Base class: holds the parameters, a step count and named state slots."""

    slots: tuple[str, ...] = ()

    def __init__(self, params: Params, cfg: TrainingConfig) -> None:
        self.params = params
        self.cfg = cfg
        self.t = 0  # number of steps taken
        self.state: dict[str, Params] = {
            slot: {name: p * 0 for name, p in params.items()} for slot in self.slots
        }

    def _decayed(self, name: str, g: Any) -> Any:
        wd = self.cfg.weight_decay
        return g + wd * self.params[name] if wd else g

    def step(self, grads: Mapping[str, Any], lr: float) -> None:
        """Apply one update with learning rate ``lr``; ``grads`` has the shapes of ``params``."""
        self.t += 1
        for name, p in self.params.items():
            g = grads.get(name)
            if g is not None:
                self._update(name, p, self._decayed(name, g), lr)

    def _update(self, name: str, p: Any, g: Any, lr: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """The optimizer's state as host arrays: ``"step"`` and ``"{slot}.{param}"``."""
        out = {"step": np.array(self.t, dtype=np.int64)}
        for slot, arrays in self.state.items():
            for name, a in arrays.items():
                out[f"{slot}.{name}"] = to_host(a)
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`; mismatches raise WeightsError."""
        expected = {f"{slot}.{name}" for slot in self.slots for name in self.params}
        expected.add("step")
        missing = sorted(expected - set(state))
        extra = sorted(set(state) - expected)
        if missing or extra:
            what = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(extra)}"
            raise WeightsError(f"optimizer state does not fit this {type(self).__name__}: {what}")
        for slot, arrays in self.state.items():
            for name, a in arrays.items():
                shape = tuple(np.shape(state[f"{slot}.{name}"]))
                if shape != tuple(a.shape):
                    raise WeightsError(f"optimizer state {slot}.{name}: shape {shape}, "
                                       f"expected {tuple(a.shape)}")
        for slot, arrays in self.state.items():
            for name, a in arrays.items():
                assign(a, state[f"{slot}.{name}"])
        self.t = int(np.asarray(state["step"]))

    def arrays(self) -> list[Any]:
        """Every state array (for taking and restoring a backup around a step)."""
        return [a for arrays in self.state.values() for a in arrays.values()]


class SGD(Optimizer):
    """``buf ← μ·buf + g``; ``p ← p − lr·(g + μ·buf)`` with Nesterov, else ``p ← p − lr·buf``."""

    def __init__(self, params: Params, cfg: TrainingConfig) -> None:
        self.slots = ("momentum_buffer",) if cfg.momentum else ()
        super().__init__(params, cfg)

    def _update(self, name: str, p: Any, g: Any, lr: float) -> None:
        mu = self.cfg.momentum
        if mu:
            buf = self.state["momentum_buffer"][name]
            buf *= mu
            buf += g
            g = g + mu * buf if self.cfg.nesterov else buf
        p -= lr * g


class RMSprop(Optimizer):
    """``v ← α·v + (1−α)·g²``; ``p ← p − lr·g/(√v + ε)`` (with momentum: through a buffer)."""

    def __init__(self, params: Params, cfg: TrainingConfig) -> None:
        self.slots = ("square_avg", "momentum_buffer") if cfg.momentum else ("square_avg",)
        super().__init__(params, cfg)

    def _update(self, name: str, p: Any, g: Any, lr: float) -> None:
        alpha, mu = self.cfg.alpha, self.cfg.momentum
        v = self.state["square_avg"][name]
        v *= alpha
        v += (1.0 - alpha) * g * g
        step = g / ((v ** 0.5) + self.cfg.eps)
        if mu:
            buf = self.state["momentum_buffer"][name]
            buf *= mu
            buf += step
            step = buf
        p -= lr * step


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as ``torch.optim.Adam`` computes it.

    On NumPy each step writes its intermediate values into one scratch array per
    parameter, kept between steps, in the order of the expressions below (so with the
    same rounding): the same values, without allocating half a dozen arrays per
    parameter and step."""

    slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: Params, cfg: TrainingConfig) -> None:
        super().__init__(params, cfg)
        self._scratch: Params = {}

    def _update(self, name: str, p: Any, g: Any, lr: float) -> None:
        b1, b2 = self.cfg.beta1, self.cfg.beta2
        m = self.state["exp_avg"][name]
        v = self.state["exp_avg_sq"][name]
        bc1 = 1.0 - b1 ** self.t
        bc2 = 1.0 - b2 ** self.t
        if not isinstance(p, np.ndarray):  # CuPy: the expressions as written
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            denom = (v ** 0.5) / (bc2 ** 0.5) + self.cfg.eps
            p -= (lr / bc1) * (m / denom)
            return
        s = self._scratch.get(name)
        if s is None or s.shape != p.shape or s.dtype != p.dtype:
            s = self._scratch[name] = np.empty_like(p)
        m *= b1
        np.multiply(g, 1.0 - b1, out=s)         # m += (1 − β₁)·g
        m += s
        v *= b2
        np.multiply(g, 1.0 - b2, out=s)         # v += (1 − β₂)·g·g
        s *= g
        v += s
        np.sqrt(v, out=s)                       # denom = √v / √bc₂ + ε
        s /= bc2 ** 0.5
        s += self.cfg.eps
        np.divide(m, s, out=s)                  # p −= (lr / bc₁)·(m / denom)
        s *= lr / bc1
        p -= s


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}


def make_optimizer(cfg: TrainingConfig, params: Params) -> Optimizer:
    """The optimizer ``cfg.optimizer`` names, bound to ``params`` (updated in place)."""
    try:
        cls = OPTIMIZERS[cfg.optimizer]
    except KeyError:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}") from None
    return cls(params, cfg)
