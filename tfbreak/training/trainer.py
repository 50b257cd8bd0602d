"""One run: the SGD loop with measurements at scheduled steps, checkpoints and the divergence
stop, written into a run directory (data, model and suite come from `build_experiment`).

Resumable exactly: the checkpoint holds parameters, BN statistics, momentum buffers, the
Lanczos warm start and the running accuracy sums (`TrainingState`); the data order is a
function of (seed, epoch) and augmentation of (seed, epoch, example), so re-running the same
command continues from the last checkpoint and drops the metric rows written after it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from tfbreak.config import ExperimentConfig
from tfbreak.data import train_batches
from tfbreak.distribute import (
    NullWriter,
    cleanup_worker_dir,
    is_chief,
    make_strategy,
    num_replicas,
    worker_dir,
)
from tfbreak.runs import (
    RunWriter,
    build_metadata,
    check_run_dir,
    names,
    run_dir_of,
    stored_config,
)
from tfbreak.runs.files import CHECKPOINTS_DIR, METADATA_FILE
from tfbreak.training.evaluation import HeldOutEvaluation
from tfbreak.training.experiment import build_experiment
from tfbreak.training.progress import Progress
from tfbreak.training.schedules import learning_rate
from tfbreak.training.state import EPOCH, SINCE_LAST, TrainingState

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3
PROGRESS_METRICS = (
    names.HESSIAN_LAMBDA_1,
    names.K_LAMBDA_1,
    names.K_RATIO,
    names.LOSS_DELTA,
    names.TEST_ACCURACY_SUBSET,
)


@dataclass(frozen=True)
class RunResult:
    status: str  # completed | diverged | failed
    run_dir: Path
    reason: str | None = None
    exit_code: int = EXIT_COMPLETED


class Diverged(Exception):
    pass


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
        self.experiment = build_experiment(config, self.strategy)
        x = self.experiment
        self.bundle, self.model, self.suite = x.bundle, x.model, x.suite
        self.train_step, self.schedule = x.train_step, x.schedule
        self.steps_per_epoch, self.total_steps = x.steps_per_epoch, x.total_steps
        self.state = TrainingState(x.model, x.sgd, config.measure.top_k)
        self.held_out = HeldOutEvaluation(x.model, x.bundle.test, config.measure.hessian_batch_size)

    def metadata(self, sweep: dict | None = None) -> dict:
        c, b = self.config, self.bundle
        hyperparameters = ("model", "dataset", "seed", "lr", "batch_size", "momentum")
        return build_metadata(
            **{k: getattr(c, k) for k in (*hyperparameters, "weight_decay", "strategy")},
            data_source=b.source,
            num_train=b.num_train,
            num_classes=b.num_classes,
            num_parameters=self.experiment.sgd.space.dim,
            bn_mode=c.measure.bn_mode,
            has_batchnorm=bool(self.suite.gammas),
            device=", ".join(d.device_type for d in tf.config.list_logical_devices()),
            num_replicas=num_replicas(self.strategy),
            K_L=c.measure.k_L,
            K_M=c.K_M,
            hessian_sample_size=self.suite.samples.hessian_size,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            measurement_steps=self.schedule.steps(),
            sweep=sweep,
            config=stored_config(c),
        )

    # ------------------------------------------------------------------ run
    def run(self, sweep: dict | None = None) -> RunResult:
        run_dir = run_dir_of(self.config)
        if self.resume:
            meta = json.loads((run_dir / METADATA_FILE).read_text())
            if meta.get("status") == "completed":
                return RunResult("completed", run_dir, "already completed; nothing to do")
            if meta.get("status") == "diverged":
                reason = f"diverged before ({meta.get('stop_reason')}); not resumed"
                return RunResult("diverged", run_dir, reason, EXIT_DIVERGED)
        writer = RunWriter(run_dir, resume=self.resume) if self.is_chief else NullWriter(run_dir)
        # Every worker saves (TF's multi-worker recommendation); only the chief's copy is kept.
        # All restore from the chief's checkpoints.
        checkpoint_dir = worker_dir(self.strategy, run_dir / CHECKPOINTS_DIR)
        manager = self.state.manager(checkpoint_dir)
        latest = tf.train.latest_checkpoint(str(run_dir / CHECKPOINTS_DIR)) if self.resume else None
        try:
            if latest:
                self.state.checkpoint.restore(latest).assert_consumed()
                writer.truncate_after(int(self.state.step.numpy()))
                writer.update_metadata(status="running", stop_reason=None, finished=None)
            else:
                if self.resume:
                    writer.truncate_after(-1)
                writer.write_flags(self.flags_text)
                writer.write_metadata(self.metadata(sweep))
            if bool(self.state.has_warm.numpy()):
                self.suite.warm_start = self.state.warm.numpy()
            self._loop(writer, manager, restored=bool(latest))
        except Diverged as err:
            writer.finish("diverged", str(err), step=self._step(), epoch=self._epoch())
            writer.close()
            return RunResult("diverged", run_dir, str(err), EXIT_DIVERGED)
        except (KeyboardInterrupt, SystemExit):
            writer.finish("interrupted", "interrupted by the user")
            writer.close()
            raise
        except Exception as err:
            writer.finish("failed", f"{type(err).__name__}: {err}".splitlines()[0])
            writer.close()
            raise
        finally:
            cleanup_worker_dir(self.strategy, checkpoint_dir)
        writer.finish("completed")
        writer.close()
        return RunResult("completed", run_dir)

    def _step(self) -> int:
        return int(self.state.step.numpy())

    def _epoch(self) -> float:
        return self._step() / self.steps_per_epoch

    def _lr(self, step: int) -> float:
        c = self.config
        return learning_rate(
            c.lr, step // self.steps_per_epoch, c.lr_decay_epochs, c.lr_decay_factor
        )

    def _training_metrics(self, which: int) -> dict:
        loss_sum, correct, count = self.state.take_sums(which)
        if count == 0:
            return {}
        loss, accuracy = (
            (names.TRAIN_LOSS_EPOCH, names.TRAIN_ACCURACY_EPOCH)
            if which == EPOCH
            else (names.TRAIN_LOSS_SINCE_LAST, names.TRAIN_ACCURACY_SINCE_LAST)
        )
        return {loss: loss_sum / count, accuracy: correct / count}

    def _measure(self, writer: RunWriter, progress: Progress | None) -> None:
        step = self._step()
        row, arrays = self.suite.measure(step, self._lr(step))
        row.update(self._training_metrics(SINCE_LAST))
        writer.append({"step": step, "epoch": self._epoch(), "kind": "measurement", **row})
        if arrays:
            writer.save_arrays(step, **arrays)
        if self.suite.warm_start is not None:
            self.state.warm.assign(self.suite.warm_start)
            self.state.has_warm.assign(True)
        if progress is not None:
            shown = [k for k in PROGRESS_METRICS if row.get(k) is not None]
            progress.status = " ".join(f"{k}={row[k]:.4g}" for k in shown)
            seconds = row[names.MEASUREMENT_SECONDS]
            progress.note(f"measured step {step} ({seconds:.1f}s): {progress.status}")

    def _end_epoch(self, writer: RunWriter, epoch: int) -> None:
        step = self._step()
        row = self._training_metrics(EPOCH)
        row.update(self.held_out.evaluate())
        row[names.LR] = self._lr(step - 1)
        writer.append({"step": step, "epoch": float(epoch + 1), "kind": "epoch", **row})

    def _loop(
        self, writer: RunWriter, manager: tf.train.CheckpointManager, restored: bool = False
    ) -> None:
        c = self.config
        step = self._step()
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
                self.state.step.assign(step)
                self._check_divergence(loss, step)
                self.state.add_step(loss, float(correct_t), float(c.batch_size))
                if progress is not None:  # running accuracy of the epoch, before its reset
                    acc = self.state.epoch_accuracy()
                    progress.step(step, loss, acc, force=step == self.total_steps)
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
        ref = float(self.state.reference_loss.numpy())
        if math.isnan(ref):
            self.state.reference_loss.assign(max(loss, math.log(self.bundle.num_classes)))
            ref = float(self.state.reference_loss.numpy())
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


__all__ = ["RunResult", "Trainer", "run_experiment"]
