"""Delta L (paper Sec. 4.1): the loss on the probe batch before minus after the SGD step that
batch would take at the current learning rate, L(theta) - L(theta + Delta theta), nothing
applied to the model (> 0: the step lowers the loss)."""

from __future__ import annotations

import tensorflow as tf

from tfbreak.curvature import DeltaLoss
from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class DeltaL(MeasurementPart):
    """Delta L of the run's own SGD update (`suite.update_fn`) on the probe batch."""

    def __init__(self, suite):
        super().__init__(suite)
        self.delta_loss = DeltaLoss(suite.variables, suite.loss_fn, strategy=suite.strategy)

    def measure(self, m: Measurement) -> None:
        update = self.suite.update_fn(m.probe, tf.constant(m.lr, tf.float32))
        m.row[names.LOSS_DELTA] = self.delta_loss(m.probe, update)
