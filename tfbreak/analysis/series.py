"""Metric series of a run, including derived ones, and their display names (paper notation)."""

from __future__ import annotations

import numpy as np

from tfbreak.runs import Run, names

TRAINING_ACCURACY = "training accuracy"
"""A derived series: the run's finest training accuracy (`training_accuracy_metric`)."""

DERIVED_LABELS: dict[str, str] = {TRAINING_ACCURACY: "training accuracy"}
"""Display names of the derived series (metrics have theirs in `tfbreak.runs.names`)."""
LOG_SCALE = frozenset(name for name, m in names.METRICS.items() if m.log_scale)
"""Metrics the paper plots on a log y axis (Figs. 4, 5, 7, 14-21)."""


def display(name: str) -> str:
    """Paper notation for a metric or derived series name (the name itself if unknown)."""
    return DERIVED_LABELS.get(name) or names.label(name)


def math_display(name: str) -> str:
    """Math text for a figure axis (matplotlib) of a metric or derived series name."""
    return DERIVED_LABELS.get(name) or names.math_label(name)


def training_accuracy_metric(run: Run) -> str:
    """The run's finest training-accuracy series, never a mix of two: the accuracy of the steps
    since the previous measurement where it was recorded, else the accuracy per epoch."""
    steps, _, values = run.series(names.TRAIN_ACCURACY_SINCE_LAST)
    if np.isfinite(values).any():
        return names.TRAIN_ACCURACY_SINCE_LAST
    return names.TRAIN_ACCURACY_EPOCH


def get_series(run: Run, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`run.series(name)`, except ``K/ratio`` is derived as λ*_K/λ1_K per row when not stored,
    and `TRAINING_ACCURACY` reads `training_accuracy_metric(run)`."""
    if name == TRAINING_ACCURACY:
        name = training_accuracy_metric(run)
    steps, epochs, values = run.series(name)
    if name == names.K_RATIO and not np.isfinite(values).any():
        rows = [
            r
            for r in run.rows
            if r.get(names.K_LAMBDA_STAR) is not None and r.get(names.K_LAMBDA_1) is not None
        ]
        if rows:
            steps = np.asarray([int(r["step"]) for r in rows], dtype=np.int64)
            epochs = np.asarray(
                [np.nan if r.get("epoch") is None else r["epoch"] for r in rows], dtype=np.float64
            )
            lam1 = np.asarray([r[names.K_LAMBDA_1] for r in rows], dtype=np.float64)
            lstar = np.asarray([r[names.K_LAMBDA_STAR] for r in rows], dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(lam1 > 0, lstar / lam1, np.nan)
    return steps, epochs, values


def has_series(run: Run, name: str) -> bool:
    """True if the run has at least one finite value of `name` (derived ratio included)."""
    return bool(np.isfinite(get_series(run, name)[2]).any())
