"""`tfbreak --config=NAME` (or `python -m tfbreak.main --flagfile=configs/NAME.flags`): train,
measure along the trajectory, and (with --report) write the report. `tfbreak --list_configs`
lists the experiment flagfiles shipped with tfbreak; later flags override the flagfile's.

Every flag, path and run directory is checked before TensorFlow is imported: bad input is one
line ``tfbreak: error: --flag: ...`` and nothing is written; a run that is already completed
is reported without loading data. Exit codes: 0 completed, 1 failed, 2 bad input (or a run
directory in use by another process), 3 a run diverged (a sweep goes on with its next value),
130 / 143 interrupted by SIGINT / SIGTERM (the run records a stop row and resumes when the
same command is run again)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging

from tfbreak import flagfiles, interrupts, preflight
from tfbreak import flags as tfflags
from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.runs import RunDirLocked, RunResult, inspect_run_dir
from tfbreak.runs.rundir import EXIT_DIVERGED, EXIT_USAGE

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
    """absl parsing with a one-line error and exit code 2 (unknown flag, missing flagfile);
    --config and --flagfile resolve shipped flagfiles by name (`flagfiles.expand`)."""
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        _help()
    try:
        return FLAGS(flagfiles.expand(argv))
    except (flags.Error, ValueError) as err:
        _usage_error(str(err).splitlines()[0])
    except SystemExit as exit_:  # absl exits 1 after --helpfull / --helpxml
        if any(arg.startswith(("--help", "-help")) for arg in argv[1:]):
            sys.exit(0)
        raise exit_ from None
    return []


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
    return runs


def _train(config: ExperimentConfig, sweep: dict | None, flags_text: str) -> RunResult:
    from tfbreak.data import DatasetUnavailableError
    from tfbreak.training.trainer import Trainer

    try:
        trainer = Trainer(config, flags_text=flags_text, progress=FLAGS.progress)
    except DatasetUnavailableError as err:
        _usage_error(f"--dataset: {str(err).splitlines()[0]}")
    except (ConfigError, RunDirLocked) as err:
        _usage_error(str(err).splitlines()[0])
    except KeyboardInterrupt as err:
        stop = interrupts.as_interrupted(err)
        reason = f"{stop.signal_name} while starting; nothing was recorded"
        stop.result = RunResult("interrupted", Path(config.output_dir) / config.run_name, reason)
        raise stop from None
    if trainer.experiment is not None and config.measure.bn_mode == "batch":
        if not trainer.suite.gammas:
            logging.warning(
                "--bn_mode=batch has no effect: model %s has no BatchNorm", config.model
            )
    return trainer.run(sweep=sweep)


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
    flags_text = FLAGS.flags_into_string()
    codes = []
    for (config, sweep), state in zip(runs, states, strict=True):
        result = state.finished or _train(config, sweep, flags_text)
        print(result.line(), file=sys.stderr)
        codes.append(result.exit_code)
    if FLAGS.report:
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
    if len(argv) > 1:
        _usage_error(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    if FLAGS.list_configs:
        _list_configs()
        sys.exit(0)
    logging.set_verbosity(logging.WARNING)
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
    """Console-script entry point."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
