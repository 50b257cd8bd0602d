"""Notation and number formats shared by the report's tables and prose (paper, Sec. 3 and 4.2).

One place for how a number, a sweep value ("lr=0.1", "S=128"), a conjecture's name, a window and
its statistic ("second half: median"), a noise-aware cell ("holds (0.95)") and a bootstrap
interval ("[lo, hi]") are written, so that a value reads the
same in report.md, report.html and the CSV companions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfbreak.analysis.noise import STATISTIC_TITLE, WINDOW_TITLE, Statistic, Window
from tfbreak.analysis.summary import RunSummary
from tfbreak.analysis.sweep import AXIS_SYMBOL

MISSING = "—"
CONJECTURE_NAME = {1: "variance reduction", 2: "pre-conditioning"}


def number(v: float) -> str:
    """Four significant digits, as in the paper's quoted maxima."""
    return f"{v:.4g}"


def cell(v: Any) -> str:
    """A table cell: "—" for None, four significant digits for floats ("nan" if not finite)."""
    if v is None:
        return MISSING
    if isinstance(v, float):
        return number(v) if np.isfinite(v) else "nan"
    return str(v)


def sweep_value(v: Any) -> str:
    """A sweep value as typed in a label: ``0.1``, ``128`` (``%g`` for numbers)."""
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def axis_value(axis: str | None, v: Any) -> str:
    """``lr=0.1`` / ``S=128``: a sweep value with its axis symbol."""
    return f"{AXIS_SYMBOL.get(axis, axis)}={sweep_value(v)}"


def conjecture_title(n: int) -> str:
    """``1 (variance reduction)``."""
    return f"{n} ({CONJECTURE_NAME[n]})"


def key_title(window: Window, statistic: Statistic) -> str:
    """``whole trajectory: max``, ``second half: median``: a window and its statistic."""
    return f"{WINDOW_TITLE[window]}: {STATISTIC_TITLE[statistic]}"


def status_cell(status: str, confidence: float | None) -> str:
    """A noise-aware verdict and the share of replicates in order: ``holds (0.95)``."""
    return status + (f" ({confidence:.2f})" if confidence is not None else "")


def interval(lo: float, hi: float) -> str:
    """`` [lo, hi]`` of a bootstrap interval; empty when it is a point (no noise model)."""
    return "" if lo == hi else f" [{number(lo)}, {number(hi)}]"


def exclusion(s: RunSummary) -> str:
    """Why a run is excluded from the verdicts: its status and stop reason."""
    return s.status + (f": {s.stop_reason}" if s.stop_reason else "")
