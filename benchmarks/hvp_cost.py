"""Time one Hessian-vector product against one gradient over the same batch (paper App. C).

    python benchmarks/hvp_cost.py [--batch-size 128] [--repeats 5] [--xla] [--models ...]

For each setting and autodiff mode it prints the median wall time of
  grad   GradientFunctions(variables, loss_fn).minibatch(batch): the flat gradient of the mean
         loss, one tf.function traced once;
  hvp    HessianOperator(variables, loss_fn, [batch], mode).matvec(v): H v over the same batch
         (one tf.function traced once, plus the library's finiteness check and 1/N scaling);
  hvp xb HessianOperator.apply_block(V) for b vectors in one pass (what Lanczos' start block,
         band Lanczos' pending vectors, Hutchinson's probes and SLQ's lockstep runs use), per
         vector: its time / b;
and their ratio hvp / grad (the issue's goal: <= 2.2x). Each timing is the median of --repeats
timed calls after a warm-up call that does the tracing (the tracing is excluded); the timed calls
of all variants of a setting alternate, so load from other processes hits them alike.

With --xla the same two bodies are also wrapped in tf.function(jit_compile=True) and timed
(rows marked "xla"); the ratio of those rows is against the XLA gradient, and a last column
gives the XLA time relative to the plain graph time of the same computation. The XLA HVP rows
time the per-batch body alone (without matvec's finiteness check and 1/N scaling, < 1 ms).

Settings: SimpleCNN and ResNet-32 on CIFAR-shaped 32x32x3 inputs (10 classes) and SimpleCNN on
28x28x1 Fashion-MNIST. CIFAR-10 is not available offline, so the CIFAR-shaped inputs are SYNTHETIC
(uniform random pixels, random labels): the cost of a product does not depend on pixel values.
The Fashion-MNIST batch is real data when the Debian files are present (else synthetic; the table
says which). BatchNorm (ResNet-32) is in inference mode, the library default.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import fashion_mnist_sample, interleaved_medians, summary, synthetic_batch  # noqa: E402

from tfbreak.curvature import (  # noqa: E402
    CurvatureAlong,
    GradientFunctions,
    HessianOperator,
    classification_loss,
)
from tfbreak.curvature.modes import HVP_MODES  # noqa: E402
from tfbreak.models import build_model, trainable_tf_variables  # noqa: E402

S2_PASSES = {
    "s^2 taylor": CurvatureAlong,  # the Keras loss is a FunctionalLoss: Taylor mode
    "s^2 reverse": lambda variables, loss_fn: CurvatureAlong(variables, lambda b: loss_fn(b)),
}
"""The per-example curvature pass along a direction: Taylor mode and reverse mode (a plain
callable is not a FunctionalLoss)."""

BLOCKS = (2, 4)
"""Vectors per block product timed (Lanczos' default start block is 2, Hutchinson's 4)."""

SETTINGS = {
    "simple_cnn/cifar": ("simple_cnn", (32, 32, 3)),
    "resnet32/cifar": ("resnet32", (32, 32, 3)),
    "simple_cnn/fmnist": ("simple_cnn", (28, 28, 1)),
}


def make_batch(input_shape, batch_size: int, seed: int):
    """(x, y, source): real Fashion-MNIST for 28x28x1 when available, else synthetic."""
    if tuple(input_shape) == (28, 28, 1):
        return fashion_mnist_sample(batch_size, seed)
    return (*synthetic_batch(input_shape, batch_size, seed), "SYNTHETIC random")


def fetch(t):
    """Force completion (CPU runs synchronously, but be explicit) with a negligible copy."""
    return t.numpy()


def bench_setting(label, model_name, input_shape, args, rows):
    model = build_model(model_name, num_classes=10, input_shape=input_shape, seed=args.seed)
    variables = trainable_tf_variables(model)
    loss_fn = classification_loss(model, bn_mode="inference")
    x, y, source = make_batch(input_shape, args.batch_size, args.seed)
    batch = (x, y)
    dim = sum(int(np.prod(v.shape)) for v in variables)
    print(f"# {label}: {model_name}, input {input_shape}, D = {dim:,}, inputs: {source}")

    grads = GradientFunctions(variables, loss_fn)
    rng = np.random.default_rng(args.seed)
    v = tf.constant(rng.standard_normal(dim).astype(np.float32))
    ops = {mode: HessianOperator(variables, loss_fn, [batch], mode=mode) for mode in args.modes}
    fns = {"grad": lambda: fetch(grads.minibatch(batch))}
    for mode, op in ops.items():
        fns[mode] = lambda op=op: fetch(op.apply(v))
        for b in BLOCKS:
            block = tf.constant(rng.standard_normal((b, dim)).astype(np.float32))
            fns[f"{mode} x{b}"] = lambda op=op, block=block: fetch(op.apply_block(block))
    # The per-example curvatures along a direction (s^2 of Eq. 1), both ways.
    e = v.numpy().astype(np.float64) / float(tf.norm(v))
    for name, along in S2_PASSES.items():
        along = along(variables, loss_fn)
        fns[name] = lambda a=along: a([batch], e).values
    if args.xla:
        grad_xla = tf.function(grads._gradient, jit_compile=True)
        fns["grad/xla"] = lambda: fetch(grad_xla(batch))
        for mode, op in ops.items():
            body = (
                op._reverse_over_reverse
                if mode == "reverse_over_reverse"
                else op._forward_over_reverse
            )
            hvp_xla = tf.function(body, jit_compile=True)
            fns[f"{mode}/xla"] = lambda f=hvp_xla: fetch(f(batch, v))
    for name in list(fns):  # drop what cannot run (e.g. an op XLA does not support)
        try:
            fns[name]()
        except Exception as err:
            print(f"# {label} {name}: failed, skipped: {type(err).__name__}: {str(err)[:200]}")
            del fns[name]
    t = interleaved_medians(fns, args.repeats)
    assert grads.traces == 1, grads.traces

    for mode in args.modes:
        rows.append((label, mode, "graph", t["grad"], t[mode], t[mode] / t["grad"], None))
        for b in BLOCKS:
            per_vector = t[f"{mode} x{b}"] / b
            rows.append(
                (
                    label,
                    f"{mode} x{b}",
                    "graph",
                    t["grad"],
                    per_vector,
                    per_vector / t["grad"],
                    None,
                )
            )
    for mode in S2_PASSES:
        rows.append((label, mode, "graph", t["grad"], t[mode], t[mode] / t["grad"], None))
    if "grad/xla" in t:
        gx = t["grad/xla"]
        for mode in args.modes:
            if f"{mode}/xla" in t:
                hx = t[f"{mode}/xla"]
                rows.append((label, mode, "xla", gx, hx, hx / gx, hx / t[mode]))
        rows.append((label, "(grad only)", "xla", gx, None, None, gx / t["grad"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--xla", action="store_true", help="also time jit_compile=True versions")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--modes", nargs="+", default=list(HVP_MODES), choices=list(HVP_MODES))
    args = parser.parse_args()

    print(
        f"# TF {tf.__version__}, CPU threads: {os.cpu_count()}, batch {args.batch_size}, "
        f"median of {args.repeats} after a warm-up (tracing excluded)"
    )
    rows = []
    for label in args.settings:
        bench_setting(label, *SETTINGS[label], args, rows)

    print()
    header = (
        f"{'setting':<18} {'mode':<24} {'compile':<7} {'grad ms':>9} {'hvp ms':>9} "
        f"{'hvp/grad':>9} {'xla/graph':>9}"
    )
    print(header)
    print("-" * len(header))
    for label, mode, compile_, g, h, ratio, rel in rows:
        h_s = f"{1e3 * h:9.1f}" if h is not None else f"{'-':>9}"
        r_s = f"{ratio:8.2f}x" if ratio is not None else f"{'-':>9}"
        x_s = f"{rel:8.2f}x" if rel is not None else f"{'-':>9}"
        print(f"{label:<18} {mode:<24} {compile_:<7} {1e3 * g:9.1f} {h_s} {r_s} {x_s}")

    print()
    print("Goal: hvp/grad <= 2.2x. Faster mode per setting (graph mode, lower hvp ms):")
    graph = [r for r in rows if r[2] == "graph"]
    figures = {}
    for label in args.settings:
        mine = {r[1]: r[4] for r in graph if r[0] == label and r[1] in HVP_MODES}
        if len(mine) == 2:
            fast = min(mine, key=mine.get)
            slow = max(mine, key=mine.get)
            print(f"  {label:<18} {fast} ({mine[slow] / mine[fast]:.2f}x faster than {slow})")
        key = label.replace("/", "_")
        for r in graph:
            if r[0] == label:
                figures[f"{key}_{r[1].replace('^', '').replace(' ', '_')}_over_grad"] = r[5]
    print(
        "xb rows: b vectors in one pass (one forward and backward pass shared by the b outer "
        "backward passes in reverse-over-reverse mode), hvp ms and hvp/grad per vector."
    )
    print(
        "s^2 rows: the per-example curvatures along a direction (Eq. 1) in one pass, Taylor mode "
        "(nested forward accumulators) and reverse mode (HVP + a reverse pass over weights)."
    )
    summary(figures)


if __name__ == "__main__":
    main()
