"""The per-example loss of a Keras classifier for the measurement core, with the BatchNorm mode.

Which loss: the model's own. A compiled model's loss says whether it outputs logits or
probabilities (sparse/categorical or binary cross-entropy, `from_logits` either way); an
uncompiled one is read from its final activation (softmax or sigmoid: probabilities; none:
logits). Probabilities are never differentiated through a log: the logits are taken from the
softmax/sigmoid that produced them (Keras keeps them on its output, `_keras_logits`), so
-log p_y = logsumexp(z) - z_y is exact and stable whatever the convention. Anything else is a
one-line error asking for a `loss_fn`.

Curvature is measured without changing the model: "inference" calls the model with
training=False (moving statistics); "batch" uses batch statistics through `stateless_call`, so
the moving statistics are computed but never written; "auto" is "batch"
for models with BatchNorm (moving statistics at initialisation are those of no data: a deep
network normalised with them can overflow) and "inference" otherwise.

The loss is also a `FunctionalLoss` for Keras 3 models: `at(values, batch)` evaluates it with
the trainable variables replaced by tensors, which lets forward-mode autodiff differentiate
along a direction of parameter space (`stability.CurvatureAlong`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import keras
import tensorflow as tf

from tfbreak.curvature.modes import BN_MODES
from tfbreak.curvature.parameters import as_tf_variable
from tfbreak.curvature.sharding import Batch

Link = Literal["softmax", "sigmoid"]
PROBABILITY_LOSSES: dict[str, Link] = {
    "sparse_categorical_crossentropy": "softmax",
    "categorical_crossentropy": "softmax",
    "binary_crossentropy": "sigmoid",
}


@dataclass(frozen=True)
class OutputConvention:
    """What a classifier outputs: probabilities or logits, through a softmax or a sigmoid."""

    probabilities: bool
    link: Link

    def logits(self, output: tf.Tensor) -> tf.Tensor:
        """The logits z of the model's output (the input of its softmax/sigmoid)."""
        if not self.probabilities:
            return output
        logits = getattr(output, "_keras_logits", None)
        if logits is None:
            raise ValueError(
                f"loss_fn: the model outputs probabilities (its loss or last activation says "
                f"{self.link}) but they do not come from a Keras {self.link}, so their logits "
                "cannot be recovered; pass loss_fn=<per-example losses of a batch>"
            )
        return logits

    def loss(self, labels: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        """Per-example cross-entropy of integer or one-hot (soft) labels."""
        z = self.logits(output)
        if self.link == "sigmoid":
            z = tf.reshape(z, [-1])
            y = tf.cast(tf.reshape(labels, [-1]), z.dtype)
            return tf.nn.softplus(z) - y * z  # -y log s(z) - (1 - y) log(1 - s(z))
        if labels.shape.rank == z.shape.rank and labels.shape[-1] == 1:  # (n, 1) class ids
            labels = tf.squeeze(labels, -1)
        if labels.shape.rank == z.shape.rank:  # one-hot or soft labels
            y = tf.cast(labels, z.dtype)
            return logsumexp(z) - tf.reduce_sum(y * z, axis=-1)
        return cross_entropy(labels, z)

    def class_probabilities(self, output: tf.Tensor) -> tf.Tensor:
        """Class probabilities, (n, classes): softmax(z), or [1 - s(z), s(z)] for a sigmoid."""
        z = self.logits(output)
        if self.link == "sigmoid":
            s = tf.sigmoid(tf.reshape(z, [-1, 1]))
            return tf.concat([1.0 - s, s], axis=-1)
        return tf.nn.softmax(z)

    def predictions(self, output: tf.Tensor) -> tf.Tensor:
        """Predicted classes (int32)."""
        z = self.logits(output)
        if self.link == "sigmoid":
            return tf.cast(tf.reshape(z, [-1]) > 0, tf.int32)
        return tf.argmax(z, -1, output_type=tf.int32)

    def correct(self, labels: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        """Number of correctly classified examples (int32) for integer or one-hot labels."""
        if labels.shape.rank == output.shape.rank and labels.shape[-1] not in (1, None):
            labels = tf.argmax(labels, -1, output_type=tf.int32)
        hits = tf.equal(self.predictions(output), tf.cast(tf.reshape(labels, [-1]), tf.int32))
        return tf.reduce_sum(tf.cast(hits, tf.int32))


def _compiled_convention(loss: Any) -> OutputConvention:
    if isinstance(loss, str):
        name, from_logits = loss, False
    elif callable(getattr(loss, "get_config", None)):
        config = loss.get_config()
        name, from_logits = config.get("name", ""), bool(config.get("from_logits", False))
    else:
        name, from_logits = getattr(loss, "__name__", repr(loss)), False
    if name not in PROBABILITY_LOSSES:
        raise ValueError(
            f"loss_fn: the model is compiled with the loss {name!r}; tfbreak reads cross-entropy "
            "losses (sparse/categorical/binary); pass loss_fn=<per-example losses of a batch>"
        )
    return OutputConvention(not from_logits, PROBABILITY_LOSSES[name])


def _final_activation(model: keras.Model) -> str | None:
    layers = getattr(model, "layers", None) or []
    if not layers:
        return None
    last = layers[-1]
    if type(last).__name__ == "Softmax":
        return "softmax"
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", None) if activation is not None else None


def output_convention(model: keras.Model) -> OutputConvention:
    """The model's output convention: from its compiled loss, else from its final activation;
    ValueError (naming `loss_fn`) when neither tells."""
    compiled = getattr(model, "loss", None)
    if compiled is not None:
        return _compiled_convention(compiled)
    activation = _final_activation(model)
    if activation in ("softmax", "sigmoid"):
        return OutputConvention(True, activation)
    if activation == "linear":
        outputs = getattr(model, "outputs", None) or [None]
        units = outputs[0].shape[-1] if outputs[0] is not None else None
        return OutputConvention(False, "sigmoid" if units == 1 else "softmax")
    raise ValueError(
        f"loss_fn: cannot tell whether model {getattr(model, 'name', model)!r} outputs logits or "
        "probabilities (not compiled, last layer without softmax/sigmoid/linear activation); "
        "compile it with its loss or pass loss_fn=<per-example losses of a batch>"
    )


def has_batchnorm(model: keras.Model) -> bool:
    flat = getattr(model, "_flatten_layers", None)
    layers = flat(include_self=False, recursive=True) if flat else getattr(model, "layers", [])
    return any("BatchNormalization" in type(layer).__name__ for layer in layers)


def resolve_bn_mode(model: keras.Model, bn_mode: str) -> str:
    """ "inference" or "batch": `bn_mode`, with "auto" resolved for this model."""
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode: expected one of {BN_MODES}, got {bn_mode!r}")
    if bn_mode != "auto":
        return bn_mode
    return "batch" if has_batchnorm(model) and hasattr(model, "stateless_call") else "inference"


class ClassificationLoss:
    """`loss_fn((x, y))` -> per-example cross-entropy of the model (its own convention, see the
    module doc), BatchNorm statistics per `mode` ("inference" or "batch"), nothing about the
    model changed; `at(values, (x, y))` the same with the trainable variables (`parameters`, in
    that order) set to `values` (tensors), for Keras 3 models (`stateless_call`)."""

    def __init__(self, model: keras.Model, mode: str, convention: OutputConvention):
        self.model = model
        self.mode = mode
        self.convention = convention
        self.parameters = [as_tf_variable(v) for v in model.trainable_variables]

    def _stateless_outputs(self, values: Sequence[tf.Tensor], x: Any) -> tf.Tensor:
        if not hasattr(self.model, "stateless_call"):
            raise NotImplementedError("at: the model has no stateless_call (not Keras 3)")
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        training = self.mode == "batch"
        out, _ = self.model.stateless_call(list(values), non_trainable, x, training=training)
        return out

    def __call__(self, batch: Batch) -> tf.Tensor:
        x, y = batch
        if self.mode == "inference":
            return self.convention.loss(y, self.model(x, training=False))
        trainable = [v.value for v in self.model.trainable_variables]
        return self.convention.loss(y, self._stateless_outputs(trainable, x))

    def at(self, values: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        x, y = batch
        return self.convention.loss(y, self._stateless_outputs(values, x))


def classification_loss(
    model: keras.Model, *, bn_mode: str, convention: OutputConvention | None = None
) -> ClassificationLoss:
    """The per-example cross-entropy of a Keras classifier (see `ClassificationLoss`), with
    `bn_mode` resolved for the model and its output convention read from it unless given."""
    mode = resolve_bn_mode(model, bn_mode)
    if mode == "batch" and not hasattr(model, "stateless_call"):
        raise ValueError(
            f"bn_mode: 'batch' needs a Keras 3 model (stateless_call, so that the moving "
            f"statistics are not updated); {getattr(model, 'name', model)!r} is not one: use "
            "bn_mode='inference'"
        )
    return ClassificationLoss(model, mode, convention or output_convention(model))


def logsumexp(logits: tf.Tensor) -> tf.Tensor:
    """log sum_k exp(z_k) over the last axis: tf.reduce_logsumexp's own arithmetic (same values
    and gradients for finite logits) without its tf.where guard of infinite maxima, which nested
    ForwardAccumulators cannot differentiate (`CurvatureAlong`)."""
    shift = tf.stop_gradient(tf.reduce_max(logits, axis=-1, keepdims=True))
    return tf.math.log(tf.reduce_sum(tf.exp(logits - shift), axis=-1)) + shift[..., 0]


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy -log softmax(z)[y] = logsumexp(z) - z_y, written with
    elementary ops (not the fused sparse_softmax_cross_entropy_with_logits kernel) so that every
    autodiff mode works, nested forward mode included."""
    labels = tf.cast(labels, tf.int32)
    return logsumexp(logits) - tf.gather(logits, labels, axis=-1, batch_dims=1)
