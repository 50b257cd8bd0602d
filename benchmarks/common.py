"""Helpers shared by the benchmark scripts: interleaved timing, the data they measure on, and the
machine-readable summary line every benchmark ends with."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def interleaved_medians(
    fns: Mapping[str, Callable[[], object]], repeats: int, min_batch_s: float = 0.05
) -> dict[str, float]:
    """Median per-call seconds of each callable, after one untimed warm-up call each.

    The timed batches of the callables alternate (round-robin), so a load change on the machine
    affects all of them alike and the ratios stay fair. A batch repeats a call until it lasts
    >= min_batch_s, so very fast calls are timed too.
    """
    numbers = {}
    for name, fn in fns.items():
        fn()  # warm-up: tracing and first-call allocation
        number = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            if time.perf_counter() - t0 >= min_batch_s or number >= 1024:
                break
            number *= 2
        numbers[name] = number
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            times[name].append((time.perf_counter() - t0) / numbers[name])
    return {name: statistics.median(t) for name, t in times.items()}


def fashion_mnist_sample(n: int, seed: int):
    """(x, y, source): n real Fashion-MNIST training examples (a fixed subset) when the files
    are present, else synthetic uniform inputs with random labels (the source says which)."""
    try:
        from tfbreak.data import fixed_subset, load_dataset

        bundle = load_dataset("fashion_mnist")
        x, y = fixed_subset(bundle.train, n, seed=seed)
        return x, tf.cast(y, tf.int32), f"REAL Fashion-MNIST ({bundle.source})"
    except Exception as err:  # pragma: no cover - depends on the machine
        return (*synthetic_batch((28, 28, 1), n, seed), f"SYNTHETIC (Fashion-MNIST: {err})")


def synthetic_batch(input_shape, n: int, seed: int):
    """(x, y): uniform random pixels and random labels (10 classes)."""
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(0.0, 1.0, (n, *input_shape)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, n).astype(np.int32))
    return x, y


def summary(figures: Mapping[str, float]) -> None:
    """The last line of every benchmark: `name=value` per figure, machine-readable, so the
    figures can be tracked over time."""
    print(" ".join(f"{name}={value:.4g}" for name, value in figures.items()))
