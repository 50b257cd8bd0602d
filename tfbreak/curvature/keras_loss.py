"""The loss callable of a Keras classifier for the measurement core, with the BatchNorm mode.

Curvature is measured without changing the model: "inference" calls the model with
training=False (moving statistics); "batch" uses batch statistics through `stateless_call`, so
the moving statistics are computed but never written (DESIGN.md, BatchNorm). The loss is also a
`FunctionalLoss`: `at(values, batch)` evaluates it with the trainable variables replaced by
tensors, which lets forward-mode autodiff differentiate along a direction of parameter space
(`stability.CurvatureAlong`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import keras
import tensorflow as tf

from tfbreak.curvature.sharding import Batch
from tfbreak.measure.settings import BN_MODES

BNMode = Literal["inference", "batch"]


class ClassificationLoss:
    """`loss_fn((x, y))` -> per-example softmax cross-entropy of the model's logits; `at(values,
    (x, y))` the same with the trainable variables (`parameters`, in that order) set to
    `values` (tensors), the model's state untouched."""

    def __init__(self, model: keras.Model, bn_mode: BNMode):
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode: expected one of {BN_MODES}, got {bn_mode!r}")
        self.model = model
        self.bn_mode = bn_mode
        self.parameters = [v.value for v in model.trainable_variables]

    def _stateless_logits(self, values: Sequence[tf.Tensor], x) -> tf.Tensor:
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        training = self.bn_mode == "batch"
        out, _ = self.model.stateless_call(list(values), non_trainable, x, training=training)
        return out

    def __call__(self, batch: Batch) -> tf.Tensor:
        x, y = batch
        if self.bn_mode == "inference":
            return cross_entropy(y, self.model(x, training=False))
        return cross_entropy(y, self._stateless_logits(self.parameters, x))

    def at(self, values: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        x, y = batch
        return cross_entropy(y, self._stateless_logits(values, x))


def classification_loss(model: keras.Model, *, bn_mode: BNMode) -> ClassificationLoss:
    """The per-example softmax cross-entropy of a Keras classifier (a `FunctionalLoss`)."""
    return ClassificationLoss(model, bn_mode)


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy -log softmax(z)[y] = logsumexp(z) - z_y.

    Written with elementary ops (not the fused sparse_softmax_cross_entropy_with_logits kernel)
    so that every autodiff mode works, nested forward mode included (`CurvatureAlong`):
    logsumexp is tf.reduce_logsumexp's own arithmetic (same values and gradients for finite
    logits) without its tf.where guard of infinite maxima, which nested ForwardAccumulators
    cannot differentiate."""
    labels = tf.cast(labels, tf.int32)
    shift = tf.stop_gradient(tf.reduce_max(logits, axis=-1, keepdims=True))
    logsumexp = tf.math.log(tf.reduce_sum(tf.exp(logits - shift), axis=-1)) + shift[..., 0]
    return logsumexp - tf.gather(logits, labels, axis=-1, batch_dims=1)
