"""Per-example gradients (M = 1, for K): vectorized_map vs a Python loop (paper App. C).

    python benchmarks/per_example_gradients.py [--batch-sizes 32 128] [--repeats 5]
        [--models mlp simple_cnn]

For each model on Fashion-MNIST shapes (28x28x1, 10 classes; a REAL Fashion-MNIST batch) and
batch size n it prints the median wall time of
  vectorized  GradientFunctions(variables, loss_fn).per_example(batch): the (n, D) per-example
              gradients from one tf.function (tf.vectorized_map), traced once;
  loop        a Python loop of n calls GradientFunctions.minibatch(example) on single-example
              batches (one tf.function, traced once: its signature leaves the batch dimension
              open), stacked with tf.stack; the examples are sliced beforehand;
their speed-up loop / vectorized (goal from the issue: >= 10x), the time per example, and the
max absolute difference of the two (n, D) results. "1-pass ms" times one elementwise op over
an (n, D) float32 tensor (plus the same host copy): a floor no per-example method can beat, since
the result alone is n * D floats (128 x 271k = 139 MB). Timings are medians of --repeats calls
after a warm-up call that does the tracing; the timed calls of the variants alternate, so load
from other processes hits them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfbreak.curvature import GradientFunctions, classification_loss  # noqa: E402
from tfbreak.models import build_model, trainable_tf_variables  # noqa: E402


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds per call of each callable after one untimed warm-up call each; the timed
    calls alternate (round-robin) so a load change on the machine affects all of them alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def load_batch(n: int, seed: int):
    try:
        from tfbreak.data import fixed_subset, load_dataset

        bundle = load_dataset("fashion_mnist")
        x, y = fixed_subset(bundle.train, n, seed=seed)
        return x, tf.cast(y, tf.int32), f"REAL Fashion-MNIST ({bundle.source})"
    except Exception as err:  # pragma: no cover - depends on the machine
        rng = np.random.default_rng(seed)
        x = tf.constant(rng.uniform(0, 1, (n, 28, 28, 1)).astype(np.float32))
        y = tf.constant(rng.integers(0, 10, n).astype(np.int32))
        return x, y, f"SYNTHETIC (Fashion-MNIST unavailable: {err})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "simple_cnn"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x_all, y_all, source = load_batch(max(args.batch_sizes), args.seed)
    print(
        f"# TF {tf.__version__}, CPU threads: {os.cpu_count()}; inputs: {source}; "
        f"median of {args.repeats} after a warm-up (tracing excluded)"
    )
    rows = []
    for name in args.models:
        model = build_model(name, num_classes=10, input_shape=(28, 28, 1), seed=args.seed)
        variables = trainable_tf_variables(model)
        loss_fn = classification_loss(model, bn_mode="inference")
        fns = GradientFunctions(variables, loss_fn)
        dim = fns.space.dim
        for n in args.batch_sizes:
            batch = (x_all[:n], y_all[:n])
            singles = [(x_all[i : i + 1], y_all[i : i + 1]) for i in range(n)]

            def vectorized(batch=batch, fns=fns):
                return fns.per_example(batch).numpy()

            def loop(singles=singles, fns=fns):
                return tf.stack([fns.minibatch(s) for s in singles]).numpy()

            big = tf.random.normal([n, dim])
            scale = tf.function(lambda t: t * 2.0)

            def one_pass(big=big, scale=scale):
                return scale(big).numpy()

            t = interleaved_medians(
                {"vec": vectorized, "loop": loop, "floor": one_pass}, args.repeats
            )
            t_vec, t_loop, t_floor = t["vec"], t["loop"], t["floor"]
            diff = float(np.max(np.abs(vectorized() - loop())))
            rows.append((name, dim, n, t_loop, t_vec, t_floor, diff))
        # one trace each, whatever the batch sizes
        assert fns.traces == 2, fns.traces

    print()
    header = (
        f"{'model':<11} {'D':>8} {'batch':>5} {'loop ms':>9} {'vmap ms':>9} {'speed-up':>9} "
        f"{'loop ms/ex':>10} {'vmap ms/ex':>10} {'1-pass ms':>9} {'max|diff|':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, dim, n, t_loop, t_vec, t_floor, diff in rows:
        print(
            f"{name:<11} {dim:>8,} {n:>5} {1e3 * t_loop:9.1f} {1e3 * t_vec:9.1f} "
            f"{t_loop / t_vec:8.1f}x {1e3 * t_loop / n:10.2f} {1e3 * t_vec / n:10.2f} "
            f"{1e3 * t_floor:9.1f} {diff:9.1e}"
        )
    print()
    print("speed-up = loop / vectorized (vmap = GradientFunctions.per_example). Goal: >= 10x.")
    print(
        "1-pass ms: one elementwise pass (t * 2, read + write + host copy) over an (n, D) float32 "
        "tensor, the size of the result: a memory-bandwidth floor for any per-example method."
    )


if __name__ == "__main__":
    main()
