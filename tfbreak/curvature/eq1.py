"""The break-even condition, Eq. 1 of the paper (Sec. 3; Wu et al. 2018, Thm. 1), in NumPy.

SGD with learning rate eta and batch size S on N examples is stable along e1_H iff

    (1 - eta lambda_1^H)^2 + s^2 eta^2 (N - S) / (S (N - 1)) <= 1,

with s^2 = Var_i[H_i] the variance over examples of the curvature along e1_H. The break-even
point is where the left side first reaches 1. Solved for eta (the left side is a convex parabola
in eta that equals 1 at eta = 0), the condition is

    0 <= eta <= eta_max = 2 lambda_1^H / ((lambda_1^H)^2 + s^2 (N - S) / (S (N - 1))),

the largest learning rate for which the current point is still stable at batch size S.
TensorFlow-free: the measurement suite writes both live, the report recomputes them.
"""

from __future__ import annotations

import numpy as np


def _noise_factor(n, batch_size) -> np.ndarray:
    """(N - S) / (S (N - 1)), with N > 1 and 1 <= S <= N checked."""
    n_ = np.asarray(n, dtype=np.float64)
    s_ = np.asarray(batch_size, dtype=np.float64)
    if np.any(n_ <= 1):
        raise ValueError(f"Eq. 1 needs N > 1, got N={n}")
    if np.any(s_ < 1) or np.any(s_ > n_):
        raise ValueError(f"Eq. 1 needs 1 <= S <= N, got S={batch_size}, N={n}")
    return (n_ - s_) / (s_ * (n_ - 1.0))


def eq1_lhs(lr, lambda1_h, s2, n, batch_size) -> np.ndarray:
    """LHS of Eq. 1: (1 - eta lambda_1^H)^2 + s^2 eta^2 (N - S) / (S (N - 1)); broadcasts."""
    eta = np.asarray(lr, dtype=np.float64)
    lam = np.asarray(lambda1_h, dtype=np.float64)
    s2_ = np.asarray(s2, dtype=np.float64)
    return (1.0 - eta * lam) ** 2 + s2_ * eta**2 * _noise_factor(n, batch_size)


def lr_max(lambda1_h, s2, n, batch_size) -> np.ndarray:
    """eta_max = 2 lambda_1^H / ((lambda_1^H)^2 + s^2 (N - S) / (S (N - 1))): Eq. 1 solved for
    the learning rate (the LHS equals 1 there); NaN where lambda_1^H <= 0 (no positive root).

    Without gradient noise (s^2 = 0, or S = N) it is gradient descent's limit 2 / lambda_1^H;
    noise lowers it (with S = 1 of N = 1001 examples the noise factor is 1: 8 / (16 + 9)),
    and the LHS is 1 there:

    >>> float(lr_max(4.0, 0.0, 1000, 1000)), float(lr_max(4.0, 9.0, 1001, 1))
    (0.5, 0.32)
    >>> round(float(eq1_lhs(0.32, 4.0, 9.0, 1001, 1)), 12)
    1.0
    """
    lam = np.asarray(lambda1_h, dtype=np.float64)
    denominator = lam**2 + np.asarray(s2, dtype=np.float64) * _noise_factor(n, batch_size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lam > 0, 2.0 * lam / denominator, np.nan)
