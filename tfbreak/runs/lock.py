"""One writer per run directory: an exclusive `flock` on ``RUN_DIR/.lock``. TensorFlow-free.

The kernel releases the lock when its holder exits, however it exits (SIGKILL included), so a
lock is never stale. The file stays (deleting a lock file races with processes about to take
it) and holds the last holder's ``pid@host`` for error messages.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".lock"


class RunDirLocked(ValueError):
    """Another process holds the run directory's lock; `holder` is its ``pid@host`` (or "")."""

    def __init__(self, run_dir: Path, holder: str) -> None:
        self.run_dir, self.holder = run_dir, holder
        who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"{run_dir} is in use by {who} (lock {run_dir / LOCK_FILE}); wait for it to end, "
            "or stop it (a stopped run resumes when its command is run again)"
        )


def _holder_text(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 256).decode("utf-8", "replace").strip()


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock_with_retries(fd: int, tries: int = 5) -> bool:
    """Lock, retrying briefly: a `lock_holder` probe holds the lock for microseconds."""
    for attempt in range(tries):
        if _try_lock(fd):
            return True
        if attempt + 1 < tries:
            time.sleep(0.02)
    return False


def lock_holder(run_dir: str | os.PathLike[str]) -> str | None:
    """``pid@host`` (or "") of the process holding `run_dir`'s lock; None when it is free.
    Read-only: creates nothing."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if _try_lock(fd):
            return None  # closing the descriptor releases the probe's lock
        return _holder_text(fd)
    finally:
        os.close(fd)


class RunLock:
    """The exclusive lock on `run_dir` (which must exist), held from construction to `release`.

    Raises `RunDirLocked` naming the holder when another process has it. Two `RunLock`s on one
    directory exclude each other within one process too (flock locks open files, not processes).
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None
        self._fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not _lock_with_retries(self._fd):
            holder = _holder_text(self._fd)
            self.release()
            raise RunDirLocked(self.run_dir, holder)
        try:  # the holder's name, for messages only: a full disk does not stop the lock
            os.ftruncate(self._fd, 0)
            os.write(self._fd, f"{os.getpid()}@{socket.gethostname()}\n".encode())
        except OSError:
            pass

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def __del__(self) -> None:  # a lock nobody holds a reference to is released
        self.release()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["LOCK_FILE", "RunDirLocked", "RunLock", "lock_holder"]
