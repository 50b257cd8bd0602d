"""Read a run directory back (format: docs/run_directory.md). No TensorFlow import."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tfbreak.runs import names
from tfbreak.runs.files import ARRAYS_DIR, FLAGS_FILE, METADATA_FILE, METRICS_FILE
from tfbreak.runs.writer import RESERVED_KEYS, arrays_filename, parse_arrays_filename


class NotARunError(ValueError):
    """The directory is not a run directory (no metadata.json and no metrics.jsonl)."""


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """True if `path` is a directory holding metadata.json or metrics.jsonl."""
    p = Path(path)
    return p.is_dir() and ((p / METADATA_FILE).is_file() or (p / METRICS_FILE).is_file())


def find_runs(path: str | os.PathLike[str]) -> list[Path]:
    """`path` itself if it is a run directory, else the run directories below it (sorted).

    A sweep directory is any directory containing run directories (searched recursively; a run
    directory's own subdirectories are not searched). Raises NotARunError if none is found.
    """
    p = Path(path)
    if is_run_dir(p):
        return [p]
    if not p.is_dir():
        raise NotARunError(f"{str(p)!r} is not a directory")
    found: list[Path] = []
    for root, dirs, _files in os.walk(p):
        dirs.sort()
        keep = []
        for d in dirs:
            sub = Path(root) / d
            if is_run_dir(sub):
                found.append(sub)
            elif not d.startswith("."):
                keep.append(d)
        dirs[:] = keep
    if not found:
        raise NotARunError(
            f"{str(p)!r} is neither a run directory (no {METADATA_FILE} or {METRICS_FILE}) "
            "nor a sweep directory containing run directories"
        )
    return sorted(found)


class Run:
    """A run directory read back: metadata, metric rows, arrays.

    Rows are dicts as written (null -> None), with the metric names of tfbreak 0.1 run
    directories mapped to today's (`names.LEGACY`). `series` turns a metric into numpy arrays,
    with null (a NaN/inf that was written) as NaN.
    """

    def __init__(self, path: Path, metadata: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        self.path = path
        self.metadata = metadata
        self.rows = rows

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r}, rows={len(self.rows)})"

    # ------------------------------------------------------------ metadata
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        """Metadata status; "unknown" if no metadata was written."""
        return str(self.metadata.get("status") or "unknown")

    @property
    def stop_reason(self) -> str | None:
        """Metadata stop_reason, else the reason of the last ``kind="stop"`` row, else None."""
        reason = self.metadata.get("stop_reason")
        if reason:
            return str(reason)
        for row in reversed(self.rows):
            if row.get("kind") == "stop":
                return str(row.get("reason") or "stopped")
        return None

    @property
    def flags(self) -> str | None:
        """Contents of flags.txt, or None."""
        p = self.path / FLAGS_FILE
        return p.read_text(encoding="utf-8") if p.is_file() else None

    @property
    def sweep(self) -> tuple[str, Any] | None:
        """(axis, value) from metadata ``sweep``, or None."""
        sweep = self.metadata.get("sweep")
        if isinstance(sweep, dict) and "axis" in sweep:
            return str(sweep["axis"]), sweep.get("value")
        return None

    # ------------------------------------------------------------ metrics
    def metric_names(self) -> list[str]:
        """Metric keys present in at least one row (sorted)."""
        return sorted({k for row in self.rows for k in row if k not in RESERVED_KEYS})

    def has(self, name: str) -> bool:
        """True if at least one row has a finite value of metric `name`."""
        _, _, v = self.series(name)
        return bool(np.isfinite(v).any())

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps int64, epochs float64, values float64) of metric `name`, in file order.

        Rows without the key are skipped, and so are event rows (they repeat the values of the
        measurement they mark); a null value (NaN/inf when written) gives NaN.
        List-valued metrics (``hessian/top_k``) are refused: use `rows`.
        """
        steps: list[int] = []
        epochs: list[float] = []
        values: list[float] = []
        for row in self.rows:
            if name not in row or row.get("kind") == "event":
                continue
            v = row[name]
            if isinstance(v, (list, dict)):
                raise ValueError(f"metric {name!r} is not scalar; read it from Run.rows")
            steps.append(int(row["step"]))
            e = row.get("epoch")
            epochs.append(np.nan if e is None else float(e))
            values.append(np.nan if v is None else float(v))
        return (
            np.asarray(steps, dtype=np.int64),
            np.asarray(epochs, dtype=np.float64),
            np.asarray(values, dtype=np.float64),
        )

    def events(self, event: str) -> list[dict[str, Any]]:
        """The event rows of kind `event` (e.g. `names.EVENT_BREAK_EVEN`), in file order."""
        return [r for r in self.rows if r.get("kind") == "event" and r.get("event") == event]

    def last_step(self) -> int | None:
        """Largest step of any row, or None for an empty run."""
        return max((int(r["step"]) for r in self.rows), default=None)

    def steps_per_epoch(self) -> float | None:
        """Estimated steps per epoch from rows with epoch > 0 (None if not estimable)."""
        ratios = [
            r["step"] / r["epoch"]
            for r in self.rows
            if r.get("epoch") and r.get("step") is not None
        ]
        return float(np.median(ratios)) if ratios else None

    # ------------------------------------------------------------ arrays
    def array_steps(self, key: str | None = None) -> list[int]:
        """Steps with an arrays npz (sorted); with `key`, only those whose npz holds `key`."""
        d = self.path / ARRAYS_DIR
        if not d.is_dir():
            return []
        steps = sorted(s for p in d.iterdir() if (s := parse_arrays_filename(p.name)) is not None)
        if key is None:
            return steps
        out = []
        for s in steps:
            with np.load(d / arrays_filename(s)) as z:
                if key in z.files:
                    out.append(s)
        return out

    def arrays(self, step: int) -> dict[str, np.ndarray]:
        """All arrays saved at `step` (loaded into memory). KeyError if none were saved."""
        p = self.path / ARRAYS_DIR / arrays_filename(step)
        if not p.is_file():
            raise KeyError(f"no arrays saved at step {step} in {str(self.path)!r}")
        with np.load(p) as z:
            return {k: z[k] for k in z.files}


def _row(line: str) -> dict[str, Any] | None:
    """A metrics row parsed from one line, or None if the line is not one (torn, not JSON, not
    an object with an integer 'step')."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    step = row.get("step")
    if isinstance(step, bool) or not isinstance(step, (int, float)):
        return None
    if not math.isfinite(step) or step != int(step):
        return None
    return row


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl. A line that is not a row (a crash mid-write tears the last one;
    a disk or hand edit can spoil any) is skipped, with one warning per file naming the lines."""
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    rows: list[dict[str, Any]] = []
    skipped: list[int] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        row = _row(line)
        if row is None:
            skipped.append(i + 1)
            continue
        row["step"] = int(row["step"])
        rows.append(names.current_names(row))
    if skipped:
        which = f"line {skipped[0]}" if len(skipped) == 1 else f"lines {_line_list(skipped)}"
        torn = " (torn last line)" if skipped == [len(lines)] else ""
        warnings.warn(f"{path}: skipped {which}{torn}: not a metrics row", stacklevel=3)
    return rows


def _line_list(numbers: list[int], shown: int = 10) -> str:
    text = ", ".join(map(str, numbers[:shown]))
    return text + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read a run directory (metadata.json + metrics.jsonl). NotARunError if it is not one."""
    p = Path(run_dir)
    if not is_run_dir(p):
        raise NotARunError(
            f"{str(p)!r} is not a run directory (expected {METADATA_FILE} or {METRICS_FILE})"
        )
    metadata: dict[str, Any] = {}
    if (p / METADATA_FILE).is_file():
        with open(p / METADATA_FILE, encoding="utf-8", errors="replace") as f:
            try:
                metadata = json.load(f)
            except ValueError as err:
                raise NotARunError(f"{str(p / METADATA_FILE)!r} is not JSON: {err}") from err
        if not isinstance(metadata, dict):
            raise NotARunError(f"{str(p / METADATA_FILE)!r} is not a JSON object")
    return Run(p, metadata, _read_rows(p / METRICS_FILE))


def load_runs(paths: Iterable[str | os.PathLike[str]]) -> list[Run]:
    """Load every run under `paths` (each a run directory or a sweep directory)."""
    return [load_run(r) for p in paths for r in find_runs(p)]
