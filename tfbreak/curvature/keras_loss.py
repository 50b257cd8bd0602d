"""The per-example loss of a Keras classifier for the measurement core, with the BatchNorm mode.

Which loss: the model's own. A compiled model's loss says whether it outputs logits or
probabilities (sparse/categorical or binary cross-entropy, `from_logits` either way), how its
labels are smoothed (`label_smoothing`) and its weight (`loss_weights` of compile), both
reproduced; an option tfbreak cannot reproduce (`reduction="sum"` or `"none"`, `ignore_class`,
an `axis` other than the last, loss weights of several outputs) is a one-line error naming
it. An uncompiled model is read from its final activation (softmax or sigmoid:
probabilities; none: logits). Probabilities are never differentiated through a log: the logits
are taken from the softmax/sigmoid that produced them (Keras keeps them on its output,
`_keras_logits`), so -log p_y = logsumexp(z) - z_y is exact and stable whatever the
convention. Anything else is a one-line error asking for a `loss_fn`.

The operator is deterministic and measured without changing the model (`measurement_mode`):
the model is called with training=False, so dropout and every other training-time noise layer
(GaussianNoise, random augmentation layers, ...) is off; BatchNorm follows the mode:
"inference" normalises with the moving statistics, "batch" with the statistics of the batch
(through `stateless_call`, so the moving statistics are computed but never written); "auto" is
"batch" for models with BatchNorm (moving statistics at initialisation are those of no data: a
deep network normalised with them can overflow) and "inference" otherwise. Every layer computes
in float32 while measured, whatever its mixed-precision policy (mixed_float16, mixed_bfloat16).

The loss is also a `FunctionalLoss` for Keras 3 models: `at(values, batch)` evaluates it with
the trainable variables replaced by tensors, which lets forward-mode autodiff differentiate
along a direction of parameter space (`stability.CurvatureAlong`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import keras
import tensorflow as tf

from tfbreak.curvature.modes import BN_MODES
from tfbreak.curvature.parameters import as_tf_variable
from tfbreak.curvature.sharding import Batch, FunctionalLoss, LossFn

Link = Literal["softmax", "sigmoid"]
PROBABILITY_LOSSES: dict[str, Link] = {
    "sparse_categorical_crossentropy": "softmax",
    "categorical_crossentropy": "softmax",
    "binary_crossentropy": "sigmoid",
}


# Keras's reductions of a loss that, without sample weights, are the mean over the batch.
MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "auto")


@dataclass(frozen=True)
class OutputConvention:
    """What a classifier outputs: probabilities or logits, through a softmax or a sigmoid; the
    label smoothing eps of its compiled loss (the labels become (1 - eps) y + eps / K for K
    classes, (1 - eps) y + eps / 2 for a sigmoid, as Keras's cross-entropies smooth them) and
    its compiled `loss_weights` w (the loss is w times the cross-entropy)."""

    probabilities: bool
    link: Link
    label_smoothing: float = 0.0
    weight: float = 1.0

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
        """Per-example cross-entropy of integer or one-hot (soft) labels, smoothed by
        `label_smoothing`, times `weight`."""
        losses = self._cross_entropy(labels, self.logits(output))
        return losses if self.weight == 1.0 else self.weight * losses

    def _cross_entropy(self, labels: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
        eps = self.label_smoothing
        if self.link == "sigmoid":
            z = tf.reshape(z, [-1])
            y = tf.cast(tf.reshape(labels, [-1]), z.dtype)
            if eps:
                y = y * (1.0 - eps) + 0.5 * eps
            return tf.nn.softplus(z) - y * z  # -y log s(z) - (1 - y) log(1 - s(z))
        if labels.shape.rank == z.shape.rank and labels.shape[-1] == 1:  # (n, 1) class ids
            labels = tf.squeeze(labels, -1)
        if eps and labels.shape.rank != z.shape.rank:  # class ids, smoothed: as one-hot
            labels = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(z)[-1], dtype=z.dtype)
        if labels.shape.rank == z.shape.rank:  # one-hot or soft labels
            y = tf.cast(labels, z.dtype)
            if eps:
                y = y * (1.0 - eps) + eps / tf.cast(tf.shape(z)[-1], z.dtype)
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


def _refuse_options(name: str, config: dict[str, Any]) -> None:
    """A one-line error for a compiled loss option the measured loss would not reproduce."""
    reduction = config.get("reduction", "sum_over_batch_size")
    refused = {
        "reduction": (
            reduction not in MEAN_REDUCTIONS,
            f"{reduction!r} (tfbreak measures the mean of the per-example losses; compile "
            "with reduction='sum_over_batch_size')",
        ),
        "ignore_class": (
            config.get("ignore_class") is not None,
            f"{config.get('ignore_class')!r} (examples of that class would be left out)",
        ),
        "axis": (config.get("axis", -1) != -1, f"{config.get('axis')!r} (classes on axis -1)"),
    }
    for option, (bad, why) in refused.items():
        if bad:
            raise ValueError(
                f"loss_fn: the model's compiled {name} has {option}={why}; tfbreak does not "
                "reproduce it: pass loss_fn=<per-example losses of a batch>"
            )


def _loss_weight(model: keras.Model) -> float:
    """The compiled `loss_weights` of a one-output model (1 when not given); a one-line error
    for several."""
    weights = None
    for holder in ("_compile_loss", "compiled_loss"):  # Keras 3, tf_keras
        weights = getattr(getattr(model, holder, None), "_user_loss_weights", None)
        if weights is not None:
            break
    if weights is None:
        return 1.0
    values = list(weights.values()) if isinstance(weights, dict) else weights
    values = list(values) if isinstance(values, list | tuple) else [values]
    if len(values) != 1:
        raise ValueError(
            f"loss_fn: the model is compiled with loss_weights={weights!r}; tfbreak measures "
            "one loss: pass loss_fn=<per-example losses of a batch>"
        )
    return float(values[0])


def _compiled_convention(loss: Any) -> OutputConvention:
    config: dict[str, Any] = {}
    if isinstance(loss, str):
        name = loss
    elif callable(getattr(loss, "get_config", None)):
        config = loss.get_config()
        name = config.get("name", "")
    else:
        name = getattr(loss, "__name__", repr(loss))
    if name not in PROBABILITY_LOSSES:
        raise ValueError(
            f"loss_fn: the model is compiled with the loss {name!r}; tfbreak reads cross-entropy "
            "losses (sparse/categorical/binary); pass loss_fn=<per-example losses of a batch>"
        )
    _refuse_options(name, config)
    return OutputConvention(
        not config.get("from_logits", False),
        PROBABILITY_LOSSES[name],
        float(config.get("label_smoothing", 0.0) or 0.0),
    )


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
        convention = _compiled_convention(compiled)
        weight = _loss_weight(model)
        return convention if weight == 1.0 else dataclasses.replace(convention, weight=weight)
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


def _layers(model: keras.Model) -> list:
    """The model and every layer in it (nested models' layers included)."""
    flat = getattr(model, "_flatten_layers", None)
    if flat is not None:
        return list(flat(include_self=True, recursive=True))
    return [model, *getattr(model, "layers", [])]


def has_batchnorm(model: keras.Model) -> bool:
    return any("BatchNormalization" in type(layer).__name__ for layer in _layers(model))


def resolve_bn_mode(model: keras.Model, bn_mode: str) -> str:
    """ "inference" or "batch": `bn_mode`, with "auto" resolved for this model."""
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode: expected one of {BN_MODES}, got {bn_mode!r}")
    if bn_mode != "auto":
        return bn_mode
    return "batch" if has_batchnorm(model) and hasattr(model, "stateless_call") else "inference"


def policy_name(model: keras.Model) -> str:
    """The model's dtype policy ("float32", "mixed_float16", "mixed_bfloat16", ...)."""
    policy = getattr(model, "dtype_policy", None) or getattr(model, "_dtype_policy", None)
    return str(getattr(policy, "name", policy or "float32"))


def _below_float32(layer) -> bool:
    """A layer computing in float16 or bfloat16 (a mixed-precision policy), not quantized."""
    policy = getattr(layer, "dtype_policy", None) or getattr(layer, "_dtype_policy", None)
    if policy is None or getattr(policy, "quantization_mode", None) is not None:
        return False
    return str(getattr(policy, "compute_dtype", "float32")) in ("float16", "bfloat16")


def _set_policy(layer, policy) -> None:
    if hasattr(layer, "_set_dtype_policy"):  # tf_keras
        layer._set_dtype_policy(policy)
    else:
        layer.dtype_policy = policy


def _batch_statistics(call):
    """A BatchNorm layer's `call` that normalises with the batch's statistics whatever
    `training` it is given (its moving statistics updates are left to `stateless_call`)."""

    def call_in_training_mode(*args, **kwargs):
        return call(*args, **{**kwargs, "training": True})

    return call_in_training_mode


@contextlib.contextmanager
def measurement_mode(model: keras.Model, *, batch_statistics: bool = False) -> Iterator[None]:
    """Within it, every layer of `model` computes in float32 whatever its mixed-precision
    policy, and, with `batch_statistics`, every BatchNorm layer normalises with the statistics
    of its batch whatever `training` it gets. Call the model with training=False inside it:
    dropout and the other training-time noise layers are then off, BatchNorm as chosen (batch
    statistics need `stateless_call`, which leaves the moving statistics as they are). The
    layers are restored on exit. Nothing is changed for a float32 model in inference mode."""
    lowered = [(layer, layer.dtype_policy) for layer in _layers(model) if _below_float32(layer)]
    forced = []
    if batch_statistics:
        forced = [layer for layer in _layers(model) if "BatchNormalization" in type(layer).__name__]
    try:
        for layer, _ in lowered:
            _set_policy(layer, "float32")
        for layer in forced:
            object.__setattr__(layer, "call", _batch_statistics(layer.call))
        yield
    finally:
        for layer in forced:
            object.__delattr__(layer, "call")
        for layer, policy in lowered:
            _set_policy(layer, policy)


class ClassificationLoss:
    """`loss_fn((x, y))` -> per-example cross-entropy of the model (its own convention, see the
    module doc), BatchNorm statistics per `mode` ("inference" or "batch"), dropout and noise
    layers off, float32, nothing about the model changed; `at(values, (x, y))` the same with the
    trainable variables (`parameters`, in that order) set to `values` (tensors), for Keras 3
    models (`stateless_call`)."""

    def __init__(self, model: keras.Model, mode: str, convention: OutputConvention):
        self.model = model
        self.mode = mode
        self.convention = convention
        self.parameters = [as_tf_variable(v) for v in model.trainable_variables]

    def outputs(self, x: Any) -> tf.Tensor:
        """The model's output on `x` as measured (the mode's BatchNorm statistics, no noise,
        float32)."""
        if self.mode == "inference":
            with measurement_mode(self.model):
                return self.model(x, training=False)
        trainable = [v.value for v in self.model.trainable_variables]
        return self._stateless_outputs(trainable, x)

    def _stateless_outputs(self, values: Sequence[tf.Tensor], x: Any) -> tf.Tensor:
        if not hasattr(self.model, "stateless_call"):
            raise NotImplementedError("at: the model has no stateless_call (not Keras 3)")
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        with measurement_mode(self.model, batch_statistics=self.mode == "batch"):
            out, _ = self.model.stateless_call(list(values), non_trainable, x, training=False)
        return out

    def __call__(self, batch: Batch) -> tf.Tensor:
        x, y = batch
        return self.convention.loss(y, self.outputs(x))

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


def _float32(t: tf.Tensor) -> tf.Tensor:
    return tf.cast(t, tf.float32) if t.dtype in (tf.float16, tf.bfloat16) else t


class Float32Loss:
    """A user's `loss_fn` evaluated with every layer of `model` in float32 (a float16 or
    bfloat16 result cast to float32), whatever the model's mixed-precision policy."""

    def __init__(self, model: keras.Model, loss_fn: LossFn):
        self.model, self.loss_fn = model, loss_fn

    def __call__(self, batch: Batch) -> tf.Tensor:
        with measurement_mode(self.model):
            return _float32(self.loss_fn(batch))


class Float32FunctionalLoss(Float32Loss):
    """`Float32Loss` of a `FunctionalLoss` (keeps `parameters` and `at`)."""

    def __init__(self, model: keras.Model, loss_fn: FunctionalLoss):
        super().__init__(model, loss_fn)
        self.parameters = loss_fn.parameters

    def at(self, values: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor:
        with measurement_mode(self.model):
            return _float32(self.loss_fn.at(values, batch))


def measured_loss(model: keras.Model, loss_fn: LossFn | None, *, bn_mode: str) -> LossFn:
    """The loss a measurement differentiates: the model's own (`classification_loss`), or the
    user's `loss_fn`, run in float32 when the model has a mixed-precision policy (unchanged
    otherwise; it should call the model with training=False itself)."""
    if loss_fn is None:
        return classification_loss(model, bn_mode=bn_mode)
    if not any(_below_float32(layer) for layer in _layers(model)):
        return loss_fn
    if isinstance(loss_fn, FunctionalLoss):
        return Float32FunctionalLoss(model, loss_fn)
    return Float32Loss(model, loss_fn)


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


def measurement_modes(model: keras.Model, loss_fn: LossFn, bn_mode: str) -> dict[str, Any]:
    """How `model` is measured with `loss_fn` (metadata.json keys, docs/run_directory.md):
    `bn_mode` ("inference" or "batch"), `noise_layers` ("off"; "loss_fn" when a user's loss
    decides), `measurement_dtype` (of the parameters and the measured computation),
    `dtype_policy` (the model's own, e.g. "mixed_float16"), `loss` (the cross-entropy read from
    the model, or "loss_fn") and, when the model has regularization losses the measured loss
    leaves out (kernel_regularizer, add_loss), `regularization_losses: "excluded"`."""
    own = isinstance(loss_fn, ClassificationLoss)
    variables = [as_tf_variable(v) for v in model.trainable_variables]
    dtypes = sorted({v.dtype.name for v in variables}) or ["float32"]
    modes: dict[str, Any] = {
        "bn_mode": loss_fn.mode if own else resolve_bn_mode(model, bn_mode),
        "noise_layers": "off" if own else "loss_fn",
        "measurement_dtype": "/".join(dtypes),
        "dtype_policy": policy_name(model),
        "loss": "loss_fn",
    }
    if own:
        c = loss_fn.convention
        modes["loss"] = {
            "link": c.link,
            "outputs": "probabilities" if c.probabilities else "logits",
            "label_smoothing": c.label_smoothing,
            "loss_weight": c.weight,
        }
        if getattr(model, "losses", None):
            modes["regularization_losses"] = "excluded"
    return modes


def modes_line(modes: dict[str, Any]) -> str:
    """The measurement modes in one short line (printed once per run)."""
    bn = {"batch": "batch statistics", "inference": "moving statistics"}[modes["bn_mode"]]
    parts = [f"bn_mode={modes['bn_mode']} ({bn})"]
    parts.append("dropout/noise layers off" if modes["noise_layers"] == "off" else "loss_fn")
    policy = modes["dtype_policy"]
    precision = modes["measurement_dtype"]
    parts.append(precision if policy == precision else f"{precision} (model policy {policy})")
    loss = modes["loss"]
    if isinstance(loss, dict) and loss["label_smoothing"]:
        parts.append(f"label_smoothing={loss['label_smoothing']:g}")
    if isinstance(loss, dict) and loss["loss_weight"] != 1.0:
        parts.append(f"loss_weights={loss['loss_weight']:g}")
    if modes.get("regularization_losses") == "excluded":
        parts.append("the model's regularization losses excluded (pass loss_fn to include them)")
    return "measuring with " + ", ".join(parts)
