"""The fixed samples a run measures on (paper App. C), drawn with named seeds.

The Hessian sample (5% of the training set by default), the L mini-batches of M examples for K
(one batch of L examples when M = 1), the probe batch of Delta L and ||g|| / ||g_5|| (one
training batch of S examples) and the fixed held-out subset for accuracy and the predictions of
the UMAP view. Each is drawn by `tfbreak.data.fixed_subset` from its own random stream.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import tensorflow as tf

from tfbreak.curvature.sharding import Batch, split_batches
from tfbreak.data import fixed_subset
from tfbreak.measure.settings import HESSIAN_MEASUREMENTS, MeasurementSettings
from tfbreak.validation import ConfigError


class SampleStream(enum.IntEnum):
    """The random streams of a run's fixed samples. A stream's seed is run_seed * 1000 + its
    value (the values of tfbreak 0.1, so that runs stay reproducible across versions)."""

    HESSIAN = 1
    K_BATCHES = 2
    PROBE = 3
    EVAL = 4

    def seed(self, run_seed: int) -> int:
        return int(run_seed) * 1000 + int(self)


@dataclass
class FixedSamples:
    """In-memory batches of the fixed samples (empty when the measurement is not taken)."""

    hessian: list[Batch] = field(default_factory=list)
    k_batches: list[Batch] = field(default_factory=list)
    probe: Batch | None = None
    evaluation: list[Batch] = field(default_factory=list)

    @property
    def hessian_size(self) -> int:
        return sum(int(tf.nest.flatten(b)[0].shape[0]) for b in self.hessian)


def hessian_sample_size(settings: MeasurementSettings, num_train: int) -> int:
    """Examples in the Hessian sample: `hessian_sample_size`, else `hessian_fraction` of the
    training set (App. C: ~5%), at most the training set."""
    n = settings.hessian_sample_size or max(1, int(round(settings.hessian_fraction * num_train)))
    return min(n, num_train)


def draw_samples(
    train: tf.data.Dataset,
    test: tf.data.Dataset | None,
    settings: MeasurementSettings,
    *,
    seed: int,
    batch_size: int,
    num_train: int,
    num_test: int = 0,
) -> FixedSamples:
    """Draw the fixed samples of a run from unbatched training and held-out data sets."""
    out = FixedSamples()
    chunk = settings.hessian_batch_size
    if set(settings.measurements) & HESSIAN_MEASUREMENTS:
        n = hessian_sample_size(settings, num_train)
        sample = fixed_subset(train, n, SampleStream.HESSIAN.seed(seed))
        out.hessian = split_batches(sample, chunk)
    if settings.wants("K"):
        m = settings.K_M(batch_size)
        n = settings.k_L * m
        if n > num_train:
            raise ConfigError(
                f"--k_L/--k_M: L * M = {n} exceeds the training set ({num_train} examples)"
            )
        sample = fixed_subset(train, n, SampleStream.K_BATCHES.seed(seed))
        out.k_batches = [sample] if m == 1 else split_batches(sample, m)
    out.probe = fixed_subset(train, batch_size, SampleStream.PROBE.seed(seed))
    if test is not None and num_test > 0:
        n = min(settings.eval_subset, num_test)
        out.evaluation = split_batches(fixed_subset(test, n, SampleStream.EVAL.seed(seed)), chunk)
    return out
