"""Settings as dataclass fields that carry their flag help and their check, and the checks that
name the flag.

`setting(default, help, check=...)` declares a field of a settings dataclass
(`ExperimentConfig`, `MeasurementSettings`): its default is the one default in the code base,
its help is the absl flag's help (`tfbreak.flags` defines one flag per field), its check is
applied by `check_fields`. TensorFlow-free.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A setting is invalid; the message starts with the flag's name (``--lr: expected ...``)."""


@dataclass(frozen=True)
class Check:
    """A predicate on a setting's value and what it expects, in words."""

    ok: Callable[[Any], bool]
    expected: str


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


POSITIVE_INT = Check(lambda v: _integer(v) and v > 0, "a positive integer")
POSITIVE = Check(lambda v: _number(v) and v > 0, "a positive number")
NON_NEGATIVE = Check(lambda v: _number(v) and v >= 0, "a finite number >= 0")
FRACTION = Check(lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]")


def at_least(n: int, why: str = "") -> Check:
    return Check(lambda v: _integer(v) and v >= n, f"an integer >= {n}{why}")


def between(low: int, high: int, why: str = "") -> Check:
    """An integer in [low, high] (`why`: what the bound is, in parentheses)."""
    return Check(lambda v: _integer(v) and low <= v <= high, f"an integer in [{low}, {high}]{why}")


def setting(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """A dataclass field with its default, flag help, check, and allowed values of an enum.
    A `None` default means "unset" and is not checked."""
    if isinstance(default, list | dict | set):
        raise TypeError("setting: use an immutable default (tuple), not a mutable one")
    if choices is not None:
        options = tuple(choices)
        check = Check(lambda v: v in options, f"one of {options}")
    metadata = {"help": help, "check": check, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


def require(ok: bool, flag: str, expected: str, value: Any) -> None:
    """Raise `ConfigError("--flag: expected ..., got value")` unless `ok`."""
    if not ok:
        raise ConfigError(f"--{flag}: expected {expected}, got {value!r}")


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """Print ``tfbreak: warning: MESSAGE`` on stderr, once per process for each message (the
    command line warns before TensorFlow loads, the run again with the data's real size)."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"tfbreak: warning: {message}", file=sys.stderr, flush=True)


def check_fields(instance: Any) -> None:
    """Apply every field's `check` (in declaration order; unset None values are skipped)."""
    for f in dataclasses.fields(instance):
        check = f.metadata.get("check")
        value = getattr(instance, f.name)
        if check is not None and not (value is None and f.default is None):
            require(check.ok(value), f.name, check.expected, value)
