"""Peak host memory of each measurement against the parameter count D, up to mBERT's 178M
(issue 24), with the memory budget's prediction beside it (`tfbreak.measure.budget`).

The models are wide two-layer Keras MLPs (784 -> h -> 10, ReLU; D = 795 h + 10) on random inputs
(--data fashion_mnist: real Fashion-MNIST examples), or with --model bert a randomly initialised
BERT-base encoder with the multilingual vocabulary (keras-hub `BertBackbone`, 119,547 x 768
embeddings, 12 layers: 177.9M parameters; random token ids of --seq-len) with a 3-way head. Each
quantity is measured through the library API (`tfbreak.Curvature`, default settings) in a fresh
subprocess, so the peaks do not mix: the peak resident set (VmHWM) minus the resident set just
before the call (model, data and Hessian sample built), reset before the call through
/proc/self/clear_refs.

    lambda1_k1   Curvature.top_eigenvalues(1)      (block 1, up to 30 products)
    lambda1_k5   Curvature.top_eigenvalues(5)      (block 2, lambda_1 certified, up to 30 + 2)
    trace        Curvature.trace()                 (10 Hutchinson probes, 4 per pass)
    density      Curvature.density()               (2 SLQ probes x 30 steps, in lockstep)
    K            Curvature.covariance_spectrum(L=25, M=--k-m)

The table gives the peak added, its ratio to D x 4 bytes (one float32 parameter vector), the
budget's prediction for the products actually taken (Lanczos stops when lambda_1 is certified)
and its worst case (every product up to max_iter, what a run's start-up check uses).

    python benchmarks/memory.py [--params 2e6,1e7,4.55e7,1e8,1.78e8] [--sample 16]
        [--quantities lambda1_k1,lambda1_k5,trace,density,K] [--model mlp|bert]
        [--basis host|host_float64|device] [--basis-vectors N] [--data random|fashion_mnist]

Issue 24's acceptance case (45.5M parameters, 64 examples; lambda_1 and its bound in the last
column, to compare with --basis host_float64):

    python benchmarks/memory.py --params 4.55e7 --quantities lambda1_k1 --sample 64 \
        --data fashion_mnist

A quantity whose worst case would not fit in --fraction of the memory available now runs with
its setting lowered to the largest value that fits (the budget's `largest_fitting`: the Lanczos
basis' cap, the SLQ steps, K's L; the last column says so), or is skipped. The last line: per
quantity, the peak in bytes per parameter at the largest measured size
(`<quantity>_peak_bytes_per_param=`) and the prediction over the measurement, and the largest
measured D. A measurement whose subprocess fails is reported on its row and makes the script
exit 1 after the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

QUANTITIES = ("lambda1_k1", "lambda1_k5", "trace", "density", "K")
MEASUREMENT = {  # the budget's measurement of each quantity (tfbreak.measure.settings)
    "lambda1_k1": "hessian",
    "lambda1_k5": "hessian",
    "trace": "trace",
    "density": "density",
    "K": "K",
}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def _model(kind: str, params: int, seq_len: int):
    import keras

    keras.utils.set_random_seed(0)
    if kind == "bert":
        import keras_hub

        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=119547,
            num_layers=12,
            num_heads=12,
            hidden_dim=768,
            intermediate_dim=3072,
            max_sequence_length=512,
        )
        logits = keras.layers.Dense(3)(backbone(backbone.input)["pooled_output"])
        return keras.Model(backbone.input, logits)
    hidden = max(1, round((params - 10) / 795))
    return keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(10)]
    )


def _data(kind: str, n: int, seq_len: int, source: str):
    import numpy as np

    rng = np.random.default_rng(0)
    if source == "fashion_mnist":
        from common import fashion_mnist_sample

        x, y, _ = fashion_mnist_sample(n, seed=0)
        return np.reshape(x, (n, -1)), np.asarray(y)
    if kind == "bert":
        x = {
            "token_ids": rng.integers(0, 119547, (n, seq_len)).astype(np.int32),
            "segment_ids": np.zeros((n, seq_len), np.int32),
            "padding_mask": np.ones((n, seq_len), np.int32),
        }
        return x, rng.integers(0, 3, n).astype(np.int32)
    return rng.uniform(0, 1, (n, 784)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)


def child(args) -> None:
    """Measure one quantity; print one JSON line."""
    import time

    import tfbreak

    model = _model(args.model, int(float(args.params)), args.seq_len)
    n = max(args.sample, args.k_l * args.k_m)
    curvature = tfbreak.Curvature(
        model,
        _data(args.model, n, args.seq_len, args.data),
        sample=args.sample,
        hessian_batch_size=args.sample,
        lanczos_max_iter=args.max_iter,
        density_steps=args.density_steps,
        lanczos_basis=args.basis,
        lanczos_basis_vectors=args.basis_vectors,
    )
    calls = {
        "lambda1_k1": lambda: curvature.top_eigenvalues(1),
        "lambda1_k5": lambda: curvature.top_eigenvalues(5),
        "trace": curvature.trace,
        "density": curvature.density,
        "K": lambda: curvature.covariance_spectrum(L=args.k_l, M=args.k_m),
    }
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    start = time.perf_counter()
    result = calls[args.quantity]()
    seconds = time.perf_counter() - start
    out = {
        "D": curvature.hessian.dim,
        "added": _status("VmHWM") - before,
        "before": before,
        "seconds": seconds,
        "matvecs": int(getattr(result, "matvecs", 0)),
        "thick_restarts": int(getattr(result, "thick_restarts", 0)),
        "converged": bool(getattr(result, "converged", True)),
    }
    if hasattr(result, "error_bounds"):  # lambda_1 and its certified bound
        out["lambda_1"] = float(result.eigenvalues[0])
        out["bound"] = float(result.error_bounds[0])
    print(json.dumps(out))


def budget(quantity: str, dim: int, args, available, matvecs: int | None = None, **settings):
    """The memory budget of `quantity` (its measurement's estimate; with `matvecs`, for the
    basis of the products Lanczos took)."""
    from tfbreak.measure.budget import Budget, Sizes
    from tfbreak.measure.settings import MeasurementSettings

    top_k = 5 if quantity == "lambda1_k5" else 1
    measurement = MEASUREMENT[quantity]
    chosen = MeasurementSettings(
        measurements=(measurement,),
        top_k=top_k,
        lanczos_block=min(2, top_k),
        k_L=25,
        lanczos_basis=args.basis,
        **{"lanczos_basis_vectors": args.basis_vectors, **settings},
    )
    if matvecs is not None:  # the basis of the products taken: matvecs + block vectors
        chosen = chosen.replace(lanczos_max_iter=max(matvecs, top_k))
    sizes = Sizes(
        parameters=dim,
        hessian_sample=args.sample,
        hessian_batch_size=args.sample,
        k_Ms=(args.k_m,),
        batch_size=args.k_m,
        activations=None if args.model == "bert" else 784 + (dim - 10) // 795 + 10,
    )
    return Budget.of(chosen, sizes, available)


CAPPED = {"hessian": "lanczos_basis_vectors", "density": "density_steps", "K": "k_L"}
"""The setting lowered when a quantity's worst case does not fit (the row says so)."""


def parent(args) -> None:
    from tfbreak.measure.budget import Available, available_memory, format_bytes

    sizes = [int(float(p)) for p in args.params.split(",")]
    quantities = args.quantities.split(",")
    print(
        f"model: {args.model}; Hessian sample {args.sample} examples; K: L = 25, M = {args.k_m}; "
        f"Lanczos basis: {args.basis}"
    )
    header = (
        f"{'D':>12} {'quantity':<11} {'products':>8} {'peak added':>11} {'x D*4':>6} "
        f"{'predicted':>10} {'x D*4':>6} {'worst case':>10} {'seconds':>8}  notes"
    )
    print(header)
    last: dict[str, float] = {}
    largest = 0
    failed = []
    for params in sizes:
        for quantity in quantities:
            dim = params if args.model == "mlp" else 177_855_747
            measurement = MEASUREMENT[quantity]
            free = available_memory()
            room = Available(int(args.fraction * free.bytes), free.source)
            settings: dict[str, int] = {}
            plan = budget(quantity, dim, args, room)
            if plan.peak > room.bytes:
                flag = CAPPED.get(measurement)
                value = plan.largest_fitting(measurement, flag) if flag else None
                if value is None:
                    print(
                        f"{dim:>12,} {quantity:<11} skipped: needs {format_bytes(plan.peak)} > "
                        f"{args.fraction:g} x {format_bytes(free.bytes)} available"
                    )
                    continue
                settings[flag] = value
            cap = {
                "lanczos_basis_vectors": "basis-vectors",
                "density_steps": "density-steps",
                "k_L": "k-l",
            }
            extra = [f"--{cap[k]}={v}" for k, v in settings.items()]
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--quantity", quantity, "--params",
                 str(params), *forwarded(args), *extra],
                capture_output=True,
                text=True,
            )  # fmt: skip
            if done.returncode != 0:
                print(f"{dim:>12,} {quantity:<11} failed: {done.stderr.strip()[-300:]}")
                failed.append(f"{quantity} at D = {dim:,}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            dim, added = row["D"], row["added"]
            matvecs = row["matvecs"] if measurement == "hessian" else None
            pred = budget(quantity, dim, args, None, matvecs, **settings).peak
            worst = budget(quantity, dim, args, None, **settings).peak
            capped = ", ".join(f"{k}={v}" for k, v in settings.items())
            if not row["converged"]:
                capped += " (not converged)"
            if row.get("thick_restarts"):
                capped += f" {row['thick_restarts']} thick restarts"
            if "lambda_1" in row:
                capped += f" lambda_1 = {row['lambda_1']:.10g} +- {row['bound']:.2g}"
            print(
                f"{dim:>12,} {quantity:<11} {row['matvecs'] or '':>8} "
                f"{format_bytes(added):>11} {added / (4 * dim):>6.1f} "
                f"{format_bytes(pred):>10} {pred / (4 * dim):>6.1f} "
                f"{format_bytes(worst):>10} {row['seconds']:>8.1f}  {capped}",
                flush=True,
            )
            last[f"{quantity}_peak_bytes_per_param"] = added / dim
            last[f"{quantity}_predicted_over_measured"] = pred / added
            largest = max(largest, dim)
    last["largest_measured_D"] = largest
    from common import summary

    summary(last)
    if failed:
        raise SystemExit(f"memory.py: {len(failed)} measurement(s) failed: {', '.join(failed)}")


def forwarded(args) -> list[str]:
    return [
        "--model", args.model, "--sample", str(args.sample), "--k-m", str(args.k_m),
        "--seq-len", str(args.seq_len), "--basis", args.basis, "--data", args.data,
        *([] if args.basis_vectors is None else ["--basis-vectors", str(args.basis_vectors)]),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="2e6,1e7,4.55e7,1e8,1.78e8")
    parser.add_argument("--quantities", default=",".join(QUANTITIES))
    parser.add_argument("--model", choices=("mlp", "bert"), default="mlp")
    parser.add_argument("--sample", type=int, default=16, help="Hessian sample (one batch)")
    parser.add_argument("--k-m", type=int, default=8, help="K's mini-batch size M")
    parser.add_argument("--seq-len", type=int, default=8, help="BERT: tokens per example")
    parser.add_argument(
        "--basis", default="host", help="--lanczos_basis (host_float64: the float64 basis)"
    )
    parser.add_argument(
        "--basis-vectors", type=int, default=None,
        help="--lanczos_basis_vectors (default: the library's, 20 for top_k <= 16)",
    )  # fmt: skip
    parser.add_argument("--data", choices=("random", "fashion_mnist"), default="random")
    parser.add_argument(
        "--fraction", type=float, default=0.8, help="run a size when its worst case fits in "
        "this fraction of the available memory",
    )  # fmt: skip
    parser.add_argument("--max-iter", type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument("--density-steps", type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument("--k-l", type=int, default=25, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quantity", choices=QUANTITIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
