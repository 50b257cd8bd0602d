"""Cost of one full measurement in epoch-equivalents of training (issue 14).

SimpleCNN on the real Fashion-MNIST (Debian files, offline), S = 128, the library's default
measurement settings: Hessian sample 5% of the training set (3000 examples), lambda_1..5(H) by
Lanczos with lambda_1 certified to 1e-3 (start block of 2), s^2 and the sampling error of
lambda_1 along e1_H (one per-example curvature pass), K with L = 25, M = 128, Delta L. A
measurement is timed cold (random start) and warm (from the eigenvectors of the previous
measurement, 20 SGD steps earlier); the full rows add H (Lanczos + the s^2 pass) + K + Delta L.
One epoch-equivalent is the wall time of one epoch of training steps (468), in the same process.
The HVP pass and the s^2 pass over the sample are also timed alone.

    python benchmarks/measurement_overhead.py [--model simple_cnn] [--repeats 3]
        [--hessian-fraction 0.01 --hessian-target-error 0.05]

With --hessian-target-error the Hessian sample is adaptive (tfbreak.measure.adaptive_sample):
it starts at --hessian-fraction of the training set and grows along doubling sizes until the
standard error of lambda_1 / |lambda_1| meets the target; the table then gives the sample sizes
the measurements ended with. Figures of any other sample than the fixed 5% carry a suffix naming
it (e.g. _1pct_adaptive_5pct).

The baseline of block products (`HessianOperator.matvec_rows`: the vectors Lanczos knows before
their products, e.g. the two pending vectors of a cold start, in one pass) is timed in the same
process: the row "H cold: single products" repeats the cold H measurement with every product in
its own pass, at the same weights (so the same Krylov steps). Warm measurements follow training,
so a second one would see other weights and other steps: they are not compared.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import summary  # noqa: E402

from tfbreak.config import ExperimentConfig  # noqa: E402
from tfbreak.curvature import HessianOperator  # noqa: E402
from tfbreak.data import train_batches  # noqa: E402
from tfbreak.runs import names  # noqa: E402
from tfbreak.training.trainer import Trainer  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@contextlib.contextmanager
def single_products():
    """Every Hessian-vector product in its own pass: `matvec_rows`, which the algorithms call
    with every vector they know, takes them one pass at a time."""
    rows = HessianOperator.matvec_rows
    HessianOperator.matvec_rows = lambda self, vectors: np.concatenate(
        [rows(self, v[None]) for v in vectors]
    )
    try:
        yield
    finally:
        HessianOperator.matvec_rows = rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm-steps", type=int, default=20)
    parser.add_argument("--hessian-fraction", type=float, default=0.05)
    parser.add_argument("--hessian-target-error", type=float, default=None)
    args = parser.parse_args()
    fraction, target = f"{100 * args.hessian_fraction:g}", args.hessian_target_error
    adaptive = f", adaptive to {100 * target:g}% error" if target else ""
    sample_label = f"{fraction}% sample{adaptive}"
    # Figure names of the default (fixed 5%) sample carry no suffix.
    suffix = "" if (fraction, target) == ("5", None) else f"_{fraction}pct"
    suffix += f"_adaptive_{100 * target:g}pct" if target else ""
    suffix = suffix.replace(".", "p")
    with tempfile.TemporaryDirectory() as tmp:
        config = ExperimentConfig.create(
            model=args.model,
            dataset="fashion_mnist",
            batch_size=128,
            measurements=("hessian", "breakeven", "K", "delta_loss"),
            output_dir=tmp,
            run_name="bench",
            hessian_fraction=args.hessian_fraction,
            hessian_target_error=args.hessian_target_error,
        )
        trainer = Trainer(config, progress=False)
    suite = trainer.suite
    batches = iter(train_batches(trainer.bundle, 128, 0, 0))
    lr = tf.constant(config.lr, tf.float32)

    def train(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            loss, _ = trainer.train_step.step(next(batches), lr)
        float(loss)
        return (time.perf_counter() - start) / n

    def measure(measurements: tuple[str, ...], warm: bool) -> tuple[float, dict]:
        suite.settings = suite.settings.replace(measurements=measurements)
        if not warm:
            suite.warm_start = None
        return timed(lambda: suite.measure(0, config.lr))

    op = suite.hessian  # on the initial sample (an adaptive one may grow at a measurement)
    train(5)  # trace
    measure(("hessian", "breakeven", "K", "delta_loss"), warm=False)  # trace every part
    step_s = statistics.median(train(20) for _ in range(args.repeats))
    epoch_s = step_s * trainer.steps_per_epoch
    v = np.random.default_rng(0).standard_normal(op.dim)
    hvp_s = statistics.median(timed(lambda: op.matvec(v))[0] for _ in range(args.repeats))
    curvature_along = suite.part("hessian").curvature_along
    s2_s = statistics.median(
        timed(lambda: curvature_along(suite.samples.hessian, v))[0] for _ in range(args.repeats)
    )
    print(
        f"model {args.model}: step {1e3 * step_s:.1f} ms, epoch {epoch_s:.1f} s, one HVP pass "
        f"{hvp_s:.2f} s, s^2 pass ({curvature_along.mode} mode) {s2_s:.2f} s",
        flush=True,
    )
    parts, bounds, errors = {}, {}, {}
    h = ("hessian", "breakeven")
    for label, measurements, warm, single in [
        ("H cold: Lanczos + s^2 pass", h, False, False),
        ("H cold: single products", h, False, True),
        ("H warm: Lanczos + s^2 pass", h, True, False),
        ("K (L=25, M=128)", ("K",), True, False),
        ("Delta L", ("delta_loss",), True, False),
    ]:
        times, matvecs = [], []
        for _ in range(args.repeats):
            if warm and "hessian" in measurements:  # the previous measurement, warm_steps ago
                measure(("hessian",), warm=True)
                train(args.warm_steps)
            with single_products() if single else contextlib.nullcontext():
                seconds, (row, _) = measure(measurements, warm)
            times.append(seconds)
            matvecs.append(row.get(names.HESSIAN_MATVECS, 0))
            if names.HESSIAN_LAMBDA_1 in row:
                lam = row[names.HESSIAN_LAMBDA_1]
                bounds[label] = row[names.HESSIAN_LAMBDA_1_BOUND] / lam
                size = row.get(names.HESSIAN_SAMPLE_SIZE, op.num_examples)
                error = row[names.HESSIAN_LAMBDA_1_STDERR] / lam
                errors.setdefault(label, []).append((size, error))
        parts[label] = (statistics.median(times), statistics.median(matvecs))
        print(f"  {label}: {parts[label][0]:.2f} s", flush=True)
    k, dl = parts["K (L=25, M=128)"][0], parts["Delta L"][0]
    rows = [(label, t, mv, t / epoch_s) for label, (t, mv) in parts.items()]
    figures = {}
    for start in ("cold", "warm"):
        t, mv = parts[f"H {start}: Lanczos + s^2 pass"]
        full = (t + k + dl) / epoch_s
        rows.append((f"full ({start}): H + K + Delta L", t + k + dl, mv, full))
        figures[f"overhead_{start}_epochs{suffix}"] = full
        figures[f"lanczos_passes_{start}{suffix}"] = mv
    block, single = parts["H cold: Lanczos + s^2 pass"], parts["H cold: single products"]
    figures[f"block_over_single_cold{suffix}"] = block[0] / single[0]
    figures[f"hvp_pass_epochs{suffix}"] = hvp_s / epoch_s
    figures[f"s2_pass_epochs{suffix}"] = s2_s / epoch_s
    figures["k_epochs"] = k / epoch_s
    print(f"model {args.model}, Fashion-MNIST (real), S=128, {trainer.steps_per_epoch} steps/epoch")
    print(
        f"Hessian sample {op.num_examples} examples ({sample_label}); step {1e3 * step_s:.1f} "
        f"ms, epoch {epoch_s:.1f} s; one HVP pass {hvp_s / epoch_s:.3f} epochs, the s^2 pass "
        f"{s2_s / epoch_s:.3f}; median of {args.repeats}; goal: full <= 0.5 epoch warm, <= 1 cold"
    )
    print(f"{'measurement':34s} {'seconds':>8s} {'HVPs':>5s} {'epochs':>7s}")
    for label, t, mv, ep in rows:
        print(f"{label:34s} {t:8.2f} {mv:5.0f} {ep:7.3f}")
    print(
        "block products / single products (seconds of H cold): "
        f"{figures[f'block_over_single_cold{suffix}']:.3f}"
    )
    print(
        "certified bound / lambda_1 of the last H measurements: "
        + ", ".join(
            f"{label.replace(': Lanczos + s^2 pass', '')} {b:.1e}" for label, b in bounds.items()
        )
    )
    print(
        "sample size and relative sampling error of lambda_1 (stderr / lambda_1) per timed "
        "measurement: "
        + "; ".join(
            f"{label.replace(': Lanczos + s^2 pass', '')} "
            + ", ".join(f"{n} {e:.1%}" for n, e in errs)
            for label, errs in errors.items()
        )
    )
    summary(figures)


if __name__ == "__main__":
    main()
