"""Learning-rate schedule (App. G) and the measurement schedule: dense early, then per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def learning_rate(base: float, epoch: int, decay_epochs: Sequence[int], factor: float) -> float:
    """eta(epoch) = base * factor ** #{m in decay_epochs : epoch >= m}; "divide by 10 after the
    100th epoch" (App. G) is decay_epochs=(100,), factor=0.1 (epoch counts from 0)."""
    return float(base) * float(factor) ** sum(1 for m in decay_epochs if epoch >= m)


@dataclass(frozen=True)
class MeasurementSchedule:
    """Measure at step 0, every `dense_every` steps up to `dense_until` (the early phase where
    the break-even point is reached, Sec. 4.1), every `every_steps` steps, and at `last_step`."""

    dense_every: int
    dense_until: int
    every_steps: int
    last_step: int

    def due(self, step: int) -> bool:
        return (
            step == 0
            or step == self.last_step
            or (step <= self.dense_until and step % self.dense_every == 0)
            or step % self.every_steps == 0
        )

    def steps(self) -> list[int]:
        return [s for s in range(self.last_step + 1) if self.due(s)]
