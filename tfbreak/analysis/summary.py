"""What the conjecture verdicts read from each run of a sweep (paper, Sec. 3 and Sec. 4.2).

Per run: the maximum of every conjecture metric over its trajectory, raw and smoothed (Sec. 4.2
quotes raw maxima such as "max(λ1_K) = 0.68"), and the noisy maxima (and late medians) with
bootstrap replicates in the four windows — whole trajectory, before and after the run's
break-even point (Eq. 1), the second half of training (see `tfbreak.analysis.noise`).
Measurements at step 0 are left out of every maximum: the initial point is the same for every
learning rate and batch size (runs of a seed share it), so a maximum attained there says nothing
about how SGD's hyperparameters steer the trajectory, and a tie at it is no evidence either way.
Diverged and failed runs are summarised too but marked excluded: the conjectures are stated for
trajectories that converge (Sec. 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfbreak.analysis import noise
from tfbreak.analysis.breakeven import detect_break_even
from tfbreak.analysis.noise import RunWindows, Statistic
from tfbreak.analysis.series import get_series
from tfbreak.analysis.smoothing import Maxima, Mode, maxima
from tfbreak.analysis.sweep import Sweep
from tfbreak.runs import Run, names

EXCLUDED_STATUSES = ("diverged", "failed")
INITIAL_STEP = 0
# What the conjectures compare (Sec. 3): λ1_H, λ1_K (Conj. 1), λ*_K/λ1_K, Tr(K) (Conj. 2).
CONJECTURE_METRICS = (names.HESSIAN_LAMBDA_1, names.K_LAMBDA_1, names.K_RATIO, names.K_TRACE)


def after_initial_step(
    steps: np.ndarray, epochs: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The measurements of a series after the shared initial point (step > 0)."""
    keep = np.asarray(steps) > INITIAL_STEP
    return steps[keep], epochs[keep], values[keep]


@dataclass
class RunSummary:
    """One run's maxima of the conjecture metrics and its noisy maxima per window."""

    run: Run
    label: str
    value: Any  # sweep value
    lr: Any
    batch_size: Any
    status: str
    stop_reason: str | None
    maxima: dict[str, Maxima]
    windows: RunWindows | None = None  # noisy statistics per (metric, window, statistic)
    seed: Any = None

    @property
    def excluded(self) -> bool:
        """Diverged or failed: not used in the verdicts (Sec. 3 concerns converging runs)."""
        return self.status in EXCLUDED_STATUSES

    @property
    def usable(self) -> bool:
        return not self.excluded


def summarize_run(
    run: Run,
    label: str,
    value: Any,
    window: int | None = None,
    mode: Mode = "trailing",
    *,
    replicates: int = noise.DEFAULT_REPLICATES,
    seed: Sequence[int] = (0,),
) -> RunSummary:
    """Maxima (raw and smoothed) of the conjecture metrics for one run, and their noisy
    statistics with bootstrap replicates in the four windows (`noise.run_windows`)."""
    series = {m: after_initial_step(*get_series(run, m)) for m in CONJECTURE_METRICS}
    mx = {m: maxima(*series[m], window=window, mode=mode) for m in CONJECTURE_METRICS}
    point, _, why = detect_break_even(run)
    windows = noise.run_windows(
        run,
        series,
        point,
        None if point is not None else (why or "no break-even point detected"),
        window=window,
        mode=mode,
        replicates=replicates,
        seed=seed,
    )
    return RunSummary(
        run=run,
        label=label,
        value=value,
        lr=run.metadata.get("lr"),
        batch_size=run.metadata.get("batch_size"),
        status=run.status,
        stop_reason=run.stop_reason,
        maxima=mx,
        windows=windows,
        seed=run.metadata.get("seed"),
    )


def summarize_sweep(
    sweep: Sweep,
    window: int | None = None,
    mode: Mode = "trailing",
    *,
    replicates: int = noise.DEFAULT_REPLICATES,
    seed: int = 0,
) -> list[RunSummary]:
    """`summarize_run` for every run of the sweep, in sweep order (bootstrap seeded by `seed`
    and the run's position: reports are reproducible)."""
    return [
        summarize_run(
            r,
            sweep.label(r),
            sweep.value(r),
            window,
            mode,
            replicates=replicates,
            seed=(seed, i),
        )
        for i, r in enumerate(sweep.runs)
    ]


@dataclass(frozen=True)
class PeakPhase:
    """Where usable runs attain their whole-trajectory maximum of one metric, relative to their
    break-even point: early (strictly before it) or late (at or after it)."""

    before: tuple[str, ...]  # run labels
    after: tuple[str, ...]
    steps: tuple[tuple[str, int, int], ...]  # (run label, step of the maximum, break-even step)


def peak_phase(summaries: list[RunSummary], metric: str, statistic: Statistic) -> PeakPhase:
    """`PeakPhase` of `metric` over the usable runs that have a break-even point and a maximum."""
    before: list[str] = []
    after: list[str] = []
    steps: list[tuple[str, int, int]] = []
    for s in summaries:
        if not s.usable or s.windows is None or s.windows.breakeven is None:
            continue
        m = s.windows.values.get((metric, "whole", statistic))
        if m is None or m.step is None:
            continue
        be = s.windows.breakeven.step
        (before if m.step < be else after).append(s.label)
        steps.append((s.label, m.step, be))
    return PeakPhase(tuple(before), tuple(after), tuple(steps))


def without_break_even(summaries: list[RunSummary]) -> list[str]:
    """Labels of the usable runs without a detected break-even point (no before/after split)."""
    return [
        s.label
        for s in summaries
        if s.usable and s.windows is not None and s.windows.breakeven is None
    ]
