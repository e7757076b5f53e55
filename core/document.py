"""Documents: an experiment with what a session added to it, in one file.

A *document* is an experiment with its current weights, training history and
optimizer state.  It lives in a ``.gradlab`` archive (:mod:`core.archive`); an
experiment ``.json`` holds the settings only.  Weights files (``.safetensors``,
``.npz``) are not documents: they are loaded onto the current model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .archive import SUFFIX as ARCHIVE_SUFFIX
from .archive import Pinned, load_archive, save_archive
from .errors import ConfigError, UserError, WeightsError
from .experiment import Experiment, ModelConfig, load_experiment_config, save_experiment
from .weights import SUFFIXES as WEIGHTS_SUFFIXES

EXPERIMENT_SUFFIX = ".json"
DOCUMENT_SUFFIXES = (ARCHIVE_SUFFIX, EXPERIMENT_SUFFIX)
OPENABLE_SUFFIXES = (*DOCUMENT_SUFFIXES, *WEIGHTS_SUFFIXES)
SWEEP_ZIP_SUFFIX = ".zarr.zip"  # a packed sweep (core.sweep.store.pack); else a folder

def file_kind(path: str | os.PathLike[str]) -> str | None:
    """``"archive"``, ``"experiment"``, ``"weights"`` by suffix, ``"sweep"`` for a sweep
    (a ``….zarr`` folder, a folder holding ``sweep.zarr``, a packed ``….zarr.zip``), or
    None if not ours."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(SWEEP_ZIP_SUFFIX) or (p.is_dir() and (
            name.endswith(".zarr") or (p / "sweep.zarr").is_dir())):
        return "sweep"
    suffix = p.suffix.lower()
    if suffix == ARCHIVE_SUFFIX:
        return "archive"
    if suffix == EXPERIMENT_SUFFIX:
        return "experiment"
    if suffix in WEIGHTS_SUFFIXES:
        return "weights"
    return None


@dataclass
class Document:
    """An experiment with what a run added to it; ``params`` None means "from the seed"."""

    experiment: Experiment
    params: dict[str, np.ndarray] | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer_state: dict[str, np.ndarray] | None = None
    data: tuple[np.ndarray, np.ndarray] | None = None  # the user's (input, target)
    pinned: list[Pinned] = field(default_factory=list)  # runs kept to compare with


def read_document(path: str | os.PathLike[str]) -> Document:
    """Read and fully validate a ``.gradlab`` archive or an experiment ``.json``.

    Raises :class:`UserError` naming the file (and member, field or line) at fault.
    """
    kind = file_kind(path)
    if kind == "archive":
        saved = load_archive(path)
        return Document(saved.experiment, saved.params, dict(saved.history),
                        saved.optimizer_state, saved.data, list(saved.pinned))
    if kind == "experiment":
        return Document(load_experiment_config(path))
    suffix = Path(path).suffix.lower()
    hint = _NOT_DOCUMENTS.get(suffix)
    kind = f"a {suffix} file" if suffix else "a file without a suffix"
    raise ConfigError(f"{path}: expected an experiment file ({EXPERIMENT_SUFFIX}) or a saved "
                      f"experiment ({ARCHIVE_SUFFIX}), got {kind}"
                      + (f"; {hint}" if hint else ""))


# Suffixes that are something else than a document, and where they belong instead.
_NOT_DOCUMENTS = {".safetensors": "weights load onto a model (--weights, or File → Open)",
                  ".npz": "weights load onto a model (--weights, or File → Open)",
                  ".npy": "input and target arrays are data (--input and --target, or "
                          "File → Load data)",
                  ".csv": "a CSV time series is read by the csv task (task.path)"}


def read_weights(path: str | os.PathLike[str], model: ModelConfig) -> dict[str, np.ndarray]:
    """:func:`core.weights.load_weights`, its messages saying what they are about."""
    from core.weights import load_weights

    try:
        return load_weights(path, model)
    except UserError as exc:
        raise WeightsError(f"cannot load these weights onto the current model: {exc}") from None


def optimizer_state_fits(exp: Experiment, state: Mapping[str, Any] | None) -> bool:
    """Whether ``state`` has exactly the slots and shapes of ``exp``'s optimizer."""
    if state is None:
        return False
    from core.layout import param_shapes
    from core.training.optim import make_optimizer

    shapes = param_shapes(exp.model)
    slots = make_optimizer(exp.training, {}).slots
    expected = {f"{slot}.{name}": shape for slot in slots for name, shape in shapes.items()}
    if set(state) != {"step", *expected}:
        return False
    return all(tuple(np.shape(state[k])) == tuple(v) for k, v in expected.items())


def write_document(path: str | os.PathLike[str], doc: Document) -> None:
    """Write ``doc`` atomically: an archive, or only the settings for a ``.json`` path.

    An optimizer state that no longer fits the experiment's optimizer (its settings
    changed since training) is left out; training then starts the optimizer afresh.
    """
    if file_kind(path) == "experiment":
        save_experiment(doc.experiment, path)
        return
    state = doc.optimizer_state
    if doc.params is None or not optimizer_state_fits(doc.experiment, state):
        state = None
    save_archive(path, doc.experiment, doc.params, doc.history or None, state, doc.data,
                 doc.pinned)



__all__ = ["DOCUMENT_SUFFIXES", "EXPERIMENT_SUFFIX", "OPENABLE_SUFFIXES", "Document", "Pinned",
           "file_kind", "optimizer_state_fits", "read_document", "read_weights",
           "write_document"]
