"""Compare runs: variants of one experiment, each over a seed ensemble, as mean curves
with bands — what ``gradlab compare`` writes and what overlaid runs in the window need.

:func:`compare` takes a base experiment and ``vary``, a list of ``(path, values)``
(dotted paths, :mod:`core.paths`); several give their product.  Each variant runs
once per seed, ``init.seed + 0 … seeds−1``, as a :class:`core.lab.Lab`: training
for ``train_steps`` when asked, then one probe (forward + BPTT, without the
Jacobian products or the connectivity map) of the weights it ends with — the
initial weights when nothing is trained.

Curves, per variant and seed (:attr:`CompareResult.curves`, arrays ``(seeds, n)``):

- ``gradnorm.L`` for every layer key ``L`` (``l0``, ``l0_reverse``, …): the mean over
  the probe batch of ‖dL/dh_t‖, for ``t = 0 … T−1``;
- when trained, ``loss``, ``grad_norm_before`` and ``grad_norm_after`` (clipping) of
  every training step, ``t = 1 … train_steps``; a run that stopped early (a
  non-finite value) has NaN after its last step.

The table (:meth:`CompareResult.rows`, ``compare.csv``) gives per variant, key and
``t`` the mean over the seeds and a band ``[low, high]``: the minimum and maximum
over the runs for fewer than :data:`PERCENTILE_FROM` (10) seeds, else the 2.5th and
97.5th percentiles (the middle 95 % of the runs, NumPy's linear interpolation).
NaN values are left out of a point's statistics; a point without any value is NaN.

Shared randomness — runs compared with the same seed differ by the change, not by
the draw:

- *Data.*  A run draws its probe batch and its training batches from its own
  ``init.seed`` (:func:`core.tasks.probe_batch`, the training loop's streams), never
  from the model, so variants with the same seed and the same task settings see
  identical batches.  Given arrays (``data``) are the same for every run.
- *Initial weights* (:func:`shared_weights`).  For every seed, the base experiment's
  own draw (:func:`core.init.init_params` at that seed) is made once; a variant takes
  from it every parameter whose name and shape agree and whose draw is made the same
  way: the same scheme and seed, the same scale of its family (input, recurrent,
  output; biases have none), the same cell and hidden size of its layer (for the head:
  the same input width), and for an LSTM's ``bias_ih`` the same forget bias.  Any
  other parameter is the variant's own draw at that seed.  So varying
  ``init.forget_bias`` changes only the forget-gate rows of ``bias_ih``; varying
  ``model.layers.0.cell`` from rnn to lstm shares nothing of layer 0, but the layers
  above it and ``head.weight``/``head.bias`` where their shapes agree; varying
  ``init.scheme`` or ``init.seed`` shares nothing.  :func:`core.init.init_params`
  itself is unchanged.

Weights attached to the base experiment (a ``.gradlab``'s) are not used: every run
starts from its seed's draw.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError, UserError
from .experiment import Experiment, experiment_from_dict, experiment_to_dict
from .init import init_params, model_head_fan
from .jobs import Cancelled, Control, Part
from .layout import forget_rows, layer_keys, param_family
from .paths import format_value, with_paths

__all__ = ["BAND_MINMAX", "BAND_PERCENTILE", "COLUMNS", "HISTORY_KEYS", "MAX_SEEDS",
           "PERCENTILE_FROM", "CompareResult", "Run", "SeedBand", "Variant", "band_rule", "compare",
           "seed_band", "shared_weights", "spread", "variants"]

COLUMNS = ("variant", "key", "t", "mean", "low", "high")
HISTORY_KEYS = ("loss", "grad_norm_before", "grad_norm_after")
PERCENTILE_FROM = 10  # seeds from which the band is the middle 95 % instead of min–max
BAND_MINMAX = "min-max"
BAND_PERCENTILE = "p2.5-p97.5"
MAX_SEEDS = 10_000
JOIN = "; "  # between the assignments of a variant's label


# ----------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One point of the grid: ``label`` (``init.forget_bias=2``, several joined by
    ``"; "``), its ``(path, value)`` changes, its validated experiment (at the base
    seed) and ``notes``: what fitting the layers to a new cell changed besides."""

    label: str
    changes: tuple[tuple[str, Any], ...]
    experiment: Experiment = field(repr=False)
    notes: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """The label, and what else changed: ``model.layers.0.cell=gru (model.layers.0:
        peephole off …)``."""
        return self.label + (f" ({'; '.join(self.notes)})" if self.notes else "")


def variants(exp: Experiment, vary: Sequence[tuple[str, Sequence[Any]]]) -> list[Variant]:
    """The product of ``vary``'s values, in order (the last path varies fastest), each
    applied to ``exp`` and validated; no ``vary`` gives the base itself, labelled
    ``base``.  ConfigError names the path and value that do not fit."""
    paths = [p.strip() for p, _ in vary]
    for p in paths:
        if paths.count(p) > 1:
            raise ConfigError(f"{p}: varied twice; give all its values in one --vary")
    for p, values in vary:
        if not len(values):
            raise ConfigError(f"{p}: no values to compare")
    out = []
    for combo in itertools.product(*[[(p.strip(), v) for v in values] for p, values in vary]):
        variant_exp, notes = with_paths(exp, combo)
        typed = tuple((p, _typed_value(variant_exp, p, v)) for p, v in combo)
        label = JOIN.join(f"{p}={format_value(v)}" for p, v in typed) or "base"
        out.append(Variant(label, typed, variant_exp, tuple(notes)))
    labels = [v.label for v in out]
    for label in labels:
        if labels.count(label) > 1:
            raise ConfigError(f"{label}: the same variant twice (values that are equal "
                              "once read, such as 2 and 2.0)")
    return out


def _typed_value(exp: Experiment, path: str, given: Any) -> Any:
    """The value as the validated experiment holds it (``"2"`` → 2.0 for a number)."""
    from .paths import get_path

    try:
        return get_path(exp, path)
    except UserError:  # pragma: no cover - the path was just set
        return given


# ----------------------------------------------------------------------------- weights


_LAYER = re.compile(r"_l(\d+)(?:_reverse)?$")


def _recipe(exp: Experiment, name: str, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Everything that decides how :func:`core.init.init_params` draws ``name``."""
    init, model = exp.init, exp.model
    family = param_family(name)
    scale = 1.0 if family == "bias" else getattr(init.scales, family)
    forget = None
    if name.startswith("head."):
        owner: tuple[Any, ...] = ("head", model_head_fan(model))
    else:
        m = _LAYER.search(name)
        if m is None:  # pragma: no cover - every layer parameter ends in _l{k}
            return (name, shape, id(exp))
        layer = model.layers[int(m.group(1))]
        owner = (layer.cell, layer.hidden_size)
        if forget_rows(layer.cell, 1) is not None and name.startswith("bias_ih"):
            forget = init.forget_bias
    return (init.scheme, init.seed, tuple(shape), scale, owner, forget)


def shared_weights(base: Experiment, base_params: Mapping[str, np.ndarray],
                   exp: Experiment) -> tuple[dict[str, np.ndarray], list[str]]:
    """Initial weights of ``exp`` that share ``base``'s draw ``base_params`` wherever the
    draw would be made the same way (see the module's docstring), and the names taken
    from it.  The other parameters are ``exp``'s own draw."""
    own = init_params(exp.model, exp.init)
    params: dict[str, np.ndarray] = {}
    shared = []
    for name, value in own.items():
        b = base_params.get(name)
        if (b is not None and b.shape == value.shape
                and _recipe(base, name, b.shape) == _recipe(exp, name, value.shape)):
            params[name] = b
            shared.append(name)
        else:
            params[name] = value
    return params, shared


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Run:
    """One run of the ensemble: its variant's label, seed, the probe batch's input,
    the parameters taken from the base draw, the training steps taken and a
    non-finite message (or None)."""

    variant: str
    seed: int
    x: np.ndarray = field(repr=False)
    shared: tuple[str, ...] = ()
    steps: int = 0
    nonfinite: str | None = None


def _fmt(v: float) -> str:
    v = float(v)
    return repr(v) if math.isfinite(v) else str(v)  # nan, inf, -inf


@dataclass
class CompareResult:
    """What :func:`compare` found.  ``curves[label][key]``: ``(seeds, n)`` float64, one
    row per seed (``seed_values(label)``) — see the module's docstring for the keys."""

    base: Experiment
    vary: list[tuple[str, list[Any]]]
    variants: list[Variant]
    seeds: int
    train_steps: int
    curves: dict[str, dict[str, np.ndarray]]
    runs: list[Run] = field(default_factory=list, repr=False)

    @property
    def band(self) -> str:
        """``min-max`` below :data:`PERCENTILE_FROM` seeds, else ``p2.5-p97.5``."""
        return band_rule(self.seeds)

    @property
    def band_text(self) -> str:
        n = f"{self.seeds} seed{'s' if self.seeds != 1 else ''}"
        if self.band == BAND_MINMAX:
            return f"low and high are the minimum and maximum over {n}"
        return (f"low and high are the 2.5th and 97.5th percentiles over {n} "
                "(the middle 95 % of the runs)")

    def variant(self, label: str) -> Variant:
        for v in self.variants:
            if v.label == label:
                return v
        raise KeyError(label)

    def seed_values(self, label: str) -> list[int]:
        """The seeds of a variant's runs, in the order of the curves' rows."""
        s = self.variant(label).experiment.init.seed
        return [s + i for i in range(self.seeds)]

    def keys(self, label: str | None = None) -> list[str]:
        """The curve keys of one variant, or of all (in first-seen order)."""
        labels = [label] if label is not None else list(self.curves)
        seen: dict[str, None] = {}
        for lab in labels:
            seen.update(dict.fromkeys(self.curves[lab]))
        return list(seen)

    @staticmethod
    def t_of(key: str, n: int) -> np.ndarray:
        """The ``t`` of a curve's points: steps 1…n for training keys, else 0…n−1."""
        return np.arange(1, n + 1) if key in HISTORY_KEYS else np.arange(n)

    def stats(self, label: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, low, high)`` over the seeds at every point of one curve."""
        return spread(self.curves[label][key], self.band)

    def rows(self) -> Iterator[tuple[str, str, int, float, float, float]]:
        """The long-form table: ``(variant, key, t, mean, low, high)``."""
        for v in self.variants:
            for key in self.curves[v.label]:
                mean, low, high = self.stats(v.label, key)
                for t, m, lo, hi in zip(self.t_of(key, mean.size), mean, low, high, strict=True):
                    yield v.label, key, int(t), float(m), float(lo), float(hi)

    def to_csv(self) -> str:
        """``compare.csv``: a header row of :data:`COLUMNS`, then :meth:`rows`; numbers
        in the shortest form that reads back exactly, ``nan``/``inf`` where not finite."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for label, key, t, m, lo, hi in self.rows():
            w.writerow([label, key, t, _fmt(m), _fmt(lo), _fmt(hi)])
        return buf.getvalue()

    def metadata(self) -> dict[str, Any]:
        """``compare.json``: how the table was made — the band rule, the seeds, what
        each variant changed and shared, the base experiment."""
        runs: dict[str, list[Run]] = {}
        for r in self.runs:
            runs.setdefault(r.variant, []).append(r)
        return {
            "format": "gradlab-compare", "version": 1,
            "columns": list(COLUMNS),
            "band": self.band, "band_note": self.band_text,
            "seeds": self.seeds, "train_steps": self.train_steps,
            "probe": (f"the weights after {self.train_steps} training steps"
                      if self.train_steps else "the initial weights"),
            "vary": [{"path": p, "values": [format_value(v) for v in vals]}
                     for p, vals in self.vary],
            "variants": [{
                "label": v.label, "description": v.description,
                "changes": {p: _json_value(x) for p, x in v.changes},
                "notes": list(v.notes), "seeds": self.seed_values(v.label),
                "keys": list(self.curves[v.label]),
                "shared_weights": list(runs[v.label][0].shared) if runs.get(v.label) else [],
                "nonfinite": [f"seed {r.seed}: {r.nonfinite}" for r in runs.get(v.label, ())
                              if r.nonfinite],
            } for v in self.variants],
            "base": experiment_to_dict(self.base),
        }

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        from .fileio import atomic_write_text

        atomic_write_text(path, self.to_csv())

    def write_json(self, path: str | os.PathLike[str]) -> None:
        from .fileio import atomic_write_text

        atomic_write_text(path, json.dumps(self.metadata(), indent=2, ensure_ascii=False) + "\n")


def spread(rows: np.ndarray, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, low, high)`` of ``rows`` (seeds, n) at every point: ``band``
    :data:`BAND_MINMAX` or :data:`BAND_PERCENTILE`; NaN values left out."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points
        mean = np.nanmean(rows, axis=0)
        if band == BAND_MINMAX:
            low, high = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
        else:
            low, high = np.nanpercentile(rows, [2.5, 97.5], axis=0)
    return mean, low, high


def band_rule(seeds: int) -> str:
    """The band over ``seeds`` runs: min–max below :data:`PERCENTILE_FROM`, else the
    middle 95 %."""
    return BAND_MINMAX if seeds < PERCENTILE_FROM else BAND_PERCENTILE


@dataclass(frozen=True)
class SeedBand:
    """The gradient curves of one setting over a seed ensemble, for the window's band:
    ``curves[key]`` (seeds, T) for every ``gradnorm.L``; row 0 is the setting's own seed.
    """

    seeds: int
    curves: Mapping[str, np.ndarray]

    @property
    def band(self) -> str:
        return band_rule(self.seeds)

    @property
    def legend(self) -> str:
        """``"mean of 5 seeds, band min–max"`` (or ``"band 95 %"`` from 10 seeds)."""
        rule = "min–max" if self.band == BAND_MINMAX else "95 % of runs"
        return f"mean of {self.seeds} seeds, band {rule}"

    def stats(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, low, high)`` of curve ``key``, each (T,)."""
        return spread(self.curves[key], self.band)


def seed_band(exp: Experiment, seeds: int, data: tuple[Any, Any] | None = None,
              control: Control | None = None) -> SeedBand:
    """The gradient curves of ``exp``'s settings at seeds ``init.seed + 0 … seeds−1``,
    each drawn fresh (weights and probe batch) and probed without the Jacobian
    products or the connectivity map."""
    result = compare(exp, [], seeds=seeds, data=data, control=control)
    return SeedBand(seeds, dict(next(iter(result.curves.values()))))


def _json_value(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return format_value(v)


# ----------------------------------------------------------------------------- running


def _seeded(exp: Experiment, offset: int) -> Experiment:
    if not offset:
        return exp
    data = experiment_to_dict(exp)
    data["init"]["seed"] = exp.init.seed + offset
    try:
        return experiment_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"--seeds: seed {exp.init.seed} + {offset} is out of range "
                          f"({exc})") from None


def _for_run(exp: Experiment, params: dict[str, np.ndarray]) -> Experiment:
    """The experiment a run's Lab gets: ``params`` as its weights, and no validation
    losses or probes during training (they measure, they do not change the run)."""
    run = copy.deepcopy(dataclasses.replace(exp, weights=None))
    run.training.eval_every = 0
    run.training.trace_every = 0
    run.weights = params
    return run


def _steps_reporter(control: Control | None, share: float,
                    steps: int) -> Callable[[Any], None] | None:
    """A training ``on_snapshot`` that reports the steps done as ``share`` of a run."""
    if control is None:
        return None
    done = [0]

    def each(_snap: Any) -> None:
        done[0] += 1
        control.report(share * done[0] / steps)

    return each


def compare(exp: Experiment, vary: Sequence[tuple[str, Sequence[Any]]], seeds: int = 1,
            train_steps: int = 0, data: tuple[Any, Any] | None = None,
            control: Control | None = None,
            on_run: Callable[[Run], None] | None = None) -> CompareResult:
    """Run every variant of ``exp`` (the product of ``vary``) with ``seeds`` seeds,
    training ``train_steps`` first when above 0, on the task or on ``data = (x, y)``.

    Everything is validated before the first run (ConfigError names the path and
    value).  ``control`` (:class:`core.jobs.Control`) gets the progress and cancels
    between and within runs (:class:`core.jobs.Cancelled`); ``on_run(run)`` sees each
    finished run.  Returns a :class:`CompareResult`.
    """
    from .lab import Lab

    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"seeds: expected a whole number from 1 to {MAX_SEEDS}, got {seeds!r}")
    if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps < 0:
        raise ConfigError(f"train_steps: expected a whole number ≥ 0, got {train_steps!r}")
    base = experiment_from_dict(experiment_to_dict(exp))  # settings only: no weights
    grid = variants(base, vary)
    plan = [(i, v, _seeded(v.experiment, i)) for i in range(seeds) for v in grid]
    bases = [_seeded(base, i) for i in range(seeds)]
    collected: dict[str, dict[str, list[np.ndarray]]] = {v.label: {} for v in grid}
    runs: list[Run] = []
    total = len(plan)
    base_draw: tuple[int, dict[str, np.ndarray]] | None = None
    for n, (i, variant, run_exp) in enumerate(plan):
        where = f"{variant.label}, seed {run_exp.init.seed}"
        if control is not None:
            control.stage(n / total, (n + 1) / total, where)
        if base_draw is None or base_draw[0] != i:
            base_draw = (i, init_params(bases[i].model, bases[i].init))
        params, shared = shared_weights(bases[i], base_draw[1], run_exp)
        lab = Lab(_for_run(run_exp, params))
        if data is not None and not lab.set_data(*data):
            raise UserError(lab.last_error)
        share = 0.9 if train_steps else 0.0
        if train_steps:
            rest = lab.train(train_steps, cancel=control and (lambda c=control: c.cancelled),
                             on_snapshot=_steps_reporter(control, share, train_steps))
            if control is not None:
                control.check()
            if rest is not None and rest.error:
                raise UserError(f"{where}: {rest.error}")
        part = Part(control, share, 1.0) if control is not None else None
        result = lab.probe(part, jacobian=False, connectivity=False)
        if control is not None:
            control.report(1.0)
        curves = collected[variant.label]
        model = run_exp.model
        for _k, _d, key in layer_keys(model):
            curves.setdefault(f"gradnorm.{key}", []).append(
                np.asarray(result.arrays[f"gradnorm.{key}"], dtype=np.float64))
        if train_steps:
            history = lab.history
            for key in HISTORY_KEYS:
                row = np.full(train_steps, np.nan)
                col = history.column(key)[:train_steps]
                row[:col.size] = col
                curves.setdefault(key, []).append(row)
        run = Run(variant.label, run_exp.init.seed, np.asarray(result.x), tuple(shared),
                  len(lab.history), result.nonfinite)
        runs.append(run)
        if on_run is not None:
            on_run(run)
    if control is not None and control.cancelled:  # pragma: no cover - raised above
        raise Cancelled
    arrays = {label: {k: np.vstack(rows) for k, rows in keys.items()}
              for label, keys in collected.items()}
    return CompareResult(base, [(p.strip(), list(v)) for p, v in vary], grid, seeds,
                         train_steps, arrays, runs)
