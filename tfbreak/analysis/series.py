"""Metric series of a run, including derived ones, and their display names (paper notation)."""

from __future__ import annotations

import numpy as np

from tfbreak.runs import Run, names

TRAINING_ACCURACY = "training accuracy"
"""A derived series: the run's finest training accuracy (`training_accuracy_metric`)."""

# Paper notation for figures and tables.
DISPLAY: dict[str, str] = {
    names.HESSIAN_LAMBDA_1: "λ1_H",
    names.HESSIAN_TRACE: "Tr(H)",
    names.K_LAMBDA_1: "λ1_K",
    names.K_LAMBDA_STAR: "λ*_K",
    names.K_RATIO: "λ*_K/λ1_K",
    names.K_TRACE: "Tr(K)",
    names.GRAD_NORM_OVER_TOP5: "||g||/||g5||",
    names.LOSS_DELTA: "ΔL",
    names.BN_GAMMA_NORM: "||γ||",
    names.TRAIN_ACCURACY_SINCE_LAST: "training accuracy (since last measurement)",
    names.TRAIN_ACCURACY_EPOCH: "training accuracy (epoch)",
    names.TEST_ACCURACY: "test accuracy",
    names.TEST_ACCURACY_SUBSET: "test accuracy (fixed subset)",
    names.TRAIN_LOSS_SINCE_LAST: "training loss (since last measurement)",
    names.TRAIN_LOSS_EPOCH: "training loss (epoch)",
    names.TEST_LOSS: "test loss",
    names.TEST_LOSS_SUBSET: "test loss (fixed subset)",
    names.BREAKEVEN_EQ1_LHS: "Eq. 1 LHS",
    names.BREAKEVEN_S2: "s²",
    names.LR: "η",
    TRAINING_ACCURACY: "training accuracy",
}
# Metrics the paper plots on a log y axis (Figs. 4, 5, 7, 14-21).
LOG_SCALE = frozenset(
    {names.HESSIAN_LAMBDA_1, names.K_LAMBDA_1, names.K_TRACE, names.HESSIAN_TRACE}
)


def display(name: str) -> str:
    """Paper notation for a metric name (the name itself if unknown)."""
    return DISPLAY.get(name, name)


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
