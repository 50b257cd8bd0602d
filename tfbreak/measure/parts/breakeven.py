"""The break-even point's stability test along e1_H (paper Sec. 3, Eq. 1): s^2 = Var_i[H_i], the
variance over the Hessian sample's examples of the curvature along e1_H, the left side
(1 - eta lambda_1^H)^2 + s^2 eta^2 (N - S) / (S (N - 1)) and the largest eta for which it is at
most 1 (`tfbreak.curvature.eq1`)."""

from __future__ import annotations

from tfbreak.curvature.eq1 import eq1_lhs, lr_max
from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class BreakEven(MeasurementPart):
    """s^2, the Eq. 1 LHS and the largest stable eta, from the "hessian" part's results."""

    def measure(self, m: Measurement) -> None:
        curvatures = m.results["hessian"].curvatures
        lam = m.row[names.HESSIAN_LAMBDA_1]
        m.row[names.BREAKEVEN_S2] = curvatures.s2
        args = (curvatures.s2, self.suite.num_train, self.suite.batch_size)
        m.row[names.BREAKEVEN_EQ1_LHS] = float(eq1_lhs(m.row[names.LR], lam, *args))
        m.row[names.BREAKEVEN_LR_MAX] = float(lr_max(lam, *args))
