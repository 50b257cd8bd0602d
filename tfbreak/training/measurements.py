"""The measurement suite: everything the paper tracks at one point of the trajectory.

lambda_1..k(H) (Lanczos on the Hessian sample, warm-started from the previous measurement),
s^2 along e1_H (Eq. 1), Tr(H) and its density, the spectrum of K from L gradients of size M
(App. C), ||g|| / ||g_5|| (Sec. 4.3), Delta L (Sec. 4.1), ||gamma|| (Sec. 4.3), accuracy.
It knows nothing of flags or data sets: it gets variables, a loss and fixed batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from tfbreak.curvature import (
    CurvatureAlong,
    GradientCovariance,
    GradientFunctions,
    HessianOperator,
    delta_loss,
    hutchinson_trace,
    lanczos,
    slq_density,
)
from tfbreak.curvature.hvp import Batch, LossFn, batch_signature
from tfbreak.runs import names


@dataclass
class MeasurementSettings:
    """What to measure and how (see `tfbreak.config.ExperimentConfig` for the meaning)."""

    measurements: Sequence[str]
    top_k: int = 5
    lanczos_max_iter: int = 30
    lanczos_tol: float = 3e-3
    lanczos_converge_k: int = 1
    hvp_mode: str = "reverse_over_reverse"
    trace_samples: int = 10
    density_vectors: int = 2
    density_steps: int = 30
    save_eigenvectors: bool = False
    seed: int = 0


def split_batches(batch: Batch, size: int) -> list[Batch]:
    """Cut an in-memory batch into consecutive batches of at most `size` examples."""
    n = int(tf.nest.flatten(batch)[0].shape[0])
    return [tf.nest.map_structure(lambda t, a=a: t[a : a + size], batch) for a in range(0, n, size)]


class MeasurementSuite:
    """Measures one point of the trajectory; `measure(step, lr)` -> (metrics row, arrays).

    Args:
      model: the Keras model (for predictions on the evaluation batch).
      variables: theta, the parameters H and K are measured over.
      loss_fn: per-example losses of a batch, without side effects (BN mode chosen by it).
      hessian_batches: the fixed Hessian sample (e.g. 5% of the training set, App. C).
      k_batches: the L fixed mini-batches of size M for K; with M = 1 one batch of L examples
        whose per-example gradients are taken (vectorised).
      k_per_example: True when M = 1.
      probe_batch: a fixed training mini-batch: Delta L is measured for the step it would
        cause, and ||g|| / ||g_5|| for its gradient.
      update_fn: `update_fn(batch, lr)` -> the flat Delta theta of one SGD step on `batch`.
      eval_batches: fixed test examples for validation accuracy and the saved predictions.
      gammas: BatchNorm gamma variables of the last BN layer (empty: no ||gamma||).
      strategy: optional `tf.distribute.Strategy` the model was built under; HVPs, gradients,
        per-example curvatures and Delta L are then sums over per-replica shards (host-side
        numerics run once per process on the reduced values). None: single device.
    """

    def __init__(
        self,
        model,
        variables: Sequence[tf.Variable],
        loss_fn: LossFn,
        settings: MeasurementSettings,
        *,
        hessian_batches: Sequence[Batch] = (),
        k_batches: Sequence[Batch] = (),
        k_per_example: bool = False,
        probe_batch: Batch | None = None,
        update_fn: Callable[[Batch, tf.Tensor], tf.Tensor] | None = None,
        eval_batches: Sequence[Batch] = (),
        gammas: Sequence[tf.Variable] = (),
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.model = model
        self.strategy = strategy
        self.variables = list(variables)
        self.loss_fn = loss_fn
        self.settings = settings
        wanted = set(settings.measurements)
        self.hessian = (
            HessianOperator(
                self.variables, loss_fn, hessian_batches, mode=settings.hvp_mode, strategy=strategy
            )
            if wanted & {"hessian", "trace", "density"}
            else None
        )
        self.hessian_batches = list(hessian_batches)
        self.gradients = GradientFunctions(self.variables, loss_fn, strategy=strategy)
        self.curvature_along = CurvatureAlong(self.variables, loss_fn, strategy=strategy)
        self.k_batches = list(k_batches)
        self.k_per_example = k_per_example
        self.probe_batch = probe_batch
        self.update_fn = update_fn
        self.eval_batches = list(eval_batches)
        self.gammas = list(gammas)
        self.warm_start: np.ndarray | None = None  # (k, D) float32: previous top eigenvectors
        self._predict = None
        if "delta_loss" in wanted and (probe_batch is None or update_fn is None):
            raise ValueError("probe_batch/update_fn: Delta L needs a probe batch and an update")
        if "K" in wanted and not self.k_batches:
            raise ValueError("k_batches: K needs L mini-batches")

    def wants(self, name: str) -> bool:
        return name in self.settings.measurements

    def measure(self, step: int, lr: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """All enabled measurements at the current parameters; nothing about the model changes."""
        start = time.perf_counter()
        seed = int(np.random.SeedSequence([self.settings.seed, step]).generate_state(1)[0])
        row: dict[str, Any] = {names.LR: lr}
        arrays: dict[str, np.ndarray] = {}
        if self.wants("hessian"):
            self._measure_hessian(row, arrays, seed)
        if self.wants("trace"):
            est = hutchinson_trace(
                self.hessian.matvec_host, self.hessian.dim, self.settings.trace_samples, seed
            )
            row[names.HESSIAN_TRACE] = est.mean
            row[names.HESSIAN_TRACE_STDERR] = est.stderr
        if self.wants("density"):
            dens = slq_density(
                self.hessian.matvec_host,
                self.hessian.dim,
                num_vectors=self.settings.density_vectors,
                steps=self.settings.density_steps,
                seed=seed,
            )
            arrays[names.ARRAY_HESSIAN_DENSITY_GRID] = dens.grid
            arrays[names.ARRAY_HESSIAN_DENSITY] = dens.density
        if self.wants("K"):
            self._measure_k(row, arrays)
        if self.wants("delta_loss"):
            update = self.update_fn(self.probe_batch, tf.constant(lr, tf.float32))
            row[names.LOSS_DELTA] = delta_loss(
                self.variables, self.loss_fn, self.probe_batch, update, strategy=self.strategy
            )
        if self.gammas:
            row[names.BN_GAMMA_NORM] = float(
                tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in self.gammas]))
            )
        if self.eval_batches:
            self._measure_eval(row, arrays)
        row[names.MEASUREMENT_SECONDS] = time.perf_counter() - start
        return row, arrays

    def _measure_hessian(self, row: dict, arrays: dict, seed: int) -> None:
        op = self.hessian
        result = lanczos(
            op.matvec_host,
            op.dim,
            k=min(self.settings.top_k, op.dim),
            tol=self.settings.lanczos_tol,
            max_iter=self.settings.lanczos_max_iter,
            v0=self.warm_start,
            converge_k=min(self.settings.lanczos_converge_k, self.settings.top_k, op.dim),
            seed=seed,
        )
        # The warm start is kept in float32 (as checkpointed), so a resumed run starts Lanczos
        # from exactly the same vector as an uninterrupted one.
        self.warm_start = result.eigenvectors.astype(np.float32)
        row[names.HESSIAN_LAMBDA_1] = float(result.eigenvalues[0])
        row[names.HESSIAN_TOP_K] = [float(x) for x in result.eigenvalues]
        row[names.HESSIAN_RESIDUAL_1] = float(result.residuals[0])
        row[names.HESSIAN_MATVECS] = result.matvecs
        arrays[names.ARRAY_HESSIAN_RITZ_VALUES] = result.eigenvalues
        if self.settings.save_eigenvectors:
            arrays[names.ARRAY_HESSIAN_EIGENVECTORS] = result.eigenvectors.astype(np.float32)
        if self.wants("breakeven"):
            curv = self.curvature_along(self.hessian_batches, result.eigenvectors[0])
            row[names.BREAKEVEN_S2] = curv.s2

    def _measure_k(self, row: dict, arrays: dict) -> None:
        if self.k_per_example:
            grads = tf.unstack(self.gradients.per_example(self.k_batches[0]))
            m = 1
        else:
            grads = (self.gradients.minibatch(b) for b in self.k_batches)
            m = int(tf.nest.flatten(self.k_batches[0])[0].shape[0])
        cov = GradientCovariance(grads, M=m)
        row[names.K_LAMBDA_1] = cov.lambda_1
        row[names.K_LAMBDA_STAR] = cov.lambda_star
        row[names.K_RATIO] = cov.ratio
        row[names.K_TRACE] = cov.trace
        if cov.L >= 3:  # jackknife over the L gradients: error bars at no extra gradient cost
            jk = cov.jackknife()
            row[names.K_LAMBDA_1_STDERR] = jk.lambda_1_stderr
            row[names.K_LAMBDA_STAR_STDERR] = jk.lambda_star_stderr
            row[names.K_RATIO_STDERR] = jk.ratio_stderr
            row[names.K_TRACE_STDERR] = jk.trace_stderr
        arrays[names.ARRAY_K_EIGENVALUES] = cov.eigenvalues
        k = min(5, cov.rank)
        if self.probe_batch is not None and k > 0:
            g = self.gradients.minibatch(self.probe_batch)
            row[names.GRAD_NORM_OVER_TOP5] = cov.norm_over_top_k_norm(g, k)

    def _measure_eval(self, row: dict, arrays: dict) -> None:
        if self._predict is None:
            self._predict = tf.function(
                lambda x: tf.nn.softmax(self.model(x, training=False)),
                input_signature=[batch_signature(self.eval_batches[0])[0]],
            )
        probs, labels = [], []
        for x, y in self.eval_batches:
            probs.append(self._predict(x).numpy())
            labels.append(np.asarray(y))
        p = np.concatenate(probs).astype(np.float32)
        y = np.concatenate(labels)
        row[names.TEST_ACCURACY_SUBSET] = float(np.mean(np.argmax(p, -1) == y))
        row[names.TEST_LOSS_SUBSET] = float(
            -np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-30)))
        )
        arrays[names.ARRAY_TEST_PREDICTIONS] = p
