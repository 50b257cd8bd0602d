"""Per-example gradients of a Keras classifier from per-layer factors, without a loop over
examples (BackPACK's construction, Dangel et al. 2020): one forward pass records every
parametrised layer's input and pre-activation output, one backward pass of the summed loss gives
the back-propagated output gradients delta (row i = d l_i / d z_i, the examples do not interact
when BatchNorm uses its moving statistics), and the per-example gradients are per-layer products:

- Dense (inputs of rank 2): g_i[W] = a_i delta_i^T, g_i[b] = delta_i, kept as the factors
  (`factored.OuterBlock`, never formed);
- Dense on higher-rank inputs: the sum of those products over the positions;
- Conv2D (channels_last, one group): g_i[W] = sum over output positions of the input patch
  (the convolution's own padding, strides and dilation) times delta (kh kw c_in x c_out), one
  product per kernel offset over a strided window of the input; g_i[b] = sum of delta over
  positions;
- BatchNormalization with moving statistics: g_i[gamma] = sum over positions of
  delta * (x - mean) / sqrt(var + eps), g_i[beta] = sum of delta.

Models whose trainable layers are all of these kinds (the paper's MLP, SimpleCNN(-BN),
ResNet-32) are supported; `per_example_factors` returns None for any other model or loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras.src.models.functional import operation_fn as _with_call_context

from tfbreak.curvature.keras_loss import ClassificationLoss, measurement_mode
from tfbreak.curvature.operators.factored import FactoredGradients, OuterBlock, RowsBlock
from tfbreak.curvature.parameters import ParameterSpace
from tfbreak.curvature.sharding import Batch, BatchFunction

SUPPORTED = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.BatchNormalization)


def _graph(model: keras.Model):
    """The functional graph that runs `model` (Sequential models wrap one)."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_run_through_graph") or len(graph.inputs) != 1:
        return None
    return graph


def _supported_layer(layer) -> bool:
    if isinstance(layer, keras.layers.Dense):
        return not layer.lora_enabled and layer.quantization_mode is None
    if isinstance(layer, keras.layers.Conv2D):
        return layer.groups == 1 and layer.data_format == "channels_last" and not layer.lora_enabled
    if isinstance(layer, keras.layers.BatchNormalization):
        return layer.axis in (-1, len(layer.input.shape) - 1) and not layer.renorm
    return False


def _slots(space: ParameterSpace) -> dict[int, int]:
    """id(tf.Variable) -> offset of the variable in the flat parameter vector."""
    offsets = np.cumsum([0, *space.sizes[:-1]])
    return {id(v): int(o) for v, o in zip(space.variables, offsets, strict=True)}


def _tf(v) -> tf.Variable:
    return v.value if isinstance(v, keras.Variable) else v


def _same_padding(size: int, out: int, kernel: int, stride: int, dilation: int) -> list[int]:
    """[before, after] padding of one spatial axis under 'same' (TensorFlow's: the odd one
    after)."""
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return [total // 2, total - total // 2]


def _conv_kernel_rows(layer: keras.layers.Conv2D, a: tf.Tensor, d: tf.Tensor) -> tf.Tensor:
    """(n, kh, kw, c_in, c_out) per-example kernel gradients of a Conv2D with input a and output
    gradients d: g_i[p, q] = sum over output positions s of a_i[s * stride + p * dilation]
    d_i[s], one batched product per kernel offset (p, q) over the strided window of the
    (padded) input. Equal to input patches times d (what Conv2DBackpropFilter sums over the
    batch), without the (n, positions, kh kw c_in) patches: 32 ms against 54 ms for SimpleCNN's
    four convolutions at n = 128 (benchmarks/per_example_gradients.py)."""
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    out_h, out_w = int(d.shape[1]), int(d.shape[2])
    if layer.padding == "same":
        pad_h = _same_padding(int(a.shape[1]), out_h, kh, sh, dh)
        pad_w = _same_padding(int(a.shape[2]), out_w, kw, sw, dw)
        a = tf.pad(a, [[0, 0], pad_h, pad_w, [0, 0]])
    offsets = []
    for p in range(kh):
        for q in range(kw):
            window = a[
                :,
                p * dh : p * dh + (out_h - 1) * sh + 1 : sh,
                q * dw : q * dw + (out_w - 1) * sw + 1 : sw,
                :,
            ]
            offsets.append(tf.einsum("nhwc,nhwo->nco", window, d))
    return tf.stack(offsets, axis=1)


class KerasPerExample:
    """`factors(batch)` -> `FactoredGradients` of the per-example gradients of `loss_fn` over
    `variables` (every trainable variable of the model, in any order); one `BatchFunction`
    (gathering per-example factors in example order under a strategy), traced once."""

    def __init__(
        self,
        loss_fn: ClassificationLoss,
        variables: Sequence[tf.Variable],
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.loss_fn = loss_fn
        self.graph = _graph(loss_fn.model)
        self.space = ParameterSpace(variables)
        self.slots = _slots(self.space)
        self.layers = [layer for layer in loss_fn.model.layers if layer.trainable_weights]
        self.traces = 0
        self._kinds: list[tuple[str, int, int | None]] = []  # per block: kind, start, bias
        self._fn = BatchFunction(self._factors, strategy=strategy, gather=True)

    @classmethod
    def when_supported(
        cls,
        loss_fn,
        variables: Sequence[tf.Variable],
        strategy: tf.distribute.Strategy | None = None,
    ) -> KerasPerExample | None:
        """A `KerasPerExample` if it `supports` the loss and variables, else None."""
        return cls(loss_fn, variables, strategy) if cls.supports(loss_fn, variables) else None

    @staticmethod
    def supports(loss_fn, variables: Sequence[tf.Variable]) -> bool:
        """A `ClassificationLoss` with BatchNorm's moving statistics, on a single-input
        functional/Sequential model whose trainable layers are all supported and whose
        trainable variables are exactly `variables`."""
        if not isinstance(loss_fn, ClassificationLoss) or loss_fn.mode != "inference":
            return False
        model = loss_fn.model
        if _graph(model) is None:
            return False
        layers = [layer for layer in model.layers if layer.trainable_weights]
        if not all(isinstance(layer, SUPPORTED) and _supported_layer(layer) for layer in layers):
            return False
        covered = {id(_tf(w)) for layer in layers for w in layer.trainable_weights}
        return covered == {id(_tf(v)) for v in variables} and len(covered) == len(variables)

    def _offset(self, weight) -> int | None:
        return None if weight is None else self.slots[id(_tf(weight))]

    def _run(self, x, tape: tf.GradientTape) -> tuple[tf.Tensor, list]:
        """Outputs of the model with a record (layer, input, watched output) per layer."""
        taps = []

        def call(layer, *args, **kwargs):
            if not isinstance(layer, SUPPORTED):
                return _with_call_context(layer, training=False)(*args, **kwargs)
            a = args[0]
            if isinstance(layer, keras.layers.BatchNormalization):
                z = layer(a, training=False)
                tape.watch(z)
                taps.append((layer, a, z))
                return z
            z = (
                keras.ops.matmul(a, layer.kernel)
                if isinstance(layer, keras.layers.Dense)
                else layer.convolution_op(a, layer.kernel)
            )
            if layer.bias is not None:
                z = keras.ops.add(z, keras.ops.reshape(layer.bias, [1] * (len(z.shape) - 1) + [-1]))
            tape.watch(z)
            taps.append((layer, a, z))
            return layer.activation(z) if layer.activation is not None else z

        outputs = self.graph._run_through_graph([x], operation_fn=lambda op: op, call_fn=call)
        return tf.nest.flatten(outputs)[0], taps

    def _factors(self, batch: Batch) -> list[tf.Tensor]:
        self.traces += 1
        x, y = batch
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            with measurement_mode(self.loss_fn.model):  # float32 whatever the policy
                outputs, taps = self._run(x, tape)
            total = tf.reduce_sum(self.loss_fn.convention.loss(y, outputs))
        deltas = tape.gradient(total, [z for _, _, z in taps])
        tensors, kinds = [], []
        for (layer, a, _), d in zip(taps, deltas, strict=True):
            for kind, start, bias, parts in self._blocks(layer, a, d):
                kinds.append((kind, start, bias))
                tensors.extend(parts)
        self._kinds = kinds
        return tensors

    def _blocks(self, layer, a, d):
        """(kind, start, bias, per-example tensors) of one layer's per-example gradients."""
        n = tf.shape(a)[0]
        bias = self._offset(getattr(layer, "bias", None))
        if isinstance(layer, keras.layers.BatchNormalization):
            axes = list(range(1, len(a.shape) - 1))
            xhat = (a - layer.moving_mean) * tf.math.rsqrt(layer.moving_variance + layer.epsilon)
            out = []
            if layer.scale:
                out.append(
                    ("rows", self._offset(layer.gamma), None, [tf.reduce_sum(d * xhat, axes)])
                )
            if layer.center:
                out.append(("rows", self._offset(layer.beta), None, [tf.reduce_sum(d, axes)]))
            return out
        kernel = self._offset(layer.kernel)
        if isinstance(layer, keras.layers.Dense) and len(a.shape) == 2:
            return [("outer", kernel, bias, [a, d])]
        deltas = tf.reshape(d, [n, -1, d.shape[-1]])  # (n, positions, c_out)
        if isinstance(layer, keras.layers.Conv2D):
            rows = _conv_kernel_rows(layer, a, d)
        else:
            rows = tf.einsum("nsp,nsq->npq", tf.reshape(a, [n, -1, a.shape[-1]]), deltas)
        out = [("rows", kernel, None, [tf.reshape(rows, [n, -1])])]
        if bias is not None:
            out.append(("rows", bias, None, [tf.reduce_sum(deltas, axis=1)]))
        return out

    def factors(self, batch: Batch) -> FactoredGradients:
        """The per-example gradients of the examples of `batch` as per-layer factors."""
        tensors = iter(self._fn(batch))
        blocks = []
        for kind, start, bias in self._kinds:
            if kind == "outer":
                blocks.append(OuterBlock(next(tensors), next(tensors), start, bias))
            else:
                blocks.append(RowsBlock(next(tensors), start))
        return FactoredGradients(blocks, self.space.dim, self.space.dtype)
