"""Synthetic run directories with known metric series (for tests and for trying the report).

Nothing here is measured: the numbers are made up so that maxima, crossings and verdicts are known
in advance. Metadata is marked ``"synthetic": true``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfbreak.runs import names
from tfbreak.runs.metadata import build_metadata
from tfbreak.runs.writer import RunWriter, now_iso


def synthetic_metadata(**overrides: Any) -> dict[str, Any]:
    """Metadata in the run_directory.md format (`build_metadata`), with synthetic values."""
    return build_metadata(
        **{
            "synthetic": True,
            "model": "synthetic",
            "dataset": "synthetic",
            "num_train": 1000,
            "num_classes": 3,
            "num_parameters": 100,
            "seed": 0,
            "lr": 0.01,
            "batch_size": 32,
            "momentum": 0.0,
            "weight_decay": 0.0,
            "bn_mode": "inference",
            "device": "CPU",
            "K_L": 5,
            "K_M": 32,
            "hessian_sample_size": 100,
            "status": "completed",
            "finished": now_iso(),
            **overrides,
        }
    )


def write_synthetic_run(
    run_dir: str | os.PathLike[str],
    *,
    steps: Sequence[int],
    measurements: Mapping[str, Sequence[float]],
    steps_per_epoch: float = 100.0,
    accuracy: Sequence[tuple[int, float]] = (),
    arrays: Mapping[int, Mapping[str, np.ndarray]] | None = None,
    status: str = "completed",
    stop_reason: str | None = None,
    tensorboard: bool = False,
    **metadata: Any,
) -> Path:
    """Write a run whose measurement rows hold `measurements[name][i]` at `steps[i]`.

    `accuracy` gives (step, training accuracy) epoch rows (validation accuracy = 0.9 × it).
    `steps_per_epoch` gives the rows' epochs and is written to the metadata, which `metadata`
    overrides (`synthetic_metadata`). Rows are written in step order.
    """
    rows: list[tuple[int, int, dict[str, Any]]] = []
    for i, s in enumerate(steps):
        row = {"kind": "measurement"}
        for name, vals in measurements.items():
            if vals[i] is not None:
                row[name] = vals[i]
        rows.append((int(s), 0, row))
    for s, acc in accuracy:
        rows.append(
            (
                int(s),
                1,
                {"kind": "epoch", names.TRAIN_ACCURACY_EPOCH: acc, names.TEST_ACCURACY: 0.9 * acc},
            )
        )
    rows.sort(key=lambda t: (t[0], t[1]))
    md = synthetic_metadata(status="running", steps_per_epoch=steps_per_epoch, **metadata)
    with RunWriter(run_dir, tensorboard=tensorboard) as w:
        w.write_flags("--synthetic=true")
        w.write_metadata(md)
        for s, _, row in rows:
            w.append({"step": s, "epoch": s / steps_per_epoch, **row})
        for s, arrs in (arrays or {}).items():
            w.save_arrays(s, **arrs)
        if status == "completed":
            w.finish("completed")
        else:
            w.finish(status, stop_reason)
    return Path(run_dir)


def paper_like_series(peak: float, n: int, peak_at: int, floor: float = 0.1) -> np.ndarray:
    """Rise to `peak` at index `peak_at`, then decay (λ1_K/λ1_H shape of Figs. 4-5). Max = peak."""
    t = np.arange(n, dtype=np.float64)
    up = floor + (peak - floor) * t / max(peak_at, 1)
    down = peak * np.exp(-(t - peak_at) / max(n / 4, 1))
    return np.where(t <= peak_at, up, down)


def write_synthetic_sweep(
    root: str | os.PathLike[str],
    lrs: Sequence[float] = (0.1, 0.01),
    n: int = 30,
    step_every: int = 10,
    with_predictions: bool = True,
    seed: int = 0,
) -> list[Path]:
    """A learning-rate sweep consistent with both conjectures (max λ1 ∝ 1/η, ratio ∝ η).

    Per run: λ1_K peak = 0.03/η, λ1_H peak = 2.2/η (so η λ1_H crosses 2: break-even),
    ratio peak = 0.2 + η, Tr(K) peak = 0.1/η, ΔL, s² = 2 λ1_H, accuracy 1 − exp(−epoch (1 + 10 η)),
    arrays with K eigenvalues, Ritz values and test predictions every 3 measurements.
    """
    rng = np.random.default_rng(seed)
    paths = []
    steps = [i * step_every for i in range(n)]
    for lr in lrs:
        lam_k = paper_like_series(0.03 / lr, n, n // 3)
        lam_h = paper_like_series(2.2 / lr, n, n // 3)
        ratio = paper_like_series(0.2 + lr, n, n // 2, floor=0.05)
        trace = paper_like_series(0.1 / lr, n, n // 3)
        acc_steps = steps[::3]
        accuracy = [(s, float(1 - np.exp(-(s / 100) * (1 + 10 * lr)))) for s in acc_steps]
        arrays: dict[int, dict[str, np.ndarray]] = {}
        if with_predictions:
            logits0 = rng.normal(size=(20, 3))
            target = np.eye(3)[rng.integers(0, 3, 20)]
            for j, s in enumerate(steps):
                if j % 3:
                    continue
                a = min(1.0, s * lr / 20)
                p = (1 - a) * np.exp(logits0) / np.exp(logits0).sum(1, keepdims=True) + a * target
                arrays[s] = {
                    names.ARRAY_TEST_PREDICTIONS: p.astype(np.float32),
                    names.ARRAY_K_EIGENVALUES: np.sort(lam_k[j] * rng.uniform(0.01, 1, 5))[::-1],
                    names.ARRAY_HESSIAN_RITZ_VALUES: np.sort(lam_h[j] * rng.uniform(0.05, 1, 8))[
                        ::-1
                    ],
                }
        paths.append(
            write_synthetic_run(
                Path(root) / f"lr_{lr:g}",
                steps=steps,
                measurements={
                    names.K_LAMBDA_1: lam_k,
                    names.HESSIAN_LAMBDA_1: lam_h,
                    names.K_RATIO: ratio,
                    names.K_TRACE: trace,
                    names.LOSS_DELTA: 0.05 - 0.01 * lam_k,
                    names.BREAKEVEN_S2: 2 * lam_h,
                    names.LR: [lr] * n,
                },
                accuracy=accuracy,
                arrays=arrays,
                lr=lr,
                sweep={"axis": "lr", "value": lr},
            )
        )
    return paths
