"""Failures of the environment a run writes in or computes on: a full disk, a read-only,
vanished or forbidden directory, exhausted memory. Each is recognised from the exception (an
OSError's errno, or the same words in a TensorFlow error's message) and told in one line with
what to do; the traceback goes to ``RUN_DIR/error.log``. TensorFlow-free."""

from __future__ import annotations

import errno
import os
import re
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from tfbreak.runs.files import METADATA_FILE

LOG_FILE = "error.log"


@dataclass(frozen=True)
class Cause:
    """What went wrong (`what`, e.g. "no space left on device") and what to do about it."""

    what: str
    advice: str


_BY_ERRNO = {
    errno.ENOSPC: Cause("no space left on device", "free space on that file system"),
    errno.EDQUOT: Cause("disk quota exceeded", "free space or raise the quota"),
    errno.EROFS: Cause("read-only file system", "make it writable (e.g. remount read-write)"),
    errno.EACCES: Cause("permission denied", "give this user access there"),
    errno.EPERM: Cause("operation not permitted", "give this user access there"),
    errno.ENOENT: Cause(
        "no such file or directory", "restore it (was the directory removed or unmounted?)"
    ),
    errno.EIO: Cause("input/output error", "check the disk"),
    errno.ENETUNREACH: Cause(
        "network is unreachable",
        "connect to the network, or prepare the data set where there is one (tfds build) and "
        "give its directory as --data_dir",
    ),
    errno.ENOMEM: Cause("out of memory", "free memory"),
}
OUT_OF_MEMORY = Cause(
    "out of memory",
    "free memory, or measure with less of it (a smaller --hessian_batch_size, --batch_size or "
    "--k_M)",
)
_PATH = re.compile(r"(?<![\w}])(/[^\s;,'\"{}]+)")


def cause(err: BaseException) -> Cause | None:
    """The environment failure `err` is, or None (a bug, bad data, ...): an OSError by its errno,
    MemoryError, or a TensorFlow error whose message carries an errno's words (TensorFlow's
    file system errors) or "OOM when allocating" (ResourceExhaustedError)."""
    if isinstance(err, MemoryError):
        return OUT_OF_MEMORY
    if isinstance(err, OSError) and err.errno in _BY_ERRNO:
        return _BY_ERRNO[err.errno]
    text = str(err)
    if "OOM when allocating" in text or "out of memory" in text.lower():
        return OUT_OF_MEMORY
    for number, known in _BY_ERRNO.items():
        if os.strerror(number) in text:
            return known
    return None


def _path(err: BaseException, what: str) -> str | None:
    """The path `err` concerns: an OSError's filename, else the last path in the message before
    the words of the cause (TensorFlow writes ``PATH; No space left on device``)."""
    if isinstance(err, OSError):
        return os.fsdecode(err.filename) if err.filename else None
    text = str(err)
    end = text.lower().find(what.lower())
    found = _PATH.findall(text[: end if end >= 0 else len(text)])
    return found[-1] if found else None


def reason(err: BaseException) -> str:
    """One line for the stop row and the terminal: the cause and the path it concerns, e.g.
    ``no space left on device: RUN/arrays/...``, else ``TypeName: first line of the message``."""
    known = cause(err)
    if known is None:
        return f"{type(err).__name__}: {err}".splitlines()[0]
    path = _path(err, known.what) if known is not OUT_OF_MEMORY else None
    return known.what + (f": {path}" if path else "")


def advice(err: BaseException) -> str | None:
    """What to do about an environment failure: its remedy, then resume (None for others: the
    traceback tells what failed)."""
    known = cause(err)
    return None if known is None else f"{known.advice}, then run the same command to resume"


def write_log(run_dir: Path, err: BaseException, header: str) -> Path | None:
    """Append `header` and the traceback of `err` to RUN_DIR/error.log when `run_dir` holds a
    started run, else (or when that fails: a full disk, a read-only directory) to a file in the
    system's temporary directory. Returns the file written, None when none could be."""
    text = f"== {header}\n" + "".join(traceback.format_exception(err))
    if (run_dir / METADATA_FILE).is_file():
        try:
            with open(run_dir / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(text)
            return run_dir / LOG_FILE
        except OSError:
            pass
    try:
        fd, path = tempfile.mkstemp(prefix=f"tfbreak-{run_dir.name}-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return Path(path)
    except OSError:
        return None


__all__ = ["LOG_FILE", "OUT_OF_MEMORY", "Cause", "advice", "cause", "reason", "write_log"]
