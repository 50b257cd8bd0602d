"""Time reading the measurement pool (`tfbreak.measure.inputs.as_examples`: one pass, a seeded
digest per example, the smallest kept) against one plain pass over the same data, in the same
process.

    python benchmarks/pool_read.py [--examples 60000] [--repeats 3]

Forms: in-memory arrays (the baseline pass: converting them to tensors, what the callback did
before the pool) and a shuffled, batched tf.data pipeline (the baseline: iterating it once as
NumPy batches). Prints the median seconds of each and their ratio (pool / plain pass), then
the summary line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import tensorflow as tf
from common import fashion_mnist_sample, summary

from tfbreak.measure.inputs import as_examples


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    x, y, source = fashion_mnist_sample(args.examples, seed=0)
    x, y = np.asarray(x), np.asarray(y)
    pipeline = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y)).batch(args.batch_size)
    cases = {
        "arrays": (
            lambda: as_examples((x, y), example_rank=3),
            lambda: tf.data.Dataset.from_tensor_slices((x, y)),
        ),
        "pipeline": (
            lambda: as_examples(pipeline, example_rank=3),
            lambda: sum(1 for _ in pipeline.as_numpy_iterator()),
        ),
    }
    print(f"{source}: {len(y)} examples {x.shape[1:]}, {os.cpu_count()} CPUs")
    print(f"{'form':<10} {'pool [s]':>9} {'plain pass [s]':>15} {'ratio':>7}")
    figures = {}
    for name, (pool, plain) in cases.items():
        t_pool = median_seconds(pool, args.repeats)
        t_plain = median_seconds(plain, args.repeats)
        print(f"{name:<10} {t_pool:>9.3f} {t_plain:>15.3f} {t_pool / t_plain:>7.1f}")
        figures[f"pool_over_pass_{name}"] = t_pool / t_plain
        figures[f"pool_seconds_per_10k_{name}"] = t_pool / len(y) * 1e4
    summary(figures)


if __name__ == "__main__":
    main()
