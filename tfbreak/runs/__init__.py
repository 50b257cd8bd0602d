"""The run directory: metrics writer (JSONL + TensorBoard), metadata, reading runs back, the
lock that keeps one writer per directory, and what a directory holds for a config.

Format: docs/run_directory.md. Metric names: `tfbreak.runs.names`. Importing this package does
not import TensorFlow (the writer imports it lazily for TensorBoard; the reader never does).
"""

from tfbreak.runs import names
from tfbreak.runs.lock import RunDirLocked, RunLock, lock_holder
from tfbreak.runs.metadata import build_metadata, k_metadata
from tfbreak.runs.reader import NotARunError, Run, find_runs, is_run_dir, load_run, load_runs
from tfbreak.runs.rundir import (
    RunDirState,
    RunResult,
    inspect_run_dir,
    run_dir_of,
    stored_config,
)
from tfbreak.runs.writer import STATUSES, RunWriter, arrays_filename, now_iso, to_jsonable

__all__ = [
    "STATUSES",
    "NotARunError",
    "Run",
    "RunDirLocked",
    "RunDirState",
    "RunLock",
    "RunResult",
    "RunWriter",
    "arrays_filename",
    "build_metadata",
    "k_metadata",
    "find_runs",
    "inspect_run_dir",
    "is_run_dir",
    "load_run",
    "load_runs",
    "lock_holder",
    "names",
    "now_iso",
    "run_dir_of",
    "stored_config",
    "to_jsonable",
]
