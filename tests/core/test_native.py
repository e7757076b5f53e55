"""The compiled CPU steps: each kernel against its NumPy twin, the argument checks, the
fallbacks, and whole networks against the NumPy steps (the finite-difference checks of
test_gradients run on both paths)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from core.cells import fused, native, timeloop
from tests.core.helpers import network, small_data, small_model


def compiled_kernels() -> dict:
    """The compiled kernels; skips where this machine has no C compiler (or they are
    switched off), and fails where it has one and the build did not work."""
    if os.environ.get("GRADLAB_COMPILED", "1") == "0":
        pytest.skip("compiled steps switched off (GRADLAB_COMPILED=0)")
    if shutil.which(native._compiler()[0]) is None:
        pytest.skip("no C compiler on this machine")
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        pytest.skip("no Python headers on this machine")
    table = native.kernels()
    assert table is not None, native.status()
    return table


def _args(k: fused.Fused, B: int, H: int, dtype, rng, low=-4.0, high=4.0):
    shape = {n: (H,) if n in k.rows else (B, H) for n in k.inputs + k.outputs}
    ins = [rng.uniform(low, high, size=shape[n]).astype(dtype) for n in k.inputs]
    return ins, [np.full(shape[n], np.nan, dtype) for n in k.outputs], shape


@pytest.mark.parametrize("kernel", fused.ALL, ids=lambda k: k.name)
@pytest.mark.parametrize(("B", "H"), [(1, 1), (1, 32), (4, 13), (32, 128)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_kernel_gives_what_its_numpy_twin_gives(kernel, B, H, dtype):
    table = compiled_kernels()
    rng = np.random.default_rng(B * 1000 + H)
    ins, got, shape = _args(kernel, B, H, dtype, rng, -12.0, 12.0)
    want = [np.empty(shape[n], dtype) for n in kernel.outputs]
    with np.errstate(over="ignore"):  # e^168 in float32: the twin's σ is 0 there too
        kernel.numpy(*ins, *want)
    table[kernel.name](*ins, *got)
    # Sums may round differently (C fuses a multiply and an add): compare on the scale
    # of the values, a few units in the last place.
    tol = 1e-6 if dtype == np.float32 else 1e-15
    for name, g, w in zip(kernel.outputs, got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * max(np.abs(w).max(), 1.0), err_msg=name)


@pytest.mark.parametrize("name", ["gradlab_lstm_forward", "gradlab_gru_forward",
                                  "gradlab_rnn_tanh_forward", "gradlab_rnn_sigmoid_forward",
                                  "gradlab_cifg_forward", "gradlab_mingru_forward",
                                  "gradlab_minlstm_forward"])
def test_forward_kernels_saturate_and_keep_nan(name):
    """Huge pre-activations saturate the gates exactly as the exact functions do, and a
    NaN anywhere in the input comes out as NaN, never as a plausible number."""
    table = compiled_kernels()
    k = next(k for k in fused.ALL if k.name == name)
    values = np.array([-1e30, -200.0, -90.0, -20.0, 0.0, 20.0, 90.0, 200.0, 1e30, np.nan],
                      dtype=np.float32)
    ins = [values.copy() if n in k.rows else np.tile(values, (3, 1)) for n in k.inputs]
    outs = [np.empty_like(ins[0]) for _ in k.outputs]
    with np.errstate(all="ignore"):
        want = [np.empty_like(o) for o in outs]
        k.numpy(*ins, *want)
    table[name](*ins, *outs)
    for o, w in zip(outs, want, strict=True):
        assert np.all(np.isnan(o[:, -1])), "NaN in, NaN out"
        np.testing.assert_allclose(o[:, :-1], w[:, :-1], rtol=1e-6, atol=1e-30)


def test_tanh_keeps_its_relative_precision_near_zero():
    table = compiled_kernels()
    x = np.geomspace(1e-30, 1.0, 4001)
    x = np.concatenate([-x[::-1], [0.0], x]).reshape(1, -1).astype(np.float32)
    h = np.empty_like(x)
    table["gradlab_rnn_tanh_forward"](x, np.zeros_like(x), h)
    exact = np.tanh(x.astype(np.float64))
    assert np.max(np.abs(h - exact) / np.maximum(np.abs(exact), 1e-38)) < 3e-7
    assert h[0, 4001] == 0.0 and np.all(np.sign(h) == np.sign(x))


def test_bad_arguments_are_refused_with_a_message():
    table = compiled_kernels()
    run = table["gradlab_rnn_tanh_forward"]
    a = np.ones((2, 3), np.float32)
    out = np.zeros_like(a)
    with pytest.raises(TypeError, match="takes 3 arrays, got 2"):
        run(a, a)
    with pytest.raises(TypeError, match="not a NumPy array"):
        run(a, [[1.0, 2.0, 3.0]] * 2, out)
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        run(a, a.astype(np.float64), out)
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        run(a.astype(np.int32), a.astype(np.int32), out.astype(np.int32))
    with pytest.raises(ValueError, match="contiguous rows"):
        run(np.ones((3, 2), np.float32).T, a, out)
    with pytest.raises(ValueError, match="contiguous rows"):
        run(np.ones((2, 2, 3), np.float32)[:, 0][None], a[None], out[None])
    with pytest.raises(ValueError, match="wrong shape"):
        run(a, np.ones((2, 4), np.float32), out)
    with pytest.raises(ValueError, match="wrong shape"):
        run(a, np.ones((3, 2), np.float32), out)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        run(a, a, out)
    peep = table["gradlab_lstm_peephole_forward"]
    k = fused.LSTM_PEEPHOLE_FORWARD
    ins, outs, _ = _args(k, 2, 3, np.float32, np.random.default_rng(0))
    ins[-1] = np.ones((2, 3), np.float32)  # a peephole must be one (H,) row
    with pytest.raises(ValueError, match="one contiguous row of 3"):
        peep(*ins, *outs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_of_wider_arrays_are_read_and_written_in_place(dtype):
    """A gate's (B, H) block of a (B, G, H) array — rows a step apart — is a valid
    argument: the kernels read and write it where it lies, and nothing beside it."""
    table = compiled_kernels()
    k = fused.LSTM_PEEPHOLE_BACKWARD
    rng = np.random.default_rng(5)
    B, H = 4, 7
    wide_in = rng.uniform(-2, 2, size=(B, len(k.inputs) + 1, H)).astype(dtype)
    ins = [wide_in[:, n] if name not in k.rows else rng.uniform(-1, 1, H).astype(dtype)
           for n, name in enumerate(k.inputs)]
    wide_out = np.full((B, len(k.outputs) + 2, H), -7.0, dtype)
    outs = [wide_out[:, n + 1] for n in range(len(k.outputs))]
    want = [np.empty((B, H), dtype) for _ in k.outputs]
    k.numpy(*ins, *want)
    table[k.name](*ins, *outs)
    for name, g, w in zip(k.outputs, outs, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=name)
    assert np.all(wide_out[:, 0] == -7.0) and np.all(wide_out[:, -1] == -7.0)


def test_a_kernel_that_disagrees_with_its_twin_fails_the_self_check():
    table = dict(compiled_kernels())
    native.self_check(table)  # the real ones pass

    right = table["gradlab_gru_forward"]

    def wrong(*arrays):
        right(*arrays)
        arrays[-1][...] += 1e-3  # h slightly off

    table["gradlab_gru_forward"] = wrong
    with pytest.raises(RuntimeError, match=r"gradlab_gru_forward .* 'h'"):
        native.self_check(table)


def test_a_failing_compiler_is_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "_compiler", lambda: [sys.executable, "-c",
                                                      "import sys; sys.exit('cc: broken')"])
    with pytest.raises(RuntimeError, match="the C compiler failed: cc: broken"):
        native._build(tmp_path, "_gradlab_steps_test", native.source("_gradlab_steps_test"))
    monkeypatch.setattr(native, "_compiler", lambda: ["/nonexistent/cc"])
    with pytest.raises(RuntimeError, match="no C compiler"):
        native._build(tmp_path, "_gradlab_steps_test", native.source("_gradlab_steps_test"))


def test_a_damaged_cached_build_is_built_again(tmp_path):
    compiled_kernels()
    module = "_gradlab_steps_damaged"
    damaged = tmp_path / (module + sysconfig.get_config_var("EXT_SUFFIX"))
    damaged.write_bytes(b"not a shared library")
    table = native._build_and_check(tmp_path, module)
    assert set(table) == {k.name for k in fused.ALL} | set(timeloop.METHODS)
    assert damaged.stat().st_size > 1000


def test_the_cache_key_tells_processors_and_compilers_apart(monkeypatch):
    here = native.module_name()
    assert here == native.module_name() and native._cpu().strip()
    monkeypatch.setattr(native, "_cpu", lambda: "model name : another CPU")
    other_cpu = native.module_name()
    monkeypatch.setattr(native, "_compiler", lambda: ["clang"])
    assert len({here, other_cpu, native.module_name()}) == 3


def test_a_missing_build_compiler_falls_back_to_one_on_the_path(monkeypatch):
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler on this machine")
    real = sysconfig.get_config_var
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(sysconfig, "get_config_var",
                        lambda name: "/nonexistent/x86_64-conda-cc -pthread" if name == "CC"
                        else real(name))
    cmd = native._compiler()
    assert cmd[0] in ("cc", "gcc", "clang") and shutil.which(cmd[0])
    monkeypatch.setenv("CC", "clang -O1")
    assert native._compiler() == ["clang", "-O1"]  # $CC wins, as written


def _status_in_a_fresh_process(env: dict) -> str:
    code = "from core.cells import native; print(native.status())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, check=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    return done.stdout.strip()


def test_switched_off_or_unbuildable_means_numpy_steps_and_a_reason(tmp_path):
    assert "GRADLAB_COMPILED=0" in _status_in_a_fresh_process({"GRADLAB_COMPILED": "0"})
    status = _status_in_a_fresh_process({"CC": "/nonexistent/cc",
                                         "GRADLAB_CACHE_DIR": str(tmp_path)})
    assert status.startswith("compiled steps unavailable: no C compiler"), status


def test_a_fresh_cache_builds_and_is_reused(tmp_path):
    compiled_kernels()
    env = {"GRADLAB_CACHE_DIR": str(tmp_path / "cache")}
    assert _status_in_a_fresh_process(env) == "compiled steps (C)"
    built = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(built) == 1 and built[0].startswith("_gradlab_steps_")
    assert _status_in_a_fresh_process(env) == "compiled steps (C)"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == built


CASES = [
    ("lstm", False, "many_to_many", True, "tanh"),
    ("lstm", True, "many_to_one", True, "tanh"),
    ("lstm", True, "output_recurrence", False, "tanh"),
    ("gru", False, "many_to_many", True, "tanh"),
    ("gru", False, "output_recurrence", False, "tanh"),
    ("rnn", False, "many_to_one", True, "tanh"),
    ("rnn", False, "many_to_many", False, "sigmoid"),
    ("rnn", False, "many_to_many", False, "relu"),
    ("cifg", False, "many_to_many", True, "tanh"),
    ("cifg", False, "output_recurrence", False, "tanh"),
    ("mingru", False, "many_to_one", True, "tanh"),
    ("mingru", False, "output_recurrence", False, "tanh"),
    ("minlstm", False, "many_to_many", True, "tanh"),
    ("minlstm", False, "output_recurrence", False, "tanh"),
]


@pytest.mark.parametrize(("cell", "peep", "pattern", "bidir", "act"), CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_steps_give_the_numpy_trace(cell, peep, pattern, bidir, act, dtype):
    compiled_kernels()
    model = small_model(cell, pattern, bidir, 2, peep, act, H=5)
    x, y = small_data(model, T=9, B=3)
    fast = network(model, dtype)
    assert fast.backend.kernels is not None and "compiled" in fast.backend.label
    got = fast.run(x, y, tbptt=4, input_grad=True).to_arrays()
    slow = network(model, dtype, compiled=False)
    assert slow.backend.kernels is None
    want = slow.run(x, y, tbptt=4, input_grad=True).to_arrays()
    assert got.keys() == want.keys()
    tol = 1e-12 if dtype == "float64" else 2e-4
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=tol, atol=tol, err_msg=key)
