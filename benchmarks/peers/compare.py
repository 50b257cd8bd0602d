"""tfbreak beside PyHessian and curvlinops on the same weights, sample and protocol (issue 14).

    pip install ".[peers]"            # torch (CPU), pyhessian, curvlinops-for-pytorch
    python benchmarks/peers/compare.py [--steps 300] [--sample 2048] [--batch 512]

Protocol. The paper's MLP 300-100 (App. D) is built by tfbreak and trained with plain SGD (lr
0.01, batch 128) for --steps steps on REAL Fashion-MNIST (Debian files). Its weights are copied
into an equivalent torch.nn.Sequential (Dense kernel (in, out) -> Linear weight (out, in)), and
the copy is checked first: the mean cross-entropy over the sample in float64 and one
Hessian-vector product must agree with tfbreak's (printed). Every tool then works on the Hessian
of the mean cross-entropy over the same --sample training examples, in batches of --batch.

The truth: tfbreak's Lanczos at tol 1e-9 (lambda_1..5). Each tool is asked for lambda_1 and for
the top 5 with its own stopping rule set to 1e-3:
  tfbreak     lanczos(): stops when the certified error bound of lambda_1 (resp. all five) is
              <= 1e-3 * theta_1 (the library default: start block 2);
  PyHessian   hessian.eigenvalues(): power iteration with deflation, stops when the eigenvalue
              changes by < tol relative between iterations (tol 1e-3, then 1e-4);
  curvlinops  HessianLinearOperator(...).to_scipy() + scipy.sparse.linalg.eigsh (ARPACK,
              which="LA") at tol 1e-3.
Columns: HVP passes over the sample (every product counted, in one pass or in blocks), wall
time, relative error of lambda_1 and the largest over the top 5 against the truth, and, per
framework, the time of one HVP pass over the sample divided by one gradient pass.
The machine: 2 CPU cores, no GPU; each framework at its default thread settings.
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

# The peers before TensorFlow: triton (imported by torch.func under curvlinops) crashes when it
# is loaded after TensorFlow's libraries.
try:
    import curvlinops
    import torch
    from pyhessian import hessian as PyHessian
except ImportError as err:
    sys.exit(f"benchmarks/peers needs the optional extra (pip install '.[peers]'): {err}")
# torch.func loads further modules lazily at its first use: use it once before TensorFlow loads.
torch.func.vmap(
    lambda v: torch.func.jvp(torch.func.grad(lambda w: (w**2).sum()), (torch.ones(2),), (v,))[1]
)(torch.eye(2))
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import summary  # noqa: E402
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


def trained_mlp(steps: int, seed: int):
    """The tfbreak MLP after `steps` SGD steps, its variables, loss and the data bundle."""
    bundle = load_dataset("fashion_mnist")
    model = build_model("mlp", num_classes=10, input_shape=bundle.input_shape, seed=seed)
    variables = trainable_tf_variables(model)
    loss_fn = classification_loss(model, bn_mode="inference")

    @tf.function
    def sgd_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn((x, y)))
        for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
            v.assign_sub(0.01 * g)

    done = 0
    for epoch in range(100):
        for x, y in train_batches(bundle, 128, seed, epoch):
            if done == steps:
                return model, variables, loss_fn, bundle
            sgd_step(x, y)
            done += 1
    return model, variables, loss_fn, bundle


def torch_copy(model):
    """The Keras MLP as torch.nn.Sequential(Flatten, Linear, ReLU, ...) with the same weights."""
    layers = []
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel, bias = (w.numpy() for w in layer.weights)
        linear = torch.nn.Linear(kernel.shape[0], kernel.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
        layers.append(linear)
        activation = layer.get_config().get("activation")
        if activation == "relu":
            layers.append(torch.nn.ReLU())
        elif activation not in ("linear", None):
            raise ValueError(f"unexpected activation {activation!r} in layer {layer.name}")
    return torch.nn.Sequential(torch.nn.Flatten(), *layers)


class Counted:
    """A matvec that counts its products."""

    def __init__(self, matvec):
        self.matvec, self.calls = matvec, 0

    def __call__(self, v):
        self.calls += 1
        return self.matvec(v)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def rel(values, truth) -> tuple[float, float]:
    """|error| / lambda of lambda_1, and the largest over the values given."""
    values = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    errors = np.abs(values - truth[: values.size]) / np.abs(truth[: values.size])
    return float(errors[0]), float(errors.max())


def tfbreak_rows(op, truth, seed):
    s = MeasurementSettings()
    rows = {}
    for k in (1, 5):
        counter = Counted(op.matvec)
        counted = LinearOperator(op.shape, matvec=counter, dtype=np.float64)
        counted.precision = op.precision
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LanczosWarning)
            seconds, result = timed(
                lambda k=k, counted=counted: lanczos(
                    counted,
                    k,
                    tol=TOL,
                    max_iter=60,
                    converge_k=k,
                    block=min(s.lanczos_block, k),
                    seed=seed,
                )
            )
        rows[k] = (counter.calls, seconds, *rel(result.eigenvalues[:k], truth))
    return rows


def pyhessian_rows(net, loader, truth, tol):
    rows = {}
    for k in (1, 5):
        torch.manual_seed(0)
        h = PyHessian(net, torch.nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
        counter = Counted(h.dataloader_hv_product)
        h.dataloader_hv_product = counter
        seconds, (values, _) = timed(lambda h=h, k=k: h.eigenvalues(maxIter=200, tol=tol, top_n=k))
        rows[k] = (counter.calls, seconds, *rel(values, truth))
    return rows


def curvlinops_rows(op, truth):
    """`op`: curvlinops' HessianLinearOperator as a scipy operator (float32)."""
    rows = {}
    for k in (1, 5):
        counter = Counted(lambda v: op.matvec(v.astype(np.float32)).astype(np.float64))
        counted = LinearOperator(op.shape, matvec=counter, dtype=np.float64)
        v0 = np.random.default_rng(0).standard_normal(op.shape[0])
        seconds, values = timed(
            lambda k=k, counted=counted, v0=v0: eigsh(
                counted, k=k, which="LA", tol=TOL, v0=v0, return_eigenvectors=False
            )
        )
        rows[k] = (counter.calls, seconds, *rel(values, truth))
    return rows


class Layout:
    """Flat parameter vectors of the Keras MLP (per Dense layer: kernel (in, out) row-major,
    then bias) and of its torch copy (weight (out, in) row-major, then bias)."""

    def __init__(self, model):
        self.shapes = [layer.weights[0].shape for layer in model.layers if layer.weights]

    def _convert(self, v: np.ndarray, to_torch: bool) -> np.ndarray:
        out, at = [], 0
        for n_in, n_out in self.shapes:
            block = v[at : at + n_in * n_out]
            shape = (n_in, n_out) if to_torch else (n_out, n_in)
            out += [block.reshape(shape).T.ravel(), v[at + n_in * n_out : at + (n_in + 1) * n_out]]
            at += (n_in + 1) * n_out
        return np.concatenate(out)

    def to_torch(self, v: np.ndarray) -> np.ndarray:
        return self._convert(v, True)

    def to_keras(self, v: np.ndarray) -> np.ndarray:
        return self._convert(v, False)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(timed(fn)[0] for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sample", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model, variables, loss_fn, bundle = trained_mlp(args.steps, args.seed)
    x, y = fixed_subset(bundle.train, args.sample, seed=args.seed)
    n, b = args.sample, args.batch
    batches = [(x[i : i + b], y[i : i + b]) for i in range(0, n, b)]
    op = HessianOperator(variables, loss_fn, batches, mode="reverse_over_reverse")
    net = torch_copy(model)
    tx = torch.from_numpy(np.asarray(x, dtype=np.float32))
    ty = torch.from_numpy(np.asarray(y, dtype=np.int64))
    loader = [(tx[i : i + b], ty[i : i + b]) for i in range(0, n, b)]
    params = [p for p in net.parameters() if p.requires_grad]
    torch_op = curvlinops.HessianLinearOperator(
        net, torch.nn.CrossEntropyLoss(), params, loader, check_deterministic=False
    ).to_scipy(dtype=np.float32)

    # The copy is the same function: the mean loss in float64, and one HVP in float32.
    tf_loss = float(np.mean(np.concatenate([loss_fn(batch).numpy() for batch in batches])))
    net64 = torch_copy(model).double()
    with torch.no_grad():
        torch_loss = float(torch.nn.functional.cross_entropy(net64(tx.double()), ty))
    layout = Layout(model)
    v = np.random.default_rng(1).standard_normal(op.dim)
    hv_tf = op.matvec(v)
    hv_torch = layout.to_keras(torch_op.matvec(layout.to_torch(v).astype(np.float32)))
    hvp_diff = float(np.linalg.norm(hv_tf - hv_torch) / np.linalg.norm(hv_tf))
    print(
        f"# MLP 300-100, D = {op.dim:,}, REAL Fashion-MNIST ({bundle.source}), {args.steps} SGD "
        f"steps; sample {n} in batches of {b}; torch {torch.__version__}\n"
        f"# copy check: mean loss tfbreak {tf_loss:.8f} (float32), torch {torch_loss:.8f} "
        f"(float64), rel diff {abs(tf_loss - torch_loss) / torch_loss:.1e}; one HVP rel diff "
        f"{hvp_diff:.1e} (float32)",
        flush=True,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LanczosWarning)
        truth = lanczos(op, 5, tol=1e-9, max_iter=150, converge_k=5, block=1, seed=7).eigenvalues
    print(f"# truth (tfbreak Lanczos, tol 1e-9): lambda_1..5 = {np.round(truth, 4).tolist()}")

    # HVP pass / gradient pass over the sample, per framework.
    grads = GradientFunctions(variables, loss_fn)
    tf_ratio = median_seconds(lambda: op.matvec(v), args.repeats) / median_seconds(
        lambda: [grads.minibatch(batch) for batch in batches], args.repeats
    )

    def torch_grad():
        for xb, yb in loader:
            net.zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()

    h = PyHessian(net, torch.nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
    tv = [torch.from_numpy(p.detach().numpy().copy()) for p in params]
    torch_grad_s = median_seconds(torch_grad, args.repeats)
    w = layout.to_torch(v).astype(np.float32)
    ratios = {
        "tfbreak": tf_ratio,
        "curvlinops": median_seconds(lambda: torch_op.matvec(w), args.repeats) / torch_grad_s,
    }
    ratios["pyhessian"] = (
        median_seconds(lambda: h.dataloader_hv_product(tv), args.repeats) / torch_grad_s
    )

    results = {
        "tfbreak": tfbreak_rows(op, truth, args.seed),
        "pyhessian": pyhessian_rows(net, loader, truth, TOL),
        "pyhessian tol 1e-4": pyhessian_rows(net, loader, truth, 1e-4),
        "curvlinops": curvlinops_rows(torch_op, truth),
    }
    print(
        f"\n{'tool':<19} {'l1 passes':>9} {'l1 s':>7} {'l1 relerr':>10} {'top5 passes':>11} "
        f"{'top5 s':>7} {'top5 max relerr':>15} {'HVP/grad':>8}"
    )
    figures = {}
    for tool, rows in results.items():
        (p1, s1, e1, _), (p5, s5, _, e5) = rows[1], rows[5]
        ratio = ratios.get(tool.split()[0])
        print(
            f"{tool:<19} {p1:>9} {s1:>7.2f} {e1:>10.1e} {p5:>11} {s5:>7.2f} {e5:>15.1e} "
            f"{ratio:>7.2f}x"
        )
        key = tool.replace(" tol 1e-4", "_tol1e-4").replace(" ", "_")
        figures.update({f"{key}_lambda1_passes": p1, f"{key}_top5_passes": p5})
        figures.update({f"{key}_lambda1_relerr": e1, f"{key}_top5_relerr": e5})
    figures.update({f"{tool}_hvp_over_grad": r for tool, r in ratios.items()})
    print(
        "\nStopping rules: tfbreak certified bound <= 1e-3 theta_1 (all k certified for the top "
        "5); PyHessian relative change < tol between power iterations; curvlinops = ARPACK eigsh "
        "tol 1e-3. Passes count every Hessian-vector product over the whole sample."
    )
    summary(figures)


if __name__ == "__main__":
    main()
