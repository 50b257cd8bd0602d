"""What every measurement part shares: the point being measured (`Measurement`) and the base
class of an implementation (`MeasurementPart`)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from tfbreak.runs import names

if TYPE_CHECKING:
    from tfbreak.curvature.sharding import Batch
    from tfbreak.measure.suite import MeasurementSuite


class Measurement:
    """One point of the trajectory being measured: `step`, learning rate `lr`, the `seed` of
    its random start vectors (drawn from (run seed, step)), the metrics `row` and `arrays` the
    parts fill in, and `results`: what a part leaves for the parts after it, by part name
    (e.g. ``results["hessian"]``: the Lanczos result and the curvatures along e1_H)."""

    def __init__(self, suite: MeasurementSuite, step: int, lr: float):
        self.step, self.lr = int(step), float(lr)
        self.seed = int(np.random.SeedSequence([suite.seed, self.step]).generate_state(1)[0])
        self.row: dict[str, Any] = {names.LR: lr}
        self.arrays: dict[str, np.ndarray] = {}
        self.results: dict[str, Any] = {}
        self._samples = suite.samples

    @cached_property
    def probe(self) -> Batch:
        """The probe batch of this step (S training examples; Delta L, ||g|| / ||g_5||)."""
        return self._samples.probe(self.step)


class MeasurementPart:
    """The implementation of one `Part`: built once per suite (inside its distribution
    strategy's scope), then `measure(m)` at every measurement that includes it. `suite` gives
    what the parts share: variables, loss, settings, samples, the Hessian operators, N and S."""

    def __init__(self, suite: MeasurementSuite):
        self.suite = suite

    def applies(self) -> bool:
        """For parts that are not selectable: whether this model and data have the quantity."""
        return True

    def measure(self, m: Measurement) -> None:
        raise NotImplementedError
