"""The training engine: tf.function SGD step, schedules, the trainer (run or resume one
configuration into a run directory) and the Keras callback."""

from tfbreak.training.callback import BreakEvenCallback
from tfbreak.training.trainer import RunResult, Trainer, run_experiment

__all__ = [
    "BreakEvenCallback",
    "RunResult",
    "Trainer",
    "run_experiment",
]
