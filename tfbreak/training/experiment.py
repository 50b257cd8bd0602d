"""Everything one configuration trains and measures: data, model, SGD, the training step and
the measurement suite, built in the strategy's scope (paper Sec. 4, App. D)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import keras
import tensorflow as tf

from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.curvature.keras_loss import (
    OutputConvention,
    classification_loss,
    output_convention,
)
from tfbreak.data import DataBundle, load_dataset
from tfbreak.distribute import scope
from tfbreak.measure import MeasurementSuite, build_suite
from tfbreak.models import build_model, trainable_tf_variables, weight_decay_variables
from tfbreak.training.schedules import MeasurementSchedule
from tfbreak.training.sgd import SGD, TrainStep
from tfbreak.validation import warn_once


@contextlib.contextmanager
def _options_error(flag: str, options: dict):
    """A builder's TypeError on an unknown keyword becomes a ConfigError naming --flag."""
    try:
        yield
    except TypeError as err:
        if not options or "argument" not in str(err):
            raise
        raise ConfigError(f"--{flag}: {err} (given {sorted(options)})") from err


def load_data(config: ExperimentConfig) -> DataBundle:
    """The data set of `config`."""
    with _options_error("data_option", config.data_options):
        return load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            download=config.download,
            **config.data_options,
        )


@dataclass
class Experiment:
    """The built pieces of one run (see `build_experiment`)."""

    config: ExperimentConfig
    bundle: DataBundle
    model: keras.Model
    variables: list[tf.Variable]
    sgd: SGD
    train_step: TrainStep
    suite: MeasurementSuite
    steps_per_epoch: int
    total_steps: int
    schedule: MeasurementSchedule
    convention: OutputConvention


def build_experiment(
    config: ExperimentConfig, strategy: tf.distribute.Strategy | None
) -> Experiment:
    """Data, model (seeded), SGD state, training step and measurement suite of `config`."""
    c = config
    bundle = load_data(c)
    # Checked before with the real data set's size; a loader's options or a mock give fewer.
    steps_per_epoch, total_steps = c.check_sizes(bundle.num_train)
    for message in c.degenerate(bundle.num_train):
        warn_once(message)
    schedule = MeasurementSchedule.of(c.measure, steps_per_epoch, total_steps)
    keras.utils.set_random_seed(c.seed)
    tf.config.experimental.enable_op_determinism()
    with scope(strategy):
        with _options_error("model_option", c.model_options):
            model = build_model(
                c.model,
                num_classes=bundle.num_classes,
                input_shape=bundle.input_shape,
                seed=c.seed,
                **c.model_options,
            )
        variables = trainable_tf_variables(model)
        sgd = SGD(
            variables, weight_decay_variables(model), c.momentum, c.weight_decay, strategy=strategy
        )
        convention = output_convention(model)
        measure_loss = classification_loss(model, bn_mode=c.measure.bn_mode, convention=convention)
        steps: list[TrainStep] = []  # the suite's Delta L step is the training step's update
        suite = build_suite(
            model,
            variables,
            measure_loss,
            c.measure,
            train=bundle.train,
            test=bundle.test,
            num_train=bundle.num_train,
            num_test=bundle.num_test,
            batch_size=c.batch_size,
            seed=c.seed,
            update_fn=lambda batch, lr: steps[0].update(batch, lr),
            lookup=bundle.train_lookup,
            strategy=strategy,
        )
        example = suite.samples.probe(0)
        steps.append(TrainStep(model, sgd, example, measure_loss, convention, strategy=strategy))
    return Experiment(
        c,
        bundle,
        model,
        variables,
        sgd,
        steps[0],
        suite,
        steps_per_epoch,
        total_steps,
        schedule,
        convention,
    )
