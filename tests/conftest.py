"""Fixtures shared across the test tree (which mirrors the package tree). Helper modules at this
level (dense_reference, tiny_hub) are importable from every test folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # The suite started as a background job (`bash scripts/test.sh &`): the shell ignores SIGINT
    # there, and tfbreak rightly keeps an ignored signal ignored. The SIGINT tests need Ctrl-C's
    # default, in this process and the runs it starts.
    signal.signal(signal.SIGINT, signal.default_int_handler)

from tfbreak.runs import load_run, names  # noqa: E402

TINY = dict(
    model="mlp",
    dataset="fashion_mnist",
    batch_size=32,
    max_steps=12,
    measure_schedule="linear",
    measure_dense_every=4,
    measure_dense_until=12,
    hessian_sample_size=64,
    hessian_batch_size=64,
    k_L=4,
    k_M=(8,),
    top_k=2,
    lanczos_max_iter=6,
    eval_subset=64,
)
"""A run small enough for unit tests: the paper's MLP on real Fashion-MNIST, 12 SGD steps."""


@pytest.fixture
def tiny() -> dict:
    """The settings of a tiny run (flag names; ExperimentConfig.create(**tiny))."""
    return dict(TINY)


@pytest.fixture
def tiny_flags() -> list[str]:
    """The tiny run as command-line flags (progress off)."""

    def flag(v):
        return ",".join(map(str, v)) if isinstance(v, tuple) else v

    return [f"--{k}={flag(v)}" for k, v in TINY.items()] + ["--progress=false"]


def _reproducible_rows(run_dir) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in names.WALL_CLOCK} for r in load_run(run_dir).rows
    ]


@pytest.fixture
def reproducible_rows():
    """`reproducible_rows(run_dir)`: the metric rows without wall-clock fields (what must be
    identical between an interrupted-and-resumed run and an uninterrupted one)."""
    return _reproducible_rows


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tfbreak.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


@pytest.fixture
def cli():
    """`cli(*flags)`: run `python -m tfbreak.main` in a subprocess, capture its output."""
    return _cli


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """`run_cli(*flags)`: `python -m tfbreak.main` in this process (`parse_flags`, then `main`),
    its exit code and output as a CompletedProcess; for the answers that come before a run is
    trained (a subprocess costs a second of start-up each)."""
    from absl import flags

    from tfbreak import main, validation

    def run(*args: str) -> subprocess.CompletedProcess:
        monkeypatch.setattr(validation, "_WARNED", set())  # warnings said once per process
        capsys.readouterr()
        try:
            main.main(main.parse_flags(["tfbreak", *args]))
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        finally:
            flags.FLAGS.unparse_flags()
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end tests first (stable order otherwise): scripts/test.sh runs the suite
    on two workers a file at a time (`--dist loadfile`), and the long files started first
    leave no worker idle at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
