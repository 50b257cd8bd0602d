"""The files of a run directory, atomic writes, and the repairs of what a killed writer leaves.

TensorFlow-free. A run directory is *started* when metadata.json exists: `RunWriter` writes
flags.txt, then metadata.json, and only then rows, arrays and checkpoints. A kill can leave
(1) temporary files of an atomic write (``.NAME.RANDOM.tmp``, here and in arrays/), and (2) before
metadata.json, the start-up leftovers: the lock file, flags.txt, temporary files and, from
earlier versions, an empty metrics.jsonl and an empty arrays/. Both are recognised and removed
under the run directory's lock (checkpoint temporaries are TensorFlow's: tfbreak.training).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tfbreak.runs.lock import LOCK_FILE

FLAGS_FILE = "flags.txt"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
ARRAYS_DIR = "arrays"
CHECKPOINTS_DIR = "checkpoints"
FIGURES_DIR = "figures"

_TEMPORARY_RE = re.compile(r"^\..+\.[^.]+\.tmp$")


def is_temporary(name: str) -> bool:
    """True for the name of an `atomic_write` temporary file (``.flags.txt.k3j9x.tmp``)."""
    return bool(_TEMPORARY_RE.match(name))


def atomic_write(path: Path, write: Callable[[IO], Any], binary: bool = False) -> None:
    """Write `path` atomically: `write(file)` on a temporary file in the same directory, fsync,
    rename; the temporary file is removed if anything fails (a kill leaves it: see
    `remove_temporary_files`)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise with_path(err, path) from err
    try:
        with os.fdopen(
            fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})
        ) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise with_path(err, path) from err
        raise


def with_path(err: OSError, path: Path) -> OSError:
    """`err` naming `path` when it names no file (a write to an open file: a full disk)."""
    return err if err.filename else type(err)(err.errno, err.strerror, str(path))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def probe_writable(run_dir: Path) -> None:
    """Raise the OSError (read-only file system, permission denied, ...) that writing in
    `run_dir` or its subdirectories would raise: a temporary file is made in each and removed
    at once (a kill in between leaves one that the next writer removes)."""
    for directory in (run_dir, *(run_dir / d for d in (ARRAYS_DIR, CHECKPOINTS_DIR))):
        if directory.is_dir():
            try:
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=".probe.", suffix=".tmp")
            except OSError as err:
                raise OSError(err.errno, err.strerror, str(directory)) from err
            os.close(fd)
            os.unlink(tmp)


def remove_temporary_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in `run_dir` and its arrays/; returns
    them. Call only while holding the run directory's lock (a live writer's files are not
    stale)."""
    removed = []
    for directory in (run_dir, run_dir / ARRAYS_DIR):
        if directory.is_dir():
            for path in directory.iterdir():
                if path.is_file() and is_temporary(path.name):
                    path.unlink()
                    removed.append(path)
    return removed


def _is_empty_dir_of_temporaries(path: Path) -> bool:
    return path.is_dir() and all(p.is_file() and is_temporary(p.name) for p in path.iterdir())


def _is_startup_leftover(path: Path) -> bool:
    name = path.name
    if path.is_file():
        if name in (LOCK_FILE, FLAGS_FILE) or is_temporary(name):
            return True
        return name == METRICS_FILE and path.stat().st_size == 0
    return name == ARRAYS_DIR and _is_empty_dir_of_temporaries(path)


def startup_leftovers(run_dir: Path) -> list[Path] | None:
    """What a start-up killed before metadata.json was written left in `run_dir` (possibly
    nothing); None when `run_dir` holds anything else (metadata.json included): it is a started
    run or not a tfbreak directory at all. A missing directory has no leftovers."""
    if not run_dir.exists():
        return []
    if not run_dir.is_dir():
        return None
    entries = list(run_dir.iterdir())
    return entries if all(_is_startup_leftover(p) for p in entries) else None


def clear_startup_leftovers(run_dir: Path) -> None:
    """Remove the start-up leftovers of `run_dir` except the lock file (held by the caller)."""
    for path in startup_leftovers(run_dir) or []:
        if path.name == LOCK_FILE:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def nearest_existing(path: Path) -> Path:
    """`path` made absolute, or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def remove_if_unstarted(run_dir: Path, existing: Path) -> bool:
    """Remove `run_dir` when it holds nothing but start-up leftovers (no run was recorded in
    it), and the then-empty directories above it up to `existing` (which stays): undo what a
    writer created. Returns True when `run_dir` was removed."""
    if not run_dir.is_dir() or startup_leftovers(run_dir) is None:
        return False
    shutil.rmtree(run_dir)
    parent = Path(os.path.abspath(run_dir)).parent
    while parent != existing and parent.is_relative_to(existing):
        try:
            parent.rmdir()
        except OSError:  # not empty (or gone): it holds something of someone else's
            break
        parent = parent.parent
    return True


__all__ = [
    "ARRAYS_DIR",
    "CHECKPOINTS_DIR",
    "FIGURES_DIR",
    "FLAGS_FILE",
    "METADATA_FILE",
    "METRICS_FILE",
    "TENSORBOARD_DIR",
    "atomic_write",
    "atomic_write_text",
    "clear_startup_leftovers",
    "is_temporary",
    "nearest_existing",
    "probe_writable",
    "remove_if_unstarted",
    "remove_temporary_files",
    "startup_leftovers",
    "with_path",
]
