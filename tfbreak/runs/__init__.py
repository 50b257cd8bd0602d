"""The run directory: metrics writer (JSONL + TensorBoard), metadata, reading runs back.

Format: docs/run_directory.md. Metric names: `tfbreak.runs.names`. Importing this package does
not import TensorFlow (the writer imports it lazily for TensorBoard; the reader never does).
"""

from tfbreak.runs import names
from tfbreak.runs.metadata import build_metadata, k_metadata
from tfbreak.runs.reader import NotARunError, Run, find_runs, is_run_dir, load_run, load_runs
from tfbreak.runs.rundir import check_run_dir, run_dir_of, stored_config
from tfbreak.runs.writer import STATUSES, RunWriter, arrays_filename, now_iso, to_jsonable

__all__ = [
    "STATUSES",
    "NotARunError",
    "Run",
    "RunWriter",
    "arrays_filename",
    "build_metadata",
    "k_metadata",
    "check_run_dir",
    "find_runs",
    "is_run_dir",
    "load_run",
    "load_runs",
    "names",
    "now_iso",
    "run_dir_of",
    "stored_config",
    "to_jsonable",
]
