"""Progress of a run on stderr. On a terminal: a tqdm bar over the SGD steps (rate, elapsed,
ETA, loss, running accuracy) and, during a measurement, a second bar over its parts; the
measurement summaries stay above the bars. Not on a terminal (a log file, a scheduler): one
line per measurement and a line with the same rate and ETA every `every` seconds."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from tqdm import tqdm

LOG_FORMAT = "{desc} {percentage:3.0f}% [{elapsed}<{remaining}, {rate_fmt}]{postfix}"


class Progress:
    def __init__(
        self,
        total_steps: int,
        label: str,
        initial: int = 0,
        every: float = 60.0,
        stream: IO[str] | None = None,
    ):
        self.total = total_steps
        self.label = label
        self.every = every
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.status = ""  # the last measurement's values, shown beside the bar
        self._initial = self._n = initial
        self._start = self._last = time.monotonic()
        self._bar = (
            tqdm(
                total=total_steps,
                initial=initial,
                desc=label,
                unit="step",
                file=self.stream,
                dynamic_ncols=True,
                leave=True,
            )
            if self.tty
            else None
        )

    def _postfix(self, loss: float, accuracy: float) -> str:
        text = f"loss {loss:.4f} acc {accuracy:.3f}"
        return text + (f" | {self.status}" if self.status else "")

    def step(self, step: int, loss: float, accuracy: float, force: bool = False) -> None:
        """SGD step `step` done, with its loss and the epoch's running accuracy."""
        self._n = step
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(loss, accuracy), refresh=False)
            self._bar.update(step - self._bar.n)
            return
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            self._line(
                tqdm.format_meter(
                    step - self._initial,
                    self.total - self._initial,
                    now - self._start,
                    prefix=f"[{self.label}] step {step}/{self.total}",
                    unit="step",
                    postfix=self._postfix(loss, accuracy),
                    bar_format=LOG_FORMAT,
                )
            )

    @contextmanager
    def measuring(self, step: int, parts: list[str]) -> Iterator[Callable[[str], None]]:
        """A measurement at `step` made of `parts`: yields `part(name)`, to call as each part
        starts (a second bar on a terminal, nothing otherwise)."""
        if self._bar is None or not parts:
            yield lambda name: None
            return
        bar = tqdm(
            total=len(parts),
            desc=f"measuring step {step}",
            unit="part",
            file=self.stream,
            dynamic_ncols=True,
            leave=False,
            position=1,
            bar_format="{desc}: {n}/{total} {postfix} [{elapsed}]",
        )
        started: list[str] = []

        def part(name: str) -> None:
            if started:
                bar.update(1)
            started.append(name)
            bar.set_postfix_str(name)

        try:
            yield part
        finally:
            bar.close()

    def note(self, text: str) -> None:
        """A line that stays (a measurement summary)."""
        line = f"[{self.label}] {text}"
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            self._line(line)

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar, so that what is printed next starts on a line of its own."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
