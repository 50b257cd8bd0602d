"""tfbreak beside PyHessian and curvlinops on the same weights, sample and protocol (issue 14).

    pip install ".[peers]"            # torch, pyhessian, curvlinops-for-pytorch (never in CI)
    python benchmarks/peers/compare.py [--model mlp|simple_cnn] [--steps 300] [--sample 2048]
        [--batch 512] [--repeats 3]

Protocol. The paper's MLP 300-100 (App. D; or SimpleCNN with --model simple_cnn) is built by
tfbreak and trained with plain SGD (lr 0.01, batch 128) for --steps steps on REAL Fashion-MNIST
(Debian files), so the Hessian is that of a trained network, not of the initialisation. Its
weights are copied exactly into an equivalent torch.nn.Sequential: Dense kernel (in, out) ->
Linear weight (out, in); Conv2D kernel HWIO -> OIHW; the torch net takes NCHW inputs and turns
its feature map back to NHWC before flattening, so the Dense kernels after the flatten keep their
row order. The copy is checked before anything is timed: the mean cross-entropy over the sample
with both models in float64 (required rel. diff < 1e-10) and in float32, and one Hessian-vector
product in float64 (tfbreak's HessianOperator on a float64 twin vs curvlinops in float64) and
float32 (what is benchmarked). Every tool then works on the SAME matrix: the Hessian of the mean
cross-entropy over the same --sample training examples, in batches of --batch (PyHessian weights
each batch's mean by its size and divides by the sample size; curvlinops scales the per-batch
means to the mean over the data; tfbreak's HessianOperator averages over the sample).

The truth: tfbreak's Lanczos at tol 1e-9, block 1 (lambda_1..5), checked by a second run from
another random start. Each tool is asked for lambda_1 and for the top 5 with its own stopping
rule set to 1e-3:
  tfbreak     lanczos(): stops when the certified error bound of lambda_1 (for the top 5: of
              all five) is <= 1e-3 * theta_1; start block 2 (the library default,
              MeasurementSettings.lanczos_block) and, row tfbreak_block1, a single random
              start vector like the peers'; cap 60 passes;
  PyHessian   hessian.eigenvalues(): power iteration with deflation, stops an eigenvalue when
              it changes by < tol (relative) between two iterations; run at tol 1e-3 and 1e-4
              (1e-3 is not a bound on the true error), maxIter 200;
  curvlinops  HessianLinearOperator(...).to_scipy() + scipy.sparse.linalg.eigsh (ARPACK,
              which="LA", default ncv) at tol 1e-3.
Columns: HVP passes over the whole sample (every product counted, by wrapping the matvec or
PyHessian's dataloader_hv_product), wall time (median of --repeats runs, the tools' runs
interleaved round-robin), relative error of lambda_1 and the largest over the top 5 against the
truth, and, per framework, one HVP pass over the sample / one gradient pass (interleaved
medians of >= 9 timed batches of >= 0.2 s, benchmarks/common.py). The machine: 2 CPU cores,
no GPU, each framework at its default thread settings; the CPU may be shared, so compare ratios
from one run, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The peers before TensorFlow: triton (imported by torch.func under curvlinops) has crashed when
# it was loaded after TensorFlow's libraries. A peer that is missing is reported, not fatal.
MISSING: dict[str, str] = {}
warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
warnings.filterwarnings("ignore", message=".*create_graph=True.*", category=UserWarning)
try:
    import torch

    # torch.func loads further modules lazily at first use: use it once before TensorFlow.
    torch.func.vmap(
        lambda v: torch.func.jvp(torch.func.grad(lambda w: (w**2).sum()), (torch.ones(2),), (v,))[1]
    )(torch.eye(2))
except ImportError as err:
    torch = None
    MISSING["torch"] = str(err)
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pyhessian import hessian as PyHessian
except ImportError as err:
    PyHessian = None
    MISSING["pyhessian"] = str(err)
try:
    import curvlinops
except ImportError as err:
    curvlinops = None
    MISSING["curvlinops"] = str(err)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import interleaved_medians, summary  # noqa: E402
from scipy.sparse.linalg import LinearOperator, eigsh  # noqa: E402

from tfbreak.curvature import (  # noqa: E402
    GradientFunctions,
    HessianOperator,
    LanczosWarning,
    classification_loss,
    lanczos,
)
from tfbreak.data import fixed_subset, load_dataset, train_batches  # noqa: E402
from tfbreak.measure import MeasurementSettings  # noqa: E402
from tfbreak.models import build_model, trainable_tf_variables  # noqa: E402

TOL = 1e-3


def trained_model(name: str, steps: int, seed: int):
    """The tfbreak model after `steps` SGD steps (lr 0.01, batch 128) and the data bundle."""
    bundle = load_dataset("fashion_mnist")
    model = build_model(name, num_classes=10, input_shape=bundle.input_shape, seed=seed)
    variables = trainable_tf_variables(model)
    loss_fn = classification_loss(model, bn_mode="inference")

    @tf.function
    def sgd_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn((x, y)))
        for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
            v.assign_sub(0.01 * g)
        return loss

    done, loss = 0, float("nan")
    for epoch in range(1000):
        for x, y in train_batches(bundle, 128, seed, epoch):
            if done == steps:
                return model, float(loss), bundle
            loss = sgd_step(x, y)
            done += 1
    return model, float(loss), bundle


# --- the exact torch copy -------------------------------------------------------------------

KERAS_TO_TORCH = {4: (3, 2, 0, 1), 2: (1, 0), 1: (0,)}
"""Axis permutation from a Keras variable to its torch parameter, by rank: Conv2D kernel HWIO ->
OIHW, Dense kernel (in, out) -> (out, in), bias as is."""


class NHWCFlatten(torch.nn.Module if torch else object):
    """Flatten an NCHW feature map in Keras' NHWC order (so Dense kernels keep their rows)."""

    def forward(self, x):
        return torch.flatten(x.permute(0, 2, 3, 1) if x.dim() == 4 else x, 1)


def torch_copy(model, dtype):
    """The Keras model (Conv2D/Dense/Activation/MaxPooling2D/Flatten) as torch.nn.Sequential
    taking NCHW inputs, with the same weights; raises on any other layer."""
    layers = []

    def activation(name, where):
        if name == "relu":
            layers.append(torch.nn.ReLU())
        elif name not in ("linear", None):
            raise ValueError(f"unexpected activation {name!r} in {where}")

    for layer in model.layers:
        kind, config = type(layer).__name__, layer.get_config()
        if kind == "InputLayer":
            continue
        if kind == "Flatten":
            layers.append(NHWCFlatten())
        elif kind == "Dense":
            n_in, n_out = layer.kernel.shape
            layers.append(torch.nn.Linear(n_in, n_out, bias=layer.use_bias))
            activation(config.get("activation"), layer.name)
        elif kind == "Conv2D":
            h, w, c_in, c_out = layer.kernel.shape
            if tuple(config["strides"]) != (1, 1) or tuple(config["dilation_rate"]) != (1, 1):
                raise ValueError(f"{layer.name}: only stride 1, dilation 1 are copied")
            if config["padding"] == "same" and not (h % 2 and w % 2):
                raise ValueError(f"{layer.name}: 'same' padding with an even kernel")
            pad = (h // 2, w // 2) if config["padding"] == "same" else (0, 0)
            layers.append(torch.nn.Conv2d(c_in, c_out, (h, w), padding=pad, bias=layer.use_bias))
            activation(config.get("activation"), layer.name)
        elif kind == "Activation":
            activation(config["activation"], layer.name)
        elif kind == "MaxPooling2D":
            if config["padding"] != "valid":
                raise ValueError(f"{layer.name}: only 'valid' pooling is copied")
            layers.append(torch.nn.MaxPool2d(config["pool_size"], config["strides"]))
        else:
            raise ValueError(f"layer {layer.name} ({kind}) has no torch copy here")
    net = torch.nn.Sequential(*layers).to(dtype)
    params = list(net.parameters())
    variables = trainable_tf_variables(model)
    if len(params) != len(variables):
        raise ValueError(f"{len(variables)} Keras variables but {len(params)} torch parameters")
    with torch.no_grad():
        for p, v in zip(params, variables, strict=True):
            value = np.transpose(v.numpy(), KERAS_TO_TORCH[len(v.shape)])
            if tuple(p.shape) != value.shape:
                raise ValueError(f"{v.name}: {value.shape} vs torch {tuple(p.shape)}")
            p.copy_(torch.from_numpy(value.copy()))
    return net.eval()


class Layout:
    """Flat parameter vectors: Keras' (tfbreak's variable order, each variable row-major) and
    the torch copy's (net.parameters() order, each parameter row-major)."""

    def __init__(self, variables):
        self.shapes = [tuple(v.shape) for v in variables]

    def _convert(self, vec: np.ndarray, to_torch: bool) -> np.ndarray:
        out, at = [], 0
        for shape in self.shapes:
            perm = KERAS_TO_TORCH[len(shape)]
            size = int(np.prod(shape))
            block = vec[at : at + size]
            if to_torch:
                out.append(np.transpose(block.reshape(shape), perm).ravel())
            else:
                block = block.reshape([shape[i] for i in perm])
                out.append(np.transpose(block, np.argsort(perm)).ravel())
            at += size
        return np.concatenate(out)

    def to_torch(self, vec):
        return self._convert(vec, True)

    def to_keras(self, vec):
        return self._convert(vec, False)


def float64_twin(name, model, input_shape):
    """The same tfbreak model built in float64 with the trained weights."""
    twin = build_model(name, num_classes=10, input_shape=input_shape, dtype="float64")
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return twin


# --- the runs ---------------------------------------------------------------------------------


class Counted:
    """A matvec that counts its products."""

    def __init__(self, matvec):
        self.matvec, self.calls = matvec, 0

    def __call__(self, *args):
        self.calls += 1
        return self.matvec(*args)


def rel(values, truth) -> tuple[float, float]:
    """|error| / lambda of lambda_1, and the largest over the values given."""
    values = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    errors = np.abs(values - truth[: values.size]) / np.abs(truth[: values.size])
    return float(errors[0]), float(errors.max())


def tfbreak_run(op, k, seed, block=None):
    """-> (passes, eigenvalues): tfbreak's lanczos() with the library's stopping rule, start
    block `block` (default: the library's, MeasurementSettings.lanczos_block)."""
    s = MeasurementSettings()
    block = s.lanczos_block if block is None else block
    counter = Counted(op.matvec)
    counted = LinearOperator(op.shape, matvec=counter, dtype=np.float64)
    counted.precision = op.precision
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LanczosWarning)
        result = lanczos(
            counted, k, tol=TOL, max_iter=60, converge_k=k, block=block, seed=seed, basis="host"
        )
    return counter.calls, result.eigenvalues[:k]


def pyhessian_run(net, loader, k, tol):
    torch.manual_seed(0)
    h = PyHessian(net, torch.nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
    counter = Counted(h.dataloader_hv_product)
    h.dataloader_hv_product = counter
    values, _ = h.eigenvalues(maxIter=200, tol=tol, top_n=k)
    return counter.calls, values


def curvlinops_run(torch_op, k):
    counter = Counted(lambda v: torch_op.matvec(v.astype(np.float32)).astype(np.float64))
    counted = LinearOperator(torch_op.shape, matvec=counter, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(torch_op.shape[0])
    values = eigsh(counted, k=k, which="LA", tol=TOL, v0=v0, return_eigenvectors=False)
    return counter.calls, values


def solver_rows(runs, truth, repeats):
    """runs: {(tool, k): fn -> (passes, values)}. The runs interleaved round-robin `repeats`
    times; -> {(tool, k): (passes, median s, relerr_1, max relerr) or the error text}."""
    times = {key: [] for key in runs}
    out = {}
    for _ in range(repeats):
        for key, fn in runs.items():
            if isinstance(out.get(key), str):
                continue
            start = time.perf_counter()
            try:
                passes, values = fn()
            except Exception as err:  # a peer that fails is reported, not fatal
                out[key] = f"FAILED: {type(err).__name__}: {err}"
                print(f"# {key[0]} k={key[1]}: {out[key]}", flush=True)
                continue
            times[key].append(time.perf_counter() - start)
            out[key] = (passes, values)
    rows = {}
    for key, res in out.items():
        if isinstance(res, str):
            rows[key] = res
        else:
            passes, values = res
            rows[key] = (passes, statistics.median(times[key]), *rel(values, truth))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mlp", choices=("mlp", "simple_cnn"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sample", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each solver")
    args = parser.parse_args()
    for name, err in MISSING.items():
        print(f"# NOT INSTALLED: {name} ({err}); its rows are skipped", flush=True)

    model, train_loss, bundle = trained_model(args.model, args.steps, args.seed)
    variables = trainable_tf_variables(model)
    loss_fn = classification_loss(model, bn_mode="inference")
    x, y = fixed_subset(bundle.train, args.sample, seed=args.seed)
    y = tf.cast(y, tf.int32)
    n, b = args.sample, args.batch
    batches = [(x[i : i + b], y[i : i + b]) for i in range(0, n, b)]
    op = HessianOperator(variables, loss_fn, batches, mode="reverse_over_reverse")
    print(
        f"# {args.model}, D = {op.dim:,}, REAL Fashion-MNIST ({bundle.source}), {args.steps} SGD "
        f"steps (last minibatch loss {train_loss:.4f}); Hessian sample {n} in batches of {b}",
        flush=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LanczosWarning)
        ref = lanczos(op, 5, tol=1e-9, max_iter=200, converge_k=5, block=1, seed=7, basis="host")
        check = lanczos(op, 5, tol=1e-9, max_iter=200, converge_k=5, block=1, seed=8, basis="host")
    truth = ref.eigenvalues
    print(
        f"# truth (tfbreak Lanczos, tol 1e-9, {ref.matvecs} passes, converged={ref.converged}): "
        f"lambda_1..5 = {', '.join(f'{t:.6g}' for t in truth)}; a second start agrees to "
        f"{np.max(np.abs(check.eigenvalues - truth) / truth):.1e}",
        flush=True,
    )

    runs = {
        ("tfbreak", 1): lambda: tfbreak_run(op, 1, args.seed),
        ("tfbreak", 5): lambda: tfbreak_run(op, 5, args.seed),
        ("tfbreak_block1", 1): lambda: tfbreak_run(op, 1, args.seed, block=1),
        ("tfbreak_block1", 5): lambda: tfbreak_run(op, 5, args.seed, block=1),
    }
    grads = GradientFunctions(variables, loss_fn)
    v = np.random.default_rng(1).standard_normal(op.dim)
    timing = {
        "tf_hvp": lambda: op.matvec(v),
        "tf_grad": lambda: [grads.minibatch(batch) for batch in batches],
    }
    if torch is not None:
        layout = Layout(variables)
        x_nchw = np.transpose(np.asarray(x), (0, 3, 1, 2))
        tx = torch.from_numpy(np.array(x_nchw, dtype=np.float32))
        ty = torch.from_numpy(np.asarray(y, dtype=np.int64))
        loader = [(tx[i : i + b], ty[i : i + b]) for i in range(0, n, b)]
        net = torch_copy(model, torch.float32)
        net64 = torch_copy(model, torch.float64)

        # The copy is the same function: the mean loss in float64 and float32, one HVP.
        twin = float64_twin(args.model, model, bundle.input_shape)
        twin_loss = classification_loss(twin, bn_mode="inference")
        x64 = tf.cast(x, tf.float64)
        batches64 = [(x64[i : i + b], y[i : i + b]) for i in range(0, n, b)]
        tf64 = float(np.mean(np.concatenate([twin_loss(bt).numpy() for bt in batches64])))
        tf32 = float(np.mean(np.concatenate([loss_fn(bt).numpy() for bt in batches])))
        with torch.no_grad():
            t64 = float(torch.nn.functional.cross_entropy(net64(tx.double()), ty))
            t32 = float(torch.nn.functional.cross_entropy(net(tx), ty))
        loss_diff64 = abs(tf64 - t64) / t64
        print(
            f"# copy check, mean loss: float64 tfbreak {tf64:.15f} torch {t64:.15f} rel diff "
            f"{loss_diff64:.1e}; float32 tfbreak {tf32:.8f} torch {t32:.8f} rel diff "
            f"{abs(tf32 - t32) / t64:.1e}",
            flush=True,
        )
        if loss_diff64 > 1e-10:
            sys.exit(f"the torch copy is not the same function (float64 rel diff {loss_diff64})")
        if curvlinops is not None:
            torch_op = curvlinops.HessianLinearOperator(
                net, torch.nn.CrossEntropyLoss(), list(net.parameters()), loader,
                check_deterministic=False,
            ).to_scipy(dtype=np.float32)  # fmt: skip
            loader64 = [(xb.double(), yb) for xb, yb in loader]
            torch_op64 = curvlinops.HessianLinearOperator(
                net64, torch.nn.CrossEntropyLoss(), list(net64.parameters()), loader64,
                check_deterministic=False,
            ).to_scipy(dtype=np.float64)  # fmt: skip
            hv32 = op.matvec(v)
            hv32_t = layout.to_keras(torch_op.matvec(layout.to_torch(v).astype(np.float32)))
            op64 = HessianOperator(
                trainable_tf_variables(twin), twin_loss, batches64, mode="reverse_over_reverse"
            )
            hv64 = np.asarray(op64.matvec(v), dtype=np.float64)
            hv64_t = layout.to_keras(torch_op64.matvec(layout.to_torch(v)))
            d64 = np.linalg.norm(hv64 - hv64_t) / np.linalg.norm(hv64)
            d32 = np.linalg.norm(hv32 - hv32_t) / np.linalg.norm(hv64)
            print(
                f"# copy check, one HVP (tfbreak HessianOperator vs curvlinops): rel diff "
                f"{d64:.1e} in float64, {d32:.1e} in float32",
                flush=True,
            )
            runs[("curvlinops", 1)] = lambda: curvlinops_run(torch_op, 1)
            runs[("curvlinops", 5)] = lambda: curvlinops_run(torch_op, 5)
            w = layout.to_torch(v).astype(np.float32)
            timing["curvlinops_hvp"] = lambda: torch_op.matvec(w)

        def torch_grad():
            for xb, yb in loader:
                net.zero_grad()
                torch.nn.functional.cross_entropy(net(xb), yb).backward()

        timing["torch_grad"] = torch_grad
        if PyHessian is not None:
            for tol in (1e-3, 1e-4):
                tool = "pyhessian" if tol == TOL else "pyhessian_tol1e-4"
                for k in (1, 5):
                    runs[(tool, k)] = lambda k=k, tol=tol: pyhessian_run(net, loader, k, tol)
            h = PyHessian(net, torch.nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
            tv = [torch.randn(p.shape) for p in net.parameters()]
            timing["pyhessian_hvp"] = lambda: h.dataloader_hv_product(tv)

    medians = interleaved_medians(timing, repeats=max(9, args.repeats), min_batch_s=0.2)
    ratios = {"tfbreak": medians["tf_hvp"] / medians["tf_grad"]}
    for tool in ("pyhessian", "curvlinops"):
        if f"{tool}_hvp" in medians:
            ratios[tool] = medians[f"{tool}_hvp"] / medians["torch_grad"]
    print(
        "# one pass over the sample (median s): "
        + ", ".join(f"{name} {s:.3f}" for name, s in medians.items()),
        flush=True,
    )

    rows = solver_rows(runs, truth, args.repeats)
    tools = list(dict.fromkeys(tool for tool, _ in runs))
    head = (
        f"{'tool':<18} | {'l1 passes':>9} | {'l1 s':>6} | {'l1 rel err':>10} | "
        f"{'top5 passes':>11} | {'top5 s':>6} | {'top5 max rel err':>16} | {'HVP/grad':>8}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    figures = {}
    for tool in tools:
        ratio = ratios.get(tool.split("_")[0], float("nan"))
        cells = []
        for k in (1, 5):
            row = rows[(tool, k)]
            if isinstance(row, str):
                cells.append(f"{row[:40]:>30}")
                continue
            passes, seconds, e1, emax = row
            err = e1 if k == 1 else emax
            cells.append(f"{passes:>{9 if k == 1 else 11}} | {seconds:>6.2f} | {err:>10.1e}")
            figures[f"{tool}_{'lambda1' if k == 1 else 'top5'}_passes"] = passes
            figures[f"{tool}_{'lambda1' if k == 1 else 'top5'}_relerr"] = err
            figures[f"{tool}_{'lambda1' if k == 1 else 'top5'}_s"] = seconds
        print(f"{tool:<18} | {cells[0]} | {cells[1]:>6} | {ratio:>7.2f}x")
    for name in ("pyhessian", "curvlinops"):
        if name in MISSING or (name != "tfbreak" and "torch" in MISSING):
            print(f"{name:<18} | not installed: {MISSING.get(name) or MISSING.get('torch')}")
    figures.update({f"{tool}_hvp_over_grad": r for tool, r in ratios.items()})
    print(
        "\nStopping rules: tfbreak certified bound <= 1e-3 theta_1 (all k certified for the top "
        "5), start block 2 (library default) or 1 (tfbreak_block1); "
        "PyHessian relative change < tol between power iterations; curvlinops = ARPACK eigsh "
        "tol 1e-3. Passes count every Hessian-vector product over the whole sample. HVP/grad: "
        "one HVP pass / one gradient pass over the sample in the tool's framework (PyHessian "
        "and curvlinops share torch's gradient time)."
    )
    summary(figures)


if __name__ == "__main__":
    main()
