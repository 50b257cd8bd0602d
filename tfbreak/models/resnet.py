"""ResNet-32 for CIFAR-10 (He et al. 2015, Sec. 4.2; appendix D of the paper).

3 stages of 5 basic blocks (two 3x3 conv + BatchNorm each) with 16/32/64 filters, a 3x3 stem
conv, global average pooling and a dense classifier: 6n+2 = 32 layers for n = 5. Shortcuts are
He et al.'s option A (identity; when the shape changes, stride-2 subsampling and zero-padding of
the extra channels), which is parameter-free and gives the 0.46M parameters of He et al.'s
Table 6 (464,154 trainable with 10 classes; 466,426 incl. BatchNorm moving statistics).
Convolutions have no bias (BatchNorm follows) and He-normal initialisation. Weight decay applies
to the conv kernels only (appendix D: "We apply weight decay to all convolutional kernels").
"""

from __future__ import annotations

import keras

DEFAULT_INPUT_SHAPE = (32, 32, 3)


class ZeroPadShortcut(keras.layers.Layer):
    """Option-A shortcut: subsample spatially by ``stride`` and zero-pad channels."""

    def __init__(self, out_channels: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.stride = stride

    def call(self, x):
        x = x[:, :: self.stride, :: self.stride, :]
        extra = self.out_channels - x.shape[-1]
        before = extra // 2
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, extra - before]])

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        h = None if h is None else (h + self.stride - 1) // self.stride
        w = None if w is None else (w + self.stride - 1) // self.stride
        return (n, h, w, self.out_channels)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels, "stride": self.stride}


def _conv(filters: int, stride: int, dtype: str | None) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        dtype=dtype,
    )


def build_resnet32(
    *,
    num_classes: int,
    input_shape: tuple[int, ...] | None = None,
    blocks_per_stage: int = 5,
    activation: str = "relu",
    dtype: str | None = None,
    name: str = "resnet32",
) -> keras.Model:
    """Build ResNet-(6n+2) with option-A shortcuts; the default n = 5 gives ResNet-32."""
    shape = tuple(input_shape) if input_shape is not None else DEFAULT_INPUT_SHAPE
    inputs = keras.Input(shape=shape, dtype=dtype or "float32", name="image")
    x = _conv(16, 1, dtype)(inputs)
    x = keras.layers.BatchNormalization(dtype=dtype)(x)
    x = keras.layers.Activation(activation, dtype=dtype)(x)
    channels = 16
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks_per_stage):
            stride = 2 if (stage > 0 and block == 0) else 1
            y = _conv(filters, stride, dtype)(x)
            y = keras.layers.BatchNormalization(dtype=dtype)(y)
            y = keras.layers.Activation(activation, dtype=dtype)(y)
            y = _conv(filters, 1, dtype)(y)
            y = keras.layers.BatchNormalization(dtype=dtype)(y)
            if stride != 1 or channels != filters:
                shortcut = ZeroPadShortcut(filters, stride, dtype=dtype)(x)
            else:
                shortcut = x
            x = keras.layers.Add(dtype=dtype)([y, shortcut])
            x = keras.layers.Activation(activation, dtype=dtype)(x)
            channels = filters
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype)(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    model = keras.Model(inputs, logits, name=name)
    return model
