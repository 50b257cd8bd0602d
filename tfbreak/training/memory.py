"""The memory budget of a built experiment (`tfbreak.measure.budget`): its sizes, read from the
model, the samples and the machine, checked before the first step."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfbreak.config import ExperimentConfig
from tfbreak.measure.budget import Budget, Sizes, available_memory


def activation_count(model: keras.Model) -> int | None:
    """A: the float values the layers of `model` output for one example (nested models counted
    through their layers); None when a layer's outputs are unknown (a TF-Hub encoder, a layer
    never called symbolically)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = activation_count(layer)
            if inner is None:
                return None
            total += inner
            continue
        if getattr(layer, "hub_trainable_variables", None):
            return None  # a TF-Hub SavedModel: its activations are not Keras layers
        try:
            outputs = tf.nest.flatten(layer.output)
        except (AttributeError, ValueError):
            return None
        for out in outputs:
            if any(d is None for d in out.shape[1:]):
                return None
            total += int(np.prod(out.shape[1:], dtype=np.int64))
    return total


def run_budget(config: ExperimentConfig, experiment) -> Budget:
    """The expected peak memory of the run's measurements against the memory available now
    (after the data, the model and the training state were built)."""
    x, s = experiment, config.measure
    accelerators = [d for d in tf.config.list_logical_devices() if d.device_type != "CPU"]
    sizes = Sizes(
        parameters=x.sgd.space.dim,
        hessian_sample=x.suite.samples.hessian_size,
        hessian_batch_size=s.hessian_batch_size,
        batch_size=config.batch_size,
        k_Ms=config.K_Ms,
        activations=activation_count(x.model),
        itemsize=x.sgd.space.dtype.size,
        factored_k=s.wants("K") and x.suite.part("K").per_example is not None,
        accelerator=bool(accelerators),
    )
    return Budget.of(s, sizes, available_memory())
