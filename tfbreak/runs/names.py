"""The one table of what a run directory holds: a `Metric` record per key of metrics.jsonl rows
and an `ArrayKey` record per key of arrays/step_*.npz, each declared once, here.

A record says what the key is (description, paper notation), how it is shown (`label` in tables
and prose, `math` on figure axes, `unit`, `log_scale`) and which measurement part writes it
(`part`: a name of `tfbreak.measure.parts.PARTS`, or `TRAINING` for the loop's own rows). The
module constants are the names every writer and reader uses; the strings are the on-disk format.
Names say what was measured where two estimates of one quantity exist: the test accuracy of the
whole held-out split (epoch rows) against that of the fixed subset used at measurements, the
training accuracy of the whole epoch against that of the steps since the previous measurement.
TensorFlow-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRAINING = "training"
"""The `part` of metrics written by the training loop (or the Keras callback), not a measurement."""


@dataclass(frozen=True)
class Metric:
    """One key of metrics.jsonl rows.

    name: the key; description: what it is (paper notation, equation or section); label: paper
    notation in plain text (tables, prose); math: matplotlib math text (figure axes); unit: of
    the value ("" when dimensionless or a loss); part: the measurement part that writes it
    (`TRAINING`: the loop); log_scale: plotted on a log axis as in the paper's figures."""

    name: str
    description: str
    label: str
    math: str
    part: str
    unit: str = ""
    log_scale: bool = False


@dataclass(frozen=True)
class ArrayKey:
    """One key of arrays/step_*.npz: its shape and meaning, and the part that saves it."""

    name: str
    description: str
    part: str


METRICS: dict[str, Metric] = {}
"""Every metric key, in declaration order."""
ARRAYS: dict[str, ArrayKey] = {}
"""Every array key, in declaration order."""


def metric(
    name: str,
    description: str,
    *,
    label: str,
    part: str,
    math: str | None = None,
    unit: str = "",
    log_scale: bool = False,
) -> str:
    """Declare metric `name` (once: a second declaration is an error) and return the name."""
    if name in METRICS:
        raise ValueError(f"metric {name!r} is declared twice")
    METRICS[name] = Metric(name, description, label, math or label, part, unit, log_scale)
    return name


def array_key(name: str, description: str, *, part: str) -> str:
    """Declare array key `name` (once) and return it."""
    if name in ARRAYS:
        raise ValueError(f"array key {name!r} is declared twice")
    ARRAYS[name] = ArrayKey(name, description, part)
    return name


# ---------------------------------------------------------------- metrics (metrics.jsonl)
HESSIAN_LAMBDA_1 = metric(
    "hessian/lambda_1",
    "lambda_1(H): largest Hessian eigenvalue on the fixed sample (Lanczos)",
    label="λ1_H",
    math=r"$\lambda_1^H$",
    part="hessian",
    log_scale=True,
)
HESSIAN_TOP_K = metric(
    "hessian/top_k",
    "top-k Ritz values of H, descending",
    label="λ1..k_H",
    math=r"$\lambda_{1..k}^H$",
    part="hessian",
)
HESSIAN_RESIDUAL_1 = metric(
    "hessian/residual_1",
    "Ritz residual ||H v - lambda v|| of the top eigenpair",
    label="||H v1 − θ1 v1||",
    math=r"$\|H v_1 - \theta_1 v_1\|$",
    part="hessian",
)
HESSIAN_LAMBDA_1_BOUND = metric(
    "hessian/lambda_1_bound",
    "certified error of lambda_1(H) on the sample: the eigenvalue lies in "
    "[lambda_1, lambda_1 + bound] (Kato-Temple from the residual and the gap to the next Ritz "
    "value, plus the products' rounding)",
    label="bound of λ1_H",
    math=r"$\epsilon(\lambda_1^H)$",
    part="hessian",
)
HESSIAN_LAMBDA_1_STDERR = metric(
    "hessian/lambda_1_stderr",
    "standard error of lambda_1(H) from the Hessian sample: "
    "sqrt(Var_i[H_i] / n (N - n) / (N - 1)) along e1_H (first order)",
    label="s.e. of λ1_H",
    math=r"$\mathrm{se}(\lambda_1^H)$",
    part="hessian",
)
HESSIAN_TRACE = metric(
    "hessian/trace",
    "Tr(H), Hutchinson estimate",
    label="Tr(H)",
    math=r"$\mathrm{Tr}(H)$",
    part="trace",
    log_scale=True,
)
HESSIAN_TRACE_STDERR = metric(
    "hessian/trace_stderr",
    "standard error of the Hutchinson estimate",
    label="s.e. of Tr(H)",
    math=r"$\mathrm{se}(\mathrm{Tr}(H))$",
    part="trace",
)
HESSIAN_MATVECS = metric(
    "hessian/matvecs",
    "Hessian-vector products Lanczos computed at this measurement, those of a "
    "block product computed ahead and left unused by the stop included (adaptive sample: "
    "summed over the sample sizes it went through)",
    label="Hessian-vector products",
    part="hessian",
    unit="products",
)
HESSIAN_SAMPLE_SIZE = metric(
    "hessian/sample_size",
    "examples in the Hessian sample this measurement ended with (adaptive "
    "sample, --hessian_target_error: the size that met the target, or the largest size)",
    label="Hessian sample",
    part="hessian",
    unit="examples",
)


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


# (description, label, math, log scale) of each statistic of K (App. C).
_K_STATISTICS: dict[str, tuple[str, str, str, bool]] = {
    "lambda_1": (
        "lambda_1(K): largest eigenvalue of the gradient covariance (App. C)",
        "λ1_K",
        r"$\lambda_1^K$",
        True,
    ),
    "lambda_star": (
        "lambda_*(K): smallest non-zero, the (L-1)-th eigenvalue of K_M",
        "λ*_K",
        r"$\lambda_*^K$",
        False,
    ),
    "ratio": (
        "lambda_*(K) / lambda_1(K), the conditioning of K (Conjecture 2)",
        "λ*_K/λ1_K",
        r"$\lambda_*^K / \lambda_1^K$",
        False,
    ),
    "trace": ("Tr(K) = trace of the centred Gram matrix / L", "Tr(K)", r"$\mathrm{Tr}(K)$", True),
}


_K_TEXT = {
    "lambda_1": "lambda_1(K)",
    "lambda_star": "lambda_*(K)",
    "ratio": "lambda_*(K) / lambda_1(K)",
    "trace": "Tr(K)",
}


def _k_metrics(prefix: str, at: str) -> KNames:
    """Declare the statistics of one K estimate (`prefix` K, or K2 at the second mini-batch
    size: `at` says so) and their jackknife standard errors."""
    k = KNames.of(prefix)
    second = "" if prefix == "K" else " (M2)"
    for stat, (description, label, math, log_scale) in _K_STATISTICS.items():
        metric(
            getattr(k, stat),
            description + at,
            label=label + second,
            math=math + second.replace("M2", "$M_2$"),
            part="K",
            log_scale=log_scale,
        )
    for stat, (_, label, math, _) in _K_STATISTICS.items():
        metric(
            getattr(k, f"{stat}_stderr"),
            f"jackknife standard error of {_K_TEXT[stat]} over the L gradients{at}",
            label=f"s.e. of {label}{second}",
            math=rf"$\mathrm{{se}}$({math}){second.replace('M2', '$M_2$')}",
            part="K",
        )
    return k


K = _k_metrics("K", "")
GRAD_NORM_OVER_TOP5 = metric(
    "grad/norm_over_top5_norm",
    "||g|| / ||g_5||, g_5: the mini-batch gradient projected on the top-5 e_K",
    label="||g||/||g5||",
    math=r"$\|g\| / \|g_5\|$",
    part="K",
)
GRAD_OVERLAP_E1_H = metric(
    "grad/overlap_e1_H",
    "|<g, e1_H>| / ||g||: cosine between the probe batch's gradient and the top Hessian "
    "eigenvector (Gur-Ari et al. 2018)",
    label="|cos(g, e1_H)|",
    math=r"$|\cos(g, e_1^H)|$",
    part="overlap",
)
LOSS_DELTA = metric(
    "loss/delta",
    "Delta L: loss on a fixed batch before minus after one SGD step (> 0: down)",
    label="ΔL",
    math=r"$\Delta L$",
    part="delta_loss",
)
BN_GAMMA_NORM = metric(
    "bn/gamma_norm",
    "||gamma|| of the last BatchNorm layer",
    label="||γ||",
    math=r"$\|\gamma\|$",
    part="bn_gamma",
)
TRAIN_LOSS_SINCE_LAST = metric(
    "train/loss_since_last",
    "mean training loss of the SGD steps since the previous measurement",
    label="training loss (since last measurement)",
    part=TRAINING,
)
TRAIN_ACCURACY_SINCE_LAST = metric(
    "train/accuracy_since_last",
    "training accuracy of the SGD steps since the previous measurement",
    label="training accuracy (since last measurement)",
    part=TRAINING,
)
TRAIN_LOSS_EPOCH = metric(
    "train/loss_epoch",
    "mean training loss of the epoch's SGD steps (epoch rows)",
    label="training loss (epoch)",
    part=TRAINING,
)
TRAIN_ACCURACY_EPOCH = metric(
    "train/accuracy_epoch",
    "training accuracy of the epoch's SGD steps (epoch rows)",
    label="training accuracy (epoch)",
    part=TRAINING,
)
TEST_LOSS_SUBSET = metric(
    "test/loss_subset",
    "loss on the fixed subset of the held-out split (measurement rows)",
    label="test loss (fixed subset)",
    part="evaluation",
)
TEST_ACCURACY_SUBSET = metric(
    "test/accuracy_subset",
    "accuracy on the fixed subset of the held-out split (measurement rows)",
    label="test accuracy (fixed subset)",
    part="evaluation",
)
TEST_LOSS = metric(
    "test/loss",
    "loss on the whole held-out split (epoch rows; the paper's validation loss)",
    label="test loss",
    part=TRAINING,
)
TEST_ACCURACY = metric(
    "test/accuracy",
    "accuracy on the whole held-out split (epoch rows; the paper's validation accuracy)",
    label="test accuracy",
    part=TRAINING,
)
LR = metric(
    "lr", "learning rate eta in force at this step", label="η", math=r"$\eta$", part=TRAINING
)
BREAKEVEN_EQ1_LHS = metric(
    "breakeven/eq1_lhs",
    "(1 - eta lambda_1^H)^2 + s^2 eta^2 (N - S) / (S (N - 1)) (Eq. 1)",
    label="Eq. 1 LHS",
    math=r"Eq. 1 LHS",
    part="breakeven",
)
BREAKEVEN_S2 = metric(
    "breakeven/s2",
    "s^2 = Var_i[H_i]: variance over examples of the curvature along e1_H",
    label="s²",
    math=r"$s^2$",
    part="breakeven",
)
BREAKEVEN_LR_MAX = metric(
    "breakeven/lr_max",
    "largest eta for which this point is stable along e1_H at batch size S: "
    "2 lambda_1^H / ((lambda_1^H)^2 + s^2 (N - S) / (S (N - 1))) (Eq. 1 solved for eta)",
    label="largest stable η",
    math=r"$\eta_{\max}$",
    part="breakeven",
)
MEASUREMENT_SECONDS = metric(
    "time/measurement_seconds",
    "wall-clock seconds spent on this measurement",
    label="measurement time",
    part=TRAINING,
    unit="s",
)
K2 = _k_metrics("K2", ", at the second size K_M2")
K_LAMBDA_1 = K.lambda_1
K_LAMBDA_STAR = K.lambda_star
K_RATIO = K.ratio
K_TRACE = K.trace
K_LAMBDA_1_STDERR = K.lambda_1_stderr
K_LAMBDA_STAR_STDERR = K.lambda_star_stderr
K_RATIO_STDERR = K.ratio_stderr
K_TRACE_STDERR = K.trace_stderr

DESCRIPTIONS: dict[str, str] = {name: m.description for name, m in METRICS.items()}
"""Metric name -> description (every name the writer accepts)."""
ALL: tuple[str, ...] = tuple(METRICS)

WALL_CLOCK: frozenset[str] = frozenset({MEASUREMENT_SECONDS})
"""Metrics that vary between identical reruns (timings); everything else is reproducible."""

EVENT_BREAK_EVEN = "break_even"
"""The `event` of the row written at the first measurement with breakeven/eq1_lhs >= 1."""

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


def label(name: str) -> str:
    """Paper notation of a metric in plain text (the name itself if unknown)."""
    return METRICS[name].label if name in METRICS else name


def math_label(name: str) -> str:
    """Matplotlib math text of a metric for figure axes (the name itself if unknown)."""
    return METRICS[name].math if name in METRICS else name


def of_part(part: str) -> tuple[str, ...]:
    """The metric names a measurement part writes."""
    return tuple(name for name, m in METRICS.items() if m.part == part)


# ---------------------------------------------------------------- arrays (arrays/step_*.npz)
ARRAY_HESSIAN_RITZ_VALUES = array_key(
    "hessian_ritz_values", "(k,) top Ritz values of H, descending", part="hessian"
)
ARRAY_HESSIAN_RITZ_BOUNDS = array_key(
    "hessian_ritz_bounds",
    "(k,) certified error bounds eps_j of the Ritz values: lambda_j in "
    "[theta_j, theta_j + eps_j] up to rounding (only lambda_1 is converged by default)",
    part="hessian",
)
ARRAY_HESSIAN_EIGENVECTORS = array_key(
    "hessian_eigenvectors", "(k, D) float32 top Ritz vectors of H", part="hessian"
)
ARRAY_HESSIAN_DENSITY_GRID = array_key(
    "hessian_density_grid", "(n,) eigenvalue grid of the SLQ spectral density of H", part="density"
)
ARRAY_HESSIAN_DENSITY = array_key(
    "hessian_density",
    "(n,) SLQ spectral density of H on the grid (integrates to 1)",
    part="density",
)
ARRAY_K_EIGENVALUES = array_key(
    "K_eigenvalues", "(L,) eigenvalues of K_M from the centred Gram matrix, descending", part="K"
)
ARRAY_K_EIGENVECTORS = array_key(
    "K_eigenvectors", "(k, D) float32 top eigenvectors of K_M in parameter space", part="K"
)
ARRAY_TEST_PREDICTIONS = array_key(
    "test_predictions",
    "(n_test, classes) float32 softmax probabilities on the fixed held-out subset (UMAP, "
    "Figs. 1 and 8)",
    part="evaluation",
)

ARRAY_DESCRIPTIONS: dict[str, str] = {name: a.description for name, a in ARRAYS.items()}
"""Array key -> description (every key the writer accepts)."""
