"""Delete-one jackknife error bars of the K statistics over the L gradients (from the Gram
matrix alone: no gradient is recomputed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfbreak import _native
from tfbreak.curvature.algorithms.gram import CovarianceSpectrum

STATISTICS: tuple[str, ...] = ("lambda_1", "lambda_star", "ratio", "trace")


@dataclass(frozen=True)
class CovarianceJackknife:
    """Delete-one jackknife over the L gradients of a `CovarianceSpectrum`.

    For a statistic t (lambda_1, lambda_star, ratio, trace), t_(i) is t of the covariance of the
    L - 1 gradients left when g_i is removed, re-centred at their own mean and normalised by
    1 / (L - 1) (the same estimator on L - 1 gradients; its lambda_star is therefore the (L-2)-th
    eigenvalue). With t_(.) the mean of the t_(i):

      stderr          = sqrt((L - 1) / L * sum_i (t_(i) - t_(.))^2)
      bias            = (L - 1) (t_(.) - t)
      bias_corrected  = t - bias = L t - (L - 1) t_(.)

    For the trace the bias correction is exact: it turns the 1/L estimate into the unbiased
    1/(L-1) one. For lambda_1 it removes the leading O(1/L) part of the upward bias of the largest
    sample eigenvalue; lambda_star and the ratio depend on L by construction (the smallest non-zero
    eigenvalue of an L-sample covariance), read their corrections with care.
    """

    L: int
    lambda_1_stderr: float
    lambda_star_stderr: float
    ratio_stderr: float
    trace_stderr: float
    lambda_1_bias_corrected: float
    lambda_star_bias_corrected: float
    ratio_bias_corrected: float
    trace_bias_corrected: float
    replicates: dict[str, np.ndarray]  # statistic -> (L,) leave-one-out values t_(i)

    def stderrs(self) -> dict[str, float]:
        """{"lambda_1": se, "lambda_star": se, "ratio": se, "trace": se}."""
        return {s: getattr(self, f"{s}_stderr") for s in STATISTICS}

    def interval(self, stat: str, z: float = 1.96) -> tuple[float, float]:
        """Approximate interval for a positive statistic ("lambda_1", "lambda_star", "ratio",
        "trace"): bias-corrected value b times exp(+-z se / b), i.e. b +- z se on the log scale.

        Measured on Gaussian gradients (L = 25, top eigenvalue separated) this covers the true
        value ~0.90-0.92 of the time for z = 1.96, against ~0.87-0.89 for the plain
        value +- 1.96 se (the sampling distribution is skewed and the jackknife se slightly low).
        NaNs if the bias-corrected value is not positive.
        """
        b = getattr(self, f"{stat}_bias_corrected")
        se = getattr(self, f"{stat}_stderr")
        if not (np.isfinite(b) and np.isfinite(se) and b > 0):
            return float("nan"), float("nan")
        f = float(np.exp(z * se / b))
        return b / f, b * f


def _jackknife(full: float, loo: np.ndarray) -> tuple[float, float]:
    """(stderr, bias-corrected value) of a statistic from its leave-one-out replicates."""
    n = loo.size
    if not np.all(np.isfinite(loo)) or not np.isfinite(full):
        return float("nan"), float("nan")
    mean = float(np.mean(loo))
    se = float(np.sqrt((n - 1) / n * np.sum((loo - mean) ** 2)))
    return se, float(n * full - (n - 1) * mean)


def jackknife(spectrum: CovarianceSpectrum) -> CovarianceJackknife:
    """Jackknife standard errors (and bias corrections) of lambda_1, lambda_star, ratio and trace
    over the L gradients: for each i, the spectrum of the (L-1) x (L-1) Gram matrix without
    row/column i, re-centred at the mean of the L - 1 gradients left, J G_(i) J / (L - 1)
    (`_native.gram_spectrum`), gives the replicate. Needs L >= 3. See `CovarianceJackknife`
    for the formulas.

    The trace's correction is exact, the unbiased (L - 1) divisor, and its replicates are the
    traces of the leave-one-out covariances:

    >>> import numpy as np
    >>> from tfbreak.curvature.algorithms.gram import covariance_spectrum
    >>> from tfbreak.curvature.operators import CovarianceOperator
    >>> g = np.random.default_rng(1).standard_normal((5, 7))
    >>> jk = jackknife(covariance_spectrum(CovarianceOperator(list(g), M=1, on_host=True)))
    >>> bool(np.isclose(jk.trace_bias_corrected, np.trace(np.cov(g.T, ddof=1))))
    True
    >>> loo = [np.trace(np.cov(np.delete(g, i, 0).T, bias=True)) for i in range(5)]
    >>> bool(np.allclose(jk.replicates["trace"], loo))
    True
    """
    L = spectrum.L
    if L < 3:
        raise ValueError(f"jackknife: needs L >= 3 gradients, got L = {L}")
    stats = {k: np.empty(L) for k in STATISTICS}
    keep = np.ones(L, dtype=bool)
    for i in range(L):
        keep[i] = False
        ev, _, _ = _native.gram_spectrum(spectrum.gram[np.ix_(keep, keep)], center=True)
        keep[i] = True
        lam1, lstar = float(ev[0]), float(ev[L - 3])
        stats["lambda_1"][i] = lam1
        stats["lambda_star"][i] = lstar
        stats["ratio"][i] = lstar / lam1 if lam1 > 0 else np.nan
        stats["trace"][i] = float(np.sum(ev))
    out: dict[str, float] = {}
    for k, loo in stats.items():
        out[f"{k}_stderr"], out[f"{k}_bias_corrected"] = _jackknife(getattr(spectrum, k), loo)
    return CovarianceJackknife(L=L, replicates=stats, **out)
