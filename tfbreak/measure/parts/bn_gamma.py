"""||gamma|| (paper Sec. 4.3): the norm of the scale parameters of the model's last BatchNorm
layer, sqrt(sum_j gamma_j^2)."""

from __future__ import annotations

import tensorflow as tf

from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class GammaNorm(MeasurementPart):
    """||gamma|| of `suite.gammas`; applies to models with BatchNorm."""

    def applies(self) -> bool:
        return bool(self.suite.gammas)

    def measure(self, m: Measurement) -> None:
        squares = [tf.reduce_sum(tf.square(g)) for g in self.suite.gammas]
        m.row[names.BN_GAMMA_NORM] = float(tf.sqrt(tf.add_n(squares)))
