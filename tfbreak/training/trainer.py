"""One run: data -> model -> SGD loop with measurements at scheduled steps -> run directory.

Resumable exactly: the checkpoint holds parameters, BN statistics, momentum buffers, the
Lanczos warm start and the running accuracy sums; the data order is a function of
(seed, epoch) and augmentation of (seed, epoch, example), so re-running the same command
continues from the last checkpoint and drops the metric rows written after it.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tfbreak
from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.curvature import classification_loss, cross_entropy
from tfbreak.data import (
    DataBundle,
    evaluation_batches,
    fixed_subset,
    hessian_sample_size,
    load_dataset,
    train_batches,
)
from tfbreak.distribute import (
    NullWriter,
    cleanup_worker_dir,
    is_chief,
    make_strategy,
    num_replicas,
    scope,
    worker_dir,
)
from tfbreak.models import (
    batchnorm_gammas,
    build_model,
    trainable_tf_variables,
    weight_decay_variables,
)
from tfbreak.runs import RunWriter, names
from tfbreak.training.measurements import MeasurementSettings, MeasurementSuite, split_batches
from tfbreak.training.progress import Progress
from tfbreak.training.schedules import MeasurementSchedule, learning_rate
from tfbreak.training.sgd import SGD, TrainStep

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3


@dataclass(frozen=True)
class RunResult:
    status: str  # completed | diverged | failed
    run_dir: Path
    reason: str | None = None
    exit_code: int = EXIT_COMPLETED


class Diverged(Exception):
    pass


@contextlib.contextmanager
def _options_error(flag: str, options: dict):
    """A builder's TypeError on an unknown keyword becomes a ConfigError naming --flag."""
    try:
        yield
    except TypeError as err:
        if not options or "argument" not in str(err):
            raise
        raise ConfigError(f"--{flag}: {err} (given {sorted(options)})") from err


def run_dir_of(config: ExperimentConfig) -> Path:
    return Path(config.output_dir) / config.run_name


def _comparable(config: ExperimentConfig) -> dict:
    return json.loads(json.dumps(config.to_dict(), default=str))


# Settings that do not change the numbers a run produces (beyond floating-point reordering):
# a run may be resumed with other values, and runs written before they existed still resume.
_NOT_IDENTITY = ("strategy",)


def _identity(config_dict: dict | None) -> dict:
    return {k: v for k, v in (config_dict or {}).items() if k not in _NOT_IDENTITY}


def check_run_dir(config: ExperimentConfig) -> bool:
    """True to resume an existing run; raises ConfigError when the directory cannot be used."""
    run_dir = run_dir_of(config)
    meta = run_dir / "metadata.json"
    if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        return False
    if not meta.is_file():
        raise ConfigError(
            f"--run_name: {run_dir} exists and is not a tfbreak run; choose another --run_name "
            "or --output_dir"
        )
    stored = _identity(json.loads(meta.read_text()).get("config"))
    current = _identity(_comparable(config))
    if stored != current:
        diff = sorted(k for k in current if stored.get(k) != current[k])
        raise ConfigError(
            f"--run_name: {run_dir} holds a run with other settings ({', '.join(diff)}); "
            "choose another --run_name or --output_dir"
        )
    return True


class Trainer:
    """Builds everything for `config` (validated) and runs or resumes it.

    Under a tf.distribute strategy (`config.strategy`, or a `strategy` object given here, e.g.
    a MirroredStrategy over chosen devices) model, optimizer state, measurement functions and
    the training step are built in the strategy's scope; batches are split across replicas.
    Only the chief process writes the run directory; other workers of a multi-worker cluster
    compute alongside it (they must: every step and measurement is collective), save their
    checkpoints to a temporary directory that is removed at the end, and restore from the
    chief's checkpoints on resume (a shared file system is assumed).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        flags_text: str = "",
        progress: bool = True,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.config = config.validate()
        # Before anything else touches TensorFlow (MultiWorkerMirroredStrategy needs that).
        self.strategy = strategy if strategy is not None else make_strategy(config.strategy)
        self.is_chief = is_chief(self.strategy)
        self.flags_text = flags_text
        self.show_progress = progress and self.is_chief
        self.resume = check_run_dir(config)
        self.bundle = self._load_data()
        c = config
        if c.batch_size > self.bundle.num_train:
            raise ConfigError(
                f"--batch_size: {c.batch_size} is larger than the training set "
                f"({self.bundle.num_train} examples of {c.dataset})"
            )
        self.steps_per_epoch = self.bundle.num_train // c.batch_size
        self.total_steps = int(round(c.epochs * self.steps_per_epoch))
        if c.max_steps is not None:
            self.total_steps = min(self.total_steps, c.max_steps)
        self.total_steps = max(self.total_steps, 1)
        self.schedule = MeasurementSchedule(
            dense_every=c.measure_dense_every,
            dense_until=c.measure_dense_until,
            every_steps=max(1, round(c.measure_every_epochs * self.steps_per_epoch)),
            last_step=self.total_steps,
        )
        keras.utils.set_random_seed(c.seed)
        tf.config.experimental.enable_op_determinism()
        with scope(self.strategy):
            with _options_error("model_option", c.model_options):
                self.model = build_model(
                    c.model,
                    num_classes=self.bundle.num_classes,
                    input_shape=self.bundle.input_shape,
                    seed=c.seed,
                    **c.model_options,
                )
            self.variables = trainable_tf_variables(self.model)
            self.sgd = SGD(
                self.variables,
                weight_decay_variables(self.model),
                c.momentum,
                c.weight_decay,
                strategy=self.strategy,
            )
            self.measure_loss = classification_loss(self.model, bn_mode=c.bn_mode)
            self.suite, self.probe_batch = self._build_suite()
            self.train_step = TrainStep(
                self.model, self.sgd, self.probe_batch, self.measure_loss, strategy=self.strategy
            )
        self._logits = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        self._build_checkpoint()

    # ------------------------------------------------------------------ setup
    def _load_data(self) -> DataBundle:
        c = self.config
        with _options_error("data_option", c.data_options):
            return load_dataset(
                c.dataset, data_dir=c.data_dir, download=c.download, **c.data_options
            )

    def _subset(self, dataset, size: int, salt: int):
        return fixed_subset(dataset, size, seed=self.config.seed * 1000 + salt)

    def _build_suite(self) -> tuple[MeasurementSuite, tuple]:
        c, b = self.config, self.bundle
        wanted = set(c.measurements)
        n_hessian = c.hessian_sample_size or hessian_sample_size(b, c.hessian_fraction)
        n_hessian = min(n_hessian, b.num_train)
        hessian = split_batches(self._subset(b.train, n_hessian, 1), c.hessian_batch_size)
        if wanted & {"hessian", "trace", "density"} == set():
            hessian = []
        k_batches: list = []
        if "K" in wanted:
            m, n_k = c.K_M, c.k_L * c.K_M
            if n_k > b.num_train:
                raise ConfigError(
                    f"--k_L/--k_M: L * M = {n_k} exceeds the training set ({b.num_train})"
                )
            sample = self._subset(b.train, n_k, 2)
            k_batches = [sample] if m == 1 else split_batches(sample, m)
        probe = self._subset(b.train, c.batch_size, 3)
        n_eval = min(c.eval_subset, b.num_test)
        evals = split_batches(self._subset(b.test, n_eval, 4), c.hessian_batch_size)
        settings = MeasurementSettings(
            measurements=c.measurements,
            top_k=c.top_k,
            lanczos_max_iter=c.lanczos_max_iter,
            lanczos_tol=c.lanczos_tol,
            lanczos_converge_k=c.lanczos_converge_k,
            hvp_mode=c.hvp_mode,
            trace_samples=c.trace_samples,
            density_vectors=c.density_vectors,
            density_steps=c.density_steps,
            save_eigenvectors=c.save_eigenvectors,
            seed=c.seed,
        )
        suite = MeasurementSuite(
            self.model,
            self.variables,
            self.measure_loss,
            settings,
            hessian_batches=hessian,
            k_batches=k_batches,
            k_per_example=c.K_M == 1,
            probe_batch=probe,
            update_fn=lambda batch, lr: self.train_step.update(batch, lr),
            eval_batches=evals,
            gammas=batchnorm_gammas(self.model),
            strategy=self.strategy,
        )
        return suite, probe

    def _build_checkpoint(self) -> None:
        dim = sum(int(np.prod(v.shape)) for v in self.variables)
        k = min(self.config.top_k, dim)
        self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.reference_loss = tf.Variable(float("nan"), dtype=tf.float64, trainable=False)
        self.warm = tf.Variable(tf.zeros([k, dim], tf.float32), trainable=False)
        self.has_warm = tf.Variable(False, trainable=False)
        # Running sums for accuracies: since the epoch started, since the last measurement.
        self.sums = tf.Variable(tf.zeros([2, 3], tf.float64), trainable=False)
        state = [
            v.value if isinstance(v, keras.Variable) else v
            for v in self.model.non_trainable_variables
        ]
        self.checkpoint = tf.train.Checkpoint(
            step=self.step_var,
            params=list(self.variables),
            state=state,
            momentum=list(self.sgd.buffers),
            warm=self.warm,
            has_warm=self.has_warm,
            reference_loss=self.reference_loss,
            sums=self.sums,
        )

    def metadata(self) -> dict:
        c, b = self.config, self.bundle
        versions = {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        }
        return {
            "tfbreak_version": tfbreak.__version__,
            "versions": versions,
            "python": platform.python_version(),
            "model": c.model,
            "dataset": c.dataset,
            "data_source": b.source,
            "num_train": b.num_train,
            "num_classes": b.num_classes,
            "num_parameters": int(sum(int(np.prod(v.shape)) for v in self.variables)),
            "seed": c.seed,
            "lr": c.lr,
            "batch_size": c.batch_size,
            "momentum": c.momentum,
            "weight_decay": c.weight_decay,
            "bn_mode": c.bn_mode,
            "has_batchnorm": bool(batchnorm_gammas(self.model)),
            "device": ", ".join(d.device_type for d in tf.config.list_logical_devices()),
            "strategy": c.strategy,
            "num_replicas": num_replicas(self.strategy),
            "K_L": c.k_L,
            "K_M": c.K_M,
            "hessian_sample_size": self.suite.hessian.num_examples if self.suite.hessian else 0,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "measurement_steps": self.schedule.steps(),
            "sweep": None,
            "config": _comparable(c),
            "status": "running",
            "stop_reason": None,
        }

    # ------------------------------------------------------------------ run
    def run(self, sweep: dict | None = None) -> RunResult:
        run_dir = run_dir_of(self.config)
        manager = None
        if self.resume:
            meta = json.loads((run_dir / "metadata.json").read_text())
            if meta.get("status") == "completed":
                return RunResult("completed", run_dir, "already completed; nothing to do")
            if meta.get("status") == "diverged":
                reason = f"diverged before ({meta.get('stop_reason')}); not resumed"
                return RunResult("diverged", run_dir, reason, EXIT_DIVERGED)
        writer = RunWriter(run_dir, resume=self.resume) if self.is_chief else NullWriter(run_dir)
        # Every worker saves (TF's multi-worker recommendation); only the chief's copy is kept.
        # All restore from the chief's checkpoints.
        checkpoint_dir = worker_dir(self.strategy, run_dir / "checkpoints")
        manager = tf.train.CheckpointManager(self.checkpoint, checkpoint_dir, max_to_keep=3)
        latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints")) if self.resume else None
        try:
            if latest:
                self.checkpoint.restore(latest).assert_consumed()
                writer.truncate_after(int(self.step_var.numpy()))
                writer.update_metadata(status="running", stop_reason=None, finished=None)
            else:
                if self.resume:
                    writer.truncate_after(-1)
                writer.write_flags(self.flags_text)
                meta = self.metadata()
                meta["sweep"] = sweep
                writer.write_metadata(meta)
            if bool(self.has_warm.numpy()):
                self.suite.warm_start = self.warm.numpy()
            self._loop(writer, manager, restored=bool(latest))
        except Diverged as err:
            writer.finish(
                "diverged", str(err), step=int(self.step_var.numpy()), epoch=self._epoch()
            )
            writer.close()
            return RunResult("diverged", run_dir, str(err), EXIT_DIVERGED)
        except (KeyboardInterrupt, SystemExit):
            writer.finish("interrupted", "interrupted by the user")
            writer.close()
            raise
        except Exception as err:
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            writer.finish("failed", reason)
            writer.close()
            raise
        finally:
            cleanup_worker_dir(self.strategy, checkpoint_dir)
        writer.finish("completed")
        writer.close()
        return RunResult("completed", run_dir)

    def _epoch(self) -> float:
        return int(self.step_var.numpy()) / self.steps_per_epoch

    def _lr(self, step: int) -> float:
        c = self.config
        return learning_rate(
            c.lr, step // self.steps_per_epoch, c.lr_decay_epochs, c.lr_decay_factor
        )

    def _accuracy_row(self, which: int) -> dict:
        loss_sum, correct, count = (float(x) for x in self.sums[which].numpy())
        if count == 0:
            return {}
        if which == 0:
            return {
                names.TRAIN_LOSS_EPOCH: loss_sum / count,
                names.TRAIN_ACCURACY_EPOCH: correct / count,
            }
        return {
            names.TRAIN_LOSS_SINCE_LAST: loss_sum / count,
            names.TRAIN_ACCURACY_SINCE_LAST: correct / count,
        }

    def _measure(self, writer: RunWriter, progress: Progress | None) -> None:
        step = int(self.step_var.numpy())
        row, arrays = self.suite.measure(step, self._lr(step))
        row.update(self._accuracy_row(1))
        self.sums[1].assign(tf.zeros([3], tf.float64))
        writer.append({"step": step, "epoch": self._epoch(), "kind": "measurement", **row})
        if arrays:
            writer.save_arrays(step, **arrays)
        if self.suite.warm_start is not None:
            self.warm.assign(self.suite.warm_start)
            self.has_warm.assign(True)
        if progress is not None:
            parts = [
                f"{k}={row[k]:.4g}"
                for k in (
                    names.HESSIAN_LAMBDA_1,
                    names.K_LAMBDA_1,
                    names.K_RATIO,
                    names.LOSS_DELTA,
                    names.TEST_ACCURACY_SUBSET,
                )
                if k in row and row[k] is not None
            ]
            progress.status = " ".join(parts)
            progress.note(
                f"measured step {step} ({row[names.MEASUREMENT_SECONDS]:.1f}s): {progress.status}"
            )

    def _end_epoch(self, writer: RunWriter, epoch: int) -> None:
        step = int(self.step_var.numpy())
        row = self._accuracy_row(0)
        self.sums[0].assign(tf.zeros([3], tf.float64))
        loss, correct, count = 0.0, 0, 0
        for x, y in evaluation_batches(self.bundle.test, self.config.hessian_batch_size):
            logits = self._logits(x)
            loss += float(tf.reduce_sum(cross_entropy(y, logits)))
            correct += int(
                tf.reduce_sum(
                    tf.cast(
                        tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(y, tf.int32)),
                        tf.int32,
                    )
                )
            )
            count += int(y.shape[0])
        row[names.TEST_LOSS] = loss / count
        row[names.TEST_ACCURACY] = correct / count
        row[names.LR] = self._lr(step - 1)
        writer.append({"step": step, "epoch": float(epoch + 1), "kind": "epoch", **row})

    def _loop(
        self, writer: RunWriter, manager: tf.train.CheckpointManager, restored: bool = False
    ) -> None:
        c = self.config
        step = int(self.step_var.numpy())
        progress = Progress(self.total_steps, c.run_name) if self.show_progress else None
        if step == 0 and not restored:
            self._measure(writer, progress)
            manager.save(checkpoint_number=0)
        while step < self.total_steps:
            epoch, start_batch = divmod(step, self.steps_per_epoch)
            lr = tf.constant(self._lr(step), tf.float32)
            for batch in train_batches(
                self.bundle, c.batch_size, c.seed, epoch, start_batch=start_batch
            ):
                loss_t, correct_t = self.train_step.step(batch, lr)
                loss = float(loss_t)
                step += 1
                self.step_var.assign(step)
                self._check_divergence(loss, step)
                n = float(c.batch_size)
                self.sums.assign_add(tf.constant([[loss * n, float(correct_t), n]] * 2, tf.float64))
                if progress is not None:  # running accuracy of the epoch, before its reset
                    s = self.sums[0].numpy()
                    progress.step(step, loss, s[1] / max(s[2], 1), force=step == self.total_steps)
                epoch_done = step % self.steps_per_epoch == 0
                if epoch_done:
                    self._end_epoch(writer, epoch)
                due = self.schedule.due(step)
                if due:
                    self._measure(writer, progress)
                if due or epoch_done or step == self.total_steps:
                    manager.save(checkpoint_number=step)
                if epoch_done or step == self.total_steps:
                    break

    def _check_divergence(self, loss: float, step: int) -> None:
        ref = float(self.reference_loss.numpy())
        if math.isnan(ref):
            self.reference_loss.assign(max(loss, math.log(self.bundle.num_classes)))
            ref = float(self.reference_loss.numpy())
        if not math.isfinite(loss):
            raise Diverged(f"diverged at step {step}: training loss is {loss}")
        if loss > self.config.divergence_factor * ref:
            raise Diverged(
                f"diverged at step {step}: training loss {loss:.4g} exceeds "
                f"{self.config.divergence_factor:g} x the initial loss {ref:.4g}"
            )


def run_experiment(
    config: ExperimentConfig,
    *,
    flags_text: str = "",
    progress: bool = True,
    sweep: dict | None = None,
) -> RunResult:
    """Train and measure one configuration (or resume it); see `Trainer`."""
    return Trainer(config, flags_text=flags_text, progress=progress).run(sweep=sweep)


__all__ = ["RunResult", "Trainer", "run_dir_of", "run_experiment"]
