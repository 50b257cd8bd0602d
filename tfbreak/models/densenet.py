"""DenseNet-121 for ImageNet (appendix D), from ``keras.applications`` with random init.

With 1000 classes it has 8,062,504 parameters (7,978,856 trainable); the count does not depend
on the input size (global average pooling), so tests may build it on 32x32 inputs.
"""

from __future__ import annotations

import keras

DEFAULT_INPUT_SHAPE = (224, 224, 3)


def build_densenet121(
    *,
    num_classes: int,
    input_shape: tuple[int, ...] | None = None,
    name: str = "densenet121",
) -> keras.Model:
    """Build DenseNet-121 (``weights=None``) with a logit (no softmax) classifier."""
    shape = tuple(input_shape) if input_shape is not None else DEFAULT_INPUT_SHAPE
    model = keras.applications.DenseNet121(
        weights=None,
        include_top=True,
        input_shape=shape,
        classes=num_classes,
        classifier_activation=None,
        name=name,
    )
    return model
