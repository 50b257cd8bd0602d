"""A model.fit script with BreakEvenCallback, for the resume test: `python fit_script.py RUN_DIR
[KILL_AT_STEP]` trains a toy MLP (SGD with momentum, a tf.data pipeline reshuffled at every
epoch, tf.data's default, seeded by keras.utils.set_random_seed) for 3 epochs and, with
KILL_AT_STEP, kills itself with SIGKILL after that many steps."""

import os
import signal
import sys

import keras
import numpy as np
import tensorflow as tf

import tfbreak


def toy_classifier(momentum: float = 0.0):
    """(model, x, y): a compiled MLP 8-16-2 (logits, SGD lr 0.1) and 256 separable examples,
    seeded; shared with test_callback.py."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(2)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, x, y


class Kill(keras.callbacks.Callback):
    """SIGKILL this process after `at` training steps."""

    def __init__(self, at: int | None):
        super().__init__()
        self.at, self.steps = at, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    run_dir = sys.argv[1]
    kill_at = int(sys.argv[2]) if len(sys.argv) > 2 else None
    model, x, y = toy_classifier(momentum=0.9)
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(256).batch(32).prefetch(2)
    callback = tfbreak.BreakEvenCallback(
        run_dir,
        train,
        batch_size=32,
        hessian_sample_size=64,
        k_L=4,
        measure_schedule="linear",
        measure_dense_every=3,
        measure_dense_until=24,
    )
    model.fit(train, epochs=3, callbacks=[callback, Kill(kill_at)], verbose=0)
