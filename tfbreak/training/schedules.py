"""Learning-rate schedule (App. G), the run's length and the measurement schedule: dense early,
then periodic. TensorFlow-free, so that a run's size is checked before TensorFlow loads; every
computation here costs O(number of measurements), never O(number of steps)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tfbreak.measure.settings import MeasurementSettings
from tfbreak.validation import ConfigError

MAX_STEPS = 100_000_000
"""The most SGD steps a run may take (10^8; step numbers have 8 digits in arrays/ file names)."""
MAX_MEASUREMENTS = 100_000
"""The most measurements a run may schedule (each costs at least a few gradients)."""


def learning_rate(base: float, epoch: int, decay_epochs: Sequence[int], factor: float) -> float:
    """eta(epoch) = base * factor ** #{m in decay_epochs : epoch >= m}; "divide by 10 after the
    100th epoch" (App. G) is decay_epochs=(100,), factor=0.1 (epoch counts from 0)."""
    return float(base) * float(factor) ** sum(1 for m in decay_epochs if epoch >= m)


def run_length(
    num_train: int, batch_size: int, epochs: float, max_steps: int | None
) -> tuple[int, int]:
    """(steps per epoch, total steps) of a run: round(epochs * (N // S)) steps, at most
    `max_steps`, at least 1. Raises ConfigError naming --epochs when that exceeds MAX_STEPS."""
    steps_per_epoch = num_train // batch_size
    total = epochs * steps_per_epoch
    if max_steps is not None:
        total = min(total, max_steps)
    if total > MAX_STEPS:
        raise ConfigError(
            f"--epochs: {epochs:g} epochs of {steps_per_epoch} steps (--batch_size={batch_size}, "
            f"{num_train} training examples) are {total:.3g} SGD steps; a run takes at most "
            f"{MAX_STEPS:,} (fewer --epochs, or cap them with --max_steps)"
        )
    return steps_per_epoch, max(int(round(total)), 1)


def log_steps(per_decade: int, until: int) -> frozenset[int]:
    """The distinct steps round(10 ** (j / per_decade)) <= until, j = 0, 1, ...: log-spaced
    measurements, `per_decade` per factor of 10 (1, 2, 3, ..., 100, 121, 147, ... for 12)."""
    top = int(math.floor(per_decade * math.log10(until))) + 1 if until >= 1 else 0
    steps = {round(10 ** (j / per_decade)) for j in range(top)}
    return frozenset(s for s in steps if s <= until)


@dataclass(frozen=True)
class MeasurementSchedule:
    """Measure at step 0, at the early steps up to `dense_until` (where the break-even point is
    reached, Sec. 4.1), every `every_steps` steps, and at `last_step` (-1: no last step, e.g.
    the Keras callback's). Early steps: log-spaced (`per_decade` per decade, the default: peaks
    of lambda_1 are early and brief, and a log spacing sees them at the cost of a few dozen
    measurements) or every `dense_every` steps."""

    kind: str
    dense_every: int
    per_decade: int
    dense_until: int
    every_steps: int
    last_step: int
    density_every: int = 0
    _log: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Early steps after the last one are never reached: at most per_decade * 8 of them.
        log = log_steps(self.per_decade, self._early_until) if self.kind == "log" else frozenset()
        object.__setattr__(self, "_log", log)

    @property
    def _early_until(self) -> int:
        return self.dense_until if self.last_step < 0 else min(self.dense_until, self.last_step)

    @classmethod
    def of(
        cls, settings: MeasurementSettings, steps_per_epoch: int, last_step: int
    ) -> MeasurementSchedule:
        """The schedule of `settings` for a run of `steps_per_epoch` (-1: no final step)."""
        return cls(
            kind=settings.measure_schedule,
            dense_every=settings.measure_dense_every,
            per_decade=settings.measure_per_decade,
            dense_until=settings.measure_dense_until,
            every_steps=max(1, round(settings.measure_every_epochs * steps_per_epoch)),
            last_step=last_step,
            density_every=(
                max(1, round(settings.density_every_epochs / settings.measure_every_epochs))
                if settings.density_every_epochs > 0
                else 0
            ),
        )

    def _early(self, step: int) -> bool:
        if self.kind == "log":
            return step in self._log
        return step <= self.dense_until and step % self.dense_every == 0

    def due(self, step: int) -> bool:
        return (
            step == 0 or step == self.last_step or self._early(step) or step % self.every_steps == 0
        )

    def density_due(self, step: int) -> bool:
        """Whether the measurement at `step` includes the SLQ density: every one when
        `density_every` is 0, else step 0, the last step, the powers of 10 up to `dense_until`
        and every `density_every`-th periodic measurement (`density_every_epochs` rounded to a
        multiple of `measure_every_epochs`)."""
        if self.density_every <= 0 or step in (0, self.last_step):
            return True
        if step <= self.dense_until and step == 10 ** round(math.log10(step)):
            return True
        return step % (self.every_steps * self.density_every) == 0

    def _early_count(self) -> int:
        if self.kind == "log":
            return len(self._log)
        return self._early_until // self.dense_every + 1

    def count_bound(self) -> int:
        """An upper bound on `len(self.steps())`, in O(1) after construction."""
        return self._early_count() + max(self.last_step, 0) // self.every_steps + 2

    def check_size(self) -> None:
        """Raise ConfigError naming the flag that schedules most of them when the run would
        measure more than MAX_MEASUREMENTS times."""
        bound = self.count_bound()
        if bound <= MAX_MEASUREMENTS:
            return
        early = self._early_count()
        flag = "measure_dense_every" if early > bound - early else "measure_every_epochs"
        raise ConfigError(
            f"--{flag}: the schedule measures up to {bound:,} times (every {self.every_steps:,} "
            f"of the {self.last_step:,} steps, and {early:,} early steps up to "
            f"--measure_dense_until={self.dense_until}); a run measures at most "
            f"{MAX_MEASUREMENTS:,} times"
        )

    def steps(self) -> list[int]:
        """The steps measured, in order (up to `last_step`): O(number of measurements)."""
        if self.last_step < 0:
            return []
        until = self._early_until
        early = self._log if self.kind == "log" else range(0, until + 1, self.dense_every)
        periodic = range(0, self.last_step + 1, self.every_steps)
        return sorted({0, self.last_step, *early, *periodic})
