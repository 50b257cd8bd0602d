"""Cost of one full measurement in epoch-equivalents of training (issue: training engine).

SimpleCNN on the real Fashion-MNIST (Debian files, offline), S = 128, Hessian sample 5% of the
training set (3000 examples), K with L = 25, M = 128. A measurement = lambda_1..5(H) by Lanczos
(cold: random start; warm: from the previous measurement's eigenvectors, 20 SGD steps earlier)
+ K + Delta L (the full rows add the parts); s^2 for Eq. 1 is reported separately. One
epoch-equivalent is the wall time of one epoch of training steps (468), in the same process.

    python benchmarks/measurement_overhead.py [--model simple_cnn] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from tfbreak.config import ExperimentConfig  # noqa: E402
from tfbreak.data import train_batches  # noqa: E402
from tfbreak.training.trainer import Trainer  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = ExperimentConfig.create(
            model=args.model,
            dataset="fashion_mnist",
            batch_size=128,
            measurements=("hessian", "breakeven", "K", "delta_loss"),
            output_dir=tmp,
            run_name="bench",
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

    train(5)  # trace
    step_s = statistics.median(train(20) for _ in range(args.repeats))
    epoch_s = step_s * trainer.steps_per_epoch

    def measure(names: tuple[str, ...], warm: bool) -> tuple[float, dict]:
        suite.settings = suite.settings.replace(measurements=names)
        if not warm:
            suite.warm_start = None
        return timed(lambda: suite.measure(0, config.lr))

    measure(("hessian", "K", "delta_loss"), warm=False)  # trace (s^2 is traced in its own row)
    print(f"model {args.model}: step {1e3 * step_s:.1f} ms, epoch {epoch_s:.1f} s", flush=True)
    parts = {}
    for label, names, warm in [
        ("lambda_1..5(H), cold", ("hessian",), False),
        ("lambda_1..5(H), warm", ("hessian",), True),
        ("K (L=25, M=128)", ("K",), True),
        ("Delta L", ("delta_loss",), True),
        ("lambda_1..5(H) warm + s^2 (Eq. 1)", ("hessian", "breakeven"), True),
    ]:
        times, matvecs = [], []
        for _ in range(args.repeats):
            if warm:  # the previous measurement was 20 SGD steps ago
                suite.settings = suite.settings.replace(measurements=("hessian",))
                suite.measure(0, config.lr)
                train(20)
            seconds, (row, _) = measure(names, warm)
            times.append(seconds)
            matvecs.append(row.get("hessian/matvecs", 0))
        parts[label] = (statistics.median(times), statistics.median(matvecs))
        print(f"  {label}: {parts[label][0]:.2f} s", flush=True)
    k, dl = parts["K (L=25, M=128)"][0], parts["Delta L"][0]
    rows = [(label, t, mv, t / epoch_s) for label, (t, mv) in parts.items()]
    for start in ("cold", "warm"):
        t, mv = parts[f"lambda_1..5(H), {start}"]
        rows.append((f"full ({start}): H + K + Delta L", t + k + dl, mv, (t + k + dl) / epoch_s))
    print(f"model {args.model}, Fashion-MNIST (real), S=128, {trainer.steps_per_epoch} steps/epoch")
    print(f"Hessian sample {suite.hessian.num_examples} examples; step {1e3 * step_s:.1f} ms,")
    print(f"epoch {epoch_s:.1f} s; median of {args.repeats}; goal: full measurement <= 0.5 epoch")
    print(f"{'measurement':32s} {'seconds':>8s} {'HVPs':>5s} {'epochs':>7s}")
    for label, t, mv, ep in rows:
        print(f"{label:32s} {t:8.2f} {mv:5.0f} {ep:7.3f}")


if __name__ == "__main__":
    main()
