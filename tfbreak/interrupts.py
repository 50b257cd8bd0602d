"""Clean stops on SIGTERM (what a scheduler sends) and SIGINT (Ctrl-C). TensorFlow-free.

Inside `handled()`, either signal raises `Interrupted` at the next Python instruction, so the
current SGD step or measurement is abandoned (a resumed run replays it from the last
checkpoint); inside `deferred()` (writes that must not be torn: a metric row with its arrays, a
checkpoint, metadata) the signal is held back and raised when the block ends. After the first
`Interrupted`, further signals are ignored until the outermost `handled()` block ends, so the
clean-up that records the stop is not itself interrupted.

Signal handlers can only be installed in the main thread; elsewhere `handled()` does nothing and
Ctrl-C arrives as Python's own KeyboardInterrupt. A signal the parent process ignores (e.g.
SIGINT of a background job) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; `exit_code` is the shell's convention, 128 + signal number.
    Whoever records the stop may attach how the run ended as `result`."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.result: Any = None
        super().__init__(self.signal_name)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def as_interrupted(err: KeyboardInterrupt) -> Interrupted:
    """`err` itself, or a plain KeyboardInterrupt (Ctrl-C without our handler) as SIGINT."""
    return err if isinstance(err, Interrupted) else Interrupted(signal.SIGINT)


class _State:
    depth = 0  # nesting of handled()
    deferring = 0  # nesting of deferred()
    pending: int | None = None  # a signal held back by deferred()
    stopping = False  # an Interrupted was raised: ignore further signals


def _handler(signum: int, _frame: object) -> None:
    if _State.stopping:
        return
    if _State.deferring:
        _State.pending = _State.pending or signum
        return
    _State.stopping = True
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGTERM and SIGINT raise `Interrupted` within the block (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(s, _handler)
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        for s, old in previous.items():
            signal.signal(s, old)
        if _State.depth == 0:
            _State.stopping, _State.pending = False, None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT back during the block; raise `Interrupted` for it when it ends."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
    if not _State.deferring and _State.pending is not None and not _State.stopping:
        signum, _State.pending = _State.pending, None
        _State.stopping = True
        raise Interrupted(signum)


__all__ = ["SIGNALS", "Interrupted", "as_interrupted", "deferred", "handled"]
