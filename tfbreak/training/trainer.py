"""One run: the SGD loop with measurements at scheduled steps, checkpoints and the divergence
stop, written into a run directory (data, model and suite come from `build_experiment`).

Resumable exactly: the checkpoint holds parameters, BN statistics, momentum buffers, the
Lanczos warm start and the running accuracy sums (`TrainingState`); the data order is a
function of (seed, epoch) and augmentation of (seed, epoch, example), so re-running the same
command continues from the newest checkpoint that can be restored (an unreadable one is skipped
with a warning) and whose rows and arrays are whole (`tfbreak.runs.integrity`: else from an
earlier one, which measures the damaged step again, with a warning), and drops the metric rows
written after it.

Crash-proof: the run directory is read before anything is built (a finished run costs no data
loading; a directory another process writes is refused at once, `tfbreak.runs.lock`); SIGTERM
and SIGINT abandon the current step or measurement, record a stop row and raise
`tfbreak.interrupts.Interrupted` (`tfbreak.interrupts`); the writes that must not be torn are
made with signals deferred. A failure (a full disk, a read-only directory, out of memory, a bug)
records a stop row naming its cause where one can still be written (`tfbreak.runs.failures`),
and is raised.
"""

from __future__ import annotations

import math
import sys

import tensorflow as tf

from tfbreak import interrupts
from tfbreak.config import ExperimentConfig
from tfbreak.curvature.keras_loss import measurement_modes, modes_line
from tfbreak.data import train_batches
from tfbreak.distribute import (
    NullWriter,
    cleanup_worker_dir,
    is_chief,
    make_strategy,
    num_replicas,
    worker_dir,
)
from tfbreak.measure import break_even_event
from tfbreak.preflight import check_paths
from tfbreak.runs import (
    RunResult,
    RunWriter,
    build_metadata,
    failures,
    inspect_run_dir,
    integrity,
    k_metadata,
    names,
    run_dir_of,
    stored_config,
)
from tfbreak.runs.files import ARRAYS_DIR, CHECKPOINTS_DIR
from tfbreak.runs.rundir import EXIT_DIVERGED
from tfbreak.training.checkpoints import checkpoint_prefix, newest_readable, prune
from tfbreak.training.evaluation import HeldOutEvaluation
from tfbreak.training.experiment import build_experiment
from tfbreak.training.memory import run_budget
from tfbreak.training.progress import Progress
from tfbreak.training.schedules import learning_rate
from tfbreak.training.state import EPOCH, SINCE_LAST, TrainingState

PROGRESS_METRICS = (
    names.HESSIAN_LAMBDA_1,
    names.K_LAMBDA_1,
    names.K_RATIO,
    names.LOSS_DELTA,
    names.TEST_ACCURACY_SUBSET,
)


class Diverged(Exception):
    pass


def _warn(message: str) -> None:
    print(f"tfbreak: warning: {message}", file=sys.stderr, flush=True)


class Trainer:
    """Builds everything for `config` (validated) and runs or resumes it.

    The run directory is inspected first (`tfbreak.runs.inspect_run_dir`): a completed or
    diverged run is not built at all (`run` returns at once), a started one is locked before
    data and model are built. The lock is released when `run` returns or raises, or by
    `close` (also a context manager) for a Trainer that is not run.

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
        check_paths(self.config)
        # Before anything else touches TensorFlow (MultiWorkerMirroredStrategy needs that).
        self.strategy = strategy if strategy is not None else make_strategy(config.strategy)
        self.is_chief = is_chief(self.strategy)
        self.flags_text = flags_text
        self.show_progress = progress and self.is_chief
        self.run_dir = run_dir_of(config)
        self.found = inspect_run_dir(config, check_lock=self.is_chief)
        self.writer: RunWriter | NullWriter | None = None
        self.experiment = None
        try:
            if self.is_chief and self.found.finished is None:
                # Lock before the expensive part (a new run's directory is removed again if
                # the Trainer ends before recording anything); what the directory holds may
                # have changed until the lock was taken.
                with interrupts.deferred():
                    self.writer = RunWriter(self.run_dir, resume=self.found.started)
                self.found = inspect_run_dir(config, check_lock=False)
            if self.found.finished is None:
                self._build()
        except BaseException:
            self.close()
            raise
        if self.found.finished is not None:
            self.close()

    def _build(self) -> None:
        self.experiment = x = build_experiment(self.config, self.strategy)
        self.bundle, self.model, self.suite = x.bundle, x.model, x.suite
        self.train_step, self.schedule = x.train_step, x.schedule
        self.steps_per_epoch, self.total_steps = x.steps_per_epoch, x.total_steps
        self.state = TrainingState(x.model, x.sgd, self.config.measure.top_k)
        self.held_out = HeldOutEvaluation(
            x.model, x.bundle.test, self.config.measure.hessian_batch_size, x.convention
        )
        self.budget = run_budget(self.config, x)
        self.budget.check()  # ConfigError naming the flag to lower: nothing is recorded
        if self.is_chief:
            print(self.budget.line(), file=sys.stderr, flush=True)

    def close(self) -> None:
        """Release the run directory (its lock); a new run's directory that nothing was
        recorded in yet is removed. Idempotent."""
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metadata(self, sweep: dict | None = None) -> dict:
        c, b = self.config, self.bundle
        hyperparameters = ("model", "dataset", "seed", "lr", "batch_size", "momentum")
        return build_metadata(
            **{k: getattr(c, k) for k in (*hyperparameters, "weight_decay", "strategy")},
            data_source=b.source,
            num_train=b.num_train,
            num_classes=b.num_classes,
            num_parameters=self.experiment.sgd.space.dim,
            **self.modes(),
            has_batchnorm=bool(self.suite.gammas),
            device=", ".join(d.device_type for d in tf.config.list_logical_devices()),
            num_replicas=num_replicas(self.strategy),
            K_L=c.measure.k_L,
            **k_metadata(c.K_Ms),
            hessian_sample_size=self.suite.samples.hessian_size,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            measurement_steps=self.schedule.steps(),
            memory_budget=self.budget.as_metadata(),
            sweep=sweep,
            config=stored_config(c),
            warnings=c.degenerate(b.num_train),
        )

    def modes(self) -> dict:
        """How the model is measured (metadata keys: `measurement_modes`)."""
        return measurement_modes(self.model, self.suite.loss_fn, self.config.measure.bn_mode)

    # ------------------------------------------------------------------ run
    def run(self, sweep: dict | None = None) -> RunResult:
        """Run or resume; returns how the run ended (completed or diverged), raises
        `tfbreak.interrupts.Interrupted` (with `.result`) on SIGTERM/SIGINT and re-raises a
        failure after recording it. The run directory is released in every case."""
        if self.found.finished is not None:
            return self.found.finished
        try:
            with interrupts.handled():
                return self._run(sweep)
        finally:
            self.close()

    def _run(self, sweep: dict | None) -> RunResult:
        checkpoint_dir = worker_dir(self.strategy, self.run_dir / CHECKPOINTS_DIR)
        self._position_known = False
        self._recorded = self.found.started  # metadata.json exists: a stop can be recorded
        with interrupts.deferred():
            if self.writer is None:
                self.writer = RunWriter(self.run_dir) if self.is_chief else NullWriter(self.run_dir)
            writer = self.writer
        try:
            restored = self._prepare(writer, sweep)
            self._position_known = True
            manager = self.state.manager(checkpoint_dir)
            self._loop(writer, manager, restored=restored)
        except Diverged as err:
            self._finish(writer, "diverged", str(err))
            return RunResult("diverged", self.run_dir, str(err), EXIT_DIVERGED)
        except KeyboardInterrupt as err:
            stop = interrupts.as_interrupted(err)
            where = f"at step {self._step()}" if self._position_known else "while resuming"
            reason = f"{stop.signal_name} {where}"
            self._finish(writer, "interrupted", reason, signal=stop.signal_name)
            stop.result = RunResult("interrupted", self.run_dir, reason, stop.exit_code)
            if stop is err:
                raise
            raise stop from err
        except Exception as err:
            self._finish(writer, "failed", failures.reason(err))
            raise
        finally:
            cleanup_worker_dir(self.strategy, checkpoint_dir)
        result = RunResult("completed", self.run_dir)
        try:
            self._finish(writer, "completed")
        except KeyboardInterrupt as err:  # held back until the run was recorded as completed
            stop = interrupts.as_interrupted(err)
            stop.result = RunResult("completed", self.run_dir, exit_code=stop.exit_code)
            raise stop from None
        return result

    def _finish(self, writer, status: str, reason: str | None = None, **fields) -> None:
        """Record how the run ended. A stop that cannot be recorded (the disk that failed the
        run is still full) is let go: what was written before stays, and the failure or signal
        that stopped the run is what the caller reports."""
        if not self._recorded:
            return  # nothing was recorded to end (a new run failing before its metadata)
        if status != "completed" and self._position_known:
            fields.update(step=self._step(), epoch=self._epoch())
        with interrupts.deferred():
            try:
                writer.finish(status, reason, **fields)
            except Exception:
                if status == "completed":
                    raise

    def _prepare(self, writer, sweep: dict | None) -> bool:
        """Restore the newest checkpoint that can be restored and whose rows and arrays are
        whole, drop what was written after it and the arrays without a row; for a new run (or
        one without such a checkpoint) write flags and metadata. Returns True when a checkpoint
        was restored."""
        chief_dir = self.run_dir / CHECKPOINTS_DIR
        warn = _warn if self.is_chief else lambda _: None
        number = newest_readable(chief_dir, warn)
        orphans: tuple = ()
        if number is not None and self.found.started:
            number, orphans = self._whole(chief_dir, number, warn)
        metadata = self.metadata(sweep) if number is None else None
        resumed = self.found.started and self.is_chief
        with interrupts.deferred():
            if resumed:
                prune(chief_dir, number)
                writer.truncate_after(-1 if number is None else number, rebuild=False)
                for path in orphans:
                    path.unlink(missing_ok=True)
            if number is None:
                writer.write_flags(self.flags_text)
                writer.write_metadata(metadata)
                self._recorded = True
            else:
                writer.update_metadata(status="running", stop_reason=None, finished=None)
        if resumed:
            writer.rebuild_tensorboard()  # a view of the rows: interruptible, redone on resume
        if number is None:
            return False
        self.state.checkpoint.restore(checkpoint_prefix(chief_dir, number)).assert_consumed()
        if bool(self.state.has_warm.numpy()):
            self.suite.warm_start = self.state.warm.numpy()
        return True

    def _whole(self, chief_dir, number: int, warn) -> tuple[int | None, tuple]:
        """The checkpoint to resume from, `number` unless a row or an arrays file of a step up
        to it is missing or unreadable: then the newest readable one before that step (None:
        from the start), which measures it again. Also the arrays files without a row (to
        remove). One warning line for what was found."""
        spe = self.steps_per_epoch
        found = integrity.check(
            self.run_dir,
            number,
            measurements=self.schedule.steps(),
            epoch_ends=range(spe, number + 1, spe),
            reaches_break_even=lambda row: break_even_event(row) is not None,
        )
        said = []
        if found.damaged is not None:
            older = newest_readable(chief_dir, warn, before=found.damaged)
            start = "the start" if older is None else f"the checkpoint of step {older}"
            said.append(
                f"{found.why}; resuming from {start} instead of step {number} to measure it again"
            )
            number = older
        if found.orphans:
            listed = ", ".join(f"{ARRAYS_DIR}/{p.name}" for p in found.orphans)
            said.append(f"removed {listed} (no row)")
        if said:
            warn(f"{self.run_dir}: {'; '.join(said)}")
        return number, found.orphans

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
        density = self.schedule.density_due(step)
        if progress is None:
            row, arrays = self.suite.measure(step, self._lr(step), density=density)
        else:
            with progress.measuring(step, self.suite.parts(density)) as on_part:
                row, arrays = self.suite.measure(step, self._lr(step), on_part, density)
        row.update(self._training_metrics(SINCE_LAST))
        with interrupts.deferred():  # the row, its event and its arrays, or none of them
            writer.append({"step": step, "epoch": self._epoch(), "kind": "measurement", **row})
            event = None if bool(self.state.broke_even.numpy()) else break_even_event(row)
            if event is not None:
                writer.append({"step": step, "epoch": self._epoch(), **event})
                self.state.broke_even.assign(True)
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
        with interrupts.deferred():
            writer.append({"step": step, "epoch": float(epoch + 1), "kind": "epoch", **row})

    def _save(self, manager: tf.train.CheckpointManager, step: int) -> None:
        self.writer.check_present()  # TensorFlow would re-create a removed run directory
        with interrupts.deferred():  # a checkpoint is written whole (or left to `prune`)
            manager.save(checkpoint_number=step)

    def _loop(
        self, writer: RunWriter, manager: tf.train.CheckpointManager, restored: bool = False
    ) -> None:
        progress = (
            Progress(self.total_steps, self.config.run_name, initial=self._step())
            if self.show_progress
            else None
        )
        if progress is not None:
            progress.note(modes_line(self.modes()))
        elif self.is_chief:
            print(f"[{self.config.run_name}] {modes_line(self.modes())}", file=sys.stderr)
        try:
            self._steps(writer, manager, progress, restored)
        finally:
            if progress is not None:
                progress.close()

    def _steps(
        self,
        writer: RunWriter,
        manager: tf.train.CheckpointManager,
        progress: Progress | None,
        restored: bool,
    ) -> None:
        c = self.config
        step = self._step()
        if step == 0 and not restored:
            self._measure(writer, progress)
            self._save(manager, 0)
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
                    self._save(manager, step)
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
