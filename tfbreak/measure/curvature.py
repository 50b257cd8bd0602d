"""`tfbreak.Curvature`: the curvature of a Keras classifier's training loss as one object
(paper App. C): the Hessian H over a sample and the covariance of gradients K as operators,
their top eigenvalues, trace and spectral density, and K's spectrum.

    curvature = tfbreak.Curvature(model, (x_train, y_train))
    curvature.top_eigenvalues(5).eigenvalues   # lambda_1..5(H), Lanczos
    curvature.trace().mean                     # Tr(H), Hutchinson
    curvature.density()                        # SLQ spectral density of H
    curvature.covariance_spectrum(M=128)       # lambda_1(K), lambda_*(K), Tr(K) (L = 25)
    scipy.sparse.linalg.eigsh(curvature.hessian.as_linear_operator(), k=3)

The loss is the model's own (`tfbreak.curvature.keras_loss`: dropout and noise layers off,
BatchNorm per `bn_mode`, float32 whatever the mixed-precision policy); defaults are those of
`MeasurementSettings`, which also takes any setting by name. The samples are drawn from the
measurement pool of `data` (`tfbreak.measure.pool`): the same examples, whatever order a
dataset yields them in, so that two Curvatures of one model, data and seed agree exactly.
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
    covariance_spectrum,
    hutchinson_trace,
    lanczos,
    slq_density,
)
from tfbreak.curvature.keras_loss import measured_loss, measurement_modes
from tfbreak.curvature.keras_per_example import KerasPerExample
from tfbreak.curvature.sharding import LossFn, split_batches
from tfbreak.data import fixed_subset
from tfbreak.measure.inputs import as_examples, example_rank
from tfbreak.measure.samples import SampleStream
from tfbreak.measure.settings import MeasurementSettings
from tfbreak.models import trainable_tf_variables


class Curvature:
    """H and K of `model`'s loss on `data`.

    Args:
      model: a Keras 3 or tf_keras classifier (logits, softmax or sigmoid output; compiled or
        not, see `tfbreak.curvature.keras_loss`).
      data: the training examples: `(x, y)` arrays, a tf.data.Dataset of examples or batches
        (shuffled, repeated, mapped, ...), a generator of (x, y) batches or a
        `keras.utils.PyDataset`.
      loss_fn: per-example losses of a batch `(x, y)`, if the model's own cannot be read (it
        should call the model with training=False; it is run in float32).
      sample: examples in the Hessian sample (default: `hessian_fraction` of `data`, 5 %).
      settings: `MeasurementSettings`; or give single settings by name (`lanczos_tol=1e-4`).
      seed: seed of the measurement pool, the Hessian sample, the K mini-batches and the start
        vectors.
      num_examples: the examples in one pass of `data`; needed when that cannot be known (an
        infinite dataset, `repeat()`; a generator): the pool is read from the first
        `num_examples` examples.
      pool_size: the most examples the pool holds (default: 100 000, and at most 1 GiB of
        examples); a larger data set is measured on a uniform random subset of this size.

    `modes` says how the loss is measured (BatchNorm statistics, noise layers, precision, the
    loss read from the model: `tfbreak.curvature.keras_loss.measurement_modes`).
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
        num_examples: int | None = None,
        pool_size: int | None = None,
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
        self.examples = as_examples(
            data,
            example_rank=example_rank(model),
            seed=seed,
            pool_size=pool_size,
            num_examples=num_examples,
        )
        self.model, self.settings, self.seed = model, settings, int(seed)
        self.loss_fn = measured_loss(model, loss_fn, bn_mode=settings.bn_mode)
        self.modes = measurement_modes(model, self.loss_fn, settings.bn_mode)
        self.variables = trainable_tf_variables(model)
        self.gradients = GradientFunctions(self.variables, self.loss_fn)
        self.per_example = KerasPerExample.when_supported(self.loss_fn, self.variables)
        n = settings.hessian_size(self.examples.size)
        if n > self.examples.pool_size:
            raise ValueError(
                f"pool_size: the Hessian sample of {n} examples exceeds the measurement pool "
                f"({self.examples.pool_size} examples); pass pool_size={n} or more, or sample="
            )
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
        if checked.k_L * M > self.examples.pool_size:
            raise ValueError(
                f"L, M: L * M = {L * M} exceeds the {self.examples.pool_size} examples of the "
                "measurement pool"
            )
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
            basis_vectors=s.basis_vectors(k),
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
