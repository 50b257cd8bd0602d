"""`tfbreak.Curvature`: the curvature of a Keras classifier's training loss as one object
(paper App. C): the Hessian H over a sample and the covariance of gradients K as operators,
their top eigenvalues, trace and spectral density, and K's spectrum.

    curvature = tfbreak.Curvature(model, (x_train, y_train))
    curvature.top_eigenvalues(5).eigenvalues   # lambda_1..5(H), Lanczos
    curvature.trace().mean                     # Tr(H), Hutchinson
    curvature.density()                        # SLQ spectral density of H
    curvature.covariance_spectrum(M=128)       # lambda_1(K), lambda_*(K), Tr(K) (L = 25)
    scipy.sparse.linalg.eigsh(curvature.hessian.as_linear_operator(), k=3)

The loss is the model's own (`tfbreak.curvature.keras_loss`); defaults are those of
`MeasurementSettings`, which also takes any setting by name.
"""

from __future__ import annotations

from typing import Any

import keras

from tfbreak.curvature import (
    CovarianceOperator,
    CovarianceSpectrum,
    GradientFunctions,
    HessianOperator,
    LanczosResult,
    SpectralDensity,
    TraceEstimate,
    classification_loss,
    covariance_spectrum,
    hutchinson_trace,
    lanczos,
    slq_density,
    split_batches,
)
from tfbreak.curvature.keras_per_example import KerasPerExample
from tfbreak.curvature.sharding import LossFn
from tfbreak.data import fixed_subset
from tfbreak.measure.inputs import as_examples
from tfbreak.measure.samples import SampleStream, hessian_sample_size
from tfbreak.measure.settings import MeasurementSettings
from tfbreak.models import trainable_tf_variables


class Curvature:
    """H and K of `model`'s loss on `data` (`(x, y)` arrays or a tf.data.Dataset of examples or
    batches).

    Args:
      model: a Keras 3 or tf_keras classifier (logits, softmax or sigmoid output; compiled or
        not, see `tfbreak.curvature.keras_loss`).
      data: the training examples.
      loss_fn: per-example losses of a batch `(x, y)`, if the model's own cannot be read.
      sample: examples in the Hessian sample (default: `hessian_fraction` of `data`, 5 %).
      settings: `MeasurementSettings`; or give single settings by name (`lanczos_tol=1e-4`).
      seed: seed of the Hessian sample, the K mini-batches and the start vectors.
    """

    def __init__(
        self,
        model: keras.Model,
        data: Any,
        *,
        loss_fn: LossFn | None = None,
        sample: int | None = None,
        settings: MeasurementSettings | None = None,
        seed: int = 0,
        **setting_values: Any,
    ):
        if not getattr(model, "trainable_variables", None):
            raise ValueError(
                f"model: expected a built Keras model with trainable variables, got {model!r}"
            )
        settings = (settings or MeasurementSettings()).replace(**setting_values).validate()
        if settings.hessian_target_error is not None:
            raise ValueError(
                "hessian_target_error: the adaptive Hessian sample is measured by runs and "
                "BreakEvenCallback, not by Curvature; give Curvature a fixed sample (sample=N)"
            )
        if sample is not None:
            settings = settings.replace(hessian_sample_size=sample).validate()
        inputs = getattr(model, "inputs", None)
        rank = len(inputs[0].shape) - 1 if inputs and len(inputs) == 1 else None
        self.examples = as_examples(data, example_rank=rank)
        self.model, self.settings, self.seed = model, settings, int(seed)
        self.loss_fn = loss_fn or classification_loss(model, bn_mode=settings.bn_mode)
        self.variables = trainable_tf_variables(model)
        self.gradients = GradientFunctions(self.variables, self.loss_fn)
        self.per_example = KerasPerExample.when_supported(self.loss_fn, self.variables)
        n = hessian_sample_size(settings, self.examples.size)
        sample_batch = self._draw(n, SampleStream.HESSIAN.seed(self.seed))
        self.hessian = HessianOperator(
            self.variables,
            self.loss_fn,
            split_batches(sample_batch, settings.hessian_batch_size),
            mode=settings.hvp_mode,
        )

    def _draw(self, size: int, seed: int):
        ex = self.examples
        return fixed_subset(ex.dataset, size, seed, lookup=ex.lookup)

    def covariance(self, L: int | None = None, M: int | None = None) -> CovarianceOperator:
        """K_M from L mini-batches of M examples drawn from the data (App. C; M = 1: the
        per-example K). Defaults: `k_L` and `k_M` of the settings (M has no default of its own:
        the paper uses the training batch size)."""
        L = self.settings.k_L if L is None else L
        if M is None:
            if not self.settings.k_M:
                raise ValueError("M: pass the mini-batch size of K (App. C: the batch size S)")
            M = self.settings.k_M[0]
        checked = self.settings.replace(k_L=L, k_M=(M,)).validate()
        if checked.k_L * M > self.examples.size:
            raise ValueError(f"L, M: L * M = {L * M} exceeds the {self.examples.size} examples")
        sample = self._draw(L * M, SampleStream.K_BATCHES.seed(self.seed))
        on_host = checked.k_storage == "host"
        if M == 1:
            return CovarianceOperator.per_example(
                self.gradients, sample, self.per_example, on_host=on_host
            )
        return CovarianceOperator.minibatches(
            self.gradients, split_batches(sample, M), on_host=on_host
        )

    def covariance_spectrum(self, L: int | None = None, M: int | None = None) -> CovarianceSpectrum:
        """lambda_1(K), lambda_*(K), their ratio, Tr(K), the eigenvectors (see `covariance`)."""
        return covariance_spectrum(self.covariance(L, M))

    def top_eigenvalues(self, k: int | None = None) -> LanczosResult:
        """lambda_1..k(H) by Lanczos (`.eigenvalues`, `.residuals`, `.eigenvectors`)."""
        s = self.settings
        k = s.top_k if k is None else k
        return lanczos(
            self.hessian,
            k,
            tol=s.lanczos_tol,
            max_iter=max(s.lanczos_max_iter, k),
            converge_k=min(s.lanczos_converge_k, k),
            block=min(s.lanczos_block, k),
            seed=self.seed,
            basis=s.lanczos_basis,
        )

    def trace(self) -> TraceEstimate:
        """Tr(H) by Hutchinson's estimator (`.mean`, `.stderr`)."""
        return hutchinson_trace(
            self.hessian, num_samples=self.settings.trace_samples, seed=self.seed
        )

    def density(self) -> SpectralDensity:
        """The spectral density of H by stochastic Lanczos quadrature."""
        s = self.settings
        return slq_density(
            self.hessian,
            num_vectors=s.density_vectors,
            steps=s.density_steps,
            seed=self.seed,
            basis=s.lanczos_basis,
        )
