"""The overlap of the gradient with the top Hessian eigenvector, |<g, e1_H>| / ||g||, for the
mini-batch gradient g of the probe batch: how much of the step lies along the sharpest direction
(early in training the gradient lies in the top Hessian subspace, Gur-Ari et al. 2018; the
break-even point is set by that direction, paper Sec. 3)."""

from __future__ import annotations

import numpy as np

from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class GradientOverlap(MeasurementPart):
    """|cos(g, e1_H)| from the "hessian" part's top eigenvector (unit norm, sign arbitrary)."""

    def measure(self, m: Measurement) -> None:
        e1 = m.results["hessian"].lanczos.eigenvectors[0]
        g = np.asarray(self.suite.gradients.minibatch(m.probe), dtype=np.float64)
        norm = float(np.linalg.norm(g))
        m.row[names.GRAD_OVERLAP_E1_H] = abs(float(g @ e1)) / norm if norm > 0 else float("nan")
