"""The report's sentences, from verdict data built by hand (the rules that make such data:
tests/analysis/test_analysis_verdicts.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tfbreak.analysis.noise import ValueStatistic
from tfbreak.analysis.verdicts import (
    Check,
    Comparison,
    Reason,
    ValueMean,
    Verdict,
    WindowCheck,
    WindowVerdict,
)
from tfbreak.report import prose
from tfbreak.runs import names

WHOLE = ("whole", "max")


def _check(metric, direction, status, values, violated=(), axis="lr"):
    """A literal check comparing `values` = [(sweep value, mean maximum, runs)], noisiest first."""
    means = tuple(ValueMean(*v) for v in values)
    return Check(1, metric, direction, axis, Comparison(status, means, violated))


def test_check_sentence_chains_maxima_from_the_noisiest():
    k = _check(names.K_LAMBDA_1, -1, "holds", [(0.1, 0.68, 1), (0.01, 3.3, 1)])
    assert prose.check_sentence(k) == "max λ1_K: lr=0.1 → 0.68 < lr=0.01 → 3.3: holds"
    r = _check(names.K_RATIO, +1, "holds", [(0.1, 0.37, 1), (0.01, 0.24, 1)])
    assert prose.check_sentence(r) == "max λ*_K/λ1_K: lr=0.1 → 0.37 > lr=0.01 → 0.24: holds"
    t = _check(names.K_TRACE, -1, "holds", [(10, 5.56, 1), (100, 10.86, 1)], axis="batch_size")
    assert prose.check_sentence(t) == "max Tr(K): S=10 → 5.56 < S=100 → 10.86: holds"


def test_violated_check_names_the_pairs():
    values = [(0.1, 4.0, 1), (0.01, 1.0, 2), (0.001, 3.0, 1)]
    k = _check(names.K_LAMBDA_1, -1, "violated", values, ((0.1, 0.01), (0.1, 0.001)))
    assert prose.check_sentence(k) == (
        "max λ1_K: lr=0.1 → 4 > lr=0.01 → 1 (mean of 2 runs) < lr=0.001 → 3: violated "
        "(pairs out of order: lr=0.1 vs lr=0.01; lr=0.1 vs lr=0.001)"
    )
    tie = _check(names.K_TRACE, -1, "violated", [(0.1, 5.0, 1), (0.01, 5.0, 1)], ((0.1, 0.01),))
    assert prose.check_sentence(tie) == (
        "max Tr(K): lr=0.1 → 5 = lr=0.01 → 5: violated (pairs out of order: lr=0.1 vs lr=0.01)"
    )


def test_smoothed_verdict_in_brackets():
    k = _check(names.K_LAMBDA_1, -1, "holds", [(0.1, 1.0, 1), (0.01, 3.0, 1)])
    k.smoothed, k.smoothing_window = Comparison("violated"), 2
    assert prose.check_sentence(k) == (
        "max λ1_K: lr=0.1 → 1 < lr=0.01 → 3: holds [on smoothed maxima, window 2: violated]"
    )


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (Reason("single_run"), "a single run: nothing to compare"),
        (
            Reason("varies_other", keys=("lr", "batch_size")),
            "the sweep varies lr, batch_size; the conjectures concern η or S only",
        ),
        (Reason("no_eta_or_s"), "the runs do not differ in η or S"),
        (
            Reason("also_varies", axis="lr", keys=("momentum", "model")),
            "besides lr, the sweep also varies momentum, model",
        ),
        (Reason("k_settings_differ"), "K was estimated with different K_M/K_L across runs"),
        (Reason("metric_missing"), "metric missing"),
        (
            Reason("too_few_values", axis="lr", values=(0.01,)),
            "fewer than 2 usable sweep values (have: lr=0.01)",
        ),
        (Reason("too_few_values", axis="lr"), "fewer than 2 usable sweep values (have: none)"),
        (
            Reason("window_missing", runs=(("lr=0.1", "no measurement before"), ("S=8", "n/a"))),
            "lr=0.1: no measurement before; S=8: n/a",
        ),
    ],
)
def test_reason_text(reason, text):
    assert prose.reason_text(reason) == text


def test_inconclusive_check_and_its_windows_say_why():
    """The literal check and the one reason of a window where some run has no value."""
    h = _check(names.HESSIAN_LAMBDA_1, -1, "inconclusive", [])
    h.precondition = Reason("metric_missing")
    assert prose.check_sentence(h) == "max λ1_H: metric missing"
    few = Check(
        1,
        names.K_LAMBDA_1,
        -1,
        "lr",
        Comparison("inconclusive", reason=Reason("too_few_values", axis="lr", values=(0.01,))),
    )
    assert prose.check_sentence(few) == "max λ1_K: fewer than 2 usable sweep values (have: lr=0.01)"
    key = ("after", "smoothed max")
    missing = WindowCheck(*key, "inconclusive", Reason("window_missing", runs=(("lr=0.1", "why"),)))
    few.windows[key] = missing
    verdict = Verdict(
        1, "inconclusive", [few], [], {key: WindowVerdict(*key, "inconclusive", None)}
    )
    assert prose.why_not_holds(verdict, key) == "smoothed max λ1_K: lr=0.1: why"


def _value(value, maxima, lo, hi):
    return ValueStatistic(value, [], maxima, float(np.mean(maxima)), lo, hi, np.zeros(1))


def test_headline_and_the_one_reason():
    assert prose.headline(Verdict(2, "violated", [], [])) == (
        "Conjecture 2 (pre-conditioning): violated"
    )
    check = Check(2, names.K_TRACE, -1, "lr", Comparison("holds"))
    check.windows[WHOLE] = WindowCheck("whole", "max", "holds", confidence=0.975)
    ratio = Check(2, names.K_RATIO, +1, "lr", Comparison("holds"))
    ratio.windows[WHOLE] = WindowCheck(
        "whole", "max", "inconclusive", Reason("too_few_values", axis="lr", values=(0.1,))
    )
    verdict = Verdict(2, "holds", [ratio, check], [])
    verdict.windows[WHOLE] = WindowVerdict("whole", "max", "inconclusive", None)
    assert prose.headline(verdict) == (
        "Conjecture 2 (pre-conditioning): inconclusive (max λ*_K/λ1_K: fewer than 2 usable "
        "sweep values (have: lr=0.1); max Tr(K): holds, 0.97)"
    )
    assert prose.why_not_holds(verdict, WHOLE) == (
        "max λ*_K/λ1_K: fewer than 2 usable sweep values (have: lr=0.1)"
    )
    assert prose.answer_reasons([verdict], [WHOLE]) == [
        "Conjecture 2 (whole trajectory: max): max λ*_K/λ1_K: fewer than 2 usable sweep "
        "values (have: lr=0.1)."
    ]
    verdict.windows[WHOLE].status = "holds"
    assert (
        prose.why_not_holds(verdict, WHOLE) is None
        and prose.answer_reasons([verdict], [WHOLE]) == []
    )


def test_the_reason_names_the_pair_least_often_in_order():
    k = _check(names.K_RATIO, +1, "holds", [])
    values = [_value(0.1, [0.08], 0.06, 0.1), _value(0.03, [0.071], 0.057, 0.095)]
    values.append(_value(0.01, [0.073], 0.059, 0.094))
    shares = {(0.1, 0.03): 0.7, (0.1, 0.01): 0.66, (0.03, 0.01): 0.46}
    k.windows[WHOLE] = WindowCheck("whole", "max", "inconclusive", None, 0.25, None, values, shares)
    k.windows[WHOLE].replicated_noise = True
    verdict = Verdict(
        2, "violated", [k], [], {WHOLE: WindowVerdict("whole", "max", "inconclusive", 0.25)}
    )
    assert prose.why_not_holds(verdict, WHOLE) == (
        "max λ*_K/λ1_K inconclusive: lr=0.1 → 0.08 > lr=0.03 → 0.071 < lr=0.01 → 0.073; lr=0.03 "
        "and lr=0.01 are in the predicted order in 0.46 of bootstrap replicates"
    )
