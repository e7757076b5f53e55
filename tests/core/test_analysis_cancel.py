"""A long eigenvalue problem (one LAPACK call, which cannot check a control) is still
cancelled promptly: it runs in a thread of its own, waited for in short slices."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core import analysis, jobs
from core.jobs import Cancelled, Control, abandoned_calls, run_cancellable


def test_cancel_during_a_big_eigenvalue_call_returns_within_a_second():
    a = np.random.default_rng(0).uniform(-1, 1, (2500, 2500))  # seconds in LAPACK
    control = Control()
    timer = threading.Timer(0.3, control.cancel)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        analysis._eigvals(a, control)
    assert time.monotonic() - t0 < 1.3
    assert abandoned_calls() >= 1  # the call was still running: it was abandoned, not awaited
    jobs._ABANDONED[-1].join()  # its work would only slow the tests after this one


def test_a_long_call_returns_its_result_or_raises_its_error():
    assert run_cancellable(lambda: 6 * 7, Control()) == 42

    def fail() -> None:
        raise ValueError("bad block")

    with pytest.raises(ValueError, match="bad block"):
        run_cancellable(fail)


def test_small_blocks_are_computed_in_place_and_match_numpy():
    a = np.random.default_rng(1).normal(size=(64, 64))
    np.testing.assert_allclose(np.sort_complex(analysis._eigvals(a, None)),
                               np.sort_complex(np.linalg.eigvals(a)))
    big = np.random.default_rng(2).normal(size=(analysis.CANCELLABLE_EIG,) * 2)
    np.testing.assert_allclose(np.sort_complex(analysis._eigvals(big, Control())),
                               np.sort_complex(np.linalg.eigvals(big)))
