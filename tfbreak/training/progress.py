"""One-line progress for training and measurements (stderr; a redrawn line on a terminal,
a line every `every` seconds otherwise)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_steps: int, label: str, every: float = 10.0, stream=None):
        self.total = total_steps
        self.label = label
        self.every = every
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._open_line = False  # a redrawn line on a terminal that has no newline yet
        self.status = ""

    def _emit(self, text: str, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            self._open_line = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a redrawn line, so that what is printed next starts on a line of its own."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False

    def step(self, step: int, loss: float, accuracy: float, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or self.tty and now - self._last > 0.2 or now - self._last > self.every):
            return
        self._last = now
        self._emit(
            f"[{self.label}] step {step}/{self.total} loss {loss:.4f} acc {accuracy:.3f}"
            + (f" | {self.status}" if self.status else "")
        )

    def note(self, text: str) -> None:
        """A line that stays (e.g. a measurement summary)."""
        self._emit(f"[{self.label}] {text}", final=True)
