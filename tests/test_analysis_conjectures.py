"""Conjecture verdicts on synthetic sweeps with known maxima: holds / violated / inconclusive."""

from __future__ import annotations

import numpy as np
import pytest

from tfbreak.analysis.kbatch import find_m_pairs, pearson_r
from tfbreak.analysis.summary import summarize_sweep
from tfbreak.analysis.sweep import make_sweep
from tfbreak.analysis.verdicts import check_conjectures
from tfbreak.report import prose, tables
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import write_synthetic_run


def _run(root, name, peaks, *, status="completed", reason=None, **md):
    """A synthetic run whose maxima are exactly `peaks[metric]` (reached at step 20)."""
    shape = np.array([0.5, 0.8, 1.0, 0.7])
    meas = {m: list(p * shape) for m, p in peaks.items()}
    return load_run(
        write_synthetic_run(
            root / name,
            steps=[0, 10, 20, 30],
            measurements=meas,
            status=status,
            stop_reason=reason,
            **md,
        )
    )


def _peaks(h, k, ratio, trace):
    return {
        names.HESSIAN_LAMBDA_1: h,
        names.K_LAMBDA_1: k,
        names.K_RATIO: ratio,
        names.K_TRACE: trace,
    }


def _verdicts(runs, window=None):
    sweep = make_sweep(runs)
    return sweep, check_conjectures(summarize_sweep(sweep, window), sweep, window)


def _lr(v):
    return {"lr": v, "sweep": {"axis": "lr", "value": v}}


def test_both_conjectures_hold(tmp_path):
    runs = [
        _run(tmp_path, "a", _peaks(211.17, 3.30, 0.24, 10.86), **_lr(0.01)),
        _run(tmp_path, "b", _peaks(26.27, 0.68, 0.37, 5.56), **_lr(0.1)),
    ]
    sweep, (c1, c2) = _verdicts(runs)
    assert sweep.axis == "lr" and sweep.labels == ["lr=0.01", "lr=0.1"]
    assert c1.status == "holds" and c2.status == "holds"
    k = next(c for c in c1.checks if c.metric == names.K_LAMBDA_1)
    assert prose.check_sentence(k) == "max λ1_K: lr=0.1 → 0.68 < lr=0.01 → 3.3: holds"
    r = next(c for c in c2.checks if c.metric == names.K_RATIO)
    assert prose.check_sentence(r) == "max λ*_K/λ1_K: lr=0.1 → 0.37 > lr=0.01 → 0.24: holds"


def test_violation_names_the_pair(tmp_path):
    runs = [
        _run(tmp_path, "a", _peaks(30, 3.0, 0.2, 10), **_lr(0.001)),
        _run(tmp_path, "b", _peaks(20, 1.0, 0.3, 5), **_lr(0.01)),
        _run(tmp_path, "c", _peaks(10, 4.0, 0.4, 5), **_lr(0.1)),  # λ1_K too high, Tr(K) tie
    ]
    _, (c1, c2) = _verdicts(runs)
    assert c1.status == "violated" and c2.status == "violated"
    k = next(c for c in c1.checks if c.metric == names.K_LAMBDA_1)
    assert k.status == "violated"
    assert set(k.violated_pairs) == {(0.1, 0.01), (0.1, 0.001)}
    assert "lr=0.1 vs lr=0.01" in prose.check_sentence(k)
    h = next(c for c in c1.checks if c.metric == names.HESSIAN_LAMBDA_1)
    assert h.status == "holds"
    t = next(c for c in c2.checks if c.metric == names.K_TRACE)
    assert t.violated_pairs == ((0.1, 0.01),)  # equal maxima are not strictly smaller


def test_batch_size_sweep_orders_small_s_first(tmp_path):
    runs = [
        _run(tmp_path, "s100", _peaks(40, 4.0, 0.2, 10.86), batch_size=100),
        _run(tmp_path, "s10", _peaks(20, 1.0, 0.3, 5.56), batch_size=10),
    ]
    sweep, (c1, c2) = _verdicts(runs)
    assert sweep.axis == "batch_size" and sweep.labels == ["S=10", "S=100"]
    assert c1.status == "holds" and c2.status == "holds"
    t = next(c for c in c2.checks if c.metric == names.K_TRACE)
    assert prose.check_sentence(t).startswith("max Tr(K): S=10 → 5.56 < S=100 → 10.86")


def test_single_run_is_inconclusive(tmp_path):
    _, verdicts = _verdicts([_run(tmp_path, "a", _peaks(1, 1, 0.1, 1), **_lr(0.1))])
    assert all(v.status == "inconclusive" for v in verdicts)
    assert all(c.status == "inconclusive" for v in verdicts for c in v.checks)


def test_diverged_run_is_excluded_and_said_so(tmp_path):
    good = [
        _run(tmp_path, "a", _peaks(30, 3.0, 0.2, 10), **_lr(0.01)),
        _run(tmp_path, "b", _peaks(20, 1.0, 0.3, 5), **_lr(0.1)),
    ]
    bad = _run(
        tmp_path, "c", _peaks(99, 99, 0.01, 99), status="diverged", reason="loss NaN", **_lr(1.0)
    )
    _, (c1, c2) = _verdicts([*good, bad])
    assert c1.status == "holds" and c2.status == "holds"  # the diverged run would violate both
    assert any("excluded lr=1" in t and "loss NaN" in t for t in map(prose.note_text, c1.notes))
    # With only one usable run left, inconclusive.
    _, (c1, _) = _verdicts([good[0], bad])
    assert c1.status == "inconclusive"
    assert "fewer than 2 usable" in prose.check_sentence(c1.checks[0])


def test_missing_metric_is_inconclusive(tmp_path):
    peaks = {names.K_LAMBDA_1: 3.0, names.K_RATIO: 0.2, names.K_TRACE: 10}
    runs = [
        _run(tmp_path, "a", peaks, **_lr(0.01)),
        _run(tmp_path, "b", {k: v / 2 for k, v in peaks.items()}, **_lr(0.1)),
    ]
    _, (c1, c2) = _verdicts(runs)
    h = next(c for c in c1.checks if c.metric == names.HESSIAN_LAMBDA_1)
    assert h.status == "inconclusive" and "metric missing" in prose.check_sentence(h)
    assert c1.status == "inconclusive"  # λ1_K holds but λ1_H is missing
    assert c2.status == "violated"  # ratio halves with larger lr


def test_sweep_varying_two_things_is_inconclusive(tmp_path):
    runs = [
        _run(tmp_path, "a", _peaks(30, 3, 0.2, 10), lr=0.01, batch_size=128),
        _run(tmp_path, "b", _peaks(20, 1, 0.3, 5), lr=0.1, batch_size=32),
    ]
    sweep, (c1, _) = _verdicts(runs)
    assert sweep.axis is None and c1.status == "inconclusive"
    assert "lr, batch_size" in prose.check_sentence(c1.checks[0])


def test_smoothed_verdict_reported(tmp_path):
    runs = [
        _run(tmp_path, "a", _peaks(30, 3, 0.2, 10), **_lr(0.01)),
        _run(tmp_path, "b", _peaks(20, 1, 0.3, 5), **_lr(0.1)),
    ]
    sweep, (c1, _) = _verdicts(runs, window=2)
    assert all(c.smoothed_status == "holds" for c in c1.checks)
    assert "on smoothed maxima, window 2: holds" in prose.check_sentence(c1.checks[0])
    summaries = summarize_sweep(sweep, 2)
    csv = tables.conjectures_csv(summaries, 2)
    assert "max_K/lambda_1_smoothed" in csv.splitlines()[0]
    # Smoothed max of 3 * [0.5, 0.8, 1.0, 0.7] with a trailing window 2: (2.4 + 3.0) / 2 at 20.
    m = summaries[0].maxima[names.K_LAMBDA_1]
    assert m.raw.value == 3.0 and m.smoothed.value == pytest.approx(2.7) and m.smoothed.step == 20


def test_k_m_pairs_and_pearson(tmp_path):
    lam = [1.0, 2.0, 3.0, 2.5]
    runs = [
        load_run(
            write_synthetic_run(
                tmp_path / f"m{m}",
                steps=[0, 10, 20, 30],
                measurements={names.K_LAMBDA_1: [x * (1 + m / 100) for x in lam]},
                K_M=m,
            )
        )
        for m in (1, 128)
    ]
    (pair,) = find_m_pairs(runs)
    assert (pair.m_small, pair.m_large) == (1, 128)
    assert pair.steps.tolist() == [0, 10, 20, 30] and pair.pearson_r == 1.0
    assert np.isnan(pearson_r(np.ones(3), np.arange(3)))
    # Different K_M makes K verdicts inconclusive; labels tell the runs apart.
    sweep = make_sweep(runs)
    assert sweep.varying_measurement == ["K_M"] and len(set(sweep.labels)) == 2
