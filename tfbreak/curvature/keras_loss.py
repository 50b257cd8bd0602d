"""The loss callable of a Keras classifier for the measurement core, with the BatchNorm mode.

Curvature is measured without changing the model: "inference" calls the model with
training=False (moving statistics); "batch" uses batch statistics through `stateless_call`, so
the moving statistics are computed but never written (DESIGN.md, BatchNorm).
"""

from __future__ import annotations

from typing import Literal

import keras
import tensorflow as tf

from tfbreak.curvature.sharding import Batch, LossFn
from tfbreak.measure.settings import BN_MODES

BNMode = Literal["inference", "batch"]


def classification_loss(model: keras.Model, *, bn_mode: BNMode) -> LossFn:
    """`loss_fn((x, y))` -> per-example softmax cross-entropy of the model's logits."""
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode: expected one of {BN_MODES}, got {bn_mode!r}")

    def logits(x):
        if bn_mode == "inference":
            return model(x, training=False)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        out, _ = model.stateless_call(trainable, non_trainable, x, training=True)
        return out

    def loss_fn(batch: Batch) -> tf.Tensor:
        x, y = batch
        return cross_entropy(y, logits(x))

    return loss_fn


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy -log softmax(z)[y] = logsumexp(z) - z_y.

    Written with elementary ops (not the fused sparse_softmax_cross_entropy_with_logits kernel)
    so that every autodiff mode works, forward-over-forward included (`curvature_along`)."""
    labels = tf.cast(labels, tf.int32)
    return tf.reduce_logsumexp(logits, axis=-1) - tf.gather(logits, labels, axis=-1, batch_dims=1)
