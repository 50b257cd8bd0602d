"""Learning-rate schedule (App. G) and the measurement schedule: dense early, then periodic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tfbreak.measure.settings import MeasurementSettings


def learning_rate(base: float, epoch: int, decay_epochs: Sequence[int], factor: float) -> float:
    """eta(epoch) = base * factor ** #{m in decay_epochs : epoch >= m}; "divide by 10 after the
    100th epoch" (App. G) is decay_epochs=(100,), factor=0.1 (epoch counts from 0)."""
    return float(base) * float(factor) ** sum(1 for m in decay_epochs if epoch >= m)


def log_steps(per_decade: int, until: int) -> frozenset[int]:
    """The distinct steps round(10 ** (j / per_decade)) <= until, j = 0, 1, ...: log-spaced
    measurements, `per_decade` per factor of 10 (1, 2, 3, ..., 100, 121, 147, ... for 12)."""
    top = int(math.floor(per_decade * math.log10(until))) + 1 if until >= 1 else 0
    steps = {round(10 ** (j / per_decade)) for j in range(top)}
    return frozenset(s for s in steps if s <= until)


@dataclass(frozen=True)
class MeasurementSchedule:
    """Measure at step 0, at the early steps up to `dense_until` (where the break-even point is
    reached, Sec. 4.1), every `every_steps` steps, and at `last_step`. Early steps: log-spaced
    (`per_decade` per decade, the default: peaks of lambda_1 are early and brief, and a log
    spacing sees them at the cost of a few dozen measurements) or every `dense_every` steps."""

    kind: str
    dense_every: int
    per_decade: int
    dense_until: int
    every_steps: int
    last_step: int
    density_every: int = 0
    _early: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "log":
            early = log_steps(self.per_decade, self.dense_until)
        else:
            early = frozenset(range(0, self.dense_until + 1, self.dense_every))
        object.__setattr__(self, "_early", early)

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

    def due(self, step: int) -> bool:
        return (
            step == 0
            or step == self.last_step
            or step in self._early
            or step % self.every_steps == 0
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

    def steps(self) -> list[int]:
        return [s for s in range(self.last_step + 1) if self.due(s)]
