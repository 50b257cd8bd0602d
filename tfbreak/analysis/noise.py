"""Measurement noise and seeds in conjecture verdicts: error bars, bootstrap maxima and medians,
windows.

Error bars. A metric's standard error series, when the run has them (`STDERR_OF`), added in
quadrature: the jackknife standard errors of the K statistics over the L gradients
(``K/*_stderr``; with K batches drawn afresh at every measurement they are the sampling error of
the batches), the Hutchinson standard error of Tr(H), and for λ1_H the sampling error of the
Hessian sample (``hessian/lambda_1_stderr``) together with the Ritz residual
``hessian/residual_1`` (a bound: |λ − θ1| <= residual for the eigenvalue λ nearest θ1; used as
if it were a standard error). Measurements without a standard error count as exact (noise 0).

Bootstrap of a maximum (one run, one metric, one window, raw or smoothed). Replicate b
re-measures every point, v*_i = v_i + se_i z_bi (z ~ N(0, 1)), smooths the replicate series if a
window is given, and takes its maximum. A maximum of noisy values is biased upwards (by more where
the series is flat near its peak), and a re-measured series carries the noise twice, so the
replicate maxima are re-centred on the observed maximum (their median is shifted onto it): they
then describe the spread of the maximum under measurement noise. Interval: the 2.5 and 97.5
percentiles of the re-centred replicates. Without any standard error all replicates equal the
observed maximum.

Bootstrap of a median (the late window, see Windows): the same, with the median of each
replicate series in place of its maximum. Unlike a maximum, a median does not grow with the
number of measurements in the window.

Seeds. Runs of one sweep value that differ in metadata ``seed`` are replicates: the value's
maximum (median) is the mean of its runs' maxima (medians). Replicate b of the value adds two
sources: the bootstrap over the runs of the mean of their observed values
(`scipy.stats.bootstrap`, resampling runs with replacement: seed-to-seed variation) and the mean
over the runs of their measurement-noise deviations in replicate b; with one run it is that run's
replicate b.

Windows. ``whole``: the trajectory (paper's definition); ``before``: measurements at steps
strictly before the run's break-even point (first Eq. 1 LHS >= 1, `breakeven.detect_break_even`);
``after``: measurements at or after it; ``late``: the second half of the run's training (steps >=
half its planned steps, metadata ``total_steps``). The conjectures say that η and S decide the
region SGD steers the trajectory to (Sec. 3); the region is where the trajectory spends its late
phase, whether or not it ever reaches break-even (a small η may never), and the second half is
the same share of training for every η and S, far from the early transient and from the initial
point the runs share.
Its statistics are the maximum and the median (`window_statistics`). The split is per run; the
series is cut first and then smoothed, so no smoothed value mixes two windows.

Measurement density. A maximum of n noisy measurements grows with n (the expected maximum of n
draws of one distribution does): runs measured on different schedules have maxima that differ for
that reason alone. Medians do not; `n` of every statistic is kept.

Ordering confidence (one check: a metric predicted to fall, or rise, as SGD gets noisier). Sweep
values are ordered from the noisiest; for each pair (a noisier than b) the pair share is the
fraction of replicates in which a's and b's replicate values are in the predicted order (a tie
counts one half); the joint share (the confidence) is the fraction of replicates in which every
pair is in the predicted order. Verdict, with thresholds lo = 0.05 and hi = 0.95:
  holds         joint share >= hi  (the predicted ordering in at least 95 % of replicates)
  violated      some pair share <= lo / P, P the number of pairs (that pair reversed in at least
                1 − 0.05/P of replicates; the Bonferroni factor keeps the chance that truly tied
                values are called "violated" near lo however many pairs the sweep has)
  inconclusive  otherwise: the intervals overlap so much that the ordering of some pair is not
                decided either way (e.g. truly tied maxima give pair shares near 0.5).
With seeds, the seed-pair share is also reported: over all choices of one run per sweep value,
the fraction whose (observed) maxima are in the predicted order.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.stats

from tfbreak.analysis.breakeven import BreakEvenPoint
from tfbreak.analysis.smoothing import Mode, moving_average
from tfbreak.runs import Run, names

Window = Literal["whole", "before", "after", "late"]
WINDOWS: tuple[Window, ...] = ("whole", "before", "after", "late")
WINDOW_TITLE = {
    "whole": "whole trajectory",
    "before": "before break-even",
    "after": "after break-even",
    "late": "second half",
}
Statistic = Literal["max", "smoothed max", "median"]
STATISTICS: tuple[Statistic, ...] = ("max", "smoothed max", "median")
STATISTIC_TITLE = {"max": "max", "smoothed max": "smoothed max", "median": "median"}
MEDIAN_WINDOWS: tuple[Window, ...] = ("late",)  # medians: the typical level of the late phase
Status = Literal["holds", "violated", "inconclusive"]

# Metric -> the metric holding its standard error (or error bound) per measurement.
STDERR_OF: dict[str, tuple[str, ...]] = {
    names.K_LAMBDA_1: (names.K_LAMBDA_1_STDERR,),
    names.K_LAMBDA_STAR: (names.K_LAMBDA_STAR_STDERR,),
    names.K_RATIO: (names.K_RATIO_STDERR,),
    names.K_TRACE: (names.K_TRACE_STDERR,),
    names.HESSIAN_LAMBDA_1: (names.HESSIAN_LAMBDA_1_STDERR, names.HESSIAN_RESIDUAL_1),
    names.HESSIAN_TRACE: (names.HESSIAN_TRACE_STDERR,),
}
DEFAULT_REPLICATES = 1000
LO, HI = 0.05, 0.95


def stderr_series(run: Run, metric: str, steps: np.ndarray) -> np.ndarray | None:
    """Standard errors of `metric` at `steps`: its error series (`STDERR_OF`) added in
    quadrature (NaN where none was measured), or None if the run has none of them."""
    parts = []
    for name in STDERR_OF.get(metric, ()):
        s_steps, _, s_vals = run.series(name)
        if np.isfinite(s_vals).any():
            at = {int(s): float(v) for s, v in zip(s_steps, s_vals, strict=True)}
            parts.append(np.asarray([at.get(int(s), np.nan) for s in steps], dtype=np.float64))
    if not parts:
        return None
    squares = np.stack(parts) ** 2
    total = np.sqrt(np.nansum(squares, axis=0))
    return np.where(np.isfinite(squares).any(axis=0), total, np.nan)


def window_statistics(window: Window, smoothing: int | None = None) -> tuple[Statistic, ...]:
    """The statistics computed in `window`: the maximum (the paper's), the smoothed maximum when
    a moving-average window > 1 is given, and in the late window the median."""
    stats: tuple[Statistic, ...] = ("max",)
    if smoothing is not None and smoothing > 1:
        stats += ("smoothed max",)
    return stats + (("median",) if window in MEDIAN_WINDOWS else ())


def late_start(run: Run) -> float | None:
    """Where the second half of a run's training starts: half its planned steps (metadata
    ``total_steps``, else its last step), or None for a run without steps."""
    total = run.metadata.get("total_steps")
    if isinstance(total, bool) or not isinstance(total, int | float) or not total > 0:
        total = run.last_step()
    return None if not total else total / 2


def window_mask(
    steps: np.ndarray, window: Window, split: int | None, late: float | None = None
) -> np.ndarray:
    """Boolean mask of the measurements in `window` (`split`: the break-even step; `late`: the
    step where the second half starts)."""
    steps = np.asarray(steps)
    if window == "whole":
        return np.ones(steps.shape, dtype=bool)
    if window == "late":
        if late is None:
            raise ValueError("window 'late' needs the step where the second half starts")
        return steps >= late
    if split is None:
        raise ValueError(f"window {window!r} needs a break-even step")
    return steps < split if window == "before" else steps >= split


@dataclass(frozen=True)
class NoisyStatistic:
    """The maximum (raw or smoothed) or median of one metric of one run in one window, with its
    bootstrap interval."""

    value: float
    step: int | None  # where a maximum is attained (None for a median)
    epoch: float | None
    lo: float  # 2.5 percentile of the re-centred bootstrap replicates
    hi: float  # 97.5 percentile
    replicates: np.ndarray  # (B,) re-centred bootstrap replicates
    noisy: bool  # True if a standard-error series entered the bootstrap
    n: int  # measurements in the window


def _noise(se: np.ndarray | None, v: np.ndarray) -> np.ndarray | None:
    """Standard errors with NaN as 0, or None if no finite measurement has one."""
    se = None if se is None else np.nan_to_num(np.abs(se), nan=0.0)
    return se if se is not None and bool(np.any(se[np.isfinite(v)] > 0)) else None


def _interval(reps: np.ndarray, observed: float) -> tuple[np.ndarray, float, float]:
    """Replicates re-centred on the observed value (their median moved onto it), and their
    2.5 and 97.5 percentiles."""
    reps = reps - np.median(reps) + observed
    lo, hi = (float(q) for q in np.percentile(reps, [2.5, 97.5]))
    return reps, lo, hi


def noisy_maximum(
    steps: np.ndarray,
    epochs: np.ndarray,
    values: np.ndarray,
    stderr: np.ndarray | None,
    *,
    window: int | None = None,
    mode: Mode = "trailing",
    replicates: int = DEFAULT_REPLICATES,
    rng: np.random.Generator | None = None,
) -> NoisyStatistic | None:
    """Observed maximum (of the moving average if `window` > 1) and its bootstrap under
    measurement noise N(value, stderr^2) (see module doc); None if no finite value."""
    v = np.asarray(values, dtype=np.float64)
    smooth = window is not None and window > 1
    obs = moving_average(v[None, :], window, mode)[0] if smooth else v
    finite = np.isfinite(obs)
    if not finite.any():
        return None
    idx = int(np.argmax(np.where(finite, obs, -np.inf)))
    m = float(obs[idx])
    se = _noise(stderr, v)
    if se is not None:
        rng = rng if rng is not None else np.random.default_rng(0)
        x = v[None, :] + se[None, :] * rng.standard_normal((replicates, v.size))
        if smooth:
            x = moving_average(x, window, mode)
        reps, lo, hi = _interval(np.nanmax(np.where(np.isfinite(x), x, -np.inf), axis=1), m)
    else:
        reps, lo, hi = np.full(replicates, m), m, m
    n = int(np.isfinite(v).sum())
    return NoisyStatistic(m, int(steps[idx]), float(epochs[idx]), lo, hi, reps, se is not None, n)


def noisy_median(
    values: np.ndarray,
    stderr: np.ndarray | None,
    *,
    replicates: int = DEFAULT_REPLICATES,
    rng: np.random.Generator | None = None,
) -> NoisyStatistic | None:
    """Median of the finite measurements and its bootstrap under measurement noise
    N(value, stderr^2), re-centred like a maximum's (see module doc); None if no finite value."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    v = v[ok]
    m = float(np.median(v))
    se = _noise(None if stderr is None else np.asarray(stderr)[ok], v)
    if se is not None:
        rng = rng if rng is not None else np.random.default_rng(0)
        x = v[None, :] + se[None, :] * rng.standard_normal((replicates, v.size))
        reps, lo, hi = _interval(np.median(x, axis=1), m)
    else:
        reps, lo, hi = np.full(replicates, m), m, m
    return NoisyStatistic(m, None, None, lo, hi, reps, se is not None, int(v.size))


@dataclass
class RunWindows:
    """One run's windows (its break-even step, where its second half starts) and its noisy
    statistics per (metric, window, statistic)."""

    breakeven: BreakEvenPoint | None
    split_reason: str | None  # why before/after are unavailable (no break-even point)
    late: float | None = None  # the second half: steps >= late
    values: dict[tuple[str, Window, Statistic], NoisyStatistic | None] = field(default_factory=dict)
    reasons: dict[tuple[str, Window, Statistic], str] = field(default_factory=dict)
    has_stderr: dict[str, bool] = field(default_factory=dict)


def key_seed(seed: Sequence[int], index: int, key: tuple[Window, Statistic]) -> list[int]:
    """The entropy of one statistic's bootstrap stream: `seed`, the metric's (or check's)
    index, the window's and the statistic's."""
    return [*seed, index, WINDOWS.index(key[0]), STATISTICS.index(key[1])]


def _no_measurement(window: Window, split: int | None, late: float | None) -> str:
    if window == "whole":
        return "no measurement"
    if window == "late":
        return f"no measurement in the second half (step >= {late:g})"
    where = "before" if window == "before" else "at/after"
    return f"no measurement {where} the break-even step {split}"


def run_windows(
    run: Run,
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    breakeven: BreakEvenPoint | None,
    split_reason: str | None,
    *,
    window: int | None = None,
    mode: Mode = "trailing",
    replicates: int = DEFAULT_REPLICATES,
    seed: Sequence[int] = (0,),
) -> RunWindows:
    """Noisy statistics (`window_statistics`) of each metric in `series` ({metric: (steps,
    epochs, values)}) in the four windows. Each (metric, window, statistic) draws its bootstrap
    from its own stream, seeded by `seed` and its position (`key_seed`): a statistic's interval
    does not depend on which others are computed (smoothing on or off)."""
    out = RunWindows(breakeven, split_reason, late_start(run))
    split = breakeven.step if breakeven is not None else None
    for i, (metric, (steps, epochs, values)) in enumerate(series.items()):
        se = stderr_series(run, metric, steps)
        out.has_stderr[metric] = se is not None
        for w in WINDOWS:
            for stat in window_statistics(w, window):
                key = (metric, w, stat)
                if w in ("before", "after") and split is None:
                    out.values[key] = None
                    out.reasons[key] = split_reason or "no break-even point detected"
                    continue
                if w == "late" and out.late is None:
                    out.values[key] = None
                    out.reasons[key] = "no steps"
                    continue
                mask = window_mask(steps, w, split, out.late)
                wse = None if se is None else se[mask]
                rng = np.random.default_rng(key_seed(seed, i, (w, stat)))
                if stat == "median":
                    res = noisy_median(values[mask], wse, replicates=replicates, rng=rng)
                else:
                    res = noisy_maximum(
                        steps[mask],
                        epochs[mask],
                        values[mask],
                        wse,
                        window=window if stat == "smoothed max" else None,
                        mode=mode,
                        replicates=replicates,
                        rng=rng,
                    )
                out.values[key] = res
                if res is None:
                    out.reasons[key] = _no_measurement(w, split, out.late)
    return out


@dataclass
class ValueStatistic:
    """The maximum (or median) of one sweep value: mean over its runs (seeds), with an
    interval."""

    value: Any
    labels: list[str]
    observed: list[float]  # per run
    mean: float
    lo: float
    hi: float
    replicates: np.ndarray  # (B,)


def value_statistic(
    value: Any, labels: list[str], runs: list[NoisyStatistic], rng: np.random.Generator
) -> ValueStatistic:
    """Mean over runs of their maxima (medians), with replicates of seed-to-seed variation (a
    bootstrap of the mean over runs, when there are several) and of measurement noise (see
    module doc)."""
    reps = np.stack([r.replicates for r in runs])  # (n_runs, B)
    per_run = [r.value for r in runs]
    observed = np.asarray(per_run)
    vals = np.mean(observed) + (reps - observed[:, None]).mean(axis=0)
    if len(runs) > 1 and np.ptp(observed) > 0:
        seeds = scipy.stats.bootstrap(
            (observed,),
            np.mean,
            n_resamples=reps.shape[1],
            method="percentile",
            random_state=rng,
        )
        vals = seeds.bootstrap_distribution + (vals - np.mean(observed))
    lo, hi = (float(q) for q in np.percentile(vals, [2.5, 97.5]))
    return ValueStatistic(value, labels, per_run, float(np.mean(per_run)), lo, hi, vals)


def _ordered(a: np.ndarray, b: np.ndarray, direction: int) -> np.ndarray:
    """1 where (noisier a, less noisy b) are in the predicted order, 0.5 on ties, else 0."""
    good = a < b if direction < 0 else a > b
    return np.where(a == b, 0.5, good.astype(np.float64))


@dataclass
class Ordering:
    """How strongly a check's predicted ordering is supported."""

    status: Status
    confidence: float  # joint share of replicates with every pair in the predicted order
    pair_shares: dict[tuple[Any, Any], float]
    seed_share: float | None  # share of one-run-per-value choices in order (seeds only)
    replicated_noise: bool  # some replicate differs (noise or seeds entered)
    joint: np.ndarray  # (B,) bool: replicate has every pair in the predicted order


def ordering(
    values: list[ValueStatistic], direction: int, lo: float = LO, hi: float = HI
) -> Ordering:
    """Pair and joint shares and the verdict (see module doc); `values` from noisiest."""
    pair: dict[tuple[Any, Any], float] = {}
    joint = np.ones(values[0].replicates.size, dtype=bool)
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            o = _ordered(a.replicates, b.replicates, direction)
            pair[(a.value, b.value)] = float(o.mean())
            joint &= o == 1.0
    confidence = float(joint.mean())
    if confidence >= hi:
        status: Status = "holds"
    elif min(pair.values()) <= lo / len(pair):
        status = "violated"
    else:
        status = "inconclusive"
    seed_share = None
    if any(len(v.observed) > 1 for v in values):
        combos = list(itertools.islice(itertools.product(*(v.observed for v in values)), 20000))
        ok = [
            all(
                _ordered(np.asarray(c[i]), np.asarray(c[j]), direction) == 1.0
                for i in range(len(c))
                for j in range(i + 1, len(c))
            )
            for c in combos
        ]
        seed_share = float(np.mean(ok))
    varied = any(np.ptp(v.replicates) > 0 for v in values)
    return Ordering(status, confidence, pair, seed_share, varied, joint)
