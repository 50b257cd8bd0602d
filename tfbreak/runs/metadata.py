"""metadata.json of a run: the one builder (format: docs/run_directory.md). TensorFlow-free."""

from __future__ import annotations

import functools
import platform
from importlib import metadata as importlib_metadata
from typing import Any

import tfbreak
from tfbreak.runs.writer import now_iso

VERSIONED = ("tensorflow", "keras", "numpy")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that produce a run's numbers (None: not installed)."""
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> tuple[tuple[str, str | None], ...]:
    """Read once per process (a lookup scans the installed distributions)."""
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return tuple(out.items())


def k_metadata(ms: tuple[int, ...]) -> dict[str, int]:
    """{"K_M": M of the K/* metrics} and, when K is measured at a second M, {"K_M2": it}
    (the K2/* metrics)."""
    return {"K_M": ms[0], **({"K_M2": ms[1]} if len(ms) > 1 else {})}


def build_metadata(**fields: Any) -> dict[str, Any]:
    """The metadata of a new run: tfbreak and package versions, Python, start time, status
    "running", no sweep, then `fields` (model, data set, sizes, hyperparameters, measurement
    settings: see docs/run_directory.md), which override the defaults."""
    return {
        "tfbreak_version": tfbreak.__version__,
        "versions": package_versions(),
        "python": platform.python_version(),
        "started": now_iso(),
        "sweep": None,
        "status": "running",
        "stop_reason": None,
        **fields,
    }
