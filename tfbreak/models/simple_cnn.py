"""SimpleCNN and SimpleCNN-BN (appendix D; Keras ``examples/cifar10_cnn.py``).

Layout, as in the Keras example: conv32 ('same'), conv32 ('valid'), maxpool 2, conv64 ('same'),
conv64 ('valid'), maxpool 2, flatten, dense, output. Per the paper the dense layer has 128 units
(the Keras example uses 512) and a ReLU follows every hidden layer. The Keras example's dropout
layers are left out: the paper does not mention dropout, and dropout would make the loss (and so
H and K) stochastic. SimpleCNN-BN inserts BatchNorm after each conv/dense hidden layer, before the
ReLU (paper Sec. 4.3: "batch normalization layers inserted after each layer"); those layers drop
their bias, which BatchNorm's beta makes redundant (it would only add exactly-flat directions).
With a 32x32x3 input and 10 classes SimpleCNN has 361,898 parameters.
"""

from __future__ import annotations

import keras

DEFAULT_INPUT_SHAPE = (32, 32, 3)


def build_simple_cnn(
    *,
    num_classes: int,
    input_shape: tuple[int, ...] | None = None,
    batch_norm: bool = False,
    dense_units: int = 128,
    activation: str = "relu",
    dtype: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build SimpleCNN (``batch_norm=False``) or SimpleCNN-BN (``batch_norm=True``).

    ``activation`` may be changed (e.g. to "softplus") only to obtain a smooth variant for
    finite-difference checks; the paper uses ReLU.
    """
    shape = tuple(input_shape) if input_shape is not None else DEFAULT_INPUT_SHAPE
    inputs = keras.Input(shape=shape, dtype=dtype or "float32", name="image")
    x = inputs

    def block(x, layer):
        x = layer(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(dtype=dtype)(x)
        return keras.layers.Activation(activation, dtype=dtype)(x)

    use_bias = not batch_norm
    for filters in (32, 64):
        for padding in ("same", "valid"):
            conv = keras.layers.Conv2D(filters, 3, padding=padding, use_bias=use_bias, dtype=dtype)
            x = block(x, conv)
        x = keras.layers.MaxPooling2D(2, dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    x = block(x, keras.layers.Dense(dense_units, use_bias=use_bias, dtype=dtype))
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    default = "simple_cnn_bn" if batch_norm else "simple_cnn"
    return keras.Model(inputs, logits, name=name or default)
