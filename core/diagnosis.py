"""One definition of vanishing, exploding and underflowed gradients.

Everything that labels a gradient curve — the window's "Gradient flow over time"
note and glows, ``summary.json``, the lesson checks — reads it from here.  The
input is a trace's ``gradnorm.L`` curves (``L`` = ``l{k}`` or ``l{k}_reverse``;
each (T,), the batch mean of ‖dL/dh_t‖₂, in time order).

Positions.  A direction processes its steps in order p = 0 … T−1: the forward cell
t = p, the reverse cell t = T−1−p.  BPTT starts at the *last processed* step
(p = T−1: t = T−1 forward, t = 0 reverse) and carries the gradient back to the
*farthest* step (p = 0: t = 0 forward, t = T−1 reverse).

Ratio.  ``gradient_ratio`` = g(farthest) / g(last processed).  It is a plain fact
about the curve, and it measures the recurrence itself only where all the gradient
enters at the last processed step.

Where the gradient enters.  A curve mixes two things: gradient entering the
direction from outside its recurrence, and gradient carried back by it.  Only the
second can vanish or explode, so each step is judged against an estimate ``e`` of
what entered (T,):

- top layer, ``many_to_one``: everything enters at the last processed step (the
  head reads the forward state at T−1 and the reverse state at 0), e = g there;
- top layer, ``many_to_many`` and ``output_recurrence``: every step has its own share
  of the loss, taken equal to the last processed step's (which holds nothing else);
- a layer below the top: at every step, from the layer above, in proportion to the
  sum of that layer's curves at the same timestep, scaled to equal g at the latest
  processed step where anything enters (nothing has been carried there yet).

Reach.  Gradient entering at position q reaches the positions p ≤ q; with truncated
BPTT of window k only those with p // k == q // k (the cut of core.network).

The rule, per step, with R = the largest e within reach at or after it and
S = the sum of those e:

- *vanished*: g < 10⁻⁶ · R.  Less than a millionth of the largest gradient that
  could have reached the step: float32 keeps about seven significant digits, so in
  a weight gradient (a sum over steps) such a step's share survives, if at all, in
  the last digit.  A decay that stays above it (an LSTM losing four decades over
  50 steps) still delivers a usable signal.
- *exploded*: g > 10³ · S.  A recurrence that never amplifies (‖Jacobian‖ ≤ 1) gives
  at most S, everything that entered within reach added up; a thousand times more
  is growth, and it compounds with every further step.
- *below float range*: g is exactly 0 (or subnormal in the curve's float type)
  where R > 0: the gradient decayed past what the format holds.  A float32 norm
  already reaches 0 when the entries of dL/dh fall below about 1e-22, since their
  squares underflow.
- *unreached*: g is 0 where R = 0: nothing entered within reach (a truncation
  window's cut, or a layer above that passes nothing there).
- *non-finite*: NaN or Inf.

Verdict per curve: "non-finite" if any step is; else "exploding" if any step
exploded; else "vanishing" if any step vanished (underflowed steps included);
else "no gradient" if no step holds a positive value; else "stable".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VANISHED = 1e-6  # below this fraction of the largest gradient within reach: vanished
EXPLODED = 1e3  # beyond this multiple of all the gradient within reach: exploded
VERDICTS = ("vanishing", "exploding", "stable", "non-finite", "no gradient")
_KEY = re.compile(r"^gradnorm\.l(\d+)(_reverse)?$")


@dataclass(frozen=True, eq=False)
class CurveDiagnosis:
    """The diagnosis of one layer and direction; every array is (T,), in time order."""

    key: str  # "l0", "l0_reverse", …
    reverse: bool
    ratio: float | None  # g(farthest) / g(last processed); None when undefined
    entering: np.ndarray  # estimate of the gradient entering from outside the recurrence
    reference: np.ndarray  # R: the largest entering gradient within reach at or after t
    budget: np.ndarray  # S: the sum of the entering gradient within reach at or after t
    vanished: np.ndarray  # bool: g < VANISHED · R (exact zeros included)
    exploded: np.ndarray  # bool: g > EXPLODED · S
    underflow: np.ndarray  # bool: below float range (0 or subnormal) where R > 0
    unreached: np.ndarray  # bool: 0 where R = 0
    nonfinite: np.ndarray  # bool: NaN or Inf
    verdict: str  # one of VERDICTS
    source: str  # "head" or "layer above": where the gradient enters
    tbptt: int | None = None  # the truncation window the curve was judged with

    @property
    def faded(self) -> np.ndarray:
        """(T,) bool: vanished but still a positive number (not below float range)."""
        return self.vanished & ~self.underflow

    @property
    def ratio_misleads(self) -> bool:
        """True when the far/last ratio alone would say vanishing or exploding but the
        steps, judged against where the gradient enters, are stable."""
        r = self.ratio
        return (self.verdict == "stable" and r is not None and r > 0
                and not VANISHED <= r <= EXPLODED)

    def findings(self, limit: int = 2) -> list[tuple[str, str]]:
        """``(kind, text)`` for people, kind one of "nonfinite", "exploded", "vanished",
        "underflow", "unreached", "entry"; each text names up to ``limit`` step ranges."""
        out = []
        if self.nonfinite.any():
            out.append(("nonfinite", f"non-finite at {describe_steps(self.nonfinite, limit)}"))
        if self.exploded.any():
            out.append(("exploded", f"exploded at {describe_steps(self.exploded, limit)}"))
        if self.faded.any():
            out.append(("vanished", f"vanished at {describe_steps(self.faded, limit)}"))
        if self.underflow.any():
            out.append(("underflow",
                        f"below float range at {describe_steps(self.underflow, limit)}"))
        if self.unreached.any():
            why = ("cut by truncated BPTT" if self.tbptt
                   else f"nothing enters from the {self.source}")
            out.append(("unreached",
                        f"no gradient at {describe_steps(self.unreached, limit)} ({why})"))
        if self.ratio_misleads:
            out.append(("entry", f"judged against the gradient entering from the {self.source}, "
                                 "not against the last step alone"))
        return out

    @property
    def text(self) -> str:
        """One line for people: key, verdict, ratio and findings."""
        head = f"{self.key}: {self.verdict}, farthest/last step = {fmt(self.ratio)}"
        return "; ".join([head, *(text for _kind, text in self.findings())])


@dataclass(frozen=True, eq=False)
class Diagnosis:
    """The diagnosis of every curve of a trace, by layer key in the model's order."""

    curves: dict[str, CurveDiagnosis] = field(default_factory=dict)
    pattern: str = "many_to_many"
    tbptt: int | None = None

    @property
    def text(self) -> str:
        """One line per layer and direction."""
        return "\n".join(c.text for c in self.curves.values())

    def verdicts(self) -> dict[str, str]:
        """Layer key → verdict."""
        return {k: c.verdict for k, c in self.curves.items()}

    def ratios(self) -> dict[str, float | None]:
        """Layer key → g(farthest) / g(last processed)."""
        return {k: c.ratio for k, c in self.curves.items()}


# ----------------------------------------------------------------------------- helpers


def positions(T: int, reverse: bool) -> np.ndarray:
    """(T,) timestep of each processing position p = 0 … T−1."""
    t = np.arange(T)
    return t[::-1].copy() if reverse else t


def gradient_ratio(gradnorm: Any, reverse: bool = False) -> float | None:
    """g(farthest back) / g(last processed) of a (T,) curve in time order: g[0]/g[T−1]
    for a forward cell, g[T−1]/g[0] for a reverse one.  None when either end is not
    finite or the last processed step's value is 0."""
    g = np.asarray(gradnorm, dtype=np.float64).reshape(-1)
    if g.size == 0:
        return None
    far, last = (g[-1], g[0]) if reverse else (g[0], g[-1])
    if not (math.isfinite(far) and math.isfinite(last)) or last == 0:
        return None
    value = float(far / last)
    return value if math.isfinite(value) else None


def below_float_range(values: Any, dtype: Any = None) -> np.ndarray:
    """(same shape) bool: finite values that are exactly 0 or subnormal in ``dtype``
    (default: the values' own float type), i.e. smaller than its smallest normal number."""
    a = np.asarray(values)
    kind = np.dtype(dtype) if dtype is not None else a.dtype
    tiny = np.finfo(kind if kind.kind == "f" else np.float64).tiny
    mag = np.abs(a.astype(np.float64, copy=False))
    return np.isfinite(mag) & (mag < tiny)


def runs(mask: Any) -> list[tuple[int, int]]:
    """Inclusive ``(start, stop)`` index ranges where ``mask`` (1-D) is true."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool).ravel(), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def describe_steps(mask: Any, limit: int = 2) -> str:
    """``"t 0–15, t 40"``: the first ``limit`` runs of ``mask``, then "…" if there are more."""
    parts = [f"t {a}" if a == b else f"t {a}–{b}" for a, b in runs(mask)]
    return ", ".join(parts[:limit]) + (", …" if len(parts) > limit else "")


def fmt(v: float | None) -> str:
    """A ratio for people: ``4.6e-13``, ``0.95``, ``12``; "undefined" for None."""
    if v is None or not math.isfinite(v):
        return "undefined"
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e3:
        return f"{v:.2g}"
    return f"{v:.1e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def _within_reach(values: np.ndarray, k: int | None, op: str) -> np.ndarray:
    """For each processing position p, ``op`` ("max" or "sum") of ``values[q]`` over
    q ≥ p in the same truncation window (all q ≥ p when ``k`` is None)."""
    T = values.size
    k = T if not k or k >= T else int(k)
    n = -(-T // k)
    pad = np.zeros(n * k)
    pad[:T] = values
    rows = pad.reshape(n, k)[:, ::-1]
    acc = np.maximum.accumulate(rows, axis=1) if op == "max" else np.cumsum(rows, axis=1)
    return acc[:, ::-1].reshape(-1)[:T]


# ----------------------------------------------------------------------------- the rule


def diagnose_curve(gradnorm: Any, source: Any, *, reverse: bool = False,
                   tbptt: int | None = None, key: str = "l0",
                   source_name: str = "head") -> CurveDiagnosis:
    """Diagnose one (T,) curve in time order.

    ``source`` (T,), time order: the profile of the gradient entering the direction
    from outside its recurrence, up to a constant factor (a one at the last processed
    step for a many-to-one top layer, ones for a top layer with an output at every
    step, the layer above's summed curves otherwise); it is scaled to equal the curve
    at the latest processed step where it is positive.
    """
    g = np.asarray(gradnorm, dtype=np.float64).reshape(-1)
    T = g.size
    s = np.asarray(source, dtype=np.float64).reshape(-1)
    if s.size != T:
        raise ValueError(f"{key}: the source has {s.size} steps, the curve {T}")
    order = positions(T, reverse)
    gp = g[order]  # processing order
    s = s[order]
    s = np.where(np.isfinite(s) & (s > 0), s, 0.0)
    nonfinite_p = ~np.isfinite(gp)
    gf = np.where(nonfinite_p, np.nan, gp)
    usable = (s > 0) & np.isfinite(gf) & (gf > 0)
    scale = 0.0
    if usable.any():
        q = int(np.flatnonzero(usable)[-1])
        scale = float(gf[q] / s[q])
    e = scale * s
    R = _within_reach(e, tbptt, "max")
    S = _within_reach(e, tbptt, "sum")
    with np.errstate(invalid="ignore"):
        vanished = np.isfinite(gf) & (R > 0) & (gf < VANISHED * R)
        exploded = np.isfinite(gf) & (S > 0) & (gf > EXPLODED * S)
    raw = np.asarray(gradnorm)
    tiny = below_float_range(gp, raw.dtype if raw.dtype.kind == "f" else None)
    underflow = tiny & (R > 0)
    unreached = tiny & (gf == 0) & (R == 0)
    if nonfinite_p.any():
        verdict = "non-finite"
    elif exploded.any():
        verdict = "exploding"
    elif vanished.any():
        verdict = "vanishing"
    elif not (np.isfinite(gf) & (gf > 0)).any():
        verdict = "no gradient"
    else:
        verdict = "stable"
    back = np.empty(T, dtype=np.intp)
    back[order] = np.arange(T)  # time order from processing order

    def timed(a: np.ndarray) -> np.ndarray:
        return a[back]

    return CurveDiagnosis(key=key, reverse=reverse, ratio=gradient_ratio(g, reverse),
                          entering=timed(e), reference=timed(R), budget=timed(S),
                          vanished=timed(vanished), exploded=timed(exploded),
                          underflow=timed(underflow), unreached=timed(unreached),
                          nonfinite=timed(nonfinite_p), verdict=verdict, source=source_name,
                          tbptt=tbptt)


def curve_keys(arrays: Mapping[str, Any]) -> list[tuple[int, bool, str]]:
    """``(layer index, reverse, key)`` of every ``gradnorm.L`` in ``arrays``, in model order."""
    found = []
    for name in arrays:
        m = _KEY.match(name)
        if m:
            found.append((int(m.group(1)), m.group(2) is not None, name.split(".", 1)[1]))
    return sorted(found)


def diagnose(arrays: Mapping[str, Any], pattern: str, *, tbptt: int | None = None) -> Diagnosis:
    """The :class:`Diagnosis` of every ``gradnorm.L`` curve in ``arrays`` (trace keys).

    ``pattern``: the model's design pattern (``many_to_many``, ``many_to_one``,
    ``output_recurrence``); ``tbptt``: the truncation window the trace was run with.
    A trace without gradients (no target) gives an empty diagnosis.
    """
    keys = curve_keys(arrays)
    if not keys:
        return Diagnosis({}, pattern, tbptt)
    top = max(k for k, _r, _key in keys)
    curves: dict[str, CurveDiagnosis] = {}
    for k, reverse, key in keys:
        g = np.asarray(arrays[f"gradnorm.{key}"]).reshape(-1)
        T = g.size
        if k == top:
            if pattern == "many_to_one":
                source = np.zeros(T)
                if T:
                    source[0 if reverse else T - 1] = 1.0
            else:
                source = np.ones(T)
            name = "head"
        else:
            above = [np.asarray(arrays[f"gradnorm.{a}"], dtype=np.float64).reshape(-1)
                     for j, _r, a in keys if j == k + 1]
            source = np.sum(above, axis=0) if above else np.ones(T)
            name = "layer above"
        curves[key] = diagnose_curve(g, source, reverse=reverse, tbptt=tbptt, key=key,
                                     source_name=name)
    return Diagnosis(curves, pattern, tbptt)


def diagnose_result(result: Any) -> Diagnosis:
    """The diagnosis of a :class:`core.probe.ProbeResult`: its own when it has one, else
    one made from its arrays, pattern and the experiment's truncation window."""
    own = getattr(result, "diagnosis", None)
    if own is not None:
        return own
    exp = result.experiment
    return diagnose(result.arrays, exp.model.pattern, tbptt=exp.training.tbptt)
