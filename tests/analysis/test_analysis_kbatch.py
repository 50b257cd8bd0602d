"""λ1_K measured with two mini-batch sizes M (analysis.kbatch, Fig. 9) on synthetic runs."""

from __future__ import annotations

import numpy as np

from tfbreak.analysis.kbatch import find_m_pairs, pearson_r
from tfbreak.analysis.sweep import make_sweep
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import write_synthetic_run


def test_k_m_pairs_and_pearson(tmp_path):
    lam = [1.0, 2.0, 3.0, 2.5]
    runs = [
        load_run(
            write_synthetic_run(
                tmp_path / f"m{m}",
                steps=[0, 10, 20, 30],
                measurements={names.K_LAMBDA_1: [x * (1 + m / 100) for x in lam]},
                K_M=m,
            )
        )
        for m in (1, 128)
    ]
    (pair,) = find_m_pairs(runs)
    assert (pair.m_small, pair.m_large) == (1, 128)
    assert pair.steps.tolist() == [0, 10, 20, 30] and pair.pearson_r == 1.0
    assert np.isnan(pearson_r(np.ones(3), np.arange(3)))
    # Different K_M makes K verdicts inconclusive; labels tell the runs apart.
    sweep = make_sweep(runs)
    assert sweep.varying_measurement == ["K_M"] and len(set(sweep.labels)) == 2
