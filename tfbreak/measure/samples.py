"""The samples a run measures on (paper App. C), drawn with named seeds.

Fixed for the whole run: the Hessian sample (5% of the training set by default; with a target
error, nested larger draws of the same stream, see `adaptive_sample`) and the held-out subset
for accuracy and the predictions of the UMAP view. Fresh at every measurement by default
(`k_batches`, `probe_batch` = "fresh"), fixed on request: the L mini-batches of M examples for K
(one batch of L examples when M = 1) and the probe batch of Delta L and ||g|| / ||g_5|| (S
examples). A fixed draw's idiosyncrasies persist along the whole trajectory (a Tr(K) drawn low
stays low at every measurement), which no error bar of a single measurement can show; fresh
draws turn them into noise that the jackknife and the bootstrap see. Fresh draws are a function
of (seed, step), so reruns and resumed runs draw the same examples.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfbreak.config import ConfigError
from tfbreak.curvature.sharding import Batch, num_examples, split_batches
from tfbreak.data import fixed_subset
from tfbreak.measure.adaptive_sample import SampleLadder
from tfbreak.measure.parts import HESSIAN_MEASUREMENTS
from tfbreak.measure.settings import MeasurementSettings


class SampleStream(enum.IntEnum):
    """The random streams of a run's samples. A fixed sample's seed is run_seed * 1000 + the
    stream's value (the values of tfbreak 0.1, so that runs stay reproducible across versions);
    a fresh one's is drawn from (run_seed, stream, step)."""

    HESSIAN = 1
    K_BATCHES = 2
    PROBE = 3
    EVAL = 4
    K_BATCHES_2 = 5  # K at a second mini-batch size (Fig. 9)

    def seed(self, run_seed: int, step: int | None = None) -> int:
        """The stream's seed: fixed (`step` None) or fresh at `step`."""
        if step is None:
            return int(run_seed) * 1000 + int(self)
        return int(
            np.random.SeedSequence([int(run_seed), int(self), int(step)]).generate_state(1)[0]
        )


def _check_pool(size: int, num_pool: int, what: str, setting: str) -> None:
    """A one-line error when a sample needs more examples than the pool holds."""
    if size > num_pool:
        raise ConfigError(
            f"pool_size: {what} needs {size} examples, more than the {num_pool} of the "
            f"measurement pool; pass pool_size={size} or more, or a smaller {setting}"
        )


class Samples:
    """The samples of one run, drawn from unbatched training and held-out data sets.

    `hessian` and `evaluation` are fixed lists of batches (empty when not measured);
    `k_batches(step)` and `probe(step)` are drawn at each step or once (settings `k_batches`,
    `probe_batch`). `lookup` (a DataBundle's `train_lookup`, a pool's lookup) gathers examples
    directly instead of scanning the training set. `num_train` is N, the training set's size;
    the samples are drawn from `train`'s `num_pool` examples (default: N; fewer for a
    measurement pool of a larger data set, `tfbreak.measure.pool`).
    """

    def __init__(
        self,
        train: tf.data.Dataset,
        test: tf.data.Dataset | None,
        settings: MeasurementSettings,
        *,
        seed: int,
        batch_size: int,
        num_train: int,
        num_test: int = 0,
        lookup: Callable | None = None,
        num_pool: int | None = None,
    ):
        self.train, self.lookup, self.settings = train, lookup, settings
        num_pool = num_train if num_pool is None else int(num_pool)
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.ms = settings.K_Ms(batch_size)
        chunk = settings.hessian_batch_size
        self.hessian: list[Batch] = []
        self.hessian_ladder: SampleLadder | None = None
        settings.check_sizes(num_train, batch_size)  # again: the data may be smaller
        if set(settings.measurements) & HESSIAN_MEASUREMENTS:
            n = settings.hessian_size(num_train)
            _check_pool(n, num_pool, "the Hessian sample", "hessian_sample_size")
            self.hessian = split_batches(self._draw(n, SampleStream.HESSIAN, None), chunk)
            if settings.hessian_target_error is not None:
                largest = min(num_pool, settings.hessian_max_size(num_train))
                self.hessian_ladder = SampleLadder(n, largest, float(settings.hessian_target_error))
        self._hessian_at = {self.hessian_size: self.hessian}
        for m in self.ms if settings.wants("K") else ():
            _check_pool(settings.k_L * m, num_pool, "K's L * M examples", "k_L")
        self.evaluation: list[Batch] = []
        if test is not None and num_test > 0:
            n = min(settings.eval_subset, num_test)
            sample = fixed_subset(test, n, SampleStream.EVAL.seed(seed))
            self.evaluation = split_batches(sample, chunk)
        self._cache: dict[tuple[SampleStream, int], Batch] = {}

    @property
    def hessian_size(self) -> int:
        return sum(num_examples(b) for b in self.hessian)

    def hessian_at(self, size: int) -> list[Batch]:
        """The Hessian sample with `size` examples, in batches (the adaptive sample's rungs):
        the same random permutation's first `size` examples as the fixed sample's draw, so a
        larger sample holds every smaller one. Drawn once per size."""
        if size not in self._hessian_at:
            sample = self._draw(size, SampleStream.HESSIAN, None)
            self._hessian_at[size] = split_batches(sample, self.settings.hessian_batch_size)
        return self._hessian_at[size]

    def _draw(self, size: int, stream: SampleStream, step: int | None) -> Batch:
        return fixed_subset(self.train, size, stream.seed(self.seed, step), lookup=self.lookup)

    def _sample(self, size: int, stream: SampleStream, mode: str, step: int) -> Batch:
        if mode == "fresh":
            return self._draw(size, stream, step)
        if (stream, size) not in self._cache:
            self._cache[(stream, size)] = self._draw(size, stream, None)
        return self._cache[(stream, size)]

    def k_batches(self, step: int, which: int = 0) -> list[Batch]:
        """The L mini-batches of the `which`-th K estimate (M = `ms[which]`) at `step`; with
        M = 1, one batch of L examples (their per-example gradients are taken)."""
        m = self.ms[which]
        stream = (SampleStream.K_BATCHES, SampleStream.K_BATCHES_2)[which]
        sample = self._sample(self.settings.k_L * m, stream, self.settings.k_batches, step)
        return [sample] if m == 1 else split_batches(sample, m)

    def probe(self, step: int) -> Batch:
        """The probe batch (S training examples) at `step`."""
        return self._sample(self.batch_size, SampleStream.PROBE, self.settings.probe_batch, step)
