"""Which tf.Variables the measurement core, the SGD step and weight decay act on.

All functions return the underlying ``tf.Variable`` objects (for a ``keras.Variable`` that is
``v.value``), so results of different functions can be matched by identity.
"""

from __future__ import annotations

import keras
import tensorflow as tf

#: Attribute set by :func:`tfbreak.models.build_model` naming the weight-decay policy.
WEIGHT_DECAY_POLICY_ATTR = "tfbreak_weight_decay_policy"
#: Policies: "conv_kernels" (ResNet-32, appendix D) or "kernels" (every other model).
WEIGHT_DECAY_POLICIES = ("conv_kernels", "kernels")


def _tf_variable(v) -> tf.Variable:
    return v.value if isinstance(v, keras.Variable) else v


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of ``model``, nested ones included, in construction order."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def _hub_variables(model: keras.Model) -> list[tf.Variable]:
    out = []
    for layer in _all_layers(model):
        out.extend(getattr(layer, "hub_trainable_variables", ()))
    return out


def trainable_tf_variables(model: keras.Model) -> list[tf.Variable]:
    """The underlying ``tf.Variable`` of every trainable parameter of ``model``.

    Keras variables come first, in ``model.trainable_variables`` order, then any variables
    restored from a TF-Hub SavedModel (BERT encoder), as they are. These are the parameters
    H and K are measured over (paper Sec. 2).
    """
    return [_tf_variable(v) for v in model.trainable_variables] + _hub_variables(model)


def weight_decay_variables(model: keras.Model) -> list[tf.Variable]:
    """The variables weight decay applies to (as ``tf.Variable``).

    - ResNet-32 (policy "conv_kernels"): conv kernels only, per appendix D ("We apply weight
      decay to all convolutional kernels"), following He et al. (2015).
    - Every other model (policy "kernels"): every weight matrix/tensor - Dense and Conv kernels,
      LSTM ``kernel`` and ``recurrent_kernel``, Embedding ``embeddings``; and for BERT the
      restored encoder variables of rank >= 2. Biases and BatchNorm/LayerNorm parameters are
      excluded. The paper uses weight decay only for ResNet-32; other runs set the coefficient 0.
    """
    policy = getattr(model, WEIGHT_DECAY_POLICY_ATTR, "kernels")
    if policy not in WEIGHT_DECAY_POLICIES:
        raise ValueError(f"unknown weight-decay policy {policy!r}")
    out: list[tf.Variable] = []
    seen: set[int] = set()
    for layer in _all_layers(model):
        if not layer.trainable:
            continue
        if policy == "conv_kernels":
            names = ("kernel",) if isinstance(layer, keras.layers.Conv2D) else ()
        else:
            names = ("kernel", "recurrent_kernel", "embeddings")
        for v in layer._trainable_variables if hasattr(layer, "_trainable_variables") else ():
            if v.name in names and id(v) not in seen:
                seen.add(id(v))
                out.append(_tf_variable(v))
    if policy == "kernels":
        out.extend(v for v in _hub_variables(model) if v.shape.rank >= 2)
    return out


def batchnorm_gammas(model: keras.Model) -> list[tf.Variable]:
    """``[gamma]`` of the last BatchNormalization layer (paper Sec. 4.3, ||gamma||); else ``[]``."""
    last = None
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale:
            last = layer
    return [] if last is None else [_tf_variable(last.gamma)]
