"""The break-even point: first step where the LHS of Eq. 1 reaches 1 (paper, Sec. 3).

Eq. 1 (Wu et al., 2018, Thm. 1): SGD is stable along e1_H at θ(t) iff

    (1 − η λ1_H)² + s² η² (N − S) / (S (N − 1)) ≤ 1,

with η the learning rate, λ1_H the top Hessian eigenvalue, s² = Var_i[H_i] the variance over
training examples of the per-example curvature along e1_H, N the training-set size and S the batch
size. The break-even point is where the LHS "becomes equal to 1 for the first time"; on measured
(discrete) trajectories we report the first measurement with LHS >= 1.

Assumptions of this estimator (read the numbers with them in mind):
  * Assumption 1 of the paper: the loss projected on e1_H is quadratic, f(ψ) = Σ_i (ψ − ψ*)² H_i;
    the LHS is exact only under it, and only for the direction e1_H at that step.
  * λ1_H and s² are measured on the fixed Hessian sample (not the full training set), so s² is a
    sample variance over that subset; N and S are the training set and batch sizes from metadata.
  * η is the learning rate in force at the step (metric ``lr``, else metadata ``lr``); momentum,
    weight decay and BatchNorm are not part of Eq. 1.
  * A starting value >= 1 (training initialised in an unstable region, the paper's App. B
    Thm. 2) is reported as a break-even at the first measurement; the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tfbreak.curvature.eq1 import eq1_lhs
from tfbreak.runs import Run, names

Source = Literal["measured", "recomputed"]


@dataclass(frozen=True)
class Eq1Series:
    """LHS of Eq. 1 along a run, as measured (``breakeven/eq1_lhs``) or recomputed here."""

    steps: np.ndarray
    epochs: np.ndarray
    values: np.ndarray
    source: Source


@dataclass(frozen=True)
class BreakEvenPoint:
    """First measurement with Eq. 1 LHS >= 1."""

    step: int
    epoch: float
    value: float
    source: Source
    at_start: bool  # already >= 1 at the first measurement (unstable initialisation)


def _metadata_number(run: Run, key: str) -> float | None:
    v = run.metadata.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def eq1_series(run: Run) -> tuple[Eq1Series | None, str | None]:
    """The run's Eq. 1 LHS series, or (None, reason why it cannot be had).

    Uses ``breakeven/eq1_lhs`` if present; otherwise recomputes it with `eq1_lhs` from rows that
    hold both ``hessian/lambda_1`` and ``breakeven/s2``, η from the row's ``lr`` (else metadata
    ``lr``), N = metadata ``num_train``, S = metadata ``batch_size``.
    """
    steps, epochs, values = run.series(names.BREAKEVEN_EQ1_LHS)
    if np.isfinite(values).any():
        return Eq1Series(steps, epochs, values, "measured"), None
    n = _metadata_number(run, "num_train")
    s = _metadata_number(run, "batch_size")
    lr_meta = _metadata_number(run, "lr")
    rows = [r for r in run.rows if r.get(names.HESSIAN_LAMBDA_1) is not None]
    rows = [r for r in rows if r.get(names.BREAKEVEN_S2) is not None]
    missing = []
    if not rows:
        missing.append(f"rows with both {names.HESSIAN_LAMBDA_1} and {names.BREAKEVEN_S2}")
    if n is None:
        missing.append("metadata num_train")
    if s is None:
        missing.append("metadata batch_size")
    lrs = [r.get(names.LR, lr_meta) for r in rows]
    if any(v is None for v in lrs):
        missing.append(f"{names.LR} (per row or metadata lr)")
    if missing:
        return None, f"no {names.BREAKEVEN_EQ1_LHS} and cannot recompute it: missing " + ", ".join(
            missing
        )
    values = eq1_lhs(
        np.asarray(lrs, dtype=np.float64),
        np.asarray([r[names.HESSIAN_LAMBDA_1] for r in rows], dtype=np.float64),
        np.asarray([r[names.BREAKEVEN_S2] for r in rows], dtype=np.float64),
        n,
        s,
    )
    steps = np.asarray([int(r["step"]) for r in rows], dtype=np.int64)
    epochs = np.asarray(
        [np.nan if r.get("epoch") is None else float(r["epoch"]) for r in rows], dtype=np.float64
    )
    return Eq1Series(steps, epochs, values, "recomputed"), None


def first_break_even(series: Eq1Series) -> BreakEvenPoint | None:
    """First measurement (in step order) with LHS >= 1, or None if it never reaches 1."""
    order = np.argsort(series.steps, kind="stable")
    v = series.values[order]
    with np.errstate(invalid="ignore"):
        hits = np.flatnonzero(v >= 1.0)
    if hits.size == 0:
        return None
    first_finite = np.flatnonzero(np.isfinite(v))
    i = order[hits[0]]
    return BreakEvenPoint(
        step=int(series.steps[i]),
        epoch=float(series.epochs[i]),
        value=float(series.values[i]),
        source=series.source,
        at_start=bool(first_finite.size and hits[0] == first_finite[0]),
    )


def detect_break_even(run: Run) -> tuple[BreakEvenPoint | None, Eq1Series | None, str | None]:
    """(break-even point or None, the Eq. 1 series used or None, message or None) for a run."""
    series, why = eq1_series(run)
    if series is None:
        return None, None, why
    point = first_break_even(series)
    if point is None:
        msg = f"Eq. 1 LHS ({series.source}) stays below 1 (max {np.nanmax(series.values):.4g})"
        return None, series, msg
    return point, series, None
