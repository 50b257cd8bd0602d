"""λ1_K estimated with two mini-batch sizes M (paper, App. C and Fig. 9: M = 1 vs M = 128).

Two ways to get the pairs. One run measures K at two sizes (``--k_M=1,128``): its ``K/lambda_1``
(metadata ``K_M``) and ``K2/lambda_1`` (metadata ``K_M2``) at the same steps. Or the same
trajectory is measured twice, as two runs that agree on every training hyperparameter
(`sweep.TRAINING_KEYS`) and the seed and whose metadata ``K_M`` differ; in each such group the
run with the smallest K_M is paired with the run with the largest, ``K/lambda_1`` matched at the
steps both measured. The Pearson correlation of the matched values is reported per pair (per
learning rate in Fig. 9) and pooled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfbreak.analysis.sweep import TRAINING_KEYS
from tfbreak.runs import Run, names


@dataclass(frozen=True)
class MPair:
    """λ1_K of one trajectory with a small and a large M, at common steps."""

    small: Run
    large: Run  # the same run when it measured both sizes
    m_small: int
    m_large: int
    steps: np.ndarray
    lambda_small: np.ndarray
    lambda_large: np.ndarray
    pearson_r: float  # NaN if fewer than 2 points or a constant series


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of finite pairs; NaN if < 2 pairs or zero variance."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _group_key(run: Run) -> tuple:
    return tuple(repr(run.metadata.get(k)) for k in (*TRAINING_KEYS, "seed"))


def _finite(run: Run, metric: str) -> dict[int, float]:
    steps, _, values = run.series(metric)
    return {int(s): float(v) for s, v in zip(steps, values, strict=True) if np.isfinite(v)}


def _pair(small: Run, small_metric: str, m_small, large: Run, large_metric: str, m_large):
    a, b = _finite(small, small_metric), _finite(large, large_metric)
    common = np.asarray(sorted(set(a) & set(b)), dtype=np.int64)
    if common.size == 0:
        return None
    x = np.asarray([a[s] for s in common])
    y = np.asarray([b[s] for s in common])
    m_small, m_large = int(m_small), int(m_large)
    if m_small > m_large:
        small, large, m_small, m_large, x, y = large, small, m_large, m_small, y, x
    return MPair(small, large, m_small, m_large, common, x, y, pearson_r(x, y))


def find_m_pairs(runs: list[Run]) -> list[MPair]:
    """λ1_K at two mini-batch sizes, within runs (K and K2) and across runs of one trajectory."""
    pairs = []
    for r in runs:
        if isinstance(r.metadata.get("K_M2"), int | float):
            found = _pair(
                r, names.K_LAMBDA_1, r.metadata["K_M"], r, names.K2.lambda_1, r.metadata["K_M2"]
            )
            pairs += [found] if found else []
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        if isinstance(r.metadata.get("K_M"), int | float):
            groups.setdefault(_group_key(r), []).append(r)
    for members in groups.values():
        ms = sorted(members, key=lambda r: r.metadata["K_M"])
        small, large = ms[0], ms[-1]
        if small.metadata["K_M"] != large.metadata["K_M"]:
            found = _pair(
                small,
                names.K_LAMBDA_1,
                small.metadata["K_M"],
                large,
                names.K_LAMBDA_1,
                large.metadata["K_M"],
            )
            pairs += [found] if found else []
    return pairs
