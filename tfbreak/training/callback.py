"""`BreakEvenCallback`: the measurement suite for `model.fit` users, on the same schedule and
into the same run-directory format as `python -m tfbreak.main`.

The loss is the model's own, read as `tfbreak.Curvature` reads it (`tfbreak.curvature.keras_loss`:
a compiled cross-entropy or a final softmax/sigmoid; logits, probabilities, integer or one-hot
labels), or `loss_fn` (per-example losses of a batch). Delta L uses a plain SGD step at the
optimizer's current learning rate (the callback cannot see the optimizer's update before it is
applied).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfbreak.curvature import ParameterSpace, classification_loss
from tfbreak.curvature.keras_loss import resolve_bn_mode
from tfbreak.curvature.sharding import LossFn
from tfbreak.measure import (
    MeasurementSettings,
    MeasurementSuite,
    break_even_event,
    build_suite,
)
from tfbreak.measure.inputs import as_examples
from tfbreak.runs import RunWriter, build_metadata, k_metadata, load_run, names
from tfbreak.training.schedules import MeasurementSchedule

BACKUP_DIR = "backup"  # inside the run directory: Keras's BackupAndRestore and warm starts
# Keras log keys of the running means of training loss and accuracy, per metric name.
SINCE_LAST_LOGS = {
    names.TRAIN_LOSS_SINCE_LAST: ("loss",),
    names.TRAIN_ACCURACY_SINCE_LAST: ("accuracy", "sparse_categorical_accuracy", "acc"),
}
# Keras log keys of the epoch metrics, per metric name of the run directory.
EPOCH_LOGS = {
    names.TRAIN_LOSS_EPOCH: ("loss",),
    names.TRAIN_ACCURACY_EPOCH: ("accuracy", "sparse_categorical_accuracy", "acc"),
    names.TEST_LOSS: ("val_loss",),
    names.TEST_ACCURACY: ("val_accuracy", "val_sparse_categorical_accuracy", "val_acc"),
}


def _log_values(logs: dict, keys_of: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """{metric name: value} of the first Keras log key present for each name."""
    out = {}
    for name, keys in keys_of.items():
        key = next((k for k in keys if k in logs), None)
        if key is not None:
            out[name] = float(np.asarray(logs[key]))
    return out


class BreakEvenCallback(keras.callbacks.Callback):
    """Measure H, K, Delta L, ||gamma|| and accuracy along `model.fit` (paper Sec. 4, App. C).

    Args:
      run_dir: the run directory: new (empty or missing), or the one of an interrupted fit to
        resume (see `on_train_begin`).
      train_data: the training examples, as `fit` takes them: `(x, y)` arrays or a
        `tf.data.Dataset` of examples or of batches; the Hessian sample, K's mini-batches and
        the Delta L probe batch are drawn from it.
      batch_size: the training batch size S (K uses M = S unless `k_M` is given).
      test_data: optional held-out examples (same forms) for the accuracy on a fixed subset and
        the saved test predictions.
      settings: what to measure and how (`tfbreak.measure.MeasurementSettings`); single
        settings may instead be given by name (`k_L=25, hessian_sample_size=1000`). The later
        measurement period, `measure_every_epochs`, counts fit's steps per epoch.
      loss_fn: per-example losses of a batch (default: the model's own cross-entropy).
      seed: seed of the fixed samples and of the Lanczos start vectors.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        train_data: Any,
        batch_size: int,
        *,
        test_data: Any = None,
        settings: MeasurementSettings | None = None,
        loss_fn: LossFn | None = None,
        seed: int = 0,
        **setting_values: Any,
    ):
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
        settings = settings if settings is not None else MeasurementSettings()
        try:
            self.settings = settings.replace(**setting_values).validate()
        except TypeError as err:
            raise TypeError(f"BreakEvenCallback: {err}") from err
        self.run_dir = Path(run_dir)
        self.writer: RunWriter | None = None
        self.train_data, self.test_data = train_data, test_data
        self.batch_size = batch_size
        self.custom_loss = loss_fn
        self.seed = int(seed)
        self.step = 0
        self._epoch_batches, self._mark = 0, (0, {})  # batches of the epoch, running means then
        self.break_even_step: int | None = None
        self.suite: MeasurementSuite | None = None

    def _lr(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _sgd_update(self, variables, loss_fn: LossFn):
        space = ParameterSpace(variables)

        def update(batch, lr):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(loss_fn(batch))
            return -lr * space.flatten(tape.gradient(loss, space.variables))

        return update

    def _build_suite(self) -> int:
        """The suite on the data as fit takes it; returns the training-set size."""
        model, s = self.model, self.settings
        loss_fn = self.custom_loss or classification_loss(model, bn_mode=s.bn_mode)
        variables = ParameterSpace(model.trainable_variables).variables
        inputs = getattr(model, "inputs", None)
        rank = len(inputs[0].shape) - 1 if inputs and len(inputs) == 1 else None
        train = as_examples(self.train_data, name="train_data", example_rank=rank)
        test = None
        if self.test_data is not None:
            test = as_examples(self.test_data, name="test_data", example_rank=rank)
        self.suite = build_suite(
            model,
            variables,
            loss_fn,
            s,
            train=train.dataset,
            test=None if test is None else test.dataset,
            num_train=train.size,
            num_test=0 if test is None else test.size,
            lookup=train.lookup,
            batch_size=self.batch_size,
            seed=self.seed,
            update_fn=self._sgd_update(variables, loss_fn),
        )
        return train.size

    def _metadata(self, num_train: int) -> dict[str, Any]:
        s = self.settings
        return build_metadata(
            model=self.model.name,
            dataset="model.fit",
            num_train=num_train,
            num_parameters=self.suite.gradients.space.dim,
            seed=self.seed,
            lr=self._lr(),
            batch_size=self.batch_size,
            bn_mode=resolve_bn_mode(self.model, s.bn_mode),
            has_batchnorm=bool(self.suite.gammas),
            K_L=s.k_L,
            **k_metadata(s.K_Ms(self.batch_size)),
            hessian_sample_size=self.suite.samples.hessian_size,
            steps_per_epoch=self.steps_per_epoch,
        )

    def on_train_begin(self, logs=None) -> None:
        """Start the run, or resume it: an interrupted fit rerun with the same callback restores
        the model and optimizer of the last completed epoch (Keras's BackupAndRestore, in
        RUN_DIR/backup; fit then starts at that epoch), drops the rows written after it and
        restores the Lanczos warm start and the break-even event, so that the rows equal those
        of an uninterrupted fit. A completed run is left as it is."""
        self._backup = keras.callbacks.BackupAndRestore(
            str(self.run_dir / BACKUP_DIR), delete_checkpoint=False
        )
        self._backup.set_model(self.model)
        self._backup.set_params(self.params)
        if (self.run_dir / BACKUP_DIR / "latest.weights.h5").is_file():
            self._backup.on_train_begin(logs)
        stored = (self.run_dir / "metadata.json").is_file()
        if stored and load_run(self.run_dir).status == "completed":
            warnings.warn(
                f"{self.run_dir}: run already completed; nothing is measured", stacklevel=2
            )
            return
        num_train = self._build_suite()
        self.steps_per_epoch = max(int(self.params.get("steps") or 1), 1)
        self.schedule = MeasurementSchedule.of(self.settings, self.steps_per_epoch, last_step=-1)
        epoch = int(getattr(self.model, "_initial_epoch", 0) or 0) if stored else 0
        self.writer = RunWriter(self.run_dir, resume=stored)
        if epoch > 0:
            self.step = epoch * self.steps_per_epoch
            self.writer.truncate_after(self.step)
            self.writer.update_metadata(status="running", stop_reason=None, finished=None)
            events = load_run(self.run_dir).events(names.EVENT_BREAK_EVEN)
            self.break_even_step = events[0]["step"] if events else None
            warm = self.run_dir / BACKUP_DIR / f"warm_start_{epoch}.npy"
            self.suite.warm_start = np.load(warm) if warm.is_file() else None
            return
        if stored:  # interrupted in the first epoch: start again
            self.writer.truncate_after(-1)
        self.writer.write_metadata(self._metadata(num_train))
        self._measure()

    def _since_last(self, means: dict[str, float]) -> dict[str, float]:
        """Training loss and accuracy of the batches since the previous measurement, from Keras's
        running epoch means (batch b's logs average batches 0..b of the epoch)."""
        done, (marked, before) = self._epoch_batches, self._mark
        if done == marked:
            return {}
        return {
            n: (v * done - before.get(n, 0.0) * marked) / (done - marked) for n, v in means.items()
        }

    def _measure(self, logs: dict | None = None) -> None:
        row, arrays = self.suite.measure(self.step, self._lr())
        if logs:
            means = _log_values(logs, SINCE_LAST_LOGS)
            row.update(self._since_last(means))
            self._mark = (self._epoch_batches, means)
        epoch = self.step / max(self.params.get("steps") or 1, 1)
        self.writer.append({"step": self.step, "epoch": epoch, "kind": "measurement", **row})
        event = None if self.break_even_step is not None else break_even_event(row)
        if event is not None:
            self.writer.append({"step": self.step, "epoch": epoch, **event})
            self.break_even_step = self.step
            self.on_break_even(self.step, row)
        if arrays:
            self.writer.save_arrays(self.step, **arrays)

    def on_break_even(self, step: int, row: dict[str, Any]) -> None:
        """Called once, at the first measurement where the LHS of Eq. 1 reaches 1 (the
        break-even point, Sec. 3): `row` holds breakeven/eq1_lhs, breakeven/lr_max (the largest
        stable learning rate there), hessian/lambda_1 and the rest of the measurement.
        Override it (e.g. to log, or to change the learning rate); it does nothing here."""

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch_batches = 0
        self._mark = (0, {})

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.writer is None:
            return
        self.step += 1
        self._epoch_batches = batch + 1
        if self.schedule.due(self.step):
            self._measure(logs)

    def on_epoch_end(self, epoch, logs=None) -> None:
        """The epoch row; then the warm start and the backup of this epoch's end (model,
        optimizer), the point a rerun resumes from."""
        if self.writer is None:
            return
        row = {"step": self.step, "epoch": float(epoch + 1), "kind": "epoch", names.LR: self._lr()}
        self.writer.append({**row, **_log_values(logs or {}, EPOCH_LOGS)})
        if self.suite.warm_start is not None:
            backup = self.run_dir / BACKUP_DIR
            backup.mkdir(exist_ok=True)
            np.save(backup / f"warm_start_{epoch + 1}.npy", self.suite.warm_start)
        self._backup.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None) -> None:
        if self.writer is None:
            return
        self.writer.finish("completed")
        self.writer.close()
