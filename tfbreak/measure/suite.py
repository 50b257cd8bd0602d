"""The measurement suite: everything the paper tracks at one point of the trajectory.

The suite runs the parts of `tfbreak.measure.parts.PARTS` that the settings select (and the
ones that apply to every run: ||gamma|| of a BatchNorm model, the held-out subset) in their
declared order, each from its own module: lambda_1..k(H) (Lanczos on the Hessian sample,
warm-started), s^2 along e1_H and Eq. 1, Tr(H) and its density, the spectrum of K from L
gradients of size M (App. C) with ||g|| / ||g_5|| (Sec. 4.3), Delta L (Sec. 4.1), ||gamma||
(Sec. 4.3) and the accuracy on the fixed held-out subset. It knows nothing of flags or data
sets: it gets variables, a loss, the fixed samples and the settings. `build_suite` is used by
the Trainer and the Keras callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfbreak.curvature import GradientFunctions, HessianOperator
from tfbreak.curvature.keras_loss import OutputConvention, output_convention
from tfbreak.curvature.sharding import Batch, LossFn
from tfbreak.distribute import scope
from tfbreak.measure.parts import PARTS, Part
from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.measure.samples import Samples
from tfbreak.measure.settings import MeasurementSettings
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
      convention: how the model's output is read (default: `output_convention(model)`); None
        with `readable=False`: a user's loss on a model that is no classifier tfbreak reads
        (no held-out accuracy then).
      strategy: optional `tf.distribute.Strategy` the model was built under; the per-batch
        work is then split across replicas (host-side numerics run once per process on the
        reduced values). None: a single device.

    What the parts share lives here: `hessian_on(size)` (H over the Hessian sample of that
    size), `hessian` (H over the sample of the last lambda_1 measurement), `warm_start` (the
    previous top eigenvectors, checkpointed by the Trainer) and `gradients`.
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
        readable: bool = True,
    ):
        self.model = model
        self.convention = convention or (output_convention(model) if readable else None)
        self.num_train = int(num_train)
        self.batch_size = int(batch_size)
        self.variables = list(variables)
        self.settings = settings
        self.samples = samples
        self.update_fn = update_fn
        self.seed = int(seed)
        self.gammas = list(gammas)
        self.loss_fn, self.strategy = loss_fn, strategy
        self._hessians: dict[int, HessianOperator] = {}  # by sample size
        self.hessian: HessianOperator | None = None  # adaptive sample: the last one's size
        if samples.hessian:
            self.hessian = self.hessian_on(samples.hessian_size)
        self.gradients = GradientFunctions(self.variables, loss_fn, strategy=strategy)
        self.warm_start: np.ndarray | None = None  # (k, D) float32: previous top eigenvectors
        self._parts: dict[str, MeasurementPart] = {}
        for part in self._active(density=True):  # built in the strategy's scope, as the model
            self.part(part.name)

    def hessian_on(self, size: int) -> HessianOperator:
        """H over the Hessian sample of `size` examples (built once per size; the sizes share
        one traced product)."""
        if size not in self._hessians:
            sample = self.samples.hessian_at(size)
            if self._hessians:
                self._hessians[size] = next(iter(self._hessians.values())).on(sample)
            else:
                self._hessians[size] = HessianOperator(
                    self.variables,
                    self.loss_fn,
                    sample,
                    mode=self.settings.hvp_mode,
                    strategy=self.strategy,
                )
        return self._hessians[size]

    def part(self, name: str) -> MeasurementPart:
        """The implementation of part `name`, built on first use."""
        if name not in self._parts:
            (part,) = [p for p in PARTS if p.name == name]
            with scope(self.strategy):
                self._parts[name] = part.load()(self)
        return self._parts[name]

    def _active(self, density: bool) -> list[Part]:
        """The parts a measurement runs: those the settings select and those that apply."""
        return [
            p
            for p in PARTS
            if (self.settings.wants(p.name) if p.selectable else self.part(p.name).applies())
            and (density or not p.sparse)
        ]

    def parts(self, density: bool = True) -> list[str]:
        """The parts `measure` goes through that take time, in order (for progress display)."""
        return [p.name for p in self._active(density) if p.progress]

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
        m = Measurement(self, step, lr)
        for part in self._active(density):
            if part.progress and on_part is not None:
                on_part(part.name)
            self.part(part.name).measure(m)
        m.row[names.MEASUREMENT_SECONDS] = time.perf_counter() - start
        return m.row, m.arrays


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
    num_pool: int | None = None,
    strategy: tf.distribute.Strategy | None = None,
    convention: OutputConvention | None = None,
    readable: bool = True,
) -> MeasurementSuite:
    """The measurement suite of a run (Trainer) or of a `model.fit` (BreakEvenCallback): the
    samples drawn from the unbatched `train`/`test` data (`Samples`; `lookup`: the data's O(1)
    example lookup, if any; `num_pool`: the examples `train` holds, when fewer than
    `num_train`), ||gamma|| of the model's last BatchNorm layer, and every measurement the
    settings ask for. `convention`, `readable`: see `MeasurementSuite`."""
    samples = Samples(
        train,
        test,
        settings,
        seed=seed,
        batch_size=batch_size,
        num_train=num_train,
        num_test=num_test,
        lookup=lookup,
        num_pool=num_pool,
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
        convention=convention,
        readable=readable,
    )
