"""The checkpointed state of a run besides the model: everything a resumed run needs to take
the same path as an uninterrupted one."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfbreak.training.sgd import SGD

EPOCH, SINCE_LAST = 0, 1
"""Rows of `TrainingState.sums`: running (loss sum, correct, examples) since the epoch started
and since the last measurement."""


class TrainingState:
    """Step, the reference loss of the divergence test, the Lanczos warm start (top-k Ritz
    vectors, float32), whether the break-even event was written and the running accuracy sums,
    as tf.Variables checkpointed together with
    the parameters, the model's non-trainable state (BatchNorm statistics) and momentum."""

    def __init__(self, model: keras.Model, sgd: SGD, top_k: int):
        dim = sgd.space.dim
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.reference_loss = tf.Variable(float("nan"), dtype=tf.float64, trainable=False)
        self.warm = tf.Variable(tf.zeros([min(top_k, dim), dim], tf.float32), trainable=False)
        self.has_warm = tf.Variable(False, trainable=False)
        self.broke_even = tf.Variable(False, trainable=False)  # the event row is written
        self.sums = tf.Variable(tf.zeros([2, 3], tf.float64), trainable=False)
        model_state = [
            v.value if isinstance(v, keras.Variable) else v for v in model.non_trainable_variables
        ]
        self.checkpoint = tf.train.Checkpoint(
            step=self.step,
            params=list(sgd.variables),
            state=model_state,
            momentum=list(sgd.buffers),
            warm=self.warm,
            has_warm=self.has_warm,
            broke_even=self.broke_even,
            reference_loss=self.reference_loss,
            sums=self.sums,
        )

    def manager(self, directory: str) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=3)

    def add_step(self, loss: float, correct: float, examples: float) -> None:
        """Add one training step to both running sums."""
        self.sums.assign_add(tf.constant([[loss * examples, correct, examples]] * 2, tf.float64))

    def take_sums(self, which: int) -> tuple[float, float, float]:
        """(loss sum, correct, examples) of `which` (EPOCH or SINCE_LAST), then reset it."""
        loss_sum, correct, count = (float(x) for x in self.sums[which].numpy())
        self.sums[which].assign(tf.zeros([3], tf.float64))
        return loss_sum, correct, count

    def epoch_accuracy(self) -> float:
        """Running training accuracy of the current epoch (for progress lines)."""
        _, correct, count = self.sums[EPOCH].numpy()
        return float(correct / max(count, 1))
