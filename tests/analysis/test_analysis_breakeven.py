"""Eq. 1 and the break-even detector on synthetic runs (analysis.breakeven)."""

from __future__ import annotations

import numpy as np
import pytest

from tfbreak.analysis.breakeven import detect_break_even, eq1_lhs
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import write_synthetic_run


def test_eq1_lhs_hand_computed():
    # (1 - 0.1*15)^2 = 0.25 ; 200 * 0.01 * 900 / (100 * 999) = 1800 / 99900
    assert eq1_lhs(0.1, 15.0, 200.0, 1000, 100) == pytest.approx(0.25 + 1800 / 99900, rel=1e-12)
    # S = N: no noise term, stability iff eta*lambda in [0, 2]
    assert eq1_lhs(0.01, 200.0, 1e6, 50000, 50000) == pytest.approx(1.0)
    # S = 1: (N-S)/(S(N-1)) = 1
    assert eq1_lhs(0.5, 1.0, 4.0, 10, 1) == pytest.approx(0.25 + 4 * 0.25)
    np.testing.assert_allclose(eq1_lhs(np.array([0.1, 0.2]), 10.0, 0.0, 100, 10), [0.0, 1.0])
    with pytest.raises(ValueError):
        eq1_lhs(0.1, 1.0, 1.0, 1, 1)
    with pytest.raises(ValueError):
        eq1_lhs(0.1, 1.0, 1.0, 100, 200)


def test_break_even_detected_on_measured_series(tmp_path):
    d = write_synthetic_run(
        tmp_path / "r",
        steps=[0, 10, 20, 30, 40],
        measurements={names.BREAKEVEN_EQ1_LHS: [0.2, 0.7, 0.99, 1.0, 1.3]},
    )
    point, series, msg = detect_break_even(load_run(d))
    assert msg is None and series.source == "measured"
    assert (point.step, point.epoch, point.value, point.at_start) == (30, 0.3, 1.0, False)


def test_break_even_recomputed_from_lambda_and_s2(tmp_path):
    # N=1000, S=100, eta = 0.1 (metadata) then 0.05 (per-row lr at the last step).
    lam = [5.0, 10.0, 15.0, 25.0]
    s2 = [0.0, 0.0, 200.0, 0.0]
    d = write_synthetic_run(
        tmp_path / "r",
        steps=[0, 10, 20, 30],
        measurements={
            names.HESSIAN_LAMBDA_1: lam,
            names.BREAKEVEN_S2: s2,
            names.LR: [None, None, None, 0.05],
        },
        lr=0.1,
        batch_size=100,
        num_train=1000,
    )
    run = load_run(d)
    point, series, msg = detect_break_even(run)
    assert series.source == "recomputed"
    np.testing.assert_allclose(
        series.values, [0.25, 0.0, 0.25 + 1800 / 99900, (1 - 0.05 * 25) ** 2], rtol=1e-12
    )
    assert point is None and "stays below 1" in msg
    # Raise lambda at step 10 to 20.5: (1 - 2.05)^2 = 1.1025 >= 1 -> break-even at step 10.
    d2 = write_synthetic_run(
        tmp_path / "r2",
        steps=[0, 10],
        measurements={names.HESSIAN_LAMBDA_1: [5.0, 20.5], names.BREAKEVEN_S2: [0.0, 0.0]},
        lr=0.1,
        batch_size=100,
        num_train=1000,
    )
    point, _, _ = detect_break_even(load_run(d2))
    assert point.step == 10 and point.value == pytest.approx(1.1025)


def test_break_even_unavailable_explains_why(tmp_path):
    d = write_synthetic_run(
        tmp_path / "r", steps=[0], measurements={names.HESSIAN_LAMBDA_1: [1.0]}, num_train=None
    )
    point, series, msg = detect_break_even(load_run(d))
    assert point is None and series is None
    assert "breakeven/s2" in msg and "num_train" in msg
