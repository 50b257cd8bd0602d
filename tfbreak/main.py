"""`python -m tfbreak.main --flagfile=configs/X.flags`: train, measure along the trajectory,
and (with --report) write the report. Exit codes: 0 completed, 1 failed, 2 bad input,
3 a run diverged (a sweep goes on with its next value)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging

from tfbreak import flags as tfflags
from tfbreak.config import ConfigError

FLAGS = flags.FLAGS


def _usage_error(message: str) -> None:
    print(f"tfbreak: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing with a one-line error and exit code 2 (unknown flag, missing flagfile)."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        _usage_error(str(err).splitlines()[0])
    return []


def _check_names(config) -> None:
    from tfbreak.data import DATASET_NAMES
    from tfbreak.models import MODEL_NAMES

    if config.model not in MODEL_NAMES:
        raise ConfigError(
            f"--model: unknown model {config.model!r}; one of {', '.join(MODEL_NAMES)}"
        )
    aliases = ("mnli", "multi_nli", "imagenet")
    if config.dataset not in DATASET_NAMES + aliases:
        raise ConfigError(
            f"--dataset: unknown data set {config.dataset!r}; one of {', '.join(DATASET_NAMES)}"
        )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _usage_error(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    logging.set_verbosity(logging.WARNING)
    from tfbreak.data import DatasetUnavailableError
    from tfbreak.training.trainer import EXIT_DIVERGED, Trainer

    try:
        base = tfflags.config_from_flags()
        runs = tfflags.sweep_configs(
            base, tfflags.parse_sweep(FLAGS.sweep), tfflags.parse_seeds(FLAGS.seeds)
        )
        for config, _ in runs:
            config.validate()
            _check_names(config)
    except ConfigError as err:
        _usage_error(str(err))
    flags_text = FLAGS.flags_into_string()
    codes = []
    for config, sweep in runs:
        try:
            trainer = Trainer(config, flags_text=flags_text, progress=FLAGS.progress)
        except (ConfigError, DatasetUnavailableError) as err:
            _usage_error(str(err).splitlines()[0])
        if config.measure.bn_mode == "batch" and not trainer.suite.gammas:
            logging.warning(
                "--bn_mode=batch has no effect: model %s has no BatchNorm", config.model
            )
        result = trainer.run(sweep=sweep)
        line = f"tfbreak: {result.run_dir}: {result.status}"
        print(line + (f" ({result.reason})" if result.reason else ""), file=sys.stderr)
        codes.append(result.exit_code)
    if FLAGS.report:
        from tfbreak import report

        target = Path(base.output_dir) / base.run_name  # the sweep (or the single run)
        report.main([str(target), "--out", str(target / "report")])
    sys.exit(EXIT_DIVERGED if EXIT_DIVERGED in codes else max(codes, default=0))


def run() -> None:
    """Console-script entry point."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
