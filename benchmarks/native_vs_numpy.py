"""Time tfbreak._native against the NumPy/SciPy equivalents in the same process.

    python benchmarks/native_vs_numpy.py [--repeats 7] [--sizes 20 50 100 200 500]

For each size n it prints the median wall time per call of the native function and of its
NumPy/SciPy reference, their ratio (native / reference; < 1 means native is faster) and the max
absolute difference of the results:
  tridiagonal_eigh   n x n tridiagonal, values + vectors   vs scipy.linalg.eigh_tridiagonal
  gauss_quadrature   k = n Lanczos steps                   vs eigh_tridiagonal + first row ** 2
  gram_spectrum      n x n Gram matrix of n gradients in R^1000
                                                           vs NumPy centring + numpy.linalg.eigh
Differences: eigenvalues / nodes (and weights for the quadrature). NumPy's LAPACK may use several
BLAS threads; the native code is single-threaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import scipy.linalg
from common import summary

from tfbreak import _native


def median_time(fn, repeats, min_batch_s=0.02):
    """Median over `repeats` batches of the per-call time; a batch is long enough to time."""
    fn()  # warm up
    number, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        t = time.perf_counter() - t0
        if t >= min_batch_s or number >= 1 << 16:
            break
        number *= 2
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def scipy_eigh_tridiagonal(alpha, beta):
    w, v = scipy.linalg.eigh_tridiagonal(alpha, beta)
    return w[::-1], v[:, ::-1]


def scipy_gauss_quadrature(alpha, beta):
    w, v = scipy.linalg.eigh_tridiagonal(alpha, beta)
    return w, v[0] ** 2


def numpy_gram_spectrum(gram):
    n = gram.shape[0]
    row = gram.mean(axis=1)
    c = (gram - row[:, None] - row[None, :] + row.mean()) / n
    w, v = np.linalg.eigh(c)
    return w[::-1], v[:, ::-1]


def cases(n, rng):
    alpha, beta = rng.standard_normal(n), rng.standard_normal(n - 1)
    x = rng.standard_normal((n, 1000))
    gram = x @ x.T

    def diff_eigh():
        return np.max(
            np.abs(
                _native.tridiagonal_eigh(alpha, beta)[0] - scipy_eigh_tridiagonal(alpha, beta)[0]
            )
        )

    def diff_quad():
        nodes, weights = _native.gauss_quadrature(alpha, beta)
        ref_nodes, ref_weights = scipy_gauss_quadrature(alpha, beta)
        return max(np.max(np.abs(nodes - ref_nodes)), np.max(np.abs(weights - ref_weights)))

    def diff_gram():
        return np.max(np.abs(_native.gram_spectrum(gram)[0] - numpy_gram_spectrum(gram)[0]))

    return [
        (
            "tridiagonal_eigh",
            lambda: _native.tridiagonal_eigh(alpha, beta),
            lambda: scipy_eigh_tridiagonal(alpha, beta),
            diff_eigh,
        ),
        (
            "gauss_quadrature",
            lambda: _native.gauss_quadrature(alpha, beta),
            lambda: scipy_gauss_quadrature(alpha, beta),
            diff_quad,
        ),
        (
            "gram_spectrum",
            lambda: _native.gram_spectrum(gram),
            lambda: numpy_gram_spectrum(gram),
            diff_gram,
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100, 200, 500])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"numpy {np.__version__}, scipy {scipy.__version__}, {os.cpu_count()} CPUs, "
        f"median of {args.repeats} repeats"
    )
    header = (
        f"{'function':<18} {'n':>5} {'native [ms]':>12} {'numpy [ms]':>12} {'ratio':>7} "
        f"{'max |diff|':>11}"
    )
    print(header)
    print("-" * len(header))
    rows = {}
    for n in args.sizes:
        for name, native, reference, diff in cases(n, rng):
            t_native = median_time(native, args.repeats)
            t_ref = median_time(reference, args.repeats)
            rows.setdefault(name, []).append((n, t_native, t_ref, diff()))
    figures = {}
    for name, results in rows.items():
        for n, t_native, t_ref, d in results:
            print(
                f"{name:<18} {n:>5} {1e3 * t_native:>12.4f} {1e3 * t_ref:>12.4f} "
                f"{t_native / t_ref:>7.2f} {d:>11.2e}"
            )
            figures[f"native_over_numpy_{name}_{n}"] = t_native / t_ref
    summary(figures)


if __name__ == "__main__":
    main()
