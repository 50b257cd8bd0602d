"""The per-example (M = 1) Gram matrix of K: per-layer factors vs vectorized_map vs a Python loop.

    python benchmarks/per_example_gradients.py [--batch-sizes 32 128] [--repeats 5]
        [--models mlp simple_cnn]

For each model on a REAL Fashion-MNIST batch of n examples (28x28x1, 10 classes) it times what
K with M = 1 needs, the n x n Gram matrix of the centred per-example gradients (App. C):
  loop      n calls of GradientFunctions.minibatch on single-example batches (one tf.function,
            traced once), stacked, then CovarianceOperator.gram() (float64, centred once);
  vmap      GradientFunctions.per_example (tf.vectorized_map: Conv2DBackpropFilter falls back
            to a while loop under pfor), then the same gram();
  factored  KerasPerExample.factors(batch).gram(): one forward and one backward pass record every
            layer's inputs and back-propagated output gradients; dense layers enter the Gram
            matrix as (A A^T) * (Delta Delta^T) and are never formed, convolutions as their
            per-example rows (tfbreak.curvature.operators.factored);
their speed-ups over the loop (goal from the issue: >= 10x at n = 128) and the largest
difference of the factored and vmap Gram matrices from the loop's, relative to its largest entry
(float32 gradients: ~1e-7). "grads" times the loop's per-example gradients alone. Timings are
medians of --repeats after a warm-up that does the tracing; the variants' timed calls alternate
(benchmarks/common.py), so load from other processes hits them alike.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import fashion_mnist_sample, interleaved_medians, summary  # noqa: E402

from tfbreak.curvature import (  # noqa: E402
    CovarianceOperator,
    GradientFunctions,
    classification_loss,
)
from tfbreak.curvature.keras_per_example import KerasPerExample  # noqa: E402
from tfbreak.models import build_model, trainable_tf_variables  # noqa: E402


def variants(model, batch):
    """{name: callable returning the centred Gram matrix (or the gradients for "grads")}."""
    variables = trainable_tf_variables(model)
    loss_fn = classification_loss(model, bn_mode="inference")
    fns = GradientFunctions(variables, loss_fn)
    factored = KerasPerExample(loss_fn, variables)
    n = int(batch[1].shape[0])
    singles = [tf.nest.map_structure(lambda t, i=i: t[i : i + 1], batch) for i in range(n)]

    def loop_gradients():
        return [fns.minibatch(s) for s in singles]

    return {
        "grads": lambda: tf.stack(loop_gradients()).numpy(),
        "loop": lambda: CovarianceOperator(loop_gradients(), M=1).gram(),
        "vmap": lambda: CovarianceOperator.per_example(fns, batch, on_host=False).gram(),
        "factored": lambda: factored.factors(batch).gram(),
    }, fns.space.dim


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "simple_cnn"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x_all, y_all, source = fashion_mnist_sample(max(args.batch_sizes), args.seed)
    print(
        f"# TF {tf.__version__}, CPU threads: {os.cpu_count()}; inputs: {source}; "
        f"median of {args.repeats} after a warm-up (tracing excluded)"
    )
    rows, figures = [], {}
    for name in args.models:
        model = build_model(name, num_classes=10, input_shape=(28, 28, 1), seed=args.seed)
        for n in args.batch_sizes:
            fns, dim = variants(model, (x_all[:n], y_all[:n]))
            t = interleaved_medians(fns, args.repeats)
            ref = fns["loop"]()
            scale = np.abs(ref).max()
            diff = {k: float(np.abs(fns[k]() - ref).max() / scale) for k in ("vmap", "factored")}
            rows.append((name, dim, n, t, diff))
            figures[f"per_example_speedup_{name}_{n}"] = t["loop"] / t["factored"]
            figures[f"per_example_vmap_speedup_{name}_{n}"] = t["loop"] / t["vmap"]
            print(f"# {name} n={n}: done", flush=True)

    print()
    header = (
        f"{'model':<11} {'D':>8} {'n':>4} {'grads ms':>9} {'loop ms':>9} {'vmap ms':>9} "
        f"{'fact. ms':>9} {'vmap x':>7} {'fact. x':>8} {'vmap diff':>10} {'fact. diff':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, dim, n, t, diff in rows:
        print(
            f"{name:<11} {dim:>8,} {n:>4} {1e3 * t['grads']:9.1f} {1e3 * t['loop']:9.1f} "
            f"{1e3 * t['vmap']:9.1f} {1e3 * t['factored']:9.1f} {t['loop'] / t['vmap']:6.1f}x "
            f"{t['loop'] / t['factored']:7.1f}x {diff['vmap']:10.1e} {diff['factored']:10.1e}"
        )
    print()
    print("x = loop / variant for the centred Gram matrix of K (M = 1). Goal: factored >= 10x.")
    summary(figures)


if __name__ == "__main__":
    main()
