"""The spectral density of H by stochastic Lanczos quadrature (Fig. 3; Ghorbani et al. 2019):
phi(t) = (1/n_v) sum_l sum_j w_lj N(t; x_lj, sigma^2) from the Gauss quadrature nodes x_lj and
weights w_lj of a Lanczos run from each random unit vector v_l
(`tfbreak.curvature.algorithms.trace.slq_density`)."""

from __future__ import annotations

from tfbreak.curvature import slq_density
from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class Density(MeasurementPart):
    """The SLQ density of H on the Hessian sample of the last lambda_1 measurement."""

    def measure(self, m: Measurement) -> None:
        s = self.suite.settings
        dens = slq_density(
            self.suite.hessian,
            num_vectors=s.density_vectors,
            steps=s.density_steps,
            seed=m.seed,
            basis=s.lanczos_basis,
        )
        m.arrays[names.ARRAY_HESSIAN_DENSITY_GRID] = dens.grid
        m.arrays[names.ARRAY_HESSIAN_DENSITY] = dens.density
