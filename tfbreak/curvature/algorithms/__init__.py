"""Algorithms that take an operator: Lanczos (top eigenpairs), Hutchinson (trace), stochastic
Lanczos quadrature (spectral density), the Gram spectrum of K and its jackknife."""

from tfbreak.curvature.algorithms.gram import CovarianceSpectrum, covariance_spectrum
from tfbreak.curvature.algorithms.jackknife import CovarianceJackknife, jackknife
from tfbreak.curvature.algorithms.lanczos import (
    LanczosResult,
    LanczosWarning,
    lanczos,
    lanczos_tridiagonal,
    lanczos_tridiagonals,
)
from tfbreak.curvature.algorithms.trace import (
    SpectralDensity,
    TraceEstimate,
    hutchinson_trace,
    slq_density,
)

__all__ = [
    "CovarianceJackknife",
    "CovarianceSpectrum",
    "LanczosResult",
    "LanczosWarning",
    "SpectralDensity",
    "TraceEstimate",
    "covariance_spectrum",
    "hutchinson_trace",
    "jackknife",
    "lanczos",
    "lanczos_tridiagonal",
    "lanczos_tridiagonals",
    "slq_density",
]
