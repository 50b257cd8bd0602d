"""The spectrum of the gradient covariance K (paper App. C) and ||g|| / ||g_5|| (Sec. 4.3).

K_M = (1/L) sum_i (g_i - g_bar)(g_i - g_bar)^T from L mini-batch gradients g_i of M examples
(M = 1: the per-example gradients of one batch of L examples, from per-layer factors when the
model allows); its non-zero eigenvalues are those of the centred L x L Gram matrix, at most
L - 1 of them: lambda_1(K), lambda_*(K) (the (L-1)-th), their ratio and Tr(K), with jackknife
standard errors over the L gradients. A run measures K at one or two sizes M (`K/*`, `K2/*`).
"""

from __future__ import annotations

import numpy as np

from tfbreak.curvature import CovarianceOperator, covariance_spectrum, jackknife
from tfbreak.curvature.algorithms.jackknife import STATISTICS
from tfbreak.curvature.keras_per_example import KerasPerExample
from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class Covariance(MeasurementPart):
    """K at each size M of the settings (`Samples.ms`); for the first, the saved eigenvalues and
    ||g|| / ||g_5|| of the probe batch's gradient g, g_5 its projection on the top-5 e_K."""

    def __init__(self, suite):
        super().__init__(suite)
        # K with M = 1 from per-layer factors when the model allows (never the n x D gradients).
        self.per_example = KerasPerExample.when_supported(
            suite.loss_fn, suite.variables, suite.strategy
        )

    def measure(self, m: Measurement) -> None:
        samples = self.suite.samples
        for which, k_names in enumerate((names.K, names.K2)[: len(samples.ms)]):
            self._measure_k(m, samples.k_batches(m.step, which), k_names)

    def _measure_k(self, m: Measurement, batches: list, k_names: names.KNames) -> None:
        gradients = self.suite.gradients
        on_host = self.suite.settings.k_storage == "host"
        if len(batches) == 1:
            op = CovarianceOperator.per_example(
                gradients, batches[0], self.per_example, on_host=on_host
            )
        else:
            op = CovarianceOperator.minibatches(gradients, batches, on_host=on_host)
        spectrum = covariance_spectrum(op)
        jk = jackknife(spectrum) if op.L >= 3 else None  # error bars at no extra gradient cost
        for stat in STATISTICS:
            m.row[getattr(k_names, stat)] = getattr(spectrum, stat)
            if jk is not None:
                m.row[getattr(k_names, f"{stat}_stderr")] = getattr(jk, f"{stat}_stderr")
        if k_names is not names.K:
            return
        m.arrays[names.ARRAY_K_EIGENVALUES] = spectrum.eigenvalues
        k = min(5, spectrum.rank)
        if k > 0:
            g = gradients.minibatch(m.probe)
            m.row[names.GRAD_NORM_OVER_TOP5] = spectrum.norm_over_top_k_norm(g, k)
            if self.suite.settings.save_eigenvectors:
                m.arrays[names.ARRAY_K_EIGENVECTORS] = np.asarray(spectrum.eigenvectors(k))
