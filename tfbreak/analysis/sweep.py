"""A sweep: runs that differ in one hyperparameter (η or S, paper Sec. 4.2), with labels.

The swept axis comes from metadata ``sweep.axis`` when all runs agree on it; otherwise it is
inferred from the training hyperparameters that differ between runs (`TRAINING_KEYS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfbreak.runs import Run

# Hyperparameters that define a training trajectory (compared to find what a sweep varies).
TRAINING_KEYS = (
    "model",
    "dataset",
    "num_train",
    "lr",
    "batch_size",
    "momentum",
    "weight_decay",
    "bn_mode",
)
# Measurement settings: differences change what λ_K means (App. C), reported separately.
MEASUREMENT_KEYS = ("K_L", "K_M", "hessian_sample_size")
AXIS_SYMBOL = {"lr": "lr", "batch_size": "S"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclass
class Sweep:
    """Runs of one sweep, their labels, and what varies between them."""

    runs: list[Run]
    axis: str | None  # "lr", "batch_size", another key, or None (single run / nothing varies)
    varying: list[str]  # training keys whose values differ between runs
    varying_measurement: list[str]
    labels: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def value(self, run: Run) -> Any:
        """The run's value on the sweep axis (metadata ``sweep.value`` or the metadata key)."""
        if self.axis is None:
            return None
        sw = run.sweep
        if sw is not None and sw[0] == self.axis:
            return sw[1]
        return run.metadata.get(self.axis)

    def label(self, run: Run) -> str:
        return self.labels[self.runs.index(run)]


def _distinct(runs: list[Run], key: str) -> list[Any]:
    seen: list[Any] = []
    for r in runs:
        v = r.metadata.get(key)
        if v not in seen:
            seen.append(v)
    return seen


def make_sweep(runs: list[Run]) -> Sweep:
    """Determine the sweep axis and a label per run (``lr=0.1``, ``S=128``, else the dir name)."""
    if not runs:
        raise ValueError("a sweep needs at least one run")
    varying = [k for k in TRAINING_KEYS if len(_distinct(runs, k)) > 1]
    varying_meas = [k for k in MEASUREMENT_KEYS if len(_distinct(runs, k)) > 1]
    notes: list[str] = []
    runs = list(runs)
    axes = {r.sweep[0] for r in runs if r.sweep is not None}
    axis: str | None = None
    if len(axes) == 1 and all(r.sweep is not None for r in runs):
        axis = next(iter(axes))
    elif len(axes) > 1:
        notes.append(f"runs disagree on metadata sweep.axis ({sorted(axes)}); inferred instead")
    if axis is None and len(varying) == 1:
        axis = varying[0]
    elif axis is None and len(varying) > 1:
        notes.append(f"runs differ in several hyperparameters: {', '.join(varying)}")
    sweep = Sweep(runs, axis, varying, varying_meas, notes=notes)
    if axis is not None:
        vals = [sweep.value(r) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            order = sorted(range(len(runs)), key=lambda i: (vals[i], runs[i].name))
            sweep.runs = runs = [runs[i] for i in order]
    labels = []
    for r in runs:
        if axis is not None:
            labels.append(f"{AXIS_SYMBOL.get(axis, axis)}={_fmt(sweep.value(r))}")
        else:
            labels.append(r.name)
    # Disambiguate repeated labels (e.g. several seeds per value).
    dup = [labels.count(lab) > 1 for lab in labels]
    for i, lab in enumerate(labels):
        if dup[i] and varying_meas:
            extra = ", ".join(f"{k}={_fmt(runs[i].metadata.get(k))}" for k in varying_meas)
            labels[i] = f"{lab} ({extra})"
    dup = [labels.count(lab) > 1 for lab in labels]
    for i, lab in enumerate(labels):
        if dup[i]:
            seed = runs[i].metadata.get("seed")
            labels[i] = f"{lab} (seed {seed})" if seed is not None else f"{lab} ({runs[i].name})"
    if len(set(labels)) < len(labels):
        labels = [f"{lab} ({r.name})" for lab, r in zip(labels, runs, strict=True)]
    sweep.labels = labels
    return sweep
