"""Measurement noise and seeds in conjecture verdicts: error bars, bootstrap maxima, windows.

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

Seeds. Runs of one sweep value that differ in metadata ``seed`` are replicates: the value's maximum
is the mean of its runs' maxima. Replicate b of the value adds two sources: the bootstrap over the
runs of the mean of their observed maxima (`scipy.stats.bootstrap`, resampling runs with
replacement: seed-to-seed variation) and the mean over the runs of their measurement-noise
deviations in replicate b; with one run it is that run's replicate b.

Windows. ``whole``: the trajectory (paper's definition); ``before``: measurements at steps
strictly before the run's break-even point (first Eq. 1 LHS >= 1, `breakeven.detect_break_even`);
``after``: measurements at or after it. The split is per run; the series is cut first and then
smoothed, so no smoothed value mixes the two phases.

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
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.stats

from tfbreak.analysis.breakeven import BreakEvenPoint
from tfbreak.analysis.smoothing import Mode, moving_average
from tfbreak.runs import Run, names

Window = Literal["whole", "before", "after"]
WINDOWS: tuple[Window, ...] = ("whole", "before", "after")
WINDOW_TITLE = {
    "whole": "whole trajectory",
    "before": "before break-even",
    "after": "after break-even",
}
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


def window_mask(steps: np.ndarray, window: Window, split: int | None) -> np.ndarray:
    """Boolean mask of the measurements in `window` (`split`: the break-even step)."""
    steps = np.asarray(steps)
    if window == "whole":
        return np.ones(steps.shape, dtype=bool)
    if split is None:
        raise ValueError(f"window {window!r} needs a break-even step")
    return steps < split if window == "before" else steps >= split


@dataclass(frozen=True)
class NoisyMaximum:
    """Maximum of one metric of one run in one window (raw or smoothed), with its interval."""

    value: float
    step: int
    epoch: float
    lo: float  # 2.5 percentile of the re-centred bootstrap maxima
    hi: float  # 97.5 percentile
    replicates: np.ndarray  # (B,) re-centred bootstrap maxima
    noisy: bool  # True if a standard-error series entered the bootstrap
    n: int  # measurements in the window


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
) -> NoisyMaximum | None:
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
    se = None if stderr is None else np.nan_to_num(np.abs(stderr), nan=0.0)
    noisy = se is not None and bool(np.any(se[np.isfinite(v)] > 0))
    if noisy:
        rng = rng if rng is not None else np.random.default_rng(0)
        x = v[None, :] + se[None, :] * rng.standard_normal((replicates, v.size))
        if smooth:
            x = moving_average(x, window, mode)
        reps = np.nanmax(np.where(np.isfinite(x), x, -np.inf), axis=1)
        reps = reps - np.median(reps) + m
        lo, hi = (float(q) for q in np.percentile(reps, [2.5, 97.5]))
    else:
        reps = np.full(replicates, m)
        lo = hi = m
    return NoisyMaximum(
        m, int(steps[idx]), float(epochs[idx]), lo, hi, reps, noisy, int(np.isfinite(v).sum())
    )


@dataclass
class RunWindows:
    """One run's break-even split and its noisy maxima per (metric, window, smoothed)."""

    breakeven: BreakEvenPoint | None
    split_reason: str | None  # why before/after are unavailable (no break-even point)
    maxima: dict[tuple[str, Window, bool], NoisyMaximum | None] = field(default_factory=dict)
    reasons: dict[tuple[str, Window, bool], str] = field(default_factory=dict)
    has_stderr: dict[str, bool] = field(default_factory=dict)


def run_windows(
    run: Run,
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    breakeven: BreakEvenPoint | None,
    split_reason: str | None,
    *,
    window: int | None = None,
    mode: Mode = "trailing",
    replicates: int = DEFAULT_REPLICATES,
    rng: np.random.Generator | None = None,
) -> RunWindows:
    """Noisy maxima of each metric in `series` ({metric: (steps, epochs, values)}) for the three
    windows, raw and (if `window` > 1) smoothed."""
    rng = rng if rng is not None else np.random.default_rng(0)
    out = RunWindows(breakeven, split_reason)
    split = breakeven.step if breakeven is not None else None
    kinds = [False, True] if window and window > 1 else [False]
    for metric, (steps, epochs, values) in series.items():
        se = stderr_series(run, metric, steps)
        out.has_stderr[metric] = se is not None
        for w in WINDOWS:
            for smoothed in kinds:
                key = (metric, w, smoothed)
                if w != "whole" and split is None:
                    out.maxima[key] = None
                    out.reasons[key] = split_reason or "no break-even point detected"
                    continue
                mask = window_mask(steps, w, split)
                res = noisy_maximum(
                    steps[mask],
                    epochs[mask],
                    values[mask],
                    None if se is None else se[mask],
                    window=window if smoothed else None,
                    mode=mode,
                    replicates=replicates,
                    rng=rng,
                )
                out.maxima[key] = res
                if res is None:
                    where = {"whole": "", "before": " before", "after": " at/after"}[w]
                    out.reasons[key] = f"no measurement{where}" + (
                        f" the break-even step {split}" if w != "whole" else ""
                    )
    return out


@dataclass
class ValueMaximum:
    """The maximum of one sweep value: mean over its runs (seeds), with an interval."""

    value: Any
    labels: list[str]
    maxima: list[float]  # observed per run
    mean: float
    lo: float
    hi: float
    replicates: np.ndarray  # (B,)


def value_maximum(
    value: Any, labels: list[str], runs: list[NoisyMaximum], rng: np.random.Generator
) -> ValueMaximum:
    """Mean over runs of their maxima, with replicates of seed-to-seed variation (a bootstrap of
    the mean over runs, when there are several) and of measurement noise (see module doc)."""
    reps = np.stack([r.replicates for r in runs])  # (n_runs, B)
    maxima = [r.value for r in runs]
    observed = np.asarray(maxima)
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
    return ValueMaximum(value, labels, maxima, float(np.mean(maxima)), lo, hi, vals)


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
    values: list[ValueMaximum], direction: int, lo: float = LO, hi: float = HI
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
    if any(len(v.maxima) > 1 for v in values):
        combos = list(itertools.islice(itertools.product(*(v.maxima for v in values)), 20000))
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
