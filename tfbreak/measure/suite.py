"""The measurement suite: everything the paper tracks at one point of the trajectory.

lambda_1..k(H) (Lanczos on the Hessian sample, warm-started from the previous measurement),
s^2 along e1_H (Eq. 1), Tr(H) and its density, the spectrum of K from L gradients of size M
(App. C), ||g|| / ||g_5|| (Sec. 4.3), Delta L (Sec. 4.1), ||gamma|| (Sec. 4.3), accuracy on the
fixed held-out subset. It knows nothing of flags or data sets: it gets variables, a loss, the
fixed samples and the settings. `build_suite` is used by the Trainer and the Keras callback.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import tensorflow as tf

from tfbreak.curvature import (
    CovarianceOperator,
    CurvatureAlong,
    DeltaLoss,
    GradientFunctions,
    HessianOperator,
    covariance_spectrum,
    hutchinson_trace,
    jackknife,
    lanczos,
    slq_density,
)
from tfbreak.curvature.algorithms.jackknife import STATISTICS
from tfbreak.curvature.eq1 import eq1_lhs, lr_max
from tfbreak.curvature.keras_loss import OutputConvention, output_convention
from tfbreak.curvature.keras_per_example import KerasPerExample
from tfbreak.curvature.sharding import Batch, LossFn, batch_signature
from tfbreak.measure.adaptive_sample import relative_error
from tfbreak.measure.samples import Samples
from tfbreak.measure.settings import HESSIAN_MEASUREMENTS, MeasurementSettings
from tfbreak.models import batchnorm_gammas
from tfbreak.runs import names

UpdateFn = Callable[[Batch, tf.Tensor], tf.Tensor]
"""`update_fn(batch, lr)` -> the flat Delta theta of one SGD step on `batch` (nothing applied)."""


class MeasurementSuite:
    """Measures one point of the trajectory; `measure(step, lr)` -> (metrics row, arrays).

    Args:
      model: the Keras model (for predictions on the held-out subset).
      variables: theta, the parameters H and K are measured over.
      loss_fn: per-example losses of a batch, without side effects (BN mode chosen by it).
      settings: what to measure and how (`MeasurementSettings`).
      samples: the samples measured on (`Samples`).
      update_fn: the SGD step Delta L is measured for.
      seed: the run's seed (Lanczos and Hutchinson start vectors are drawn from (seed, step)).
      num_train, batch_size: N and S (the sampling error of lambda_1 and Eq. 1).
      gammas: BatchNorm gamma variables of the last BN layer (empty: no ||gamma||).
      convention: how the model's output is read (default: `output_convention(model)`).
      strategy: optional `tf.distribute.Strategy` the model was built under; the per-batch
        work is then split across replicas (host-side numerics run once per process on the
        reduced values). None: a single device.
    """

    def __init__(
        self,
        model,
        variables: Sequence[tf.Variable],
        loss_fn: LossFn,
        settings: MeasurementSettings,
        samples: Samples,
        *,
        update_fn: UpdateFn,
        seed: int,
        num_train: int,
        batch_size: int,
        gammas: Sequence[tf.Variable] = (),
        strategy: tf.distribute.Strategy | None = None,
        convention: OutputConvention | None = None,
    ):
        self.model = model
        self.convention = convention or output_convention(model)
        self.num_train = int(num_train)
        self.batch_size = int(batch_size)
        self.variables = list(variables)
        self.settings = settings
        self.samples = samples
        self.update_fn = update_fn
        self.seed = int(seed)
        self.gammas = list(gammas)
        self.loss_fn, self.strategy = loss_fn, strategy
        self.hessian = None  # H over the sample of the last measurement (adaptive: its size)
        self._hessians: dict[int, HessianOperator] = {}  # by sample size
        if set(settings.measurements) & HESSIAN_MEASUREMENTS:
            self.hessian = self._hessian_on(samples.hessian_size)
        self._warned_sample_cap = False
        self.gradients = GradientFunctions(self.variables, loss_fn, strategy=strategy)
        # K with M = 1 from per-layer factors when the model allows (never the n x D gradients).
        self.per_example = KerasPerExample.when_supported(loss_fn, self.variables, strategy)
        self.curvature_along = CurvatureAlong(self.variables, loss_fn, strategy=strategy)
        self.delta_loss = DeltaLoss(self.variables, loss_fn, strategy=strategy)
        self.warm_start: np.ndarray | None = None  # (k, D) float32: previous top eigenvectors
        self._predict = None

    def parts(self, density: bool = True) -> list[str]:
        """The parts `measure` goes through, in order (for progress display)."""
        wants = self.settings.wants
        parts = [p for p in ("hessian", "trace", "density", "K", "delta_loss") if wants(p)]
        parts = [p for p in parts if density or p != "density"]
        return parts + (["evaluation"] if self.samples.evaluation else [])

    def measure(
        self,
        step: int,
        lr: float,
        on_part: Callable[[str], None] | None = None,
        density: bool = True,
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """All enabled measurements at the current parameters (the SLQ density only with
        `density`); nothing about the model changes. `on_part(name)` is called as each of
        `parts()` starts."""
        start = time.perf_counter()
        seed = int(np.random.SeedSequence([self.seed, step]).generate_state(1)[0])
        wants = self.settings.wants
        row: dict[str, Any] = {names.LR: lr}
        arrays: dict[str, np.ndarray] = {}
        part = on_part or (lambda name: None)
        if wants("hessian"):
            part("hessian")
            self._measure_hessian(row, arrays, seed)
        if wants("trace"):
            part("trace")
            est = hutchinson_trace(self.hessian, num_samples=self.settings.trace_samples, seed=seed)
            row[names.HESSIAN_TRACE] = est.mean
            row[names.HESSIAN_TRACE_STDERR] = est.stderr
        if wants("density") and density:
            part("density")
            dens = slq_density(
                self.hessian,
                num_vectors=self.settings.density_vectors,
                steps=self.settings.density_steps,
                seed=seed,
                basis=self.settings.lanczos_basis,
            )
            arrays[names.ARRAY_HESSIAN_DENSITY_GRID] = dens.grid
            arrays[names.ARRAY_HESSIAN_DENSITY] = dens.density
        probe = self.samples.probe(step)
        if wants("K"):
            part("K")
            for which, k_names in enumerate((names.K, names.K2)[: len(self.samples.ms)]):
                self._measure_k(row, arrays, self.samples.k_batches(step, which), k_names, probe)
        if wants("delta_loss"):
            part("delta_loss")
            update = self.update_fn(probe, tf.constant(lr, tf.float32))
            row[names.LOSS_DELTA] = self.delta_loss(probe, update)
        if self.gammas:
            row[names.BN_GAMMA_NORM] = float(
                tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in self.gammas]))
            )
        if self.samples.evaluation:
            part("evaluation")
            self._measure_evaluation(row, arrays)
        row[names.MEASUREMENT_SECONDS] = time.perf_counter() - start
        return row, arrays

    def _hessian_on(self, size: int) -> HessianOperator:
        """H over the Hessian sample of `size` examples (built once per size)."""
        if size not in self._hessians:
            self._hessians[size] = HessianOperator(
                self.variables,
                self.loss_fn,
                self.samples.hessian_at(size),
                mode=self.settings.hvp_mode,
                strategy=self.strategy,
            )
        return self._hessians[size]

    def _top_eigenpairs(self, op: HessianOperator, v0: np.ndarray | None, seed: int):
        s = self.settings
        block = min(s.lanczos_block, op.dim)
        return lanczos(
            op,
            k=min(s.top_k, op.dim),
            tol=s.lanczos_tol,
            max_iter=s.lanczos_max_iter,
            converge_k=min(s.lanczos_converge_k, s.top_k, op.dim),
            block=block,
            v0=None if v0 is None else v0[:block],
            seed=seed,
            basis=s.lanczos_basis,
        )

    def _measure_hessian(self, row: dict, arrays: dict, seed: int) -> None:
        """lambda_1..k(H) by Lanczos, warm-started from the previous top eigenvectors (a block,
        thick restart), and the curvatures H_i along e1_H. With a target error the sample
        grows along `samples.hessian_ladder` (each size warm-started from the last) until the
        sampling error of lambda_1 meets it."""
        s, ladder = self.settings, self.samples.hessian_ladder
        size, v0, matvecs = self.samples.hessian_size, self.warm_start, 0
        while True:
            op = self._hessian_on(size)
            recorded = warnings.catch_warnings(record=True) if ladder else nullcontext([])
            with recorded as caught:
                result = self._top_eigenpairs(op, v0, seed)
            matvecs += result.matvecs
            # The curvatures H_i of the sample's examples along e1_H: the sampling error of
            # lambda_1 and, for Eq. 1, their variance s^2.
            curv = self.curvature_along(self.samples.hessian_at(size), result.eigenvectors[0])
            lam = float(result.eigenvalues[0])
            grown = ladder.next_size(size, curv, lam, self.num_train) if ladder else None
            if grown is None:
                break  # a LanczosWarning of a sample that grew is moot: said of the last one only
            size, v0 = grown, result.eigenvectors
        self.hessian = op
        if ladder is not None:
            for caught_warning in caught:
                warnings.warn(caught_warning.message, caught_warning.category, stacklevel=2)
            row[names.HESSIAN_SAMPLE_SIZE] = size
            self._warn_if_capped(relative_error(curv, lam, self.num_train), size)
        # The warm start is kept in float32 (as checkpointed), so a resumed run starts Lanczos
        # from exactly the same vectors as an uninterrupted one.
        self.warm_start = result.eigenvectors.astype(np.float32)
        row[names.HESSIAN_LAMBDA_1] = float(result.eigenvalues[0])
        row[names.HESSIAN_TOP_K] = [float(x) for x in result.eigenvalues]
        row[names.HESSIAN_RESIDUAL_1] = float(result.residuals[0])
        row[names.HESSIAN_LAMBDA_1_BOUND] = float(result.error_bounds[0])
        row[names.HESSIAN_MATVECS] = matvecs
        arrays[names.ARRAY_HESSIAN_RITZ_VALUES] = result.eigenvalues
        arrays[names.ARRAY_HESSIAN_RITZ_BOUNDS] = result.error_bounds
        if s.save_eigenvectors:
            arrays[names.ARRAY_HESSIAN_EIGENVECTORS] = result.eigenvectors.astype(np.float32)
        row[names.HESSIAN_LAMBDA_1_STDERR] = curv.mean_stderr(self.num_train)
        if s.wants("breakeven"):
            lam = row[names.HESSIAN_LAMBDA_1]
            row[names.BREAKEVEN_S2] = curv.s2
            args = (curv.s2, self.num_train, self.batch_size)
            row[names.BREAKEVEN_EQ1_LHS] = float(eq1_lhs(row[names.LR], lam, *args))
            row[names.BREAKEVEN_LR_MAX] = float(lr_max(lam, *args))

    def _warn_if_capped(self, error: float, size: int) -> None:
        target = self.settings.hessian_target_error
        if error <= target or self._warned_sample_cap:
            return
        self._warned_sample_cap = True
        warnings.warn(
            f"--hessian_target_error={target}: the relative sampling error of lambda_1(H) is "
            f"{error:.3g} with the largest sample, {size} examples (--hessian_max_fraction="
            f"{self.settings.hessian_max_fraction}); hessian/lambda_1_stderr holds it at each "
            "measurement (said once per process)",
            HessianSampleWarning,
            stacklevel=2,
        )

    def _measure_k(
        self, row: dict, arrays: dict, batches: list, k_names: names.KNames, probe: Batch
    ) -> None:
        """K from L mini-batch gradients (or, M = 1, the per-example gradients of one batch,
        from per-layer factors when the model allows): its spectrum (App. C) with jackknife
        errors; for the first estimate also the saved eigenvalues and ||g|| / ||g_5|| of the
        probe batch's gradient (Sec. 4.3)."""
        on_host = self.settings.k_storage == "host"
        if len(batches) == 1:
            op = CovarianceOperator.per_example(
                self.gradients, batches[0], self.per_example, on_host=on_host
            )
        else:
            op = CovarianceOperator.minibatches(self.gradients, batches, on_host=on_host)
        spectrum = covariance_spectrum(op)
        jk = jackknife(spectrum) if op.L >= 3 else None  # error bars at no extra gradient cost
        for stat in STATISTICS:
            row[getattr(k_names, stat)] = getattr(spectrum, stat)
            if jk is not None:
                row[getattr(k_names, f"{stat}_stderr")] = getattr(jk, f"{stat}_stderr")
        if k_names is not names.K:
            return
        arrays[names.ARRAY_K_EIGENVALUES] = spectrum.eigenvalues
        k = min(5, spectrum.rank)
        if k > 0:
            g = self.gradients.minibatch(probe)
            row[names.GRAD_NORM_OVER_TOP5] = spectrum.norm_over_top_k_norm(g, k)
            if self.settings.save_eigenvectors:
                arrays[names.ARRAY_K_EIGENVECTORS] = np.asarray(spectrum.eigenvectors(k))

    def _measure_evaluation(self, row: dict, arrays: dict) -> None:
        batches = self.samples.evaluation
        if self._predict is None:
            self._predict = tf.function(
                lambda x: self.convention.class_probabilities(self.model(x, training=False)),
                input_signature=[batch_signature(batches[0])[0]],
            )
        probs, labels = [], []
        for x, y in batches:
            probs.append(self._predict(x).numpy())
            labels.append(np.asarray(y))
        p = np.concatenate(probs).astype(np.float32)
        y = np.concatenate(labels)
        if y.ndim == 2:  # one-hot labels, or class ids of shape (n, 1)
            y = np.argmax(y, -1) if y.shape[1] > 1 else y[:, 0]
        y = y.astype(np.int64)
        row[names.TEST_ACCURACY_SUBSET] = float(np.mean(np.argmax(p, -1) == y))
        row[names.TEST_LOSS_SUBSET] = float(
            -np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-30)))
        )
        arrays[names.ARRAY_TEST_PREDICTIONS] = p


class HessianSampleWarning(UserWarning):
    """The adaptive Hessian sample reached its largest size above the target error."""


def break_even_event(row: dict[str, Any]) -> dict[str, Any] | None:
    """The event row's content if this measurement's Eq. 1 LHS is >= 1 (the caller writes it
    at the first such measurement: the break-even point, Sec. 3), else None."""
    lhs = row.get(names.BREAKEVEN_EQ1_LHS)
    if lhs is None or not lhs >= 1.0:
        return None
    keys = (names.BREAKEVEN_EQ1_LHS, names.BREAKEVEN_LR_MAX, names.HESSIAN_LAMBDA_1, names.LR)
    return {"kind": "event", "event": names.EVENT_BREAK_EVEN, **{k: row[k] for k in keys}}


def build_suite(
    model,
    variables: Sequence[tf.Variable],
    loss_fn: LossFn,
    settings: MeasurementSettings,
    *,
    train: tf.data.Dataset,
    test: tf.data.Dataset | None,
    num_train: int,
    num_test: int,
    batch_size: int,
    seed: int,
    update_fn: UpdateFn,
    lookup: Callable | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> MeasurementSuite:
    """The measurement suite of a run (Trainer) or of a `model.fit` (BreakEvenCallback): the
    samples drawn from the unbatched `train`/`test` data (`Samples`; `lookup`: the data's O(1)
    example lookup, if any), ||gamma|| of
    the model's last BatchNorm layer, and every measurement the settings ask for."""
    samples = Samples(
        train,
        test,
        settings,
        seed=seed,
        batch_size=batch_size,
        num_train=num_train,
        num_test=num_test,
        lookup=lookup,
    )
    return MeasurementSuite(
        model,
        variables,
        loss_fn,
        settings,
        samples,
        update_fn=update_fn,
        seed=seed,
        num_train=num_train,
        batch_size=batch_size,
        gammas=batchnorm_gammas(model),
        strategy=strategy,
    )
