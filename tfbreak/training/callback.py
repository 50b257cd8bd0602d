"""`BreakEvenCallback`: the measurement suite for `model.fit` users, on the same schedule and
into the same run-directory format as `python -m tfbreak.main`.

Requirements: the model outputs logits and the labels are integer classes (or pass `loss_fn`,
per-example losses of a batch). Delta L uses a plain SGD step at the optimizer's current
learning rate (the callback cannot see the optimizer's update before it is applied).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import tfbreak
from tfbreak.curvature import ParameterSpace, classification_loss
from tfbreak.curvature.hvp import LossFn
from tfbreak.data import fixed_subset
from tfbreak.models import batchnorm_gammas
from tfbreak.runs import RunWriter, names
from tfbreak.training.measurements import MeasurementSettings, MeasurementSuite, split_batches
from tfbreak.training.schedules import MeasurementSchedule


def _as_dataset(data) -> tf.data.Dataset:
    return data if isinstance(data, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(data)


class BreakEvenCallback(keras.callbacks.Callback):
    """Measure H, K, Delta L, ||gamma|| and accuracy along `model.fit` (paper Sec. 4, App. C).

    Args:
      run_dir: a new (empty or missing) run directory.
      train_data: the training examples, unbatched: `(x, y)` arrays or a `tf.data.Dataset`;
        the fixed Hessian sample, K mini-batches and the Delta L probe batch are drawn from it.
      batch_size: the training batch size S (K uses M = S unless `k_M` is given).
      test_data: optional `(x, y)` for validation accuracy and the saved test predictions.
      measure_every_steps: the period after the dense early phase (e.g. steps per epoch).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        train_data: Any,
        batch_size: int,
        *,
        test_data: Any = None,
        measurements: Sequence[str] = ("hessian", "breakeven", "K", "delta_loss"),
        hessian_sample_size: int = 1000,
        k_L: int = 25,
        k_M: int | None = None,
        top_k: int = 5,
        lanczos_max_iter: int = 30,
        lanczos_tol: float = 3e-3,
        bn_mode: str = "inference",
        measure_dense_every: int = 10,
        measure_dense_until: int = 100,
        measure_every_steps: int = 100,
        eval_subset: int = 1000,
        loss_fn: LossFn | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
        if k_L < 2:
            raise ValueError(f"k_L: need L >= 2 gradients for K, got {k_L!r}")
        self.writer = RunWriter(run_dir)
        self.train = _as_dataset(train_data)
        self.test = None if test_data is None else _as_dataset(test_data)
        self.batch_size = int(batch_size)
        self.settings = MeasurementSettings(
            measurements=tuple(measurements),
            top_k=top_k,
            lanczos_max_iter=lanczos_max_iter,
            lanczos_tol=lanczos_tol,
            seed=seed,
        )
        self.sizes = dict(hessian=hessian_sample_size, k_L=k_L, k_M=k_M or batch_size)
        self.eval_subset = eval_subset
        self.bn_mode = bn_mode
        self.custom_loss = loss_fn
        self.seed = seed
        self.dense = (measure_dense_every, measure_dense_until, measure_every_steps)
        self.step = 0
        self.suite: MeasurementSuite | None = None

    def _lr(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None) -> None:
        model = self.model
        loss_fn = self.custom_loss or classification_loss(model, bn_mode=self.bn_mode)
        variables = ParameterSpace(model.trainable_variables).variables
        sizes, seed = self.sizes, self.seed * 1000
        k_sample = fixed_subset(self.train, sizes["k_L"] * sizes["k_M"], seed + 2)
        probe = fixed_subset(self.train, self.batch_size, seed + 3)
        evals = []
        if self.test is not None:
            n_test = int(self.test.cardinality())
            evals = split_batches(
                fixed_subset(self.test, min(self.eval_subset, n_test), seed + 4), 512
            )
        space = ParameterSpace(variables)

        def sgd_update(batch, lr):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(loss_fn(batch))
            return -lr * space.flatten(tape.gradient(loss, variables))

        self.suite = MeasurementSuite(
            model,
            variables,
            loss_fn,
            self.settings,
            hessian_batches=split_batches(
                fixed_subset(self.train, sizes["hessian"], seed + 1), 512
            ),
            k_batches=[k_sample] if sizes["k_M"] == 1 else split_batches(k_sample, sizes["k_M"]),
            k_per_example=sizes["k_M"] == 1,
            probe_batch=probe,
            update_fn=sgd_update,
            eval_batches=evals,
            gammas=batchnorm_gammas(model),
        )
        every, until, period = self.dense
        self.schedule = MeasurementSchedule(every, until, period, last_step=-1)
        self.writer.write_metadata(
            {
                "tfbreak_version": tfbreak.__version__,
                "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
                "model": model.name,
                "dataset": "model.fit",
                "num_train": int(self.train.cardinality()),
                "num_parameters": space.dim,
                "seed": self.seed,
                "lr": self._lr(),
                "batch_size": self.batch_size,
                "bn_mode": self.bn_mode,
                "K_L": sizes["k_L"],
                "K_M": sizes["k_M"],
                "hessian_sample_size": sizes["hessian"],
                "sweep": None,
                "status": "running",
                "stop_reason": None,
            }
        )
        self._measure()

    def _measure(self) -> None:
        row, arrays = self.suite.measure(self.step, self._lr())
        epoch = self.step / max(self.params.get("steps") or 1, 1)
        self.writer.append({"step": self.step, "epoch": epoch, "kind": "measurement", **row})
        if arrays:
            self.writer.save_arrays(self.step, **arrays)

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.step += 1
        if self.schedule.due(self.step):
            self._measure()

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        row = {"step": self.step, "epoch": float(epoch + 1), "kind": "epoch", names.LR: self._lr()}
        pairs = {
            names.TRAIN_LOSS_EPOCH: ("loss",),
            names.TRAIN_ACCURACY_EPOCH: ("accuracy", "sparse_categorical_accuracy", "acc"),
            names.TEST_LOSS: ("val_loss",),
            names.TEST_ACCURACY: ("val_accuracy", "val_sparse_categorical_accuracy", "val_acc"),
        }
        for name, keys in pairs.items():
            for key in keys:
                if key in logs:
                    row[name] = float(np.asarray(logs[key]))
                    break
        self.writer.append(row)

    def on_train_end(self, logs=None) -> None:
        self.writer.finish("completed")
        self.writer.close()
