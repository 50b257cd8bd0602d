"""Every benchmark runs end to end at a tiny size and ends with its machine-readable summary line
(`name=value` per figure). The figures themselves are not checked here (speed is measured, not
asserted): this keeps a change of the library's API from silently breaking a benchmark."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY_RUNS = {
    "coverage.py": "--draws 2 --steps 5 --sample 128 --truth-sample 512 --truth-L 30",
    "hvp_cost.py": (
        "--batch-size 4 --repeats 1 --settings simple_cnn/fmnist --modes reverse_over_reverse"
    ),
    "lanczos_passes.py": (
        "--steps 5 --sample 128 --hvp-batch 128 --offsets 2 --tols 1e-2 --cold-seeds 0 "
        "--blocks 2 --ref-iters 30"
    ),
    "measurement_overhead.py": "--model mlp --repeats 1 --warm-steps 2",
    "memory.py": "--params 2e4 --sample 8 --k-m 2",
    "native_vs_numpy.py": "--sizes 20 --repeats 1",
    "per_example_gradients.py": "--models mlp --batch-sizes 4 --repeats 1",
    "pool_read.py": "--examples 256 --repeats 1",
}


def test_every_benchmark_is_covered():
    scripts = {p.name for p in BENCHMARKS.glob("*.py") if p.name != "common.py"}
    assert scripts == set(TINY_RUNS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY_RUNS))
def test_benchmark_runs_and_ends_with_its_figures(script):
    done = subprocess.run(
        [sys.executable, script, *TINY_RUNS[script].split()],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1].split()
    assert last and all("=" in token for token in last), done.stdout[-2000:]
    values = [float(token.split("=", 1)[1]) for token in last]  # each figure is a number
    assert any(math.isfinite(v) for v in values)
