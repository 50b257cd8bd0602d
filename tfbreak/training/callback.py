"""`BreakEvenCallback`: the measurement suite for `model.fit` users, on the same schedule and
into the same run-directory format as `python -m tfbreak.main`.

The loss is the model's own, read as `tfbreak.Curvature` reads it (`tfbreak.curvature.keras_loss`:
a compiled cross-entropy, its label smoothing included, or a final softmax/sigmoid; logits,
probabilities, integer or one-hot labels; dropout and noise layers off, BatchNorm per
`bn_mode`, float32 whatever the mixed-precision policy), or `loss_fn` (per-example losses of a
batch). Delta L uses a plain SGD step at the optimizer's current learning rate (the callback
cannot see the optimizer's update before it is applied). The samples are drawn from the
measurement pool of `train_data` (`tfbreak.measure.pool`), whatever order it yields its examples
in.

One callback is one run: every `fit` it is passed to continues it (staged training), and a fit
killed and rerun resumes it (see `on_train_begin`).
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfbreak.curvature import ParameterSpace
from tfbreak.curvature.keras_loss import (
    measured_loss,
    measurement_modes,
    modes_line,
    output_convention,
)
from tfbreak.curvature.sharding import LossFn
from tfbreak.data.shuffles import ShuffleReplay, keras_iterators
from tfbreak.measure import (
    MeasurementSettings,
    MeasurementSuite,
    break_even_event,
    build_suite,
)
from tfbreak.measure.inputs import Examples, as_examples, example_rank
from tfbreak.runs import RunWriter, build_metadata, k_metadata, load_run, names
from tfbreak.training.schedules import MeasurementSchedule

BACKUP_DIR = "backup"  # inside the run directory: one folder per fit (Keras's BackupAndRestore)
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


def _say(message: str) -> None:
    print(f"tfbreak: {message}", file=sys.stderr, flush=True)


class BreakEvenCallback(keras.callbacks.Callback):
    """Measure H, K, Delta L, ||gamma|| and accuracy along `model.fit` (paper Sec. 4, App. C).

    Args:
      run_dir: the run directory: new (empty or missing), or the one of an interrupted fit to
        resume (see `on_train_begin`). One callback object is one run: pass it to every `fit`
        of a staged training (each continues the run's steps and schedule; rows carry `fit`,
        the index of the fit that wrote them). To start a new run instead, create a new
        callback with a new `run_dir`.
      train_data: the training examples, as `fit` takes them: `(x, y)` arrays, a
        `tf.data.Dataset` of examples or of batches (shuffled, repeated, prefetched, cached,
        mapped, dict inputs), a Python generator of (x, y) batches (one of its own: fit
        consumes the one it is given), or a `keras.utils.PyDataset`. The Hessian sample, K's
        mini-batches and the Delta L probe batch are drawn from its measurement pool
        (`tfbreak.measure.pool`), read once when the first fit begins: the same examples
        whatever order the data comes in. Pass the dataset object fit trains on: a resumed fit
        then replays its reshuffling (`tfbreak.data.shuffles`), so that its batches, and the
        rows, equal those of an uninterrupted fit.
      batch_size: the training batch size S (K uses M = S unless `k_M` is given).
      test_data: optional held-out examples ((x, y) arrays or a finite dataset) for the accuracy
        on a fixed subset and the saved test predictions.
      settings: what to measure and how (`tfbreak.measure.MeasurementSettings`); single
        settings may instead be given by name (`k_L=25, hessian_sample_size=1000`). The later
        measurement period, `measure_every_epochs`, counts the first fit's steps per epoch.
      loss_fn: per-example losses of a batch (default: the model's own cross-entropy), exactly
        as `tfbreak.Curvature` takes it, e.g. for a model compiled with "mse"; it should call
        the model with training=False (it is run in float32). fit's `class_weight` and
        `sample_weight` are not visible to a callback: the measured loss is unweighted unless
        `loss_fn` weights it (a train_data yielding sample weights is refused).
      seed: seed of the measurement pool, the fixed samples and the Lanczos start vectors.
      num_examples: the examples in one pass of `train_data`, needed when that cannot be known
        (an infinite dataset, `repeat()` with fit's `steps_per_epoch`; a generator): the pool
        is read from its first `num_examples` examples.
      pool_size: the most examples the measurement pool holds (default: 100 000, and at most
        1 GiB of examples); a larger training set is measured on a uniform random subset.
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
        num_examples: int | None = None,
        pool_size: int | None = None,
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
        if isinstance(test_data, tf.data.Dataset) and (
            int(test_data.cardinality()) == tf.data.INFINITE_CARDINALITY
        ):
            raise ValueError("test_data: is infinite (repeat()); pass a finite one (.take(n))")
        self.run_dir = Path(run_dir)
        self.writer: RunWriter | None = None
        self.train_data, self.test_data = train_data, test_data
        self.batch_size = batch_size
        self.custom_loss = loss_fn
        self.seed = int(seed)
        self.num_examples, self.pool_size = num_examples, pool_size
        self.step = 0
        self.fit = -1  # index of the current fit of the run
        self._epoch_batches, self._mark = 0, (0, {})  # batches of the epoch, running means then
        self.break_even_step: int | None = None
        self.suite: MeasurementSuite | None = None
        self.examples: Examples | None = None

    # ------------------------------------------------------------------ building
    def _lr(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _sgd_update(self, variables, loss_fn: LossFn):
        space = ParameterSpace(variables)

        def update(batch, lr):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(loss_fn(batch))
            return -lr * space.flatten(tape.gradient(loss, space.variables))

        return update

    def _build_suite(self) -> None:
        """The pool of the data (read once) and the suite on it."""
        model, s = self.model, self.settings
        loss_fn = measured_loss(model, self.custom_loss, bn_mode=s.bn_mode)
        variables = ParameterSpace(model.trainable_variables).variables
        pool = dict(seed=self.seed, pool_size=self.pool_size, example_rank=example_rank(model))
        train = as_examples(
            self.train_data, name="train_data", num_examples=self.num_examples, **pool
        )
        test = None
        if self.test_data is not None:
            if not isinstance(self.test_data, tuple | list | tf.data.Dataset):
                raise TypeError("test_data: expected (x, y) arrays or a finite tf.data.Dataset")
            test = as_examples(self.test_data, name="test_data", **pool)
        readable = True
        if self.custom_loss is not None:
            try:
                output_convention(model)
            except ValueError:
                readable = False  # no held-out accuracy for a model tfbreak cannot read
                if test is not None:
                    warnings.warn(
                        "test_data: the model's outputs are not class scores tfbreak can read, "
                        "so the held-out accuracy is not measured",
                        stacklevel=3,
                    )
        self.examples = train
        self.suite = build_suite(
            model,
            variables,
            loss_fn,
            s,
            train=train.dataset,
            test=None if test is None else test.dataset,
            num_train=train.size,
            num_test=0 if test is None else test.pool_size,
            lookup=train.lookup,
            num_pool=train.pool_size,
            batch_size=self.batch_size,
            seed=self.seed,
            update_fn=self._sgd_update(variables, loss_fn),
            readable=readable,
        )
        self.modes = measurement_modes(model, loss_fn, s.bn_mode)

    def _fit_steps_per_epoch(self) -> int:
        """Steps per epoch of this fit: Keras's count, else one pass of the data."""
        steps = self.params.get("steps")
        if steps:
            return int(steps)
        pool = self.examples.pool
        return pool.batches_per_pass or max(1, math.ceil(pool.num_examples / self.batch_size))

    def _metadata(self) -> dict[str, Any]:
        s, ex = self.settings, self.examples
        return build_metadata(
            model=self.model.name,
            dataset="model.fit",
            num_train=ex.size,
            num_parameters=self.suite.gradients.space.dim,
            seed=self.seed,
            lr=self._lr(),
            batch_size=self.batch_size,
            **self.modes,
            has_batchnorm=bool(self.suite.gammas),
            K_L=s.k_L,
            **k_metadata(s.K_Ms(self.batch_size)),
            hessian_sample_size=self.suite.samples.hessian_size,
            steps_per_epoch=self.steps_per_epoch,
            pool=ex.pool.identity(ex.capacity),
            fits=[],
        )

    # ------------------------------------------------------------------ fits
    def on_train_begin(self, logs=None) -> None:
        """Start the run, continue it, or resume it.

        The first fit of a new run directory starts the run (and measures step 0); each later
        fit given this callback continues it: its steps, epochs and measurement schedule go on
        from where the previous fit ended, and its rows carry `fit` (0, 1, ...). A fit killed
        and rerun with the same script resumes: the model and optimizer of its last completed
        epoch are restored (Keras's BackupAndRestore, RUN_DIR/backup/fit_<i>; fit then starts
        at that epoch), the rows written after it are dropped, the Lanczos warm start, the
        break-even event and the pipeline's reshuffling are restored, so that the rows equal
        those of an uninterrupted run. The fits of such a script that were recorded already are
        not trained again: their end state is restored and they return at once."""
        if self.writer is not None:  # the previous fit ended by an exception: close it
            self._end_fit()
        self.fit += 1
        self.model._initial_epoch = None  # what a previous resumed fit left (Keras keeps it)
        if self.suite is None:
            self._build_suite()
        stored = (self.run_dir / "metadata.json").is_file()
        metadata = load_run(self.run_dir).metadata if stored else {"fits": []}
        if "fits" not in metadata:
            raise ValueError(
                f"run_dir: {self.run_dir} holds a run that is not this callback's (written by "
                "the tfbreak command or an earlier version: no 'fits' in metadata.json); pass "
                "a new run_dir"
            )
        fits = metadata["fits"]
        self._check_pool(metadata)
        if self.fit < len(fits) and fits[self.fit].get("end_step") is not None:
            self._skip_recorded_fit(fits[self.fit])
        elif self.fit < len(fits):
            self._resume_fit(fits)
        elif self.fit == len(fits):
            self._start_fit(fits, stored)
        else:
            raise ValueError(
                f"run_dir: {self.run_dir} records {len(fits)} fits, and this is fit "
                f"{self.fit} of the callback; pass one callback to all the fits of a run"
            )

    def _check_pool(self, metadata: dict) -> None:
        stored = (metadata.get("pool") or {}).get("fingerprint")
        ours = self.examples.pool.fingerprint
        if stored is not None and stored != ours:
            raise ValueError(
                f"train_data: its examples differ from those the run in {self.run_dir} measured "
                f"(measurement pool {ours[:12]} != {stored[:12]}); pass the same data (without "
                "random augmentation), or a new run_dir for a new run"
            )

    def _backup(self, fit: int) -> keras.callbacks.BackupAndRestore:
        backup = keras.callbacks.BackupAndRestore(
            str(self.run_dir / BACKUP_DIR / f"fit_{fit}"), delete_checkpoint=False
        )
        backup.set_model(self.model)
        backup.set_params(self.params)
        return backup

    def _restored_epoch(self, backup: keras.callbacks.BackupAndRestore) -> int | None:
        """Restore the fit's last backup (model, optimizer); its Keras epoch, None if none."""
        if not Path(backup.backup_dir, "latest.weights.h5").is_file():
            return None
        backup.on_train_begin()
        return int(self.model._initial_epoch or 0)

    def _start_fit(self, fits: list[dict], stored: bool) -> None:
        self.steps_per_epoch = self._fit_steps_per_epoch()
        if self.fit == 0:
            self.schedule = MeasurementSchedule.of(
                self.settings, self.steps_per_epoch, last_step=-1
            )
        start_epoch = fits[-1]["end_epoch"] if fits else 0.0
        self._fit_record = {
            "start_step": self.step,
            "start_epoch": start_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "first_keras_epoch": None,
            "end_step": None,
            "end_epoch": None,
        }
        self.writer = RunWriter(self.run_dir, resume=stored)
        if self.fit == 0:
            if stored:  # interrupted in the first epoch of the first fit: start again
                self.writer.truncate_after(-1)
            self.writer.write_metadata(self._metadata())
            _say(f"{self.run_dir}: {modes_line(self.modes)}")
        self.writer.update_metadata(
            status="running", stop_reason=None, finished=None, fits=[*fits, self._fit_record]
        )
        self._backup_of_fit = self._backup(self.fit)
        if self.fit == 0:
            self._measure()

    def _resume_fit(self, fits: list[dict]) -> None:
        record = fits[self.fit]
        self._fit_record = dict(record)
        self._set_schedule(fits)
        self.steps_per_epoch = int(record["steps_per_epoch"])
        self._backup_of_fit = self._backup(self.fit)
        keras_epoch = self._restored_epoch(self._backup_of_fit)
        if keras_epoch is None:  # killed in the fit's first epoch: start the fit again
            self.model._initial_epoch = None
            self.step = int(record["start_step"])
            fits = fits[: self.fit]
            if self.fit == 0:
                self._start_fit(fits, stored=True)
                return
            self.writer = RunWriter(self.run_dir, resume=True)
            self.writer.truncate_after(self.step)
            self._start_fit_record(fits)
            return
        done = keras_epoch - int(record["first_keras_epoch"] or 0)
        self.step = int(record["start_step"]) + done * self.steps_per_epoch
        self.writer = RunWriter(self.run_dir, resume=True)
        self.writer.truncate_after(self.step)
        self.writer.update_metadata(status="running", stop_reason=None, finished=None)
        self._restore_events()
        warm = Path(self._backup_of_fit.backup_dir) / f"warm_start_{keras_epoch}.npy"
        self.suite.warm_start = np.load(warm) if warm.is_file() else None
        self._replay_shuffles(done)

    def _start_fit_record(self, fits: list[dict]) -> None:
        """A fit after the first, restarted from its beginning (killed in its first epoch)."""
        self._fit_record = {**self._fit_record, "first_keras_epoch": None}
        self.writer.update_metadata(
            status="running", stop_reason=None, finished=None, fits=[*fits, self._fit_record]
        )
        self._restore_events()

    def _skip_recorded_fit(self, record: dict) -> None:
        """A fit of the run recorded already (a staged script rerun): restore its end state and
        train nothing."""
        fits = load_run(self.run_dir).metadata.get("fits", [])
        self._set_schedule(fits)
        backup = self._backup(self.fit)
        self._restored_epoch(backup)
        self.model._initial_epoch = int(self.params.get("epochs") or 0)  # no epoch left
        self.step = int(record["end_step"])
        self.steps_per_epoch = int(record["steps_per_epoch"])
        epochs = round((record["end_step"] - record["start_step"]) / self.steps_per_epoch)
        self._replay_shuffles(epochs)
        self._restore_events()
        _say(
            f"{self.run_dir}: fit {self.fit} of this run is recorded already; its end state is "
            "restored and it is not trained again (for a new run, pass a new run_dir)"
        )

    def _set_schedule(self, fits: list[dict]) -> None:
        first = int(fits[0]["steps_per_epoch"])
        self.schedule = MeasurementSchedule.of(self.settings, first, last_step=-1)

    def _restore_events(self) -> None:
        events = load_run(self.run_dir).events(names.EVENT_BREAK_EVEN)
        self.break_even_step = events[0]["step"] if events else None

    def _replay_shuffles(self, epochs: int) -> None:
        """Draw the orders the pipeline's shuffles drew in `epochs` epochs of this fit in the
        process that was killed (nothing to do for data that does not reshuffle)."""
        data = self.train_data
        if epochs <= 0 or not isinstance(data, tf.data.Dataset):
            return
        replay = ShuffleReplay.of(data)
        if not replay.shuffles:
            return
        cardinality = int(data.cardinality())
        infinite = cardinality == tf.data.INFINITE_CARDINALITY
        try:
            created = keras_iterators(
                epochs,
                self.steps_per_epoch,
                cardinality,
                self.steps_per_epoch if infinite else None,
            )
        except Exception:  # Keras's epoch loop changed: the count is unknown
            created = None
        draws = replay.draws_before(
            epochs,
            steps_per_epoch=self.steps_per_epoch,
            batches_per_pass=self.examples.pool.batches_per_pass,
            keras_iterators=created,
        )
        if draws is None:
            _say(
                "warning: train_data reshuffles and its orders cannot be replayed; the batches "
                "after the resumed epoch differ from those of an uninterrupted fit"
            )
            return
        replay.replay(draws)

    # ------------------------------------------------------------------ rows
    def _epoch_of(self, step: int) -> float:
        r = self._fit_record
        return float(r["start_epoch"]) + (step - int(r["start_step"])) / self.steps_per_epoch

    def _since_last(self, means: dict[str, float]) -> dict[str, float]:
        """Training loss and accuracy of the batches since the previous measurement, from Keras's
        running epoch means (batch b's logs average batches 0..b of the epoch)."""
        done, (marked, before) = self._epoch_batches, self._mark
        if done == marked:
            return {}
        return {
            n: (v * done - before.get(n, 0.0) * marked) / (done - marked) for n, v in means.items()
        }

    def _row(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self._epoch_of(self.step),
            "kind": kind,
            "fit": self.fit,
            **fields,
        }

    def _measure(self, logs: dict | None = None) -> None:
        row, arrays = self.suite.measure(self.step, self._lr())
        if logs:
            means = _log_values(logs, SINCE_LAST_LOGS)
            row.update(self._since_last(means))
            self._mark = (self._epoch_batches, means)
        self.writer.append(self._row("measurement", **row))
        event = None if self.break_even_step is not None else break_even_event(row)
        if event is not None:
            self.writer.append(self._row(**event))
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
        if self.writer is not None and self._fit_record["first_keras_epoch"] is None:
            self._fit_record["first_keras_epoch"] = int(epoch)
            self._write_fit_record()

    def _write_fit_record(self) -> None:
        fits = load_run(self.run_dir).metadata.get("fits", [])
        fits[self.fit] = self._fit_record
        self.writer.update_metadata(fits=fits)

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
        row = self._row("epoch", **{names.LR: self._lr()}, **_log_values(logs or {}, EPOCH_LOGS))
        self.writer.append(row)
        if self.suite.warm_start is not None:
            backup = Path(self._backup_of_fit.backup_dir)
            backup.mkdir(parents=True, exist_ok=True)
            np.save(backup / f"warm_start_{epoch + 1}.npy", self.suite.warm_start)
        self._backup_of_fit.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None) -> None:
        self.model._initial_epoch = None  # read by this fit already; not by the next one
        if self.writer is not None:
            self._end_fit()

    def _end_fit(self) -> None:
        """Record the fit's end (its last step and epoch) and release the run directory."""
        self._fit_record.update(end_step=self.step, end_epoch=self._epoch_of(self.step))
        self._write_fit_record()
        self.writer.finish("completed")
        self.writer.close()
        self.writer = None
