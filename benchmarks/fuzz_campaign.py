"""A fuzz and fault campaign against every reader and command, with a summary table.

Generated bad inputs (seeded, so a failure reproduces) run through ``gradlab analyze``
and ``gradlab train`` in long-lived worker processes (``main.main`` in-process, each
input in a folder of its own), and faults run real processes:

- ``experiment``  mutated experiment JSON (hostile values in every field, unknown and
  missing fields, broken text);
- ``npy``         malformed ``--input``/``--target`` arrays (headers, shapes, dtypes, values);
- ``weights``     malformed ``--weights`` (.npz and .safetensors: names, shapes, dtypes,
  values, declared sizes, corrupt bytes);
- ``csv``         malformed CSV series for the csv task;
- ``archive``     corrupted ``.gradlab`` documents;
- ``special``     named pipes, devices, folders, missing files and links in every path;
- ``kill``        ``kill -9`` of ``train``, ``export`` and ``compare`` into folders
  holding an earlier run and the user's own file, of a document save and of an
  autosave, at random moments;
- ``disk``        ``train``, ``analyze``, ``export`` and ``compare`` under a file-size
  limit (a full disk).

Each run is judged on: exit status (0, 2 or 130; 1 is an internal error), a traceback
or a NumPy warning on stderr, more than one ``error:`` line, a run over 5 s whose
estimate said it would be quick (a hang), the traced memory peak against the
estimate (:mod:`core.estimate`), files outside the output folder, a mixed or
half-written output folder and temporary files left behind after the next run.

    python benchmarks/fuzz_campaign.py [--inputs 10000] [--kills 200] [--seed 0] [--workers 2]

prints the summary table (Markdown) and exits 1 when any run failed a check.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

HANG_S = 5.0
# Peaks are compared with the estimate from this size on: below it, the modules a first
# run imports (a few MiB of Python objects, traced too) are not small beside the arrays.
PEAK_FLOOR = 32 * 1024**2
LONG_S = 30.0  # work estimated past this is cancelled with SIGINT after HANG_S
KINDS = ("experiment", "npy", "weights", "csv", "archive", "special")
WEIGHTS = {"experiment": 40, "npy": 15, "weights": 15, "csv": 12, "archive": 10, "special": 8,
           "sizes": 10}
HOSTILE: list[Any] = [10**400, -(10**400), 2**63, 2**64 + 1, 1e308, -1e308, 1.7976931348623157e308,
                      5e-324, -0.0, 0, -1, 1, 0.5, 1.5, -1.5, 2**31, 2**32, 2**31 - 1, 2**32 - 1,
                      "", "x", "é" * 10, None, True, False, [], {}, [1, 2], {"a": 1}, "1e400",
                      1e-300, 100, 1000, 65_536, 65_537, 1e6, 20_000_000, "9" * 5000]


def base_experiment(rng: random.Random, task: bool = True) -> dict[str, Any]:
    """A small valid experiment (a few ms to run)."""
    cell = rng.choice(["rnn", "lstm", "gru"])
    layer: dict[str, Any] = {"cell": cell, "hidden_size": rng.choice([2, 4, 8])}
    pattern = rng.choice(["many_to_many", "many_to_one", "output_recurrence"])
    if pattern != "output_recurrence" and rng.random() < 0.3:
        layer["bidirectional"] = True
    exp: dict[str, Any] = {
        "format": "gradlab-experiment", "version": 1,
        "model": {"input_size": 1, "output_size": 1, "pattern": pattern, "loss": "mse",
                  "layers": [layer] * rng.choice([1, 2])},
        "init": {"scheme": "uniform", "scales": {"input": 1.0, "recurrent": 1.0, "output": 1.0},
                 "forget_bias": 0.0, "seed": 0},
        "training": {"optimizer": rng.choice(["sgd", "adam", "rmsprop"]), "lr": 0.01,
                     "clip": {"mode": "norm", "max_norm": 1.0}, "tbptt": None,
                     "teacher_forcing": 1.0, "steps": 2, "eval_every": 1, "trace_every": 1},
        "backend": {"device": "numpy", "dtype": rng.choice(["float32", "float64"])}}
    if task:
        exp["task"] = {"name": "sine", "seq_len": 8, "batch_size": 2}
    return exp


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple, value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    if isinstance(obj, list) and isinstance(path[-1], int):
        obj[path[-1]] = value
    elif isinstance(obj, dict):
        obj[path[-1]] = value


EXTRA_FIELDS = [("init", "seed"), ("training", "beta1"), ("training", "beta2"),
                ("training", "alpha"), ("training", "eps"), ("training", "momentum"),
                ("training", "weight_decay"), ("training", "batch_size"), ("training", "tbptt"),
                ("task", "seq_len"), ("task", "batch_size"), ("task", "horizon"),
                ("model", "input_size"), ("model", "output_size"),
                ("training", "schedule"), ("task", "name"), ("backend", "device")]


def mutate_json(rng: random.Random) -> bytes:
    exp = base_experiment(rng)
    how = rng.random()
    if how < 0.6:  # hostile values in fields, one to three of them
        for _ in range(rng.choice([1, 1, 2, 3])):
            paths = _paths(exp) + EXTRA_FIELDS
            path = rng.choice(paths)
            sub: Any = exp
            for p in path[:-1]:
                sub = sub.setdefault(p, {}) if isinstance(sub, dict) else sub
            if isinstance(sub, (dict, list)):
                _set(exp, path, copy.deepcopy(rng.choice(HOSTILE)))
    elif how < 0.7:  # a missing field or section
        path = rng.choice(_paths(exp))
        sub = exp
        for p in path[:-1]:
            sub = sub[p]
        if isinstance(sub, dict):
            sub.pop(path[-1], None)
    elif how < 0.75:  # an unknown field
        path = rng.choice([p for p in _paths(exp) if isinstance(_get(exp, p), dict)] or [()])
        target = _get(exp, path) if path else exp
        target[rng.choice(["bogus", "Seq_len", "layers ", "é"])] = copy.deepcopy(rng.choice(HOSTILE))
    text = json.dumps(exp).encode()
    r = rng.random()
    if how >= 0.75 or r < 0.15:  # broken text
        kind = rng.choice(["truncate", "flip", "insert", "nest", "digits", "bom", "latin1",
                           "nan", "empty"])
        if kind == "truncate":
            text = text[:rng.randrange(len(text))]
        elif kind == "flip":
            i = rng.randrange(len(text))
            text = text[:i] + bytes([rng.randrange(256)]) + text[i + 1:]
        elif kind == "insert":
            i = rng.randrange(len(text))
            text = text[:i] + os.urandom(rng.randrange(1, 16)) + text[i:]
        elif kind == "nest":
            text = b"[" * rng.choice([1000, 100_000]) + b"]" * 3
        elif kind == "digits":
            text = text.replace(b'"seq_len": 8', b'"seq_len": ' + b"9" * rng.choice([400, 5000]))
        elif kind == "bom":
            text = b"\xef\xbb\xbf" + text
        elif kind == "latin1":
            text = text.replace(b'"mse"', b'"ms\xe9"')
        elif kind == "nan":
            text = text.replace(b"0.01", rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"]))
        else:
            text = b""
    return text


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _npy_bytes(rng: random.Random, shape: tuple, descr: str = "<f8",
               data: bytes | None = None) -> bytes:
    head = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    head += " " * (118 - len(head) % 64 if len(head) < 118 else 64 - len(head) % 64 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode() + (
        data if data is not None else os.urandom(rng.randrange(0, 256)))


def bad_array(rng: random.Random, T: int, B: int, D: int) -> bytes:
    """A malformed or hostile .npy file for an input of (T, B, D)."""
    kind = rng.choice(["values", "shape", "dtype", "header", "declared", "pickle", "npz",
                       "truncate", "random", "flip", "int"])
    buf = io.BytesIO()
    if kind == "values":
        a = np.random.default_rng(rng.randrange(2**31)).normal(size=(T, B, D))
        a.flat[rng.randrange(a.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e300, -1e39, 3.5e38,
                                                    1e38])
        np.save(buf, a.astype(rng.choice(["<f8", ">f8"])))
    elif kind == "int":
        np.save(buf, np.full((T, B, D), rng.choice([2**63 - 1, -(2**63)]), dtype=np.int64))
    elif kind == "shape":
        shape = rng.choice([(), (0,), (T, B), (T, B, D + 1), (0, B, D), (T, 0, D), (T, B, D, 1),
                            (T * B * D,), (B, T, D)])
        np.save(buf, np.zeros(shape))
    elif kind == "dtype":
        dt = rng.choice(["c16", "U3", "S3", "b1", "f2", "u8", "V8", "M8[s]", "m8[s]"])
        np.save(buf, np.zeros((T, B, D), dtype=dt))
    elif kind == "header":
        head = rng.choice(["{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2, 1), 'x': 1}",
                           "{'descr': '\u00e9', 'fortran_order': False, 'shape': (2, 2, 1), }",
                           "{'descr': '<f8', 'fortran_order': 1, 'shape': (2, 2, 1), }",
                           "{'descr': '<f8', 'fortran_order': False, 'shape': (-2, 2, 1), }",
                           "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }",
                           "__import__('os')", "{" * 200, "[]"])
        raw = head.encode("latin-1", "replace")
        return b"\x93NUMPY\x01\x00" + len(raw).to_bytes(2, "little") + raw + b"\0" * 64
    elif kind == "declared":
        shape = rng.choice([(100_000, 100_000, D), (2**40, 1, D), (2**62, 2, D), (10**30, 1, 1),
                            (T, B, 10**9)])
        return _npy_bytes(rng, shape)
    elif kind == "pickle":
        np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif kind == "npz":
        np.savez(buf, x=np.zeros((T, B, D)))
    else:
        np.save(buf, np.zeros((T, B, D)))
        raw = buf.getvalue()
        if kind == "truncate":
            return raw[:rng.randrange(len(raw))]
        if kind == "random":
            return os.urandom(rng.randrange(0, 512))
        i = rng.randrange(len(raw))
        return raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1:]
    return buf.getvalue()


def bad_weights(rng: random.Random, exp: dict[str, Any], suffix: str) -> bytes:
    """Weights for the experiment's model, broken in one way."""
    from core.experiment import experiment_from_dict
    from core.layout import param_shapes

    shapes = param_shapes(experiment_from_dict(exp).model)
    g = np.random.default_rng(rng.randrange(2**31))
    arrays = {k: g.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    kind = rng.choice(["drop", "extra", "shape", "dtype", "nonfinite", "huge", "declared",
                       "truncate", "flip", "random", "prefix", "valid"])
    name = rng.choice(list(arrays))
    if kind == "drop":
        arrays.pop(name)
    elif kind == "extra":
        arrays["bogus_l9"] = np.zeros(3, dtype=np.float32)
    elif kind == "shape":
        arrays[name] = np.zeros((rng.randrange(1, 9), rng.randrange(1, 9)), dtype=np.float32)
    elif kind == "dtype":
        arrays[name] = arrays[name].astype(rng.choice(["c8", "b1", "f2", "i8", "u1"]))
    elif kind == "nonfinite":
        arrays[name].flat[0] = rng.choice([np.nan, np.inf])
    elif kind == "huge":
        arrays[name] = arrays[name].astype(np.float64)
        arrays[name].flat[0] = rng.choice([1e300, 3e38, 1e38])
    elif kind == "prefix":
        arrays = {f"rnn.{k}": v for k, v in arrays.items()}
    buf = io.BytesIO()
    if suffix == ".safetensors":
        from safetensors.numpy import save

        try:
            raw = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
        except Exception:  # a dtype safetensors cannot hold: random bytes instead
            raw = os.urandom(64)
        if kind == "declared":  # a header declaring far more data than follows
            header = json.dumps({name: {"dtype": "F32", "shape": [2**20, 2**20],
                                        "data_offsets": [0, 4 * 2**40]}}).encode()
            raw = len(header).to_bytes(8, "little") + header + b"\0" * 64
    else:
        if kind == "declared":
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(f"{name}.npy", _npy_bytes(rng, (2**31, 1024), "<f4", b"\0" * 4096))
            raw = buf.getvalue()
        else:
            np.savez(buf, **arrays)
            raw = buf.getvalue()
    if kind == "truncate":
        raw = raw[:rng.randrange(len(raw))]
    elif kind == "flip":
        for _ in range(rng.randrange(1, 8)):
            i = rng.randrange(len(raw))
            raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1:]
    elif kind == "random":
        raw = os.urandom(rng.randrange(0, 1024))
    return raw


def bad_csv(rng: random.Random) -> bytes:
    n = rng.choice([3, 30, 200])
    g = np.random.default_rng(rng.randrange(2**31))
    values = [f"{v:.6g}" for v in g.normal(size=n).cumsum()]
    kind = rng.choice(["huge", "digits", "text", "binary", "empty", "header", "delims", "latin1",
                       "nan", "quote", "long", "constant", "valid", "wide"])
    if kind == "huge":
        for _ in range(rng.randrange(1, 5)):
            values[rng.randrange(n)] = rng.choice(["1e308", "-1.7e308", "1e200", "9e307"])
    elif kind == "digits":
        values[rng.randrange(n)] = "9" * rng.choice([400, 5000])
    elif kind == "text":
        values[rng.randrange(n)] = rng.choice(["abc", "", "1,2", "0x10", "--1", "1e", "é"])
    elif kind == "nan":
        values[rng.randrange(n)] = rng.choice(["nan", "inf", "-inf", "NaN"])
    elif kind == "constant":
        values = ["1"] * n
    text = "v\n" + "\n".join(values) + "\n"
    if kind == "binary":
        return os.urandom(rng.randrange(1, 2048))
    if kind == "empty":
        return b""
    if kind == "header":
        return b"v\n"
    if kind == "delims":
        text = text.replace("\n", rng.choice([";", "\t", "\r", "\r\n"]))
    if kind == "latin1":
        return ("température\n" + "\n".join(values)).encode("latin-1")
    if kind == "quote":
        text = text.replace("v\n", '"v\n', 1)
    if kind == "long":
        text = "v\n" + "1," * 200_000 + "\n" + "\n".join(values)
    if kind == "wide":
        text = ",".join(f"c{i}" for i in range(50)) + "\n" + "\n".join(
            ",".join([v] * 50) for v in values)
    return text.encode()


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One generated input: files to write, the command line (paths relative to the
    case folder), and whether an earlier run's outputs sit in the output folder."""

    kind: str
    files: dict[str, bytes]
    argv: list[str]
    old_out: bool = False
    special: dict[str, str] = field(default_factory=dict)  # name -> fifo|folder|link:TARGET


def make_case(rng: random.Random, kind: str) -> Case:
    command = rng.choice(["analyze", "analyze", "train"])
    tail = ["--out", "out"] + (["--steps", "2"] if command == "train" else [])
    if command == "analyze" and rng.random() < 0.3:
        tail += rng.choice([["--jacobian"], ["--connectivity"], ["--jacobian", "--connectivity"]])
    old = rng.random() < 0.3
    if kind == "experiment":
        return Case(kind, {"e.json": mutate_json(rng)}, [command, "e.json", *tail], old)
    if kind == "npy":
        exp = base_experiment(rng, task=False)
        m = exp["model"]
        T, B, D = 6, 2, m["input_size"]
        seq = m["pattern"] != "many_to_one"
        y = np.zeros((T, B, 1) if seq else (B, 1))
        files = {"e.json": json.dumps(exp).encode()}
        if rng.random() < 0.5:
            files["x.npy"] = bad_array(rng, T, B, D)
            buf = io.BytesIO()
            np.save(buf, y)
            files["y.npy"] = buf.getvalue()
        else:
            buf = io.BytesIO()
            np.save(buf, np.zeros((T, B, D)))
            files["x.npy"] = buf.getvalue()
            files["y.npy"] = bad_array(rng, T, B, 1) if rng.random() < 0.7 else _labels(rng, T, B)
            if rng.random() < 0.3:
                m.update(loss="cross_entropy", output_size=3)
                files["e.json"] = json.dumps(exp).encode()
        return Case(kind, files, [command, "e.json", "--input", "x.npy", "--target", "y.npy",
                                  *tail], old)
    if kind == "weights":
        exp = base_experiment(rng)
        suffix = rng.choice([".npz", ".safetensors"])
        return Case(kind, {"e.json": json.dumps(exp).encode(),
                           f"w{suffix}": bad_weights(rng, exp, suffix)},
                    [command, "e.json", "--weights", f"w{suffix}", *tail], old)
    if kind == "csv":
        exp = base_experiment(rng)
        exp["task"] = {"name": "csv", "path": "s.csv", "column": rng.choice([0, "v", None, 3]),
                       "seq_len": rng.choice([3, 8, 50]), "batch_size": 2}
        exp["model"]["pattern"] = "many_to_many"
        for layer in exp["model"]["layers"]:
            layer.pop("bidirectional", None)
        return Case(kind, {"e.json": json.dumps(exp).encode(), "s.csv": bad_csv(rng)},
                    [command, "e.json", *tail], old)
    if kind == "archive":
        return Case(kind, {"d.gradlab": _bad_archive(rng)}, [command, "d.gradlab", *tail], old)
    if kind == "sizes":
        return _sizes_case(rng, command, tail, old)
    return _special_case(rng, command, tail, old)


def _labels(rng: random.Random, T: int, B: int) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(rng.choice([[0.0, 1e308], [0, 5e20], [-1, 2], [0.5, 1], [2**63 - 1, 0]])
                          * B)[: B])
    return buf.getvalue()


_ARCHIVE: bytes | None = None


def _valid_archive() -> bytes:
    global _ARCHIVE
    if _ARCHIVE is None:
        from core.document import Document, write_document
        from core.experiment import experiment_from_dict
        from core.init import init_params

        exp = experiment_from_dict(base_experiment(random.Random(0)))
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "a.gradlab"
            write_document(p, Document(exp, init_params(exp.model, exp.init)))
            _ARCHIVE = p.read_bytes()
    return _ARCHIVE


def _bad_archive(rng: random.Random) -> bytes:
    raw = _valid_archive()
    kind = rng.choice(["truncate", "flip", "random", "member", "bomb", "slip"])
    if kind == "truncate":
        return raw[:rng.randrange(len(raw))]
    if kind == "flip":
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(raw))
            raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1:]
        return raw
    if kind == "random":
        return os.urandom(rng.randrange(0, 2048))
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            if kind == "bomb" and info.filename == "weights.safetensors":
                continue  # replaced by the bomb below
            data = src.read(info)
            if kind == "member" and rng.random() < 0.5:
                data = rng.choice([b"", b"{", os.urandom(64), json.dumps(HOSTILE[:5]).encode(),
                                   data[: len(data) // 2]])
            dst.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
        if kind == "bomb":
            dst.writestr("weights.safetensors", b"\0" * 50_000_000,
                         compress_type=zipfile.ZIP_DEFLATED)
        if kind == "slip":
            dst.writestr(rng.choice(["../evil.txt", "/abs.txt", "dir/../../x"]), b"x")
    return buf.getvalue()


def _sizes_case(rng: random.Random, command: str, tail: list[str], old: bool) -> Case:
    """A valid experiment of moderate size (its peak is measured against the estimate),
    or one far too large for memory (refused before anything is allocated)."""
    exp = base_experiment(rng)
    layer = {"cell": rng.choice(["rnn", "lstm", "gru"]), "hidden_size": rng.choice([16, 64, 128])}
    if exp["model"]["pattern"] != "output_recurrence" and rng.random() < 0.3:
        layer["bidirectional"] = True
    exp["model"]["layers"] = [layer] * rng.choice([1, 1, 2])
    T = rng.choice([20, 100, 200])
    exp["task"] = {"name": "sine", "seq_len": T, "batch_size": rng.choice([1, 4, 16])}
    if "--connectivity" in tail:
        exp["task"]["seq_len"] = min(T, 100)
        exp["task"]["batch_size"] = 2
    if rng.random() < 0.2:  # far beyond memory: must be refused at once
        how = rng.choice(["hidden", "seq_len", "connectivity", "jacobian", "layers"])
        if how == "hidden":
            layer["hidden_size"] = 65_536
            exp["task"]["seq_len"] = 10
        elif how == "seq_len":
            exp["task"]["seq_len"] = rng.choice([20_000_000, 2**31 - 1])
        elif how == "connectivity":
            exp["task"]["seq_len"] = 1_000_000
            layer["hidden_size"] = 4
            command, tail = "analyze", ["--out", "out", "--connectivity"]
        elif how == "jacobian":
            layer["hidden_size"] = 4096
            exp["task"]["seq_len"] = 5000
            command, tail = "analyze", ["--out", "out", "--jacobian"]
        else:
            exp["model"]["layers"] = [{"cell": "lstm", "hidden_size": 16384}] * 8
            exp["task"]["seq_len"] = 10
    return Case("sizes", {"e.json": json.dumps(exp).encode()}, [command, "e.json", *tail], old)


def _special_case(rng: random.Random, command: str, tail: list[str], old: bool) -> Case:
    exp = base_experiment(rng, task=rng.random() < 0.5)
    files = {"e.json": json.dumps(exp).encode()}
    special = rng.choice(["fifo", "folder", "link:/dev/zero", "link:/dev/null", "missing",
                          "link:loop", "link:/dev/urandom"])
    role = rng.choice(["experiment", "input", "target", "weights", "csv", "out"])
    name = {"experiment": "p.json", "input": "p.npy", "target": "p.npy",
            "weights": rng.choice(["p.npz", "p.safetensors"]), "csv": "p.csv", "out": "p"}[role]
    argv = [command, "e.json", "--out", "out"] + (["--steps", "2"] if command == "train" else [])
    buf = io.BytesIO()
    np.save(buf, np.zeros((6, 2, 1)))
    if role == "experiment":
        argv[1] = name
    elif role in ("input", "target"):
        files["x.npy"] = files["y.npy"] = buf.getvalue()
        exp.pop("task", None)
        files["e.json"] = json.dumps(exp).encode()
        argv += ["--input", name if role == "input" else "x.npy",
                 "--target", name if role == "target" else "y.npy"]
    elif role == "weights":
        argv += ["--weights", name]
    elif role == "csv":
        exp["task"] = {"name": "csv", "path": name, "seq_len": 3, "batch_size": 2}
        files["e.json"] = json.dumps(exp).encode()
    else:
        argv[argv.index("out")] = name
    return Case("special", files, argv, old, {} if special == "missing" else {name: special})


# ----------------------------------------------------------------------------- running


def _prepare(case: Case, folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    for name, what in case.special.items():
        p = folder / name
        if what == "fifo":
            os.mkfifo(p)
        elif what == "folder":
            p.mkdir()
        elif what == "link:loop":
            p.symlink_to(p)
        elif what.startswith("link:"):
            p.symlink_to(what[5:])
    out = folder / case.argv[case.argv.index("--out") + 1]
    if case.old_out and not os.path.lexists(out):
        out.mkdir()
        for name in ("experiment.json", "weights.safetensors", "history.csv", "trace.npz",
                     "summary.json"):
            (out / name).write_text("old run")


def _estimate(folder: Path, argv: list[str]) -> tuple[int, float]:
    """(bytes, seconds) the run's estimate gives, or (0, 0) when its files are refused."""
    try:
        from core.document import read_document
        from core.estimate import estimate

        doc = read_document(folder / argv[1])
        exp = doc.experiment
        if exp.task is None:
            T, B = 6, 2
        else:
            T, B = exp.task.seq_len, exp.task.batch_size
        train = argv[0] == "train"
        probes = train and exp.training.trace_every > 0  # training probes with every analysis
        est = estimate(exp, T, B, jacobian="--jacobian" in argv or probes,
                       connectivity="--connectivity" in argv or probes,
                       training_steps=2 if train else 0, train_batch=B if train else None,
                       val_batch=(max(4 * B, 64) if exp.task is not None else B) if train else 0,
                       writes=True)
        return est.peak, est.seconds
    except Exception:
        return 0, 0.0


def _worker(conn: Any) -> None:
    """Run cases sent over ``conn``: (folder, argv) → result dict."""
    import tracemalloc
    import warnings

    import main

    warnings.simplefilter("default")
    while True:
        job = conn.recv()
        if job is None:
            return
        folder, argv = job
        est_bytes, est_s = _estimate(Path(folder), argv)
        conn.send(("start", est_s))
        os.chdir(folder)
        out, err = io.StringIO(), io.StringIO()
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main.main(argv)
        except BaseException as exc:
            rc = -1
            err.write(f"escaped main: {type(exc).__name__}: {exc}\n")
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        os.chdir(ROOT)
        conn.send(("done", {"rc": rc, "stderr": err.getvalue(), "elapsed": elapsed, "peak": peak,
                            "est_bytes": est_bytes, "est_s": est_s}))


class Pool:
    """Worker processes that can be killed when a case hangs."""

    def __init__(self, n: int) -> None:
        self.ctx = mp.get_context("fork")
        self.workers = [self._spawn() for _ in range(n)]

    def _spawn(self) -> tuple[Any, Any]:
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        p.start()
        return p, parent

    def run(self, jobs: list[tuple[int, str, list[str]]]) -> dict[int, dict[str, Any]]:
        results: dict[int, dict[str, Any]] = {}
        pending = list(jobs)
        busy: dict[int, tuple[int, float, float]] = {}  # worker -> (case, start, est_s)
        asked: dict[int, float] = {}  # worker -> when it was asked to stop (long work)
        while pending or busy:
            for w, (_proc, conn) in enumerate(self.workers):
                if w not in busy and pending:
                    i, folder, argv = pending.pop(0)
                    conn.send((folder, argv))
                    busy[w] = (i, time.monotonic(), -1.0)
            for w in list(busy):
                proc, conn = self.workers[w]
                i, started, est_s = busy[w]
                while conn.poll():
                    tag, value = conn.recv()
                    if tag == "start":
                        busy[w] = (i, time.monotonic(), value)
                        started, est_s = busy[w][1], value
                    else:
                        value["cancelled"] = w in asked
                        results[i] = value
                        del busy[w]
                        asked.pop(w, None)
                        break
                if w in busy:
                    # Long work (estimated past LONG_S) must show it can be cancelled: after
                    # HANG_S it gets SIGINT, and must end within HANG_S more.  Other work is
                    # a hang when it runs past 5 s and ten times its estimate (legitimate
                    # work on a loaded machine, traced, runs several times slower).
                    now = time.monotonic()
                    if est_s > LONG_S and now - started > HANG_S and w not in asked:
                        os.kill(proc.pid, signal.SIGINT)
                        asked[w] = now
                    limit = (HANG_S if w in asked else max(HANG_S, 10 * est_s + HANG_S))
                    since = asked.get(w, started)
                    if est_s >= 0 and now - since > limit:
                        proc.kill()
                        proc.join()
                        results[i] = {"rc": "killed", "stderr": "", "elapsed": limit,
                                      "peak": 0, "est_bytes": 0, "est_s": est_s, "hang": True}
                        self.workers[w] = self._spawn()
                        del busy[w]
                        asked.pop(w, None)
            time.sleep(0.002)
        return results

    def close(self) -> None:
        for proc, conn in self.workers:
            with contextlib.suppress(Exception):
                conn.send(None)
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


OUTPUTS = {"analyze": {"trace.npz", "summary.json"},
           "train": {"experiment.json", "weights.safetensors", "history.csv", "trace.npz",
                     "summary.json"},
           "compare": {"compare.csv", "compare.json", "compare.png", "compare.svg"}}
# export and compare in the kill and file-size-limit classes: their arguments, and what an
# earlier run of each left in the folder (an export's names depend on the model: these
# are an LSTM's and a GRU's)
EXPORT_ARGS = ["--formats", "png,csv", "--size", "480x320"]
COMPARE_ARGS = ["--vary", "init.forget_bias=0,1", "--seeds", "2", "--train-steps", "3"]
EARLIER = {"export": {"experiment.json", "signals.png", "gradients.csv", "hidden.h.l0.png",
                      "hidden.h.l1.png"},
           "compare": OUTPUTS["compare"]}


def judge(case: Case, folder: Path, res: dict[str, Any]) -> dict[str, int]:
    """The checks of one run: name → 1 where it failed."""
    err = res["stderr"]
    rc = res["rc"]
    bad: dict[str, int] = {}
    if rc in (1, -1) or "Traceback" in err or "internal error" in err:
        bad["internal error"] = 1
    if res.get("hang"):
        bad["hang > 5 s"] = 1
        return bad  # the worker was killed: what it left is for the next run to clean
    if res.get("cancelled") and rc not in (130, 0, 2):
        bad["hang > 5 s"] = 1
    if "Warning" in err:
        bad["numpy warning"] = 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if rc == 2 and (len(errors) != 1 or len(errors[0]) > 400):
        bad["error not one short line"] = 1
    out_name = case.argv[case.argv.index("--out") + 1]
    allowed = set(case.files) | set(case.special) | {out_name}
    stray = [p for p in folder.iterdir() if p.name not in allowed]
    if stray:
        bad["files outside the output folder"] = 1
    out = folder / (case.argv[case.argv.index("--out") + 1])
    command = case.argv[0]
    if out.is_dir() and not out.is_symlink() and rc != "killed":
        names = {p.name for p in out.iterdir()}
        if rc == 0 or (rc == 130 and command == "train"):  # a stopped train writes it all
            missing = OUTPUTS[command] - names
            old_left = case.old_out and command == "train" and any(
                (out / n).read_bytes() == b"old run" for n in names & OUTPUTS["train"])
            with contextlib.chdir(folder):  # a csv task's path is relative to the case
                readable = _loadable(out, command)
            if missing or old_left or not readable:
                bad["mixed or half-written folder"] = 1
        elif case.old_out and rc != 0:
            if any((out / n).read_bytes() != b"old run" for n in names if (out / n).is_file()):
                bad["mixed or half-written folder"] = 1
        elif not case.old_out and rc != 0 and names:
            bad["mixed or half-written folder"] = 1
    leftovers = [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".staging", ".old"))]
    if leftovers:
        bad["stale temporary files"] = 1
    if rc == 0 and res["est_bytes"] >= PEAK_FLOOR and res["peak"] > 1.25 * res["est_bytes"]:
        bad["peak over the estimate"] = 1
    return bad


def _loadable(out: Path, command: str) -> bool:
    from core.tracefile import load_trace

    if command in ("export", "compare"):
        return _output_ok(out, command)
    try:
        load_trace(out / "trace.npz")
        json.loads((out / "summary.json").read_text())
        if command == "train":
            from core.experiment import load_experiment_config
            from core.weights import load_weights

            exp = load_experiment_config(out / "experiment.json")
            load_weights(out / "weights.safetensors", exp.model)
        return True
    except Exception:
        return False


def _output_ok(out: Path, command: str) -> bool:
    """A complete new export or comparison in ``out``: every file of this run readable,
    none of an earlier run's left beside them, the user's own file kept."""
    from core.experiment import load_experiment_config

    try:
        names = {p.name for p in out.iterdir()}
        if (out / "notes.txt").read_text() != "mine":
            return False
        if any((out / n).read_bytes() == b"old run" for n in names):
            return False  # an earlier run's file beside the new ones
        if command == "export":
            load_experiment_config(out / "experiment.json")
            pngs = [n for n in names if n.endswith(".png")]
            return bool(pngs) and all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                                      for n in pngs) and "gradients.csv" in names
        json.loads((out / "compare.json").read_text())
        return (names == OUTPUTS["compare"] | {"notes.txt"}
                and (out / "compare.csv").read_text().startswith("variant,key,t,mean,low,high")
                and (out / "compare.png").read_bytes()[:4] == b"\x89PNG")
    except (OSError, ValueError):
        return False


def _earlier(out: Path, command: str) -> dict[str, bytes]:
    """``out`` holding an earlier run of ``command`` and the user's own file."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in EARLIER[command]:
        (out / name).write_text("old run")
    (out / "notes.txt").write_text("mine")
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _argv(command: str, out: str, steps: int = 2) -> list[str]:
    """The command line of a kill or file-size-limit run of ``command`` on e.json."""
    head = [sys.executable, str(ROOT / "main.py"), command, "e.json"]
    tail = {"train": ["--steps", str(steps)], "analyze": [], "export": EXPORT_ARGS,
            "compare": COMPARE_ARGS}[command]
    return [*head, *tail, "--out", out]


@dataclass
class Tally:
    runs: Counter = field(default_factory=Counter)
    codes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    peak_ratio: dict[str, float] = field(default_factory=dict)

    def add(self, kind: str, rc: Any, bad: dict[str, int], example: str) -> None:
        self.runs[kind] += 1
        self.codes[kind][str(rc)] += 1
        for k in bad:
            self.failures[kind][k] += 1
            if len(self.examples[k]) < 5:
                self.examples[k].append(f"[{kind}] {example}")


def run_inputs(n: int, seed: int, workers: int, base: Path, tally: Tally,
               kinds: tuple[str, ...] = KINDS) -> None:
    rng = random.Random(seed)
    weights = [WEIGHTS[k] for k in kinds]
    cases = []
    for i in range(n):
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choices(kinds, weights)[0]
        cases.append(make_case(rng, kind))
    pool = Pool(workers)
    try:
        for lo in range(0, n, 200):
            chunk = cases[lo:lo + 200]
            jobs = []
            for j, case in enumerate(chunk):
                folder = base / f"case{lo + j}"
                _prepare(case, folder)
                jobs.append((lo + j, str(folder), case.argv))
            results = pool.run(jobs)
            for j, case in enumerate(chunk):
                folder = base / f"case{lo + j}"
                res = results[lo + j]
                bad = judge(case, folder, res)
                if res["rc"] == 0 and res["est_bytes"] >= PEAK_FLOOR:
                    ratio = res["peak"] / res["est_bytes"]
                    tally.peak_ratio[case.kind] = max(tally.peak_ratio.get(case.kind, 0.0), ratio)
                last = res["stderr"].strip().splitlines()[-1:] or [""]
                tally.add(case.kind, res["rc"], bad, f"case{lo + j} {case.argv}: {last[0][:200]}")
                if not bad:
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        pool.close()


# ----------------------------------------------------------------------------- faults


def _old_run(out: Path) -> dict[str, bytes]:
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS["train"]:
        (out / name).write_text("old run")
    (out / "notes.txt").write_text("mine")
    return {p.name: p.read_bytes() for p in out.iterdir()}


KILLED = ("train", "save", "autosave", "export", "compare")


def run_kills(n: int, seed: int, base: Path, tally: Tally,
              what_runs: tuple[str, ...] = KILLED) -> None:
    """kill -9 of train, of a document save, of an autosave, of export and of compare at
    random moments, each into a folder holding an earlier run and the user's own file."""
    rng = random.Random(seed + 1)
    exp = base_experiment(random.Random(3))
    exp["model"]["layers"] = [{"cell": "lstm", "hidden_size": 64}]
    exp["model"]["pattern"] = "many_to_many"
    exp["task"] = {"name": "sine", "seq_len": 200, "batch_size": 8}
    exp["training"].update(steps=40, eval_every=5, trace_every=5)
    folder = base / "kills"
    folder.mkdir()
    (folder / "e.json").write_text(json.dumps(exp))
    out = folder / "out"
    old = _old_run(out)
    saver = folder / "saver.py"
    saver.write_text(SAVER.format(root=str(ROOT)))
    outs = {"export": folder / "xout", "compare": folder / "cout"}
    earlier = {what: _earlier(path, what) for what, path in outs.items()}
    for i in range(n):
        what = what_runs[i % len(what_runs)]
        if what == "train":
            argv = [sys.executable, str(ROOT / "main.py"), "train", "e.json", "--out", "out"]
        elif what in outs:
            argv = _argv(what, outs[what].name)
        else:
            argv = [sys.executable, str(saver), what]
        proc = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.0 if what in ("save", "autosave") else 3.0))
        proc.kill()
        proc.wait()
        bad: dict[str, int] = {}
        if what == "train":
            names = {p.name: p.read_bytes() for p in out.iterdir()}
            if names != old and not (set(names) == OUTPUTS["train"] | {"notes.txt"}
                                     and _loadable(out, "train")):
                bad["mixed or half-written folder"] = 1
            old = {p.name: p.read_bytes() for p in out.iterdir()}
        elif what in outs:
            now = {p.name: p.read_bytes() for p in outs[what].iterdir()}
            if now != earlier[what] and not _output_ok(outs[what], what):
                bad["mixed or half-written folder"] = 1
            if now != earlier[what]:  # a run that finished: the next kill starts from it
                earlier[what] = _earlier(outs[what], what)
        else:
            doc = folder / ("doc.gradlab" if what == "save" else "autosave")
            if not _document_ok(doc, what):
                bad["mixed or half-written folder"] = 1
        tally.add(f"kill -9 {what}", "killed", bad, f"kill {i} of {what}")
    # the next run of each cleans what the kills left
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "train", "e.json", "--out", "out",
                           "--steps", "1"], cwd=folder, capture_output=True, text=True, timeout=300)
    for what in ("save", "autosave"):
        subprocess.run([sys.executable, str(saver), what, "once"], cwd=folder, timeout=300)
    rcs = [done.returncode]
    bad = {}
    for what, path in outs.items():
        if what in what_runs:
            rcs.append(subprocess.run(_argv(what, path.name), cwd=folder, capture_output=True,
                                      timeout=300).returncode)
            if not _output_ok(path, what):
                bad["mixed or half-written folder"] = 1
    leftovers = [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".staging", ".old"))]
    if leftovers:
        bad["stale temporary files"] = 1
    if any(rc != 0 for rc in rcs):
        bad["internal error"] = 1
    tally.add("next run after kills", max(rcs, key=abs), bad, f"leftovers {leftovers[:3]}, "
              f"exit codes {rcs}")


def _document_ok(path: Path, what: str) -> bool:
    from core.document import read_document

    if what == "autosave":
        archives = list(path.glob("*.gradlab"))
        return all(_readable(p, read_document) for p in archives)
    return not path.exists() or _readable(path, read_document)


def _readable(p: Path, read: Any) -> bool:
    try:
        read(p)
        return True
    except Exception:
        return False


SAVER = '''
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from core.document import Document, write_document
from core.experiment import experiment_from_dict
from core.init import init_params
import json
exp = experiment_from_dict(json.loads(Path("e.json").read_text()))
exp.model.layers[0].hidden_size = 256
params = init_params(exp.model, exp.init)
doc = Document(exp, params)
once = len(sys.argv) > 2
if sys.argv[1] == "save":
    while True:
        write_document("doc.gradlab", doc)
        if once: break
else:
    from gui.files import Autosave
    a = Autosave(Path("autosave"), run="r1")
    while True:
        a.write(doc, None)
        if once:
            Autosave(Path("autosave"), run="r2").orphans()
            break
'''


DISK_COMMANDS = ("train", "analyze", "export", "compare")


def run_disk(seed: int, base: Path, tally: Tally,
             commands: tuple[str, ...] = DISK_COMMANDS) -> None:
    """train, analyze, export and compare under file-size limits: exit 2 naming the file,
    old folder kept."""
    rng = random.Random(seed + 2)
    folder = base / "disk"
    folder.mkdir()
    exp = base_experiment(random.Random(5))
    exp["model"]["layers"] = [{"cell": "gru", "hidden_size": 32}]
    (folder / "e.json").write_text(json.dumps(exp))
    for limit in [0, 512, 2048, 8192, 32768, 131072] + [rng.randrange(1, 200_000) for _ in range(14)]:
        for command in commands:
            out = folder / "out"
            shutil.rmtree(out, ignore_errors=True)
            old = _earlier(out, command) if command in EARLIER else _old_run(out)

            def cap(limit: int = limit) -> None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

            argv = _argv(command, "out")
            done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=300,
                                  preexec_fn=cap)
            bad: dict[str, int] = {}
            err = done.stderr
            if done.returncode not in (0, 2) or "Traceback" in err:
                bad["internal error"] = 1
            now = {p.name: p.read_bytes() for p in out.iterdir()}
            if done.returncode == 2 and now != old:
                bad["mixed or half-written folder"] = 1
            if done.returncode == 2 and "cannot" not in err:  # the error names the write
                bad["error not one short line"] = 1
            if done.returncode == 0 and not _loadable(out, command):
                bad["mixed or half-written folder"] = 1
            leftovers = [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".staging"))]
            if leftovers:
                bad["stale temporary files"] = 1
            tally.add("file-size limit", done.returncode, bad,
                      f"{command} limit {limit}: {err.strip().splitlines()[-1:]}")


# ----------------------------------------------------------------------------- report

CHECKS = ["internal error", "hang > 5 s", "numpy warning", "error not one short line",
          "peak over the estimate", "files outside the output folder",
          "mixed or half-written folder", "stale temporary files"]


def table(tally: Tally) -> str:
    head = ["class", "runs", "exit codes", *CHECKS, "max peak / estimate"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in tally.runs:
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(tally.codes[kind].items()))
        fails = [str(tally.failures[kind].get(c, 0)) for c in CHECKS]
        ratio = tally.peak_ratio.get(kind)
        shown = f"{ratio:.2f}" if ratio else "–"
        rows.append(f"| {kind} | {tally.runs[kind]} | {codes} | " + " | ".join(fails)
                    + f" | {shown} |")
    total = sum(tally.runs.values())
    fails = [str(sum(tally.failures[k].get(c, 0) for k in tally.runs)) for c in CHECKS]
    rows.append(f"| **all** | {total} | | " + " | ".join(fails) + " | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--kills", type=int, default=210)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-disk", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"input classes, from {','.join(WEIGHTS)} (sizes: valid runs of "
                         "moderate size, their peak measured against the estimate, and runs "
                         "far beyond memory)")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="gradlab-campaign-"))
    tally = Tally()
    t0 = time.time()
    try:
        kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
        run_inputs(args.inputs, args.seed, args.workers, base / "inputs", tally, kinds)
        if args.kills:
            run_kills(args.kills, args.seed, base, tally)
        if not args.no_disk:
            run_disk(args.seed, base, tally)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(table(tally))
    print(f"\n{sum(tally.runs.values())} runs in {time.time() - t0:.0f} s, seed {args.seed}")
    for check, examples in tally.examples.items():
        print(f"\n{check}:")
        for e in examples:
            print(f"  {e}")
    return 1 if any(tally.failures[k] for k in tally.runs) else 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
