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


def test_one_run_with_k_at_two_sizes_is_a_pair(tmp_path):
    """--k_M=128,1: K/* at M = 128 (metadata K_M) and K2/* at M = 1 (K_M2), same steps; the
    pair puts the smaller M first whatever the order it was measured in."""
    big = [1.0, 2.0, 3.0, 2.5]
    small = [50.0, 90.0, 160.0, 120.0]
    run = load_run(
        write_synthetic_run(
            tmp_path / "two",
            steps=[0, 10, 20, 30],
            measurements={names.K_LAMBDA_1: big, names.K2.lambda_1: small},
            K_M=128,
            K_M2=1,
        )
    )
    (pair,) = find_m_pairs([run])
    assert pair.small is pair.large is run
    assert (pair.m_small, pair.m_large) == (1, 128)
    assert pair.lambda_small.tolist() == small and pair.lambda_large.tolist() == big
    assert pair.pearson_r == np.corrcoef(small, big)[0, 1]
