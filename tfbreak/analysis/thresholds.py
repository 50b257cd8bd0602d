"""Epochs at which training accuracy first exceeds a threshold (vertical lines of Figs. 4, 5, 6).

Paper, Fig. 4 caption: "Vertical lines mark epochs at which the training accuracy is larger (for
the first time) than a manually picked threshold". "Larger" is strict: the first measurement with
accuracy > threshold. Sec. 4.2 uses 60% (CIFAR-10) and 75% (IMDB); the report defaults to both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfbreak.analysis.series import TRAINING_ACCURACY, get_series
from tfbreak.runs import Run


@dataclass(frozen=True)
class Crossing:
    """First measurement at which a series is strictly above `threshold`."""

    threshold: float
    step: int
    epoch: float
    value: float


def first_crossing(
    steps: np.ndarray, epochs: np.ndarray, values: np.ndarray, threshold: float
) -> Crossing | None:
    """First (in step order) value strictly greater than `threshold`; None if never (NaN never)."""
    order = np.argsort(np.asarray(steps), kind="stable")
    v = np.asarray(values, dtype=np.float64)[order]
    with np.errstate(invalid="ignore"):
        above = np.flatnonzero(v > threshold)
    if above.size == 0:
        return None
    i = order[above[0]]
    return Crossing(float(threshold), int(steps[i]), float(epochs[i]), float(values[i]))


def accuracy_crossings(
    run: Run, thresholds: list[float], metric: str = TRAINING_ACCURACY
) -> dict[float, Crossing | None]:
    """First crossing of each threshold by the run's training accuracy (None: never / missing):
    by default its finest series (`series.training_accuracy_metric`), one series only."""
    steps, epochs, values = get_series(run, metric)
    return {t: first_crossing(steps, epochs, values, t) for t in thresholds}
