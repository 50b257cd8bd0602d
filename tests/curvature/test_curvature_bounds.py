"""Certified intervals of Lanczos (Kato-Temple) against exact dense spectra, float64.

The acceptance test of the stopping rule counts violations: runs whose returned interval
[theta_1 - rounding, theta_1 + bound] misses the true lambda_1 (or that did not converge).
"""

import warnings

import numpy as np
import pytest
from dense_reference import dense_operator

from tfbreak.curvature import LanczosWarning, lanczos
from tfbreak.curvature.algorithms.bounds import ritz_error_bounds

TOLS = (1e-2, 1e-3, 1e-4)
N = 100


def rotated(spectrum, rng):
    """A dense symmetric matrix with the given spectrum and its eigenvectors (columns)."""
    q, _ = np.linalg.qr(rng.standard_normal((len(spectrum), len(spectrum))))
    return (q * spectrum) @ q.T, q


def spectra(rng):
    """Small and large gaps at the top of a bulk in [-0.3, 0.6] (lambda_1 = 1)."""
    bulk = rng.uniform(-0.3, 0.6, N)
    out = {}
    for name, top in {
        "isolated": [1.0],
        "pair 1e-3": [1.0, 1 - 1e-3],
        "pair 1e-2": [1.0, 1 - 1e-2],
        "pair 5e-2": [1.0, 1 - 5e-2],
        "cluster of 5 within 1e-3": list(1 - 2.5e-4 * np.arange(5)),
        "double": [1.0, 1.0],
    }.items():
        s = bulk.copy()
        s[: len(top)] = top
        out[name] = s
    indefinite = rng.uniform(-2.0, 0.5, N)  # |lambda_min| > lambda_1
    indefinite[0] = 1.0
    out["indefinite"] = indefinite
    outliers = np.array([40.6, 35.6, 33.4, 21.5, 17.2, 12, 9, 7, 5])  # a trained MLP's top 5
    out["hessian-like"] = np.concatenate([outliers, np.abs(rng.normal(0, 0.5, N - 9))]) / 40.6
    return out


def previous_eigenvectors(q, spectrum, rng, block):
    """Warm start: the top eigenvectors of a nearby matrix (rotated within the top 6, 10 %)."""
    top = q[:, np.argsort(spectrum)[::-1][:6]].T
    mix = np.eye(6) + 0.1 * rng.standard_normal((6, 6))
    return (mix @ top + 0.1 * rng.standard_normal((6, N)) / np.sqrt(N))[:block]


def violations(block, warm, families, seeds=range(3), reps=2):
    """{(family, tol): count} of runs whose interval misses lambda_1 or that did not converge."""
    bad = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for name, spectrum in spectra(rng).items():
            if name not in families:
                continue
            a, q = rotated(spectrum, rng)
            lam1 = spectrum.max()
            for tol in TOLS:
                for rep in range(reps):
                    v0 = previous_eigenvectors(q, spectrum, rng, block) if warm else None
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", LanczosWarning)
                        r = lanczos(
                            dense_operator(a), 5, tol=tol, max_iter=N, converge_k=1,
                            block=block, v0=v0, seed=10 * seed + rep, basis="host"
                        )  # fmt: skip
                    lo, hi = r.intervals[0]
                    assert r.error_bounds[0] <= tol * r.eigenvalues[0] or not r.converged
                    if not (r.converged and lo - 1e-13 <= lam1 <= hi + 1e-13):
                        bad[(name, tol)] = bad.get((name, tol), 0) + 1
    return bad


ALL = ("isolated", "pair 1e-3", "pair 1e-2", "pair 5e-2", "cluster of 5 within 1e-3", "double")
ALL += ("indefinite", "hessian-like")


@pytest.mark.parametrize("block", [2, 3])
def test_warm_block_certifies_lambda_1_with_no_violation(block):
    """Warm starts from a block of >= 2 previous eigenvectors (thick restart): 0 violations in
    144 runs per block size over small gaps (pairs 1e-3..5e-2 apart, a cluster of 5 within
    1e-3, a double lambda_1), a large gap, an indefinite and a Hessian-like spectrum, tol 1e-2
    to 1e-4. (A scan over 4 x 288 runs of the same families found none either.)"""
    assert violations(block, warm=True, families=ALL) == {}


def test_cold_block_of_two_certifies_well_separated_lambda_1():
    """Cold starts from 2 random vectors (band Lanczos): 0 violations on an isolated lambda_1,
    a double lambda_1 (exact multiplicity), an indefinite and a Hessian-like spectrum."""
    families = ("isolated", "double", "indefinite", "hessian-like")
    assert violations(2, warm=False, families=families) == {}


def test_a_single_start_vector_cannot_certify_a_small_gap():
    """The premise of every Krylov certificate: the eigenvalues above the next Ritz interval
    have been found. One start vector (cold or warm) blends a pair 1e-3..1e-2 apart into one
    Ritz value and its bound misses lambda_1 in many runs; with a block of 2 (warm) none does."""
    families = ("pair 1e-3", "pair 1e-2", "cluster of 5 within 1e-3")
    assert sum(violations(1, warm=False, families=families, seeds=[0]).values()) >= 5
    assert sum(violations(1, warm=True, families=families, seeds=[0]).values()) >= 5
    assert violations(2, warm=True, families=families, seeds=[0]) == {}


def test_kato_temple_inequality_against_the_exact_spectrum():
    """For any unit y with theta = y^T A y > alpha >= lambda_2 and r = ||A y - theta y||:
    theta <= lambda_1 <= theta + r^2 / (theta - alpha) (float64, >= 150 random y)."""
    rng = np.random.default_rng(0)
    spectrum = np.concatenate([[3.0, 2.0], rng.uniform(-1, 1.5, 28)])
    a, q = rotated(spectrum, rng)
    tested = 0
    for _ in range(200):
        y = q[:, 0] + 0.1 * rng.standard_normal(30)
        y /= np.linalg.norm(y)
        theta = y @ a @ y
        r = np.linalg.norm(a @ y - theta * y)
        assert theta <= 3.0 + 1e-14
        if theta > 2.0:
            alpha = 2.0 + rng.uniform(0, theta - 2.0)
            assert 3.0 <= theta + r**2 / (theta - alpha) + 1e-14
            tested += 1
    assert tested >= 150


def test_ritz_error_bounds_formula():
    theta = np.array([10.0, 6.0, 5.5, 1.0])
    r = np.array([1.0, 0.5, 0.2, 3.0])
    # alpha_1 = 6.5: 1 / 3.5; alpha_2 = 5.7 < 6: min(0.5, 0.25 / 0.3) = 0.5;
    # alpha_3 = 4.0 < 5.5: 0.04 / 1.5.
    np.testing.assert_allclose(
        ritz_error_bounds(theta, r, 3), [1 / 3.5, 0.5, 0.04 / 1.5], rtol=1e-15
    )
    # Overlapping intervals: the next Ritz interval may hold an eigenvalue up to 8.0 + 5.0.
    np.testing.assert_allclose(ritz_error_bounds([10.0, 4.0], [1.0, 5.0], 1), [1.0])
    np.testing.assert_allclose(ritz_error_bounds([10.0, 8.0], [1.0, 5.0], 1), [3.0])
    # The last Ritz value has no gap: the residual.
    np.testing.assert_allclose(ritz_error_bounds([10.0], [0.3], 1), [0.3])


def test_stops_as_soon_as_certified_and_reports_the_interval():
    """A warm start within 1e-4 of e_1 certifies lambda_1 to 1e-6 after 2 products (the gap to
    lambda_2 = 0.5 makes r^2 / gap tiny), where the residual alone would need more."""
    rng = np.random.default_rng(3)
    spectrum = np.concatenate([[1.0, 0.5], rng.uniform(-0.3, 0.45, 58)])
    a, q = rotated(spectrum, rng)
    v0 = q[:, :2].T + 1e-4 * rng.standard_normal((2, 60))
    r = lanczos(
        dense_operator(a), 1, tol=1e-6, max_iter=60, converge_k=1, block=2, v0=v0, basis="host"
    )
    assert r.converged and r.matvecs <= 3
    assert r.residuals[0] > 1e-6  # the residual alone would not have stopped
    lo, hi = r.intervals[0]
    assert lo <= 1.0 <= hi and hi - r.eigenvalues[0] <= 1e-6
