"""The training engine: tf.function SGD step, schedules, the trainer (run or resume one
configuration into a run directory) and the Keras callback.

`tfbreak.training.schedules` is TensorFlow-free (a run's size is checked before TensorFlow
loads); the rest is imported on first use."""

from __future__ import annotations

from typing import Any

_LAZY = {
    "BreakEvenCallback": "tfbreak.training.callback",
    "RunResult": "tfbreak.training.trainer",
    "Trainer": "tfbreak.training.trainer",
    "run_experiment": "tfbreak.training.trainer",
}

__all__ = [*_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfbreak.training' has no attribute {name!r}")
