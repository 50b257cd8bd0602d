"""The one table of names written to a run directory: metric keys of metrics.jsonl rows and array
keys of arrays/step_*.npz (paper notation in the descriptions).

Every writer and reader uses these constants; the strings are the on-disk format. Names say what
was measured where two estimates of one quantity exist: the test accuracy of the whole held-out
split (epoch rows) against that of the fixed subset used at measurements, the training accuracy
of the whole epoch against that of the steps since the previous measurement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# ---------------------------------------------------------------- metrics (metrics.jsonl)
HESSIAN_LAMBDA_1 = "hessian/lambda_1"
HESSIAN_TOP_K = "hessian/top_k"
HESSIAN_RESIDUAL_1 = "hessian/residual_1"
HESSIAN_LAMBDA_1_BOUND = "hessian/lambda_1_bound"
HESSIAN_LAMBDA_1_STDERR = "hessian/lambda_1_stderr"
HESSIAN_TRACE = "hessian/trace"
HESSIAN_TRACE_STDERR = "hessian/trace_stderr"
HESSIAN_MATVECS = "hessian/matvecs"
HESSIAN_SAMPLE_SIZE = "hessian/sample_size"


@dataclass(frozen=True)
class KNames:
    """The metric names of one estimate of K (App. C): its statistics and their jackknife
    standard errors. `K` is at mini-batch size K_M (metadata), `K2` at K_M2 when a run measures
    K at two sizes (Fig. 9)."""

    lambda_1: str
    lambda_star: str
    ratio: str
    trace: str
    lambda_1_stderr: str
    lambda_star_stderr: str
    ratio_stderr: str
    trace_stderr: str

    @classmethod
    def of(cls, prefix: str) -> KNames:
        stats = [f.name for f in dataclasses.fields(cls)]
        return cls(*(f"{prefix}/{stat}" for stat in stats))


K = KNames.of("K")
K2 = KNames.of("K2")
K_LAMBDA_1 = K.lambda_1
K_LAMBDA_STAR = K.lambda_star
K_RATIO = K.ratio
K_TRACE = K.trace
K_LAMBDA_1_STDERR = K.lambda_1_stderr
K_LAMBDA_STAR_STDERR = K.lambda_star_stderr
K_RATIO_STDERR = K.ratio_stderr
K_TRACE_STDERR = K.trace_stderr
GRAD_NORM_OVER_TOP5 = "grad/norm_over_top5_norm"
LOSS_DELTA = "loss/delta"
BN_GAMMA_NORM = "bn/gamma_norm"
TRAIN_LOSS_SINCE_LAST = "train/loss_since_last"
TRAIN_ACCURACY_SINCE_LAST = "train/accuracy_since_last"
TRAIN_LOSS_EPOCH = "train/loss_epoch"
TRAIN_ACCURACY_EPOCH = "train/accuracy_epoch"
TEST_LOSS_SUBSET = "test/loss_subset"
TEST_ACCURACY_SUBSET = "test/accuracy_subset"
TEST_LOSS = "test/loss"
TEST_ACCURACY = "test/accuracy"
LR = "lr"
BREAKEVEN_EQ1_LHS = "breakeven/eq1_lhs"
BREAKEVEN_S2 = "breakeven/s2"
BREAKEVEN_LR_MAX = "breakeven/lr_max"
MEASUREMENT_SECONDS = "time/measurement_seconds"

DESCRIPTIONS: dict[str, str] = {
    HESSIAN_LAMBDA_1: "lambda_1(H): largest Hessian eigenvalue on the fixed sample (Lanczos)",
    HESSIAN_TOP_K: "top-k Ritz values of H, descending",
    HESSIAN_RESIDUAL_1: "Ritz residual ||H v - lambda v|| of the top eigenpair",
    HESSIAN_LAMBDA_1_BOUND: "certified error of lambda_1(H) on the sample: the eigenvalue lies in "
    "[lambda_1, lambda_1 + bound] (Kato-Temple from the residual and the gap to the next Ritz "
    "value, plus the products' rounding)",
    HESSIAN_LAMBDA_1_STDERR: "standard error of lambda_1(H) from the Hessian sample: "
    "sqrt(Var_i[H_i] / n (N - n) / (N - 1)) along e1_H (first order)",
    HESSIAN_TRACE: "Tr(H), Hutchinson estimate",
    HESSIAN_TRACE_STDERR: "standard error of the Hutchinson estimate",
    HESSIAN_MATVECS: "Hessian-vector products Lanczos computed at this measurement, those of a "
    "block product computed ahead and left unused by the stop included (adaptive sample: "
    "summed over the sample sizes it went through)",
    HESSIAN_SAMPLE_SIZE: "examples in the Hessian sample this measurement ended with (adaptive "
    "sample, --hessian_target_error: the size that met the target, or the largest size)",
    K_LAMBDA_1: "lambda_1(K): largest eigenvalue of the gradient covariance (App. C)",
    K_LAMBDA_STAR: "lambda_*(K): smallest non-zero, the (L-1)-th eigenvalue of K_M",
    K_RATIO: "lambda_*(K) / lambda_1(K), the conditioning of K (Conjecture 2)",
    K_TRACE: "Tr(K) = trace of the centred Gram matrix / L",
    K_LAMBDA_1_STDERR: "jackknife standard error of lambda_1(K) over the L gradients",
    K_LAMBDA_STAR_STDERR: "jackknife standard error of lambda_*(K) over the L gradients",
    K_RATIO_STDERR: "jackknife standard error of lambda_*(K) / lambda_1(K) over the L gradients",
    K_TRACE_STDERR: "jackknife standard error of Tr(K) over the L gradients",
    GRAD_NORM_OVER_TOP5: "||g|| / ||g_5||, g_5: the mini-batch gradient projected on the top-5 e_K",
    LOSS_DELTA: "Delta L: loss on a fixed batch before minus after one SGD step (> 0: down)",
    BN_GAMMA_NORM: "||gamma|| of the last BatchNorm layer",
    TRAIN_LOSS_SINCE_LAST: "mean training loss of the SGD steps since the previous measurement",
    TRAIN_ACCURACY_SINCE_LAST: "training accuracy of the SGD steps since the previous measurement",
    TRAIN_LOSS_EPOCH: "mean training loss of the epoch's SGD steps (epoch rows)",
    TRAIN_ACCURACY_EPOCH: "training accuracy of the epoch's SGD steps (epoch rows)",
    TEST_LOSS_SUBSET: "loss on the fixed subset of the held-out split (measurement rows)",
    TEST_ACCURACY_SUBSET: "accuracy on the fixed subset of the held-out split (measurement rows)",
    TEST_LOSS: "loss on the whole held-out split (epoch rows; the paper's validation loss)",
    TEST_ACCURACY: "accuracy on the whole held-out split (epoch rows; the paper's validation "
    "accuracy)",
    LR: "learning rate eta in force at this step",
    BREAKEVEN_EQ1_LHS: "(1 - eta lambda_1^H)^2 + s^2 eta^2 (N - S) / (S (N - 1)) (Eq. 1)",
    BREAKEVEN_S2: "s^2 = Var_i[H_i]: variance over examples of the curvature along e1_H",
    BREAKEVEN_LR_MAX: "largest eta for which this point is stable along e1_H at batch size S: "
    "2 lambda_1^H / ((lambda_1^H)^2 + s^2 (N - S) / (S (N - 1))) (Eq. 1 solved for eta)",
    MEASUREMENT_SECONDS: "wall-clock seconds spent on this measurement",
}

DESCRIPTIONS.update(
    {
        getattr(K2, f.name): DESCRIPTIONS[getattr(K, f.name)] + ", at the second size K_M2"
        for f in dataclasses.fields(KNames)
    }
)
ALL: tuple[str, ...] = tuple(DESCRIPTIONS)

WALL_CLOCK: frozenset[str] = frozenset({MEASUREMENT_SECONDS})

EVENT_BREAK_EVEN = "break_even"
"""The `event` of the row written at the first measurement with breakeven/eq1_lhs >= 1."""
"""Metrics that vary between identical reruns (timings); everything else is reproducible."""

# Names written by tfbreak 0.1 (before the accuracies were told apart), per row kind.
LEGACY: dict[tuple[str, str], str] = {
    ("measurement", "train/accuracy"): TRAIN_ACCURACY_SINCE_LAST,
    ("measurement", "train/loss"): TRAIN_LOSS_SINCE_LAST,
    ("measurement", "val/accuracy"): TEST_ACCURACY_SUBSET,
    ("measurement", "val/loss"): TEST_LOSS_SUBSET,
    ("epoch", "train/accuracy"): TRAIN_ACCURACY_EPOCH,
    ("epoch", "train/loss"): TRAIN_LOSS_EPOCH,
    ("epoch", "val/accuracy"): TEST_ACCURACY,
    ("epoch", "val/loss"): TEST_LOSS,
}


def current_names(row: Mapping[str, Any]) -> dict[str, Any]:
    """`row` with legacy metric names (tfbreak 0.1 run directories) replaced by today's."""
    kind = row.get("kind", "measurement")
    return {LEGACY.get((kind, k), k): v for k, v in row.items()}


# ---------------------------------------------------------------- arrays (arrays/step_*.npz)
ARRAY_HESSIAN_RITZ_VALUES = "hessian_ritz_values"
ARRAY_HESSIAN_RITZ_BOUNDS = "hessian_ritz_bounds"
ARRAY_HESSIAN_EIGENVECTORS = "hessian_eigenvectors"
ARRAY_HESSIAN_DENSITY_GRID = "hessian_density_grid"
ARRAY_HESSIAN_DENSITY = "hessian_density"
ARRAY_K_EIGENVALUES = "K_eigenvalues"
ARRAY_K_EIGENVECTORS = "K_eigenvectors"
ARRAY_TEST_PREDICTIONS = "test_predictions"

ARRAY_DESCRIPTIONS: dict[str, str] = dict(
    [
        (ARRAY_HESSIAN_RITZ_VALUES, "(k,) top Ritz values of H, descending"),
        (
            ARRAY_HESSIAN_RITZ_BOUNDS,
            "(k,) certified error bounds eps_j of the Ritz values: lambda_j in "
            "[theta_j, theta_j + eps_j] up to rounding (only lambda_1 is converged by default)",
        ),
        (ARRAY_HESSIAN_EIGENVECTORS, "(k, D) float32 top Ritz vectors of H"),
        (ARRAY_HESSIAN_DENSITY_GRID, "(n,) eigenvalue grid of the SLQ spectral density of H"),
        (ARRAY_HESSIAN_DENSITY, "(n,) SLQ spectral density of H on the grid (integrates to 1)"),
        (ARRAY_K_EIGENVALUES, "(L,) eigenvalues of K_M from the centred Gram matrix, descending"),
        (ARRAY_K_EIGENVECTORS, "(k, D) float32 top eigenvectors of K_M in parameter space"),
        (
            ARRAY_TEST_PREDICTIONS,
            "(n_test, classes) float32 softmax probabilities on the fixed "
            "held-out subset (UMAP, Figs. 1 and 8)",
        ),
    ]
)
