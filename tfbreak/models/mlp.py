"""MLP for Fashion-MNIST (appendix E/D): two hidden layers of 300 and 100 units with ReLU."""

from __future__ import annotations

import keras

DEFAULT_INPUT_SHAPE = (28, 28, 1)


def build_mlp(
    *,
    num_classes: int,
    input_shape: tuple[int, ...] | None = None,
    hidden_units: tuple[int, ...] = (300, 100),
    activation: str = "relu",
    dtype: str | None = None,
    name: str = "mlp",
) -> keras.Model:
    """Build the 300-100 MLP of appendix D; inputs are flattened first.

    ``activation`` may be changed (e.g. "softplus") for smooth finite-difference checks.
    """
    shape = tuple(input_shape) if input_shape is not None else DEFAULT_INPUT_SHAPE
    inputs = keras.Input(shape=shape, dtype=dtype or "float32", name="image")
    x = keras.layers.Flatten(dtype=dtype)(inputs)
    for units in hidden_units:
        x = keras.layers.Dense(units, activation=activation, dtype=dtype)(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
