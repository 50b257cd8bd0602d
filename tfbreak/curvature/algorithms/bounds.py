"""Certified intervals for the top eigenvalues from Ritz values and residuals (Kato-Temple).

For a Rayleigh-Ritz pair (theta_j, y_j) of a symmetric A, descending, with residual
r_j = ||A y_j - theta_j y_j||:

- lower end: theta_j <= lambda_j (Cauchy interlacing / Courant-Fischer: the j-th Ritz value of any
  subspace never exceeds the j-th eigenvalue);
- upper end (Kato 1949, Temple 1928; Parlett, The Symmetric Eigenvalue Problem, Thm. 10.5.1):
  for any alpha < theta_j, the smallest eigenvalue lambda above alpha satisfies
  y^T (A - alpha)(A - lambda) y = r_j^2 + (theta_j - alpha)(theta_j - lambda) >= 0, i.e.
  lambda <= theta_j + r_j^2 / (theta_j - alpha). With alpha = theta_{j+1} + r_{j+1}, the upper end
  of the next Ritz value's residual interval, lambda is lambda_j, so

      lambda_j in [theta_j, theta_j + eps_j],  eps_j = min(r_j, r_j^2 / gap_j),
      gap_j = theta_j - theta_{j+1} - r_{j+1}   (eps_j = r_j when gap_j <= 0 or j is the last).

The premise, as for every Krylov estimate: the eigenvalues above alpha are those the Ritz values
have found, i.e. lambda_{j+1} <= theta_{j+1} + r_{j+1} (and lambda_j <= theta_j + r_j for the
plain residual bound). A start vector with no component along an eigenvector never sees it; a
single start vector sees one direction of a multiple eigenvalue, and a cluster narrower than the
Krylov space's resolution looks like one eigenvalue. A start block of b vectors resolves clusters
of up to b eigenvalues (`krylov.BlockKrylov`); tests/curvature/test_curvature_bounds.py counts
violations on dense spectra.
"""

from __future__ import annotations

import numpy as np


def ritz_error_bounds(theta: np.ndarray, residuals: np.ndarray, count: int) -> np.ndarray:
    """eps_j for the first `count` Ritz pairs: lambda_j in [theta_j, theta_j + eps_j].

    theta, residuals: the Ritz values, descending, and the residual norms of the first ones
    (count + 1 when available). With alpha_j = theta_{j+1} + r_{j+1}, the upper end of the next
    Ritz interval: eps_j = min(r_j, r_j^2 / (theta_j - alpha_j)) when alpha_j < theta_j
    (Kato-Temple), else max(r_j, alpha_j - theta_j): an eigenvalue the next Ritz interval may
    hold above theta_j (two eigenvalues not yet told apart) is not excluded.

    With residual 0.1 and a gap of 2 - 0.1 to the next interval, the bound is
    0.1^2 / 1.9, not the residual itself:

    >>> ritz_error_bounds([3.0, 1.0], [0.1, 0.1], count=1)
    array([0.00526316])
    """
    theta = np.asarray(theta, dtype=np.float64)
    r = np.asarray(residuals, dtype=np.float64)
    count = min(int(count), r.size)
    eps = r[:count].copy()
    for j in range(count):
        if j + 1 == r.size:
            break
        alpha = theta[j + 1] + r[j + 1]
        if alpha < theta[j]:
            eps[j] = min(r[j], r[j] ** 2 / (theta[j] - alpha))
        else:
            eps[j] = max(r[j], alpha - theta[j])
    return eps
