"""ExperimentConfig: every setting of one run as a plain, TensorFlow-free dataclass (built from
flags by `tfbreak.flags`, or directly by library users). Validation errors name the flag.

The training settings are fields here; the measurement settings are one `MeasurementSettings`
(`config.measure`). Every field's default and flag help are declared once, with `setting`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field

from tfbreak import catalog
from tfbreak.measure.settings import MeasurementSettings
from tfbreak.training.schedules import MAX_STEPS, MeasurementSchedule, run_length
from tfbreak.validation import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    Check,
    ConfigError,
    between,
    check_fields,
    setting,
)

MAX_SEED = 2**32 - 1
"""The largest seed (NumPy's and Keras's seeds are 32-bit)."""
STRATEGIES: tuple[str, ...] = ("default", "mirrored", "multi_worker")
"""tf.distribute strategy (tfbreak.distribute): default = none (one device); mirrored = all local
GPUs (or logical CPUs); multi_worker = MultiWorkerMirroredStrategy from TF_CONFIG."""


def _momentum(v) -> bool:
    return NON_NEGATIVE.ok(v) and v < 1


def _plain_name(v) -> bool:
    """A name for one directory entry: not '.' or '..', no '/' or NUL, at most 255 bytes."""
    return (
        isinstance(v, str)
        and v not in ("", ".", "..")
        and not {"/", "\0"} & set(v)
        and len(v.encode("utf-8", "surrogateescape")) <= 255
    )


def _one_of(names: tuple[str, ...]) -> Check:
    return Check(lambda v: v in names, f"one of {', '.join(names)}")


NOT_IDENTITY: tuple[str, ...] = ("strategy", "output_dir", "run_name")
"""Settings that do not change the numbers a run produces (beyond floating-point reordering): a
run may be resumed with other values (a run directory may be moved), and runs written before
they existed still resume."""


@dataclass(frozen=True)
class ExperimentConfig:
    """One training run with measurements along its trajectory (paper Sec. 4, App. C-D)."""

    # What to train
    model: str = setting(
        "mlp", "Model name (tfbreak.catalog.MODEL_NAMES).", check=_one_of(catalog.MODEL_NAMES)
    )
    dataset: str = setting(
        "fashion_mnist",
        "Data set name (tfbreak.catalog.DATASET_NAMES).",
        check=_one_of(catalog.DATASET_NAMES + tuple(catalog.DATASET_ALIASES)),
    )
    data_dir: str | None = setting(None, "tensorflow-datasets data directory.")
    download: bool = setting(False, "Allow tensorflow-datasets to download missing data.")
    model_options: dict = field(default_factory=dict)  # --model_option=key=value (repeated)
    data_options: dict = field(default_factory=dict)  # --data_option=key=value (repeated)
    # SGD (App. D; momentum App. F; learning-rate decay App. G)
    lr: float = setting(0.01, "Learning rate eta.", check=POSITIVE)
    batch_size: int = setting(64, "Training batch size S.", check=POSITIVE_INT)
    momentum: float = setting(
        0.0, "Heavy-ball momentum beta (App. F).", check=Check(_momentum, "a number in [0, 1)")
    )
    weight_decay: float = setting(
        0.0, "Weight decay (ResNet-32: 1e-4, App. D).", check=NON_NEGATIVE
    )
    lr_decay_epochs: tuple[int, ...] = setting(
        (),
        "Epochs at which eta is multiplied by --lr_decay_factor (App. G).",
        check=Check(lambda v: all(POSITIVE_INT.ok(e) for e in v), "positive integer epochs"),
    )
    lr_decay_factor: float = setting(0.1, "Learning-rate decay factor (App. G).", check=FRACTION)
    epochs: float = setting(1.0, "Training epochs.", check=POSITIVE)
    max_steps: int | None = setting(
        None,
        f"Stop after this many SGD steps (overrides epochs; at most {MAX_STEPS:,}).",
        check=between(1, MAX_STEPS, " (the most steps a run may take)"),
    )
    seed: int = setting(
        0, "Seed of initialisation, data order and measurements.", check=between(0, MAX_SEED)
    )
    divergence_factor: float = setting(
        10.0,
        "Stop when the loss exceeds factor x initial loss.",
        check=Check(lambda v: POSITIVE.ok(v) and v > 1, "a number > 1"),
    )
    # Run directory
    output_dir: str = setting(
        "runs",
        "Directory that holds run directories.",
        check=Check(lambda v: isinstance(v, str) and "\0" not in v, "a path"),
    )
    run_name: str = setting(
        "run",
        "Run (or sweep) directory name in --output_dir.",
        check=Check(_plain_name, "a plain directory name (not '.' or '..', no '/')"),
    )
    # Scale-out (tfbreak.distribute); not part of a run's identity: a run may resume under another
    strategy: str = setting(
        "default",
        "tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
        "(MultiWorkerMirroredStrategy; cluster from the TF_CONFIG environment variable).",
        choices=STRATEGIES,
    )
    # Measurements (App. C)
    measure: MeasurementSettings = field(default_factory=MeasurementSettings)

    @property
    def K_Ms(self) -> tuple[int, ...]:
        """Examples per gradient of each K estimate: the training batch size unless set
        (App. C)."""
        return self.measure.K_Ms(self.batch_size)

    def validate(self, passed: Collection[str] = ()) -> ExperimentConfig:
        """Raise ConfigError naming the flag of the first invalid setting; return self.

        `passed`: the flags the user set (command line or flagfile); an error about settings
        that only make sense together names one of those rather than one left at its default.
        Sizes are checked against the real data set's (`tfbreak.catalog`); a loader's options
        or a mock may give fewer examples, which `check_sizes` checks again after loading.
        """
        check_fields(self)
        self.measure.validate()
        _check_model_fits_dataset(self, passed)
        _check_options("model_option", self.model_options, catalog.MODELS[self.model].options())
        spec = catalog.dataset(self.dataset)
        _check_options("data_option", self.data_options, spec.options())
        self.check_sizes(spec.num_train)
        return self

    def check_sizes(self, num_train: int) -> tuple[int, int]:
        """Raise ConfigError naming the flag unless the run fits a training set of `num_train`
        examples: a batch, the measurement samples, at most MAX_STEPS steps and
        MAX_MEASUREMENTS measurements. Returns (steps per epoch, total steps). O(number of
        measurements)."""
        if self.batch_size > num_train:
            raise ConfigError(
                f"--batch_size: {self.batch_size} is larger than the training set "
                f"({num_train} examples of {self.dataset})"
            )
        self.measure.check_sizes(num_train, self.batch_size)
        steps_per_epoch, total_steps = run_length(
            num_train, self.batch_size, self.epochs, self.max_steps
        )
        MeasurementSchedule.of(self.measure, steps_per_epoch, total_steps).check_size()
        return steps_per_epoch, total_steps

    def degenerate(self, num_train: int | None = None) -> list[str]:
        """One line per legal but degenerate setting (`MeasurementSettings.degenerate`) for a
        training set of `num_train` examples (default: the real data set's)."""
        if num_train is None:
            num_train = catalog.dataset(self.dataset).num_train
        return self.measure.degenerate(num_train)

    def replace(self, **changes) -> ExperimentConfig:
        """A copy with `changes`; measurement settings may be given by name (`top_k=3`)."""
        names = {f.name for f in dataclasses.fields(MeasurementSettings)}
        measure = {k: changes.pop(k) for k in list(changes) if k in names}
        if measure:
            changes["measure"] = changes.get("measure", self.measure).replace(**measure)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Every setting, flat (measurement settings beside the training ones)."""
        out = dataclasses.asdict(self)
        measure = out.pop("measure")
        return {**out, **measure}

    @classmethod
    def create(cls, **settings) -> ExperimentConfig:
        """`ExperimentConfig(...)` that also takes measurement settings by name (`k_L=25`)."""
        return cls().replace(**settings)


def _check_model_fits_dataset(config: ExperimentConfig, passed: Collection[str]) -> None:
    """The model must take what the data set gives; the error names --dataset when only it
    was passed, else --model."""
    model, dataset = config.model, config.dataset
    if catalog.fits(model, dataset):
        return

    def setting_of(flag: str, value: str) -> str:
        return f"--{flag}={value}" + (" (the default)" if passed and flag not in passed else "")

    if "dataset" in passed and "model" not in passed:
        gives = catalog.dataset(dataset).gives
        raise ConfigError(
            f"--dataset: {dataset} gives {gives}, which {setting_of('model', model)} does not "
            f"take; models for it: {', '.join(catalog.models_for(dataset))}"
        )
    raise ConfigError(
        f"--model: {model} takes {catalog.MODELS[model].inputs}, which "
        f"{setting_of('dataset', dataset)} does not give; data sets for it: "
        f"{', '.join(catalog.datasets_for(model))}"
    )


def _check_options(flag: str, given: dict, accepted: frozenset[str] | None) -> None:
    unknown = sorted(set(given) - accepted) if accepted is not None else []
    if unknown:
        raise ConfigError(
            f"--{flag}: unknown option {', '.join(unknown)}; the options are "
            f"{', '.join(sorted(accepted)) or 'none'}"
        )


def identity(config: dict | None) -> dict:
    """The settings that define a run's numbers, from `ExperimentConfig.to_dict()` (as stored in
    a run's metadata), for comparing a run directory with a config."""
    return {k: v for k, v in (config or {}).items() if k not in NOT_IDENTITY}


__all__ = ["STRATEGIES", "ConfigError", "ExperimentConfig", "MeasurementSettings", "identity"]
