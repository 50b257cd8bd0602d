"""Do the rows and arrays of a run directory agree with the checkpoint a run resumes from?

A checkpoint at step c is saved after every row of steps <= c was written, so a resumed run
needs all of them: the measurement rows of the schedule's steps <= c with their arrays, the
epoch rows of the epochs ended by c, and the break-even event row after the first measurement
that reached it. A kill never breaks that (rows are appended and fsync'd, arrays renamed into
place, before the checkpoint), but a disk, a copy or a hand can: a row torn or lost, an arrays
file missing or unreadable. `check` finds the earliest step whose rows are not whole (the run
then resumes from a checkpoint before it and measures that step again) and the arrays files
without a row (removed). TensorFlow-free.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfbreak.runs import names
from tfbreak.runs.files import ARRAYS_DIR, METRICS_FILE
from tfbreak.runs.writer import ROW_KINDS, arrays_filename, parse_arrays_filename

ARRAY_PARTS = frozenset(a.part for a in names.ARRAYS.values())
"""The measurement parts that save arrays (their metrics in a row mean an arrays file)."""


@dataclass(frozen=True)
class Findings:
    """`damaged`: the earliest step <= the checkpoint's whose rows are not whole (None: all
    are), with `why` in words; `orphans`: arrays files before it that have no measurement row;
    `unreadable`: metrics.jsonl lines that are not rows."""

    damaged: int | None
    why: str
    orphans: tuple[Path, ...]
    unreadable: int


def _rows(run_dir: Path) -> tuple[list[dict], int]:
    """The rows of metrics.jsonl that read back, and how many lines do not."""
    path = run_dir / METRICS_FILE
    rows, bad = [], 0
    if not path.is_file():
        return rows, bad
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            ok = (
                isinstance(row, dict)
                and isinstance(row.get("step"), int)
                and row.get("kind") in ROW_KINDS
            )
            if ok:
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def _arrays_problem(path: Path, row: dict) -> str | None:
    """Why the arrays file of a measurement row is not whole (None: it is, or none is due)."""
    parts = {names.METRICS[k].part for k in row if k in names.METRICS} & ARRAY_PARTS
    if not parts:
        return None
    try:
        with np.load(path) as data:
            keys = set(data.files)
    except FileNotFoundError:
        return f"{ARRAYS_DIR}/{path.name} is missing"
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        return f"{ARRAYS_DIR}/{path.name} cannot be read ({type(err).__name__})"
    saved = {names.ARRAYS[k].part for k in keys if k in names.ARRAYS}
    if parts - saved:
        return f"{ARRAYS_DIR}/{path.name} lacks the arrays of {', '.join(sorted(parts - saved))}"
    return None


def check(
    run_dir: Path,
    until: int,
    *,
    measurements: Iterable[int],
    epoch_ends: Iterable[int],
    reaches_break_even: Callable[[dict], bool],
) -> Findings:
    """Compare the rows and arrays of steps <= `until` (a checkpoint's step) with what the run
    wrote by then: a measurement row at each of `measurements`, an epoch row at each of
    `epoch_ends`, an event row at the first measurement that `reaches_break_even`, an arrays
    file for each measurement row with metrics of a part that saves arrays."""
    rows, unreadable = _rows(run_dir)
    kept = [r for r in rows if r["step"] <= until and r["kind"] != "stop"]
    by_kind: dict[str, dict[int, dict]] = {kind: {} for kind in ROW_KINDS}
    for row in kept:
        by_kind[row["kind"]].setdefault(row["step"], row)
    problems: list[tuple[int, str]] = []
    for step in measurements:
        if step > until:
            continue
        row = by_kind["measurement"].get(step)
        if row is None:
            problems.append((step, f"the measurement row of step {step} is missing or torn"))
            continue
        problem = _arrays_problem(run_dir / ARRAYS_DIR / arrays_filename(step), row)
        if problem is not None:
            problems.append((step, problem))
    for step in epoch_ends:
        if step <= until and step not in by_kind["epoch"]:
            problems.append((step, f"the epoch row of step {step} is missing or torn"))
    first = next((r for r in kept if r["kind"] == "measurement" and reaches_break_even(r)), None)
    if first is not None and first["step"] not in by_kind["event"]:
        step = first["step"]
        problems.append((step, f"the break-even event row of step {step} is missing or torn"))
    damaged, why = min(problems) if problems else (None, "")
    limit = until if damaged is None else damaged - 1
    orphans = []
    if (run_dir / ARRAYS_DIR).is_dir():
        for path in sorted((run_dir / ARRAYS_DIR).iterdir()):
            step = parse_arrays_filename(path.name)
            if step is not None and step <= limit and step not in by_kind["measurement"]:
                orphans.append(path)
    return Findings(damaged, why, tuple(orphans), unreadable)


__all__ = ["ARRAY_PARTS", "Findings", "check"]
