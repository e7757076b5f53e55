"""The same engine on every backend present: CuPy results must equal NumPy's.

The NumPy path is checked against finite differences; here every other backend is
checked against it.  Without CuPy and a GPU these tests skip.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.backend import BackendError, probe_cupy, resolve_backend
from tests.core.helpers import network, small_data, small_model

HAVE_GPU = probe_cupy()[0] is not None
gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a GPU")


@gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("pattern", ["many_to_many", "many_to_one", "output_recurrence"])
@pytest.mark.parametrize(("cell", "peep"), [("rnn", False), ("lstm", False), ("lstm", True),
                                            ("gru", False)])
def test_cupy_matches_numpy(cell, peep, pattern, dtype):
    model = small_model(cell, pattern, bidirectional=pattern != "output_recurrence", depth=2,
                        peephole=peep, H=8)
    x, y = small_data(model, T=12, B=3)
    mask = np.arange(12) % 3 != 1 if pattern == "output_recurrence" else None
    ref = network(model, dtype).run(x, y, tbptt=5, teacher_mask=mask).to_arrays()
    got = network(model, dtype, device="cupy").run(x, y, tbptt=5, teacher_mask=mask).to_arrays()
    assert set(got) == set(ref)
    tol = 1e-10 if dtype == "float64" else 1e-4
    for key, want in ref.items():
        assert isinstance(got[key], np.ndarray)
        np.testing.assert_allclose(got[key], want, rtol=tol, atol=tol * (np.abs(want).max() + 1),
                                   err_msg=key)


def test_cupy_request_without_gpu_is_a_clear_error():
    if HAVE_GPU:
        assert resolve_backend("cupy").name == "cupy"
        return
    with pytest.raises(BackendError, match="device 'cupy' requested"):
        resolve_backend("cupy")
    auto = resolve_backend("auto")
    assert auto.name == "numpy" and "NumPy" in auto.reason


def test_info_names_the_blas_kernels_and_threads():
    from core.backend import backend_info, blas_pool_text

    pool = {"internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX",
            "num_threads": 2}
    assert blas_pool_text(pool) == "openblas 0.3.31 (SkylakeX kernels, 2 threads)"
    assert blas_pool_text({"internal_api": "openmp", "version": None,
                           "num_threads": 4}) == "openmp (4 threads)"
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pools = [p for p in threadpoolctl.threadpool_info() if p.get("internal_api") == "openblas"]
    if not pools:
        pytest.skip("NumPy here does not use OpenBLAS")
    assert f"{pools[0]['architecture']} kernels" in " ".join(backend_info()["blas"])
