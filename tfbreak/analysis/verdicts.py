"""Verdict rules on Conjectures 1 and 2 over a sweep of η or S (paper, Sec. 3 and Sec. 4.2).

Conjecture 1 (variance reduction): max λ1_H and max λ1_K along the trajectory are smaller for a
larger learning rate η or a smaller batch size S.
Conjecture 2 (pre-conditioning): max λ*_K/λ1_K is larger, and max Tr(K) smaller, for a larger η or
a smaller S. (The Hessian half, λ*_H/λ1_H and Tr(H), is not tested: the paper leaves it too.)

How a check is decided (one check per metric):
  * Runs are ordered from the noisiest to the least noisy SGD: η descending, or S ascending.
  * The maximum is over the raw measurements of each run after step 0 (Sec. 4.2 quotes raw
    maxima; the initial point is shared by every run of a seed, see `summary`). The check is
    repeated on robust maxima (of the 3-point running median: one outlying measurement cannot
    make them) and, if a smoothing window is given, on smoothed maxima, reported alongside.
  * Several runs with the same sweep value (seeds) are averaged (mean of their maxima).
  * "holds": strictly monotone in the predicted direction over ALL pairs of sweep values;
    "violated": some pair is strictly reversed — the pairs are named; a tie is never a
    violation (it makes the check inconclusive, with the tied pairs named);
    "inconclusive": fewer than 2 usable sweep values, the metric is missing, the sweep varies
    something other than exactly one of η / S, or (for K metrics) K was measured with different
    K_M / K_L between runs. Diverged and failed runs are excluded (the conjectures are stated for
    trajectories that converge, Sec. 3) and the exclusion is noted.
A conjecture's overall verdict: violated if any of its checks is violated, holds if all hold,
inconclusive otherwise.

These literal verdicts ignore measurement noise. Alongside them, every check is repeated in four
windows — the whole trajectory, before and after each run's break-even point, the second half of
training — on the window's statistics (maxima; smoothed maxima with a smoothing window; medians
in the second half), with bootstrap intervals over measurement noise (standard-error series) and
seeds, and a verdict with a confidence (holds / violated / inconclusive, see
`tfbreak.analysis.noise` for the exact rules): `Check.windows`, `Verdict.windows`, keyed by
(window, statistic).

The rules return data, not sentences: statuses, the compared values (noisiest first), violated
pairs as sweep values and, where a check cannot be decided, a `Reason` (a short code with the data
its sentence needs). `tfbreak.report.prose` words them, `tfbreak.report.tables` tabulates them.
The one text passed through: a ``window_missing`` reason carries, per run, the message with which
`noise.run_windows` / `breakeven.detect_break_even` say why the run has no maximum in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tfbreak.analysis import noise
from tfbreak.analysis.noise import WINDOWS, Statistic, ValueStatistic, Window, window_statistics
from tfbreak.analysis.summary import RunSummary
from tfbreak.analysis.sweep import Sweep
from tfbreak.runs import names

Status = noise.Status
WindowKey = tuple[Window, Statistic]

# (conjecture, metric, predicted direction as noise increases: -1 decreases, +1 increases)
CHECKS: tuple[tuple[int, str, int], ...] = (
    (1, names.HESSIAN_LAMBDA_1, -1),
    (1, names.K_LAMBDA_1, -1),
    (2, names.K_RATIO, +1),
    (2, names.K_TRACE, -1),
)
K_METRICS = frozenset({names.K_LAMBDA_1, names.K_RATIO, names.K_TRACE})

ReasonCode = Literal[
    "single_run",  # one run: nothing to compare
    "varies_other",  # the sweep varies `keys`, not η or S
    "no_eta_or_s",  # the runs do not differ in η or S
    "also_varies",  # besides `axis` the sweep varies `keys`
    "k_settings_differ",  # K measured with different K_M / K_L across runs
    "metric_missing",  # no run measured the metric
    "too_few_values",  # fewer than 2 usable sweep values; `values` are those there are
    "window_missing",  # `runs`: (label, why) of runs without a maximum in the window
]


@dataclass(frozen=True)
class Reason:
    """Why a check is inconclusive: a code and the data its sentence needs."""

    code: ReasonCode
    axis: str | None = None
    keys: tuple[str, ...] = ()  # hyperparameters (varies_other, also_varies)
    values: tuple[Any, ...] = ()  # sweep values (too_few_values)
    runs: tuple[tuple[str, str], ...] = ()  # (run label, why) (window_missing)


@dataclass(frozen=True)
class Note:
    """Something a reader of the verdicts must know: a run `excluded` (diverged/failed), a run
    only `partial` (still running, stopped), or `all_inconclusive` (the sweep's `reason`)."""

    code: Literal["excluded", "partial", "all_inconclusive"]
    run: RunSummary | None = None
    reason: Reason | None = None


@dataclass(frozen=True)
class ValueMean:
    """One sweep value in a literal check: mean of its runs' maxima."""

    value: Any
    mean: float
    runs: int


@dataclass(frozen=True)
class Comparison:
    """Literal comparison of one metric's maxima across the sweep (raw or smoothed maxima)."""

    status: Status
    values: tuple[ValueMean, ...] = ()  # noisiest first
    violated_pairs: tuple[tuple[Any, Any], ...] = ()  # (noisier, less noisy) sweep values
    reason: Reason | None = None  # too_few_values
    tied_pairs: tuple[tuple[Any, Any], ...] = ()  # equal maxima: neither order


@dataclass
class WindowCheck:
    """Noise-aware verdict of one check in one window, on one statistic."""

    window: Window
    statistic: Statistic
    status: Status
    reason: Reason | None = None  # too_few_values / window_missing
    confidence: float | None = None  # share of bootstrap replicates in the predicted order
    seed_share: float | None = None  # share of seed combinations in the predicted order
    values: list[ValueStatistic] = field(default_factory=list)  # noisiest first
    pair_shares: dict[tuple[Any, Any], float] = field(default_factory=dict)
    joint: np.ndarray | None = None  # (B,) replicate-wise "every pair in order"
    replicated_noise: bool = False  # some replicate differs (standard errors or seeds)

    @property
    def worst_pair(self) -> tuple[Any, Any] | None:
        """The pair of sweep values least often in the predicted order."""
        return min(self.pair_shares, key=self.pair_shares.__getitem__, default=None)


@dataclass
class Check:
    """Verdict of one metric's check within a conjecture."""

    conjecture: int
    metric: str
    direction: int  # predicted change as SGD gets noisier: -1 smaller, +1 larger
    axis: str | None  # the sweep axis ("lr" or "batch_size" when the check was made)
    literal: Comparison  # raw maxima, strict ordering (the paper's rule)
    precondition: Reason | None = None  # why the check could not be made at all
    robust: Comparison | None = None  # the same on robust maxima (3-point running median)
    smoothed: Comparison | None = None  # the same on smoothed maxima
    smoothing_window: int | None = None
    windows: dict[WindowKey, WindowCheck] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return self.literal.status

    @property
    def smoothed_status(self) -> Status | None:
        return None if self.smoothed is None else self.smoothed.status

    @property
    def violated_pairs(self) -> tuple[tuple[Any, Any], ...]:
        return self.literal.violated_pairs


@dataclass
class WindowVerdict:
    """A conjecture's noise-aware verdict in one window, on one statistic."""

    window: Window
    statistic: Statistic
    status: Status
    confidence: float | None  # share of replicates with all its decided checks in order


@dataclass
class Verdict:
    """Overall verdict on one conjecture, with its checks and notes."""

    conjecture: int
    status: Status
    checks: list[Check]
    notes: list[Note]
    windows: dict[WindowKey, WindowVerdict] = field(default_factory=dict)


def noise_order(axis: str, values: list[Any]) -> list[Any]:
    """Sweep values from noisiest to least noisy SGD: η descending / S ascending."""
    return sorted(values, reverse=(axis == "lr"))


def _in_order(noisier: float, quieter: float, direction: int) -> bool:
    """Strictly in the predicted order (direction -1: the noisier value must be smaller)."""
    return noisier < quieter if direction < 0 else noisier > quieter


MaximumKind = Literal["raw", "robust", "smoothed"]


def compare(
    metric: str, direction: int, axis: str, usable: list[RunSummary], kind: MaximumKind
) -> Comparison:
    """The literal rule on raw (robust, smoothed) maxima: strict order over all pairs of values;
    a strictly reversed pair violates it, a tie leaves it undecided."""
    groups: dict[Any, list[float]] = {}
    for s in usable:
        m = getattr(s.maxima[metric], kind)
        if m is not None:
            groups.setdefault(s.value, []).append(m.value)
    if len(groups) < 2:
        reason = Reason("too_few_values", axis=axis, values=tuple(groups))
        return Comparison("inconclusive", reason=reason)
    values = tuple(
        ValueMean(v, float(np.mean(groups[v])), len(groups[v]))
        for v in noise_order(axis, list(groups))
    )
    pairs = [(a, b) for i, a in enumerate(values) for b in values[i + 1 :]]
    tied = tuple((a.value, b.value) for a, b in pairs if a.mean == b.mean)
    violated = tuple(
        (a.value, b.value)
        for a, b in pairs
        if a.mean != b.mean and not _in_order(a.mean, b.mean, direction)
    )
    status: Status = "violated" if violated else ("inconclusive" if tied else "holds")
    return Comparison(status, values, violated, tied_pairs=tied)


def window_check(
    metric: str,
    direction: int,
    axis: str,
    usable: list[RunSummary],
    key: WindowKey,
    rng: np.random.Generator,
) -> WindowCheck:
    """Noise-aware check of one metric in one window (see `tfbreak.analysis.noise`)."""
    w, stat = key
    groups: dict[Any, list[RunSummary]] = {}
    missing: list[tuple[str, str]] = []
    for s in usable:
        if s.windows is None or s.maxima[metric].raw is None:
            continue  # the run never measured the metric: not part of this check
        if s.windows.values.get((metric, w, stat)) is None:
            missing.append((s.label, s.windows.reasons.get((metric, w, stat), "n/a")))
            continue
        groups.setdefault(s.value, []).append(s)
    if missing:
        return WindowCheck(w, stat, "inconclusive", Reason("window_missing", runs=tuple(missing)))
    if len(groups) < 2:
        reason = Reason("too_few_values", axis=axis, values=tuple(groups))
        return WindowCheck(w, stat, "inconclusive", reason)
    values = []
    for v in noise_order(axis, list(groups)):
        runs = groups[v]
        stats = [s.windows.values[(metric, w, stat)] for s in runs]  # type: ignore[union-attr]
        values.append(noise.value_statistic(v, [s.label for s in runs], stats, rng))
    o = noise.ordering(values, direction)
    return WindowCheck(
        w,
        stat,
        o.status,
        None,
        o.confidence,
        o.seed_share,
        values,
        o.pair_shares,
        o.joint,
        o.replicated_noise,
    )


def _combine(checks: list[Check], key: WindowKey) -> WindowVerdict:
    """A conjecture's window verdict: violated if a check is, holds if every check holds."""
    wcs = [c.windows[key] for c in checks if key in c.windows]
    statuses = [c.status for c in wcs]
    if not wcs:
        overall: Status = "inconclusive"
    elif "violated" in statuses:
        overall = "violated"
    elif all(s == "holds" for s in statuses) and len(wcs) == len(checks):
        overall = "holds"
    else:
        overall = "inconclusive"
    joints = [c.joint for c in wcs if c.joint is not None]
    conf = float(np.mean(np.logical_and.reduce(joints))) if joints else None
    return WindowVerdict(key[0], key[1], overall, conf)


def sweep_reason(summaries: list[RunSummary], sweep: Sweep) -> Reason | None:
    """Why no check can be made on this sweep (it must vary exactly one of η, S), or None."""
    if sweep.axis not in ("lr", "batch_size"):
        if len(summaries) < 2:
            return Reason("single_run")
        if sweep.varying:
            return Reason("varies_other", keys=tuple(sweep.varying))
        return Reason("no_eta_or_s")
    others = set(sweep.varying) - {sweep.axis}
    if others:
        return Reason("also_varies", axis=sweep.axis, keys=tuple(sorted(others)))
    return None


def _precondition(
    metric: str, summaries: list[RunSummary], sweep: Sweep, sweep_wide: Reason | None
) -> Reason | None:
    """Why the check of `metric` cannot be made at all, or None."""
    if sweep_wide is not None:
        return sweep_wide
    if metric in K_METRICS and set(sweep.varying_measurement) & {"K_M", "K_L"}:
        return Reason("k_settings_differ")
    if not any(s.maxima[metric].raw is not None for s in summaries):
        return Reason("metric_missing")
    return None


def notes(summaries: list[RunSummary], sweep_wide: Reason | None) -> list[Note]:
    """Excluded and partial runs, and the sweep-wide reason if every check is inconclusive."""
    out = []
    for s in summaries:
        if s.excluded:
            out.append(Note("excluded", run=s))
        elif s.status not in ("completed", "unknown"):
            out.append(Note("partial", run=s))
    if sweep_wide is not None:
        out.append(Note("all_inconclusive", reason=sweep_wide))
    return out


def _overall(checks: list[Check]) -> Status:
    statuses = [c.status for c in checks]
    if "violated" in statuses:
        return "violated"
    return "holds" if all(s == "holds" for s in statuses) else "inconclusive"


def check_conjectures(
    summaries: list[RunSummary],
    sweep: Sweep,
    window: int | None = None,
    *,
    seed: int = 0,
) -> list[Verdict]:
    """Verdicts on Conjectures 1 and 2 for the sweep (see module doc for the rules): the literal
    ones (`Check.status`, `Verdict.status`) and the noise-aware ones per window
    (`Check.windows`, `Verdict.windows`)."""
    smooth = window is not None and window > 1
    keys: list[WindowKey] = [(w, stat) for w in WINDOWS for stat in window_statistics(w, window)]
    usable = [s for s in summaries if s.usable]
    sweep_wide = sweep_reason(summaries, sweep)
    verdicts = []
    for conj in (1, 2):
        checks = []
        for index, (c, metric, direction) in enumerate(CHECKS):
            if c != conj:
                continue
            check = Check(conj, metric, direction, sweep.axis, Comparison("inconclusive"))
            check.precondition = _precondition(metric, summaries, sweep, sweep_wide)
            if check.precondition is not None:
                check.windows = {k: WindowCheck(k[0], k[1], "inconclusive") for k in keys}
                checks.append(check)
                continue
            assert sweep.axis is not None
            check.literal = compare(metric, direction, sweep.axis, usable, "raw")
            check.robust = compare(metric, direction, sweep.axis, usable, "robust")
            if smooth:
                check.smoothed = compare(metric, direction, sweep.axis, usable, "smoothed")
                check.smoothing_window = window
            for key in keys:
                rng = np.random.default_rng(noise.key_seed((seed, 7919), index, key))
                check.windows[key] = window_check(metric, direction, sweep.axis, usable, key, rng)
            checks.append(check)
        verdicts.append(
            Verdict(
                conj,
                _overall(checks),
                checks,
                notes(summaries, sweep_wide),
                {key: _combine(checks, key) for key in keys},
            )
        )
    return verdicts
