"""Conjecture verdict rules on synthetic sweeps with known maxima: holds / violated / inconclusive
(the data the rules return; their sentences: tests/report/test_report_prose.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tfbreak.analysis.summary import summarize_sweep
from tfbreak.analysis.sweep import make_sweep
from tfbreak.analysis.verdicts import Note, Reason, ValueMean, check_conjectures
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


def _check(verdict, metric):
    return next(c for c in verdict.checks if c.metric == metric)


def test_both_conjectures_hold(tmp_path):
    runs = [
        _run(tmp_path, "a", _peaks(211.17, 3.30, 0.24, 10.86), **_lr(0.01)),
        _run(tmp_path, "b", _peaks(26.27, 0.68, 0.37, 5.56), **_lr(0.1)),
    ]
    sweep, (c1, c2) = _verdicts(runs)
    assert sweep.axis == "lr" and sweep.labels == ["lr=0.01", "lr=0.1"]
    assert c1.status == "holds" and c2.status == "holds"
    k = _check(c1, names.K_LAMBDA_1)
    assert (k.axis, k.direction, k.precondition) == ("lr", -1, None)
    assert k.literal.values == (ValueMean(0.1, 0.68, 1), ValueMean(0.01, 3.3, 1))  # noisiest first
    r = _check(c2, names.K_RATIO)
    assert r.direction == +1 and r.status == "holds"
    assert r.literal.values == (ValueMean(0.1, 0.37, 1), ValueMean(0.01, 0.24, 1))


def test_violation_names_the_pair(tmp_path):
    runs = [
        _run(tmp_path, "a", _peaks(30, 3.0, 0.2, 10), **_lr(0.001)),
        _run(tmp_path, "b", _peaks(20, 1.0, 0.3, 5), **_lr(0.01)),
        _run(tmp_path, "c", _peaks(10, 4.0, 0.4, 5), **_lr(0.1)),  # λ1_K too high, Tr(K) tie
    ]
    _, (c1, c2) = _verdicts(runs)
    assert c1.status == "violated" and c2.status == "inconclusive"
    k = _check(c1, names.K_LAMBDA_1)
    assert k.status == "violated"
    assert k.violated_pairs == ((0.1, 0.01), (0.1, 0.001))
    assert [v.value for v in k.literal.values] == [0.1, 0.01, 0.001]
    h = _check(c1, names.HESSIAN_LAMBDA_1)
    assert h.status == "holds"
    t = _check(c2, names.K_TRACE)
    # Equal maxima are in neither order: a tie is never a violation, it leaves the check open.
    assert t.status == "inconclusive" and t.violated_pairs == ()
    assert t.literal.tied_pairs == ((0.1, 0.01),)


def test_maxima_leave_out_the_shared_initial_step_and_robust_maxima_ignore_one_outlier(tmp_path):
    """Both runs start from the same point (step 0: 9, far above everything later: with it, the
    maxima would tie). After step 0, the smaller η has one outlying measurement (3.0 at step 30):
    raw maxima order the runs by it (holds), the robust maxima (3-point running median:
    1.1 for η = 0.1, 0.7 for η = 0.01) do not (violated)."""
    steps = [0, 10, 20, 30, 40, 50]
    series = {0.1: [9.0, 1.0, 1.1, 1.2, 1.0, 1.1], 0.01: [9.0, 0.5, 0.6, 3.0, 0.7, 0.6]}
    runs = [
        load_run(
            write_synthetic_run(
                tmp_path / f"lr{lr}", steps=steps, measurements={names.K_LAMBDA_1: v}, **_lr(lr)
            )
        )
        for lr, v in series.items()
    ]
    _, (c1, _) = _verdicts(runs)
    check = _check(c1, names.K_LAMBDA_1)
    assert {v.value: v.mean for v in check.literal.values} == {0.1: 1.2, 0.01: 3.0}
    assert check.status == "holds"
    assert {v.value: v.mean for v in check.robust.values} == {0.1: 1.1, 0.01: 0.7}
    assert check.robust.status == "violated"


def test_batch_size_sweep_orders_small_s_first(tmp_path):
    runs = [
        _run(tmp_path, "s100", _peaks(40, 4.0, 0.2, 10.86), batch_size=100),
        _run(tmp_path, "s10", _peaks(20, 1.0, 0.3, 5.56), batch_size=10),
    ]
    sweep, (c1, c2) = _verdicts(runs)
    assert sweep.axis == "batch_size" and sweep.labels == ["S=10", "S=100"]
    assert c1.status == "holds" and c2.status == "holds"
    t = _check(c2, names.K_TRACE)
    assert t.axis == "batch_size"
    assert t.literal.values == (ValueMean(10, 5.56, 1), ValueMean(100, 10.86, 1))


def test_single_run_is_inconclusive(tmp_path):
    _, verdicts = _verdicts([_run(tmp_path, "a", _peaks(1, 1, 0.1, 1), **_lr(0.1))])
    assert all(v.status == "inconclusive" for v in verdicts)
    assert all(c.status == "inconclusive" for v in verdicts for c in v.checks)
    # The run names its sweep axis (lr): one value of it, not a sweep-wide reason.
    few = Reason("too_few_values", axis="lr", values=(0.1,))
    assert all(c.literal.reason == few for v in verdicts for c in v.checks)
    assert all(v.notes == [] for v in verdicts)
    # Without sweep metadata a single run has no axis: every check fails its precondition.
    _, verdicts = _verdicts([_run(tmp_path, "b", _peaks(1, 1, 0.1, 1), lr=0.1)])
    assert all(c.precondition == Reason("single_run") for v in verdicts for c in v.checks)
    assert all(v.notes == [Note("all_inconclusive", reason=Reason("single_run"))] for v in verdicts)


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
    (note,) = c1.notes
    assert note.code == "excluded" and note.run.label == "lr=1"
    assert (note.run.status, note.run.stop_reason) == ("diverged", "loss NaN")
    # With only one usable run left, inconclusive.
    _, (c1, _) = _verdicts([good[0], bad])
    assert c1.status == "inconclusive"
    assert c1.checks[0].literal.reason == Reason("too_few_values", axis="lr", values=(0.01,))


def test_missing_metric_is_inconclusive(tmp_path):
    peaks = {names.K_LAMBDA_1: 3.0, names.K_RATIO: 0.2, names.K_TRACE: 10}
    runs = [
        _run(tmp_path, "a", peaks, **_lr(0.01)),
        _run(tmp_path, "b", {k: v / 2 for k, v in peaks.items()}, **_lr(0.1)),
    ]
    _, (c1, c2) = _verdicts(runs)
    h = _check(c1, names.HESSIAN_LAMBDA_1)
    assert h.status == "inconclusive" and h.precondition == Reason("metric_missing")
    assert c1.status == "inconclusive"  # λ1_K holds but λ1_H is missing
    assert c2.status == "violated"  # ratio halves with larger lr


def test_sweep_varying_two_things_is_inconclusive(tmp_path):
    runs = [
        _run(tmp_path, "a", _peaks(30, 3, 0.2, 10), lr=0.01, batch_size=128),
        _run(tmp_path, "b", _peaks(20, 1, 0.3, 5), lr=0.1, batch_size=32),
    ]
    sweep, (c1, _) = _verdicts(runs)
    assert sweep.axis is None and c1.status == "inconclusive"
    assert c1.checks[0].precondition == Reason("varies_other", keys=("lr", "batch_size"))


def test_smoothed_verdict_reported(tmp_path):
    runs = [
        _run(tmp_path, "a", _peaks(30, 3, 0.2, 10), **_lr(0.01)),
        _run(tmp_path, "b", _peaks(20, 1, 0.3, 5), **_lr(0.1)),
    ]
    sweep, (c1, _) = _verdicts(runs, window=2)
    assert all(c.smoothed_status == "holds" for c in c1.checks)
    assert all(c.smoothing_window == 2 for c in c1.checks)
    summaries = summarize_sweep(sweep, 2)
    # Smoothed max of 3 * [0.5, 0.8, 1.0, 0.7] with a trailing window 2: (2.4 + 3.0) / 2 at 20.
    m = summaries[0].maxima[names.K_LAMBDA_1]
    assert m.raw.value == 3.0 and m.smoothed.value == pytest.approx(2.7) and m.smoothed.step == 20
