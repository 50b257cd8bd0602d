"""The one table of metric names written to a run's metrics (paper notation in the descriptions).

Every writer and reader of metrics uses these constants; the strings are the on-disk format.
"""

from __future__ import annotations

HESSIAN_LAMBDA_1 = "hessian/lambda_1"
HESSIAN_TOP_K = "hessian/top_k"
HESSIAN_RESIDUAL_1 = "hessian/residual_1"
HESSIAN_TRACE = "hessian/trace"
HESSIAN_TRACE_STDERR = "hessian/trace_stderr"
HESSIAN_MATVECS = "hessian/matvecs"
K_LAMBDA_1 = "K/lambda_1"
K_LAMBDA_STAR = "K/lambda_star"
K_RATIO = "K/ratio"
K_TRACE = "K/trace"
K_LAMBDA_1_STDERR = "K/lambda_1_stderr"
K_LAMBDA_STAR_STDERR = "K/lambda_star_stderr"
K_RATIO_STDERR = "K/ratio_stderr"
K_TRACE_STDERR = "K/trace_stderr"
GRAD_NORM_OVER_TOP5 = "grad/norm_over_top5_norm"
LOSS_DELTA = "loss/delta"
BN_GAMMA_NORM = "bn/gamma_norm"
TRAIN_LOSS = "train/loss"
TRAIN_ACCURACY = "train/accuracy"
VAL_LOSS = "val/loss"
VAL_ACCURACY = "val/accuracy"
LR = "lr"
BREAKEVEN_EQ1_LHS = "breakeven/eq1_lhs"
BREAKEVEN_S2 = "breakeven/s2"
MEASUREMENT_SECONDS = "time/measurement_seconds"

DESCRIPTIONS: dict[str, str] = {
    HESSIAN_LAMBDA_1: "lambda_1(H): largest Hessian eigenvalue on the fixed sample (Lanczos)",
    HESSIAN_TOP_K: "top-k Ritz values of H, descending",
    HESSIAN_RESIDUAL_1: "Ritz residual ||H v - lambda v|| of the top eigenpair (error bound)",
    HESSIAN_TRACE: "Tr(H), Hutchinson estimate",
    HESSIAN_TRACE_STDERR: "standard error of the Hutchinson estimate",
    HESSIAN_MATVECS: "Hessian-vector products used by Lanczos at this measurement",
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
    TRAIN_LOSS: "training loss",
    TRAIN_ACCURACY: "training accuracy",
    VAL_LOSS: "validation loss",
    VAL_ACCURACY: "validation accuracy",
    LR: "learning rate eta in force at this step",
    BREAKEVEN_EQ1_LHS: "(1 - eta lambda_1^H)^2 + s^2 eta^2 (N - S) / (S (N - 1)) (Eq. 1)",
    BREAKEVEN_S2: "s^2 = Var_i[H_i]: variance over examples of the curvature along e1_H",
    MEASUREMENT_SECONDS: "wall-clock seconds spent on this measurement",
}

ALL: tuple[str, ...] = tuple(DESCRIPTIONS)
