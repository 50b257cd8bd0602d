"""Tr(H) by Hutchinson's estimator, E_v[v^T H v] over Rademacher probes v, on the Hessian sample
of the last lambda_1 measurement (`tfbreak.curvature.algorithms.trace`)."""

from __future__ import annotations

from tfbreak.curvature import hutchinson_trace
from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class Trace(MeasurementPart):
    """Tr(H) and the standard error of its probes' mean."""

    def measure(self, m: Measurement) -> None:
        samples = self.suite.settings.trace_samples
        est = hutchinson_trace(self.suite.hessian, num_samples=samples, seed=m.seed)
        m.row[names.HESSIAN_TRACE] = est.mean
        m.row[names.HESSIAN_TRACE_STDERR] = est.stderr
