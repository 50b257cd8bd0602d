"""`tfbreak --config=NAME` (or `python -m tfbreak.main --flagfile=configs/NAME.flags`): train,
measure along the trajectory, and (with --report) write the report. `tfbreak --list_configs`
lists the experiment flagfiles shipped with tfbreak; later flags override the flagfile's.

Every flag, flagfile line, path, size and run directory is checked before TensorFlow is
imported: bad input is one line ``tfbreak: error: --flag: ...`` and nothing is written; a legal
but degenerate setting is one line ``tfbreak: warning: --flag: ...``; a run that is already
completed is reported without loading data. A failure is one line naming the cause and what to
do, its traceback goes to RUN_DIR/error.log. Exit codes: 0 completed, 1 failed (a full disk, a
read-only directory, out of memory, ...: fix it and run the same command to resume), 2 bad input
(or a run directory in use by another process), 3 a run diverged (a sweep goes on with its next
value), 130 / 143 interrupted by SIGINT / SIGTERM (the run records a stop row and resumes when
the same command is run again)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging

from tfbreak import flag_errors, flagfiles, interrupts, preflight
from tfbreak import flags as tfflags
from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.runs import RunDirLocked, RunResult, failures, inspect_run_dir, now_iso
from tfbreak.runs.files import probe_writable
from tfbreak.runs.rundir import EXIT_DIVERGED, EXIT_FAILED, EXIT_USAGE
from tfbreak.validation import warn_once

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(tfflags)  # --help lists them (not only --helpfull)


def _usage_error(message: str) -> None:
    print(f"tfbreak: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
"""Help for this command's flags (absl's --helpfull adds those of every imported library)."""


def _help() -> None:
    """The command's description and its flags, exit code 0 (also as the `tfbreak` console
    script, whose main module is not this one, so absl's --help would list no flags)."""
    print(__doc__.strip() + "\n\nflags:\n" + FLAGS.module_help(sys.modules[__name__]))
    sys.exit(0)


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing with a one-line error and exit code 2 (unknown flag, bad value, missing
    flagfile, the line of a flagfile that holds the bad flag, a stray argument); --config and
    --flagfile resolve shipped flagfiles by name (`flagfiles.expand`)."""
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        _help()
    try:
        expanded = flagfiles.expand(argv)
    except ValueError as err:
        _usage_error(str(err))
    try:
        rest = FLAGS(expanded)
    except (flags.Error, ValueError) as err:
        _usage_error(flag_errors.describe(err, expanded[1:]))
    except SystemExit as exit_:  # absl exits 1 after --helpfull / --helpxml
        if any(arg.startswith(("--help", "-help")) for arg in argv[1:]):
            sys.exit(0)
        raise exit_ from None
    if len(rest) > 1:
        _usage_error(flag_errors.stray(rest[1:], expanded[1:]))
    return rest


def validated_runs() -> list[tuple[ExperimentConfig, dict | None]]:
    """The runs of the parsed flags (one per sweep value and seed), each checked: settings,
    flags a sweep overrides, paths. Raises ConfigError naming the flag the user passed."""
    passed = tfflags.passed_flags()
    base = tfflags.config_from_flags().validate(passed)  # --run_name is the sweep's directory
    sweep, seeds = tfflags.parse_sweep(FLAGS.sweep), tfflags.parse_seeds(FLAGS.seeds)
    tfflags.check_sweep_overrides(sweep, seeds)
    runs = tfflags.sweep_configs(base, sweep, seeds)
    for config, _ in runs:
        config.validate(passed)
        preflight.check_paths(config, passed)
        preflight.check_extras(config, report=FLAGS.report)
        preflight.check_prepared(config)
    return runs


def _failed(run_dir: Path, err: Exception, while_: str) -> RunResult:
    """A run that raised `err`: its one line says the cause and what to do, its traceback goes
    to RUN_DIR/error.log (`tfbreak.runs.failures`)."""
    log = failures.write_log(run_dir, err, f"{now_iso()} {run_dir}: failed while {while_}")
    then = [failures.advice(err), f"traceback in {log}" if log else None]
    then_text = "; ".join(t for t in then if t)
    return RunResult("failed", run_dir, failures.reason(err), EXIT_FAILED, then_text)


def _train(config: ExperimentConfig, sweep: dict | None, flags_text: str) -> RunResult:
    from tfbreak.data import DatasetUnavailableError
    from tfbreak.training.trainer import Trainer

    run_dir = Path(config.output_dir) / config.run_name
    try:
        trainer = Trainer(config, flags_text=flags_text, progress=FLAGS.progress)
    except DatasetUnavailableError as err:
        _usage_error(f"--dataset: {str(err).splitlines()[0]}")
    except (ConfigError, RunDirLocked) as err:
        _usage_error(str(err).splitlines()[0])
    except KeyboardInterrupt as err:
        stop = interrupts.as_interrupted(err)
        reason = f"{stop.signal_name} while starting; nothing was recorded"
        stop.result = RunResult("interrupted", run_dir, reason)
        raise stop from None
    except Exception as err:
        return _failed(run_dir, err, "starting")
    if trainer.experiment is not None and config.measure.bn_mode == "batch":
        if not trainer.suite.gammas:
            warn_once(f"--bn_mode: batch has no effect: model {config.model} has no BatchNorm")
    try:
        return trainer.run(sweep=sweep)
    except Exception as err:
        return _failed(run_dir, err, "running")


def _run_all() -> int:
    try:
        runs = validated_runs()
        # Every worker of a multi-worker run runs this command; only the chief takes the lock.
        states = [
            inspect_run_dir(config, check_lock=config.strategy != "multi_worker")
            for config, _ in runs
        ]
    except (ConfigError, RunDirLocked) as err:
        _usage_error(str(err))
    for config, _ in runs:
        for message in config.degenerate():
            warn_once(message)
    for state in states:
        if state.finished is None and state.run_dir.is_dir():
            try:
                probe_writable(state.run_dir)
            except OSError as err:
                reason, then = failures.reason(err), failures.advice(err)
                print(RunResult("failed", state.run_dir, reason, then=then).line(), file=sys.stderr)
                return EXIT_FAILED
    flags_text = FLAGS.flags_into_string()
    codes = []
    for (config, sweep), state in zip(runs, states, strict=True):
        result = state.finished or _train(config, sweep, flags_text)
        print(result.line(), file=sys.stderr)
        codes.append(result.exit_code)
        if result.status == "failed":
            break
    if FLAGS.report and EXIT_FAILED not in codes:
        from tfbreak import report

        target = Path(FLAGS.output_dir) / FLAGS.run_name  # the sweep (or the single run)
        report.main([str(target), "--out", str(target / "report")])
    return EXIT_DIVERGED if EXIT_DIVERGED in codes else max(codes, default=0)


def _list_configs() -> None:
    names = flagfiles.list_configs()
    width = max(map(len, names), default=0)
    print(f"Experiment flagfiles in {flagfiles.config_dir()} (run one: tfbreak --config=NAME):")
    for name in names:
        print(f"  {name:<{width}}  {flagfiles.description(name)}")


def main(argv: list[str]) -> None:
    del argv  # parse_flags refused stray arguments
    if FLAGS.list_configs:
        _list_configs()
        sys.exit(0)
    logging.set_verbosity(logging.ERROR)  # libraries' warnings (tfds) are not ours to show
    with interrupts.handled():
        try:
            code = _run_all()
        except KeyboardInterrupt as err:
            stop = interrupts.as_interrupted(err)
            if stop.result is None:
                line = f"tfbreak: interrupted by {stop.signal_name}"
            elif stop.result.status == "interrupted":
                line = stop.result.line() + "; run the same command to resume"
            else:  # the signal came as the run was recorded as completed
                line = stop.result.line() + f"; then {stop.signal_name}"
            print(line, file=sys.stderr)
            sys.exit(stop.exit_code)
    sys.exit(code)


def run() -> None:
    """Console-script entry point. After the one line of an interrupted or failed run, the
    process exits without waiting for threads a library left running (tensorflow-datasets'
    downloads retry for minutes)."""
    try:
        app.run(main, flags_parser=parse_flags)
    except SystemExit as exit_:
        main_thread = threading.main_thread()
        if any(not t.daemon and t is not main_thread for t in threading.enumerate()):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exit_.code if isinstance(exit_.code, int) else EXIT_FAILED)
        raise


if __name__ == "__main__":
    run()
