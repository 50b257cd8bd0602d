"""Every benchmark runs end to end at a tiny size and ends with its machine-readable summary line
(`name=value` per figure). The figures themselves are not checked here (speed is measured, not
asserted): this keeps a change of the library's API from silently breaking a benchmark."""

from __future__ import annotations

import math
import runpy
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
    "measurement_overhead.py": "--model mlp --repeats 1 --warm-steps 2 --hessian-fraction 0.01",
    # lambda1_k1 runs the child's code of lambda1_k5 with top_k = 1
    "memory.py": "--params 2e4 --sample 8 --k-m 2 --quantities lambda1_k5,trace,density,K",
    "native_vs_numpy.py": "--sizes 20 --repeats 1",
    "per_example_gradients.py": "--models mlp --batch-sizes 4 --repeats 1",
    "pool_read.py": "--examples 256 --repeats 1",
}


def test_every_benchmark_is_covered():
    scripts = {p.name for p in BENCHMARKS.glob("*.py") if p.name != "common.py"}
    assert scripts == set(TINY_RUNS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY_RUNS))
def test_benchmark_runs_and_ends_with_its_figures(script, monkeypatch, capsys):
    """Run as `python benchmarks/<script> ...` would, in this process (the suite's TensorFlow is
    already imported; memory.py still measures each quantity in a subprocess of its own)."""
    monkeypatch.setattr(sys, "argv", [script, *TINY_RUNS[script].split()])
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    try:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    except SystemExit as stop:  # sys.exit(0) and sys.exit() are a success, as for a process
        if stop.code not in (0, None):
            pytest.fail(f"{script} exited with {stop.code!r}:\n{capsys.readouterr().out[-2000:]}")
    stdout = capsys.readouterr().out
    last = stdout.strip().splitlines()[-1].split()
    assert last and all("=" in token for token in last), stdout[-2000:]
    values = [float(token.split("=", 1)[1]) for token in last]  # each figure is a number
    assert any(math.isfinite(v) for v in values)
