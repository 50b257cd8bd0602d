"""What changes how a sweep's verdicts read (paper, Sec. 3 and 4.2), found in its runs.

* Truncated runs: trained for fewer steps than their epochs (``--max_steps``): metadata
  ``total_steps`` below ``config.epochs`` × ``steps_per_epoch``. The conjectures concern whole
  trajectories; a maximum of the first steps says nothing about the rest.
* Excluded runs (diverged, failed: Sec. 3 is about trajectories that converge) and partial ones
  (still running, stopped): their maxima cover the measured part only.
* One run per sweep value: the intervals then hold measurement noise only, not the variation
  between seeds.
* Measurement density: a maximum of more noisy measurements is larger, so maxima of runs measured
  at different numbers of points differ for that reason alone (`tfbreak.analysis.noise`).

Data only; `tfbreak.report.prose` words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfbreak.analysis.summary import CONJECTURE_METRICS, RunSummary
from tfbreak.runs import Run

DENSITY_RATIO = 1.2  # measurement counts differing by more than this factor are flagged


@dataclass(frozen=True)
class Truncation:
    """A run trained for fewer steps than its epochs: `steps` of `planned`."""

    steps: int
    planned: int
    steps_per_epoch: float
    max_steps: int | None  # the --max_steps that cut it, when the config says so

    @property
    def epochs(self) -> float:
        return self.steps / self.steps_per_epoch

    @property
    def planned_epochs(self) -> float:
        return self.planned / self.steps_per_epoch


def _number(v: Any) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v == v and v > 0
    return float(v) if ok else None


def truncation(run: Run) -> Truncation | None:
    """How the run was cut short of its epochs, or None (whole, or not known from metadata)."""
    md = run.metadata
    config = md.get("config") if isinstance(md.get("config"), dict) else {}
    total, per_epoch = _number(md.get("total_steps")), _number(md.get("steps_per_epoch"))
    epochs = _number(config.get("epochs"))
    if total is None or per_epoch is None or epochs is None:
        return None
    planned = max(int(round(epochs * per_epoch)), 1)
    if total >= planned:
        return None
    cut = _number(config.get("max_steps"))
    return Truncation(int(total), planned, per_epoch, None if cut is None else int(cut))


@dataclass(frozen=True)
class Caveats:
    """Per run label: truncations, exclusions (status, stop reason), partial runs (status); whether
    every sweep value has a single run; measurement counts when they differ."""

    truncated: dict[str, Truncation] = field(default_factory=dict)
    excluded: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)
    single_seed: bool = False
    measurements: dict[str, int] = field(default_factory=dict)  # set when they differ

    def __bool__(self) -> bool:
        return bool(
            self.truncated or self.excluded or self.partial or self.single_seed or self.measurements
        )


def measurement_count(s: RunSummary) -> int:
    """Measurements (after step 0) of the run's most measured conjecture metric."""
    if s.windows is None:
        return 0
    counts = [
        x.n
        for m in CONJECTURE_METRICS
        if (x := s.windows.values.get((m, "whole", "max"))) is not None
    ]
    return max(counts, default=0)


def find_caveats(summaries: list[RunSummary], compared: bool) -> Caveats:
    """The caveats of a sweep's runs; `compared`: the sweep's runs are compared (the verdicts are
    not inconclusive for want of a sweep), so seeds and densities matter."""
    truncated = {s.label: t for s in summaries if (t := truncation(s.run)) is not None}
    excluded = {s.label: (s.status, s.stop_reason) for s in summaries if s.excluded}
    partial = {
        s.label: s.status
        for s in summaries
        if not s.excluded and s.status not in ("completed", "unknown")
    }
    usable = [s for s in summaries if s.usable]
    values = [s.value for s in usable]
    single = compared and len(set(map(repr, values))) == len(values) > 1
    counts = {s.label: measurement_count(s) for s in usable}
    positive = [n for n in counts.values() if n > 0]
    differ = compared and bool(positive) and max(positive) > DENSITY_RATIO * min(positive)
    return Caveats(truncated, excluded, partial, single, counts if differ else {})
