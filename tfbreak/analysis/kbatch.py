"""λ1_K estimated with two mini-batch sizes M (paper, App. C and Fig. 9: M = 1 vs M = 128).

How the pairs are found: the same trajectory measured twice must appear as two runs that agree on
every training hyperparameter (`sweep.TRAINING_KEYS`) and the seed, and whose metadata ``K_M``
differ. In each such group the run with the smallest K_M is paired with the run with the largest;
``K/lambda_1`` is matched at the steps both measured, and the Pearson correlation of the matched
values is reported (per group, i.e. per learning rate in Fig. 9, and pooled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfbreak.analysis.sweep import TRAINING_KEYS
from tfbreak.runs import Run, names


@dataclass(frozen=True)
class MPair:
    """λ1_K of one trajectory with a small and a large K_M, at common steps."""

    small: Run
    large: Run
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


def find_m_pairs(runs: list[Run]) -> list[MPair]:
    """Pairs of runs of the same trajectory with different K_M, matched at common steps."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        if isinstance(r.metadata.get("K_M"), (int, float)):
            groups.setdefault(_group_key(r), []).append(r)
    pairs = []
    for members in groups.values():
        ms = sorted(members, key=lambda r: r.metadata["K_M"])
        small, large = ms[0], ms[-1]
        if small.metadata["K_M"] == large.metadata["K_M"]:
            continue
        s1, _, v1 = small.series(names.K_LAMBDA_1)
        s2, _, v2 = large.series(names.K_LAMBDA_1)
        d1 = {int(s): v for s, v in zip(s1, v1, strict=True) if np.isfinite(v)}
        d2 = {int(s): v for s, v in zip(s2, v2, strict=True) if np.isfinite(v)}
        common = np.asarray(sorted(set(d1) & set(d2)), dtype=np.int64)
        if common.size == 0:
            continue
        a = np.asarray([d1[s] for s in common])
        b = np.asarray([d2[s] for s in common])
        pairs.append(
            MPair(
                small,
                large,
                int(small.metadata["K_M"]),
                int(large.metadata["K_M"]),
                common,
                a,
                b,
                pearson_r(a, b),
            )
        )
    return pairs
