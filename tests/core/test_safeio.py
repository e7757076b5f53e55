"""Bounded reads: pipes, devices and folders refused at once; sizes checked before reading;
declared sizes checked before decompressing; values checked before casts overflow."""

from __future__ import annotations

import json
import os
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.archive import load_archive
from core.errors import ConfigError, DataError, MemoryLimitError, UserError, WeightsError
from core.experiment import ModelConfig, experiment_from_dict, load_experiment_config
from core.layout import param_shapes
from core.memory import format_bytes
from core.safeio import check_npz_members, read_capped
from core.tasks.series import prepare, read_csv_column
from core.userdata import check_input, check_target, load_input, read_npy
from core.weights import load_weights

MODEL = ModelConfig(input_size=1, output_size=1)


def _within(seconds: float, fn, *args):
    """Run ``fn(*args)`` in a thread; the exception it raised, failing if it blocks."""
    box: dict = {}

    def run() -> None:
        try:
            fn(*args)
        except BaseException as exc:
            box["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} blocked on a special file"
    return box.get("exc")


def _npy_header(shape: tuple, descr: str = "<f8") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (118 - len(text)) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()


READERS = {
    "experiment": lambda p: load_experiment_config(p),
    "npy": lambda p: read_npy(p),
    "npz weights": lambda p: load_weights(p, MODEL),
    "safetensors weights": lambda p: load_weights(p, MODEL),
    "archive": lambda p: load_archive(p),
    "csv": lambda p: read_csv_column(p),
}
SUFFIX = {"experiment": ".json", "npy": ".npy", "npz weights": ".npz",
          "safetensors weights": ".safetensors", "archive": ".gradlab", "csv": ".csv"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
@pytest.mark.parametrize("reader", list(READERS))
def test_a_named_pipe_is_refused_at_once(tmp_path, reader):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / f"pipe{SUFFIX[reader]}"  # the suffix each reader expects
    link.symlink_to(fifo)
    exc = _within(5.0, READERS[reader], link)
    assert isinstance(exc, UserError), exc
    assert str(exc) == f"{link}: is a named pipe, not a regular file; give a file"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("reader", list(READERS))
def test_a_device_is_refused_at_once(tmp_path, reader):
    link = tmp_path / f"zero{SUFFIX[reader]}"
    link.symlink_to("/dev/zero")
    exc = _within(5.0, READERS[reader], link)
    assert isinstance(exc, UserError), exc
    assert "is a device, not a regular file" in str(exc)


@pytest.mark.parametrize("reader", list(READERS))
def test_a_folder_is_refused(tmp_path, reader):
    folder = tmp_path / f"folder{SUFFIX[reader]}"
    folder.mkdir()
    with pytest.raises(UserError, match="is a folder, not a regular file"):
        READERS[reader](folder)


@pytest.mark.parametrize("reader", list(READERS))
def test_an_empty_file_is_called_empty(tmp_path, reader):
    empty = tmp_path / f"empty{SUFFIX[reader]}"
    empty.write_bytes(b"")
    with pytest.raises(UserError) as err:
        READERS[reader](empty)
    assert str(err.value).startswith(f"{empty}: the file is empty (0 bytes); expected ")


def test_read_capped_refuses_before_reading(tmp_path):
    p = tmp_path / "big.json"
    p.write_bytes(b" " * 2000)
    with pytest.raises(ConfigError, match=r"big\.json: the file is 2\.0 KiB; an experiment "
                                          r"file may be at most 1000 B"):
        read_capped(p, 1000, str(p), ConfigError, "an experiment file")
    assert read_capped(p, 2000) == b" " * 2000


def test_npy_header_declaring_more_than_the_file_holds(tmp_path):
    p = tmp_path / "x.npy"
    p.write_bytes(_npy_header((100_000, 100_000, 1)) + b"\0" * 64)
    with pytest.raises(DataError, match=r"x\.npy: declares an array of shape \(100000, 100000, "
                                        r"1\) \(74\.5 GiB\) but holds only 64 B of data"):
        read_npy(p)


def test_npy_header_with_a_non_ascii_byte_is_a_data_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 2, 1)))
    raw = (tmp_path / "x.npy").read_bytes()
    i = raw.index(b"'descr'")
    (tmp_path / "x.npy").write_bytes(raw[:i] + b"\xe9" + raw[i + 1:])
    with pytest.raises(DataError, match=r"x\.npy: corrupt \.npy header"):
        read_npy(tmp_path / "x.npy")


def test_npy_object_dtype_is_refused_from_the_header(tmp_path):
    p = tmp_path / "x.npy"
    p.write_bytes(_npy_header((2,), "|O") + b"\0" * 16)
    with pytest.raises(DataError, match="pickled objects"):
        read_npy(p)


def test_npz_member_declaring_more_than_memory_is_refused_before_decompressing(tmp_path,
                                                                                monkeypatch):
    p = tmp_path / "w.npz"
    np.savez(p, weight_ih_l0=np.zeros((1000, 1000)))
    monkeypatch.setattr("core.safeio.available_memory", lambda: 4 * 1024**2)
    with zipfile.ZipFile(p) as zf, pytest.raises(MemoryLimitError,
                                                 match=r"w\.npz: unpacking its 1 array"):
        check_npz_members(zf, str(p))


def test_npz_weights_of_the_wrong_shape_are_refused_from_the_headers(tmp_path, monkeypatch):
    p = tmp_path / "w.npz"
    arrays = {k: np.zeros(s) for k, s in param_shapes(MODEL).items()}
    arrays["weight_hh_l0"] = np.zeros((1, 200_000))  # compresses well, declares 1.5 MiB
    np.savez_compressed(p, **arrays)
    calls = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: calls.append(a) or real(*a, **k))
    with pytest.raises(WeightsError, match=r"weight_hh_l0: expected shape \(128, 32\), "
                                           r"got \(1, 200000\)"):
        load_weights(p, MODEL)
    assert calls == []  # refused from the headers: nothing was decompressed


def test_csv_value_cap(tmp_path, monkeypatch):
    p = tmp_path / "s.csv"
    p.write_text("v\n" + "".join(f"{i}\n" for i in range(50)), encoding="utf-8")
    monkeypatch.setattr("core.tasks.series.MAX_CSV_VALUES", 20)
    with pytest.raises(DataError, match=r"s\.csv line 22: more than 20 values"):
        read_csv_column(p)


def test_csv_streams_latin1_and_utf8(tmp_path):
    p = tmp_path / "s.csv"
    p.write_bytes("température;x\n1,5;2\n2,5;3\n".encode("latin-1"))
    values, label = read_csv_column(p, 0)
    assert values.tolist() == [1.5, 2.5] and label == "column 'température'"
    p.write_bytes("\ufeffv\n1\n2\n3\n".encode())
    values, label = read_csv_column(p)
    assert values.tolist() == [1.0, 2.0, 3.0] and label == "column 'v'"


def test_csv_long_cell_is_not_echoed_whole(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("v\n" + "9" * 5000 + "\n1\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_csv_column(p)
    assert len(str(info.value)) < 200 and "is not finite" in str(info.value)


def test_csv_values_that_overflow_the_normalisation(recwarn):
    raw = np.array([1e308, -1e308, 1.0, 2.0] * 10)
    with pytest.raises(DataError, match=r"s\.csv, column 'v': value 1 of the series "
                                        r"\(1e\+308\) is too large to normalise"):
        prepare(raw, 0.2, "s.csv, column 'v'")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_class_label_beyond_int64_is_refused_without_a_warning():
    model = ModelConfig(input_size=1, output_size=3, pattern="many_to_one",
                        loss="cross_entropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"target: 1 value\(s\) beyond"):
            check_target(np.array([0.0, 1e308]), model, T=4, B=2)
        with pytest.raises(DataError, match=r"class labels must lie in 0\.\.2 .* got 0\.\.5e\+20"):
            check_target(np.array([0.0, 5e20]), model, T=4, B=2)
        with pytest.raises(DataError, match=r"got 0\.\.18446744073709551615"):
            check_target(np.array([0, 2**64 - 1], dtype=np.uint64), model, T=4, B=2)


def test_input_beyond_float32_is_refused_with_its_position(tmp_path):
    x = np.zeros((3, 2, 1))
    x[1, 1, 0] = 1e300
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match=r"x\.npy: 1 value\(s\) beyond ±3\.403e\+38 .* the "
                                        r"first, 1e\+300, at index \[1, 1, 0\]"):
        load_input(tmp_path / "x.npy", MODEL)


def test_format_bytes_of_any_size():
    assert format_bytes(10**400) == "more than 1e+308 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(2**80).endswith("TiB")


@pytest.mark.parametrize(("path", "value", "message"), [
    ("task.seq_len", 10**400, "task.seq_len: must be between 1 and"),
    ("init.seed", -1, "init.seed: must be between 0 and"),
    ("training.beta2", 1.5, "training.beta2: must be at least 0 and below 1"),
    ("training.beta1", 1.0, "training.beta1: must be at least 0 and below 1"),
    ("training.beta1", -1.0, "training.beta1: must be at least 0 and below 1"),
])
def test_ranges_at_the_schema(path, value, message):
    doc = {"format": "gradlab-experiment", "version": 1,
           "model": {"layers": [{"cell": "lstm", "hidden_size": 4}]},
           "task": {"name": "sine", "seq_len": 10, "batch_size": 2}}
    section, key = path.split(".")
    doc.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=message):
        experiment_from_dict(json.loads(json.dumps(doc)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_range_check_takes_large_valid_values_and_refuses_the_first_beyond(dtype):
    """The one-call sum-of-squares check overflows long before float32's range ends:
    values whose squares overflow are still taken, and a value past the range, or a
    NaN among large ones, is still named."""
    big = np.full((4, 3, 1), 3.0e38, dtype=dtype)  # squares overflow float32 and sum past 1e77
    assert check_input(big, MODEL, dtype=dtype) is big
    if dtype is np.float64:
        over = big.copy()
        over[2, 1, 0] = 3.5e38
        with pytest.raises(DataError, match=r"beyond ±3\.403e\+38 .* at index \[2, 1, 0\]"):
            check_input(over, MODEL)
    bad = big.copy()
    bad[3, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"1 non-finite value.*\[3, 0, 0\]"):
        check_input(bad, MODEL, dtype=dtype)
