"""Where a run lives, what its directory holds for a config (start, resume or nothing to do),
and how a run ended. TensorFlow-free and read-only, so `python -m tfbreak.main` answers before
it loads data or builds a model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfbreak.config import ConfigError, ExperimentConfig, identity
from tfbreak.runs.files import METADATA_FILE, startup_leftovers
from tfbreak.runs.lock import RunDirLocked, lock_holder

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3
"""Exit codes of `python -m tfbreak.main`; an interrupted run exits with 128 + the signal number
(130 for SIGINT, 143 for SIGTERM)."""


@dataclass(frozen=True)
class RunResult:
    """How a run ended: status "completed", "diverged", "failed" or "interrupted"."""

    status: str
    run_dir: Path
    reason: str | None = None
    exit_code: int = EXIT_COMPLETED
    then: str | None = None  # what to do next (a failed run: fix this, then resume)

    def line(self) -> str:
        """The one line `python -m tfbreak.main` prints for it."""
        reason = f" ({self.reason})" if self.reason else ""
        return f"tfbreak: {self.run_dir}: {self.status}{reason}" + (
            f"; {self.then}" if self.then else ""
        )


def run_dir_of(config: ExperimentConfig) -> Path:
    """OUTPUT_DIR/RUN_NAME."""
    return Path(config.output_dir) / config.run_name


def stored_config(config: ExperimentConfig) -> dict:
    """The config as metadata.json stores it (JSON types: tuples become lists)."""
    return json.loads(json.dumps(config.to_dict(), default=str))


@dataclass(frozen=True)
class RunDirState:
    """What `run_dir` holds for a config: no started run (`metadata` None: start one there), or
    the metadata of the run with the config's settings (resume it unless it is finished)."""

    run_dir: Path
    metadata: dict[str, Any] | None

    @property
    def started(self) -> bool:
        return self.metadata is not None

    @property
    def status(self) -> str | None:
        return None if self.metadata is None else self.metadata.get("status")

    @property
    def finished(self) -> RunResult | None:
        """The result of a completed or diverged run (nothing to do); None otherwise."""
        if self.status == "completed":
            return RunResult("completed", self.run_dir, "already completed; nothing to do")
        if self.status == "diverged":
            reason = f"diverged before ({self.metadata.get('stop_reason')}); not resumed"
            return RunResult("diverged", self.run_dir, reason, EXIT_DIVERGED)
        return None


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"--run_name: {path} cannot be read ({type(err).__name__}: {err}); move the run "
            "directory away or choose another --run_name"
        ) from err
    if not isinstance(metadata, dict):
        raise ConfigError(f"--run_name: {path} does not hold a JSON object")
    return metadata


def inspect_run_dir(config: ExperimentConfig, *, check_lock: bool = True) -> RunDirState:
    """The state of `run_dir_of(config)`, read-only. Raises ConfigError (naming --run_name) when
    the directory holds something else, `RunDirLocked` when another process writes it (with
    `check_lock`; not for the lock's holder itself, nor for the workers of a multi-worker run,
    whose chief holds it).

    A missing or empty directory, or one holding only what a start-up killed before
    metadata.json was written leaves, is not started (`RunWriter` clears the leftovers)."""
    run_dir = run_dir_of(config)
    holder = lock_holder(run_dir) if run_dir.is_dir() and check_lock else None
    if holder is not None:
        raise RunDirLocked(run_dir, holder)
    if startup_leftovers(run_dir) is not None:
        return RunDirState(run_dir, None)
    meta = run_dir / METADATA_FILE
    if not run_dir.is_dir() or not meta.is_file():
        raise ConfigError(
            f"--run_name: {run_dir} exists and is not a tfbreak run; choose another --run_name "
            "or --output_dir"
        )
    metadata = _read_metadata(meta)
    # A setting missing from the stored config (a run written before tfbreak had it) counts as
    # its default, so adding a setting does not orphan older runs.
    defaults = stored_config(ExperimentConfig())
    stored = identity({**defaults, **(metadata.get("config") or {})})
    current = identity(stored_config(config))
    if stored != current:
        diff = sorted(k for k in current if stored.get(k) != current[k])
        raise ConfigError(
            f"--run_name: {run_dir} holds a run with other settings ({', '.join(diff)}); "
            "choose another --run_name or --output_dir"
        )
    return RunDirState(run_dir, metadata)


__all__ = [
    "EXIT_COMPLETED",
    "EXIT_DIVERGED",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "RunDirState",
    "RunResult",
    "inspect_run_dir",
    "run_dir_of",
    "stored_config",
]
