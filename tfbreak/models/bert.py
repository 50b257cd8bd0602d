"""BERT on MNLI (appendix D): a TF-Hub BERT encoder + a dropout-free dense head on pooled_output.

The paper fine-tunes multilingual cased BERT-base (``tfhub.dev/google/bert_multi_cased_L-12_H-768_
A-12/1``, a TF1 hub.Module; versions >= 3 of the same handle are TF2 SavedModels with the encoder
signature used here) with sequences of length 40.

``hub.KerasLayer`` is a tf_keras layer and cannot live in a Keras 3 model, so
:class:`HubBertEncoder` wraps ``tensorflow_hub.load(handle)`` itself. The handle is a local
directory or a URL (`tfbreak.hub`: a run accepts a URL only with --download) of a SavedModel
whose ``__call__`` takes a dict ``input_word_ids``, ``input_mask``, ``input_type_ids`` (int32,
``[batch, seq]``) and returns a dict containing ``pooled_output``. The restored variables
are plain ``tf.Variable`` objects that Keras 3 does not track: they are exposed as
:attr:`HubBertEncoder.hub_trainable_variables` and included by
:func:`tfbreak.models.trainable_tf_variables`, which is what the measurement core and the training
step differentiate with respect to. ``model.trainable_variables`` (Keras) holds only the head.
"""

from __future__ import annotations

import warnings

import keras
import tensorflow as tf

from tfbreak import extras
from tfbreak.hub import PAPER_HANDLE

INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
DEFAULT_SEQUENCE_LENGTH = 40


def _restored_trainable_variables(module) -> list[tf.Variable]:
    """Trainable variables of a restored SavedModel, by TF-Hub's reusable-SavedModel convention.

    Like ``hub.KerasLayer``, use the ``trainable_variables`` attribute when present. Otherwise
    (a SavedModel exported without it) fall back to every trainable ``tf.Variable`` reachable from
    the object graph, with a warning.
    """
    found = getattr(module, "trainable_variables", None)
    if found is not None:
        return list(found)
    warnings.warn(
        "SavedModel has no `trainable_variables` attribute; using every trainable tf.Variable "
        "reachable from it",
        stacklevel=3,
    )
    seen: set[int] = set()
    result = []
    for obj in tf.train.TrackableView(module).descendants():
        if isinstance(obj, tf.Variable) and obj.trainable and id(obj) not in seen:
            seen.add(id(obj))
            result.append(obj)
    return result


class HubBertEncoder(keras.layers.Layer):
    """Keras 3 layer around ``tensorflow_hub.load(handle)`` returning ``pooled_output``.

    ``encoder_dropout=False`` (default) always calls the encoder with ``training=False``: the
    dropout inside BERT would make the loss, and so H and K, stochastic. Set it to True to pass
    the Keras training flag through.
    """

    def __init__(self, handle: str, *, encoder_dropout: bool = False, **kwargs):
        super().__init__(**kwargs)
        extras.require("bert", "--model=bert")
        import tensorflow_hub as hub

        self.handle = handle
        self.encoder_dropout = encoder_dropout
        self._hub_module = hub.load(handle)
        self._hub_variables = _restored_trainable_variables(self._hub_module)

    @property
    def hub_trainable_variables(self) -> list[tf.Variable]:
        """The restored trainable ``tf.Variable`` objects of the encoder."""
        return list(self._hub_variables)

    def call(self, inputs, training=None):
        feed = {key: tf.cast(inputs[key], tf.int32) for key in INPUT_KEYS}
        flag = bool(training) if self.encoder_dropout else False
        outputs = self._hub_module(feed, training=flag)
        return outputs["pooled_output"]

    def get_config(self):
        return {
            **super().get_config(),
            "handle": self.handle,
            "encoder_dropout": self.encoder_dropout,
        }


def build_bert(
    *,
    num_classes: int,
    handle: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    encoder_dropout: bool = False,
    name: str = "bert",
) -> keras.Model:
    """Build BERT + dense classification head (no dropout) on ``pooled_output``.

    ``input_shape`` is ``(sequence_length,)`` (default 40, appendix D); inputs are the dict of
    int32 ``input_word_ids``/``input_mask``/``input_type_ids`` produced by
    :class:`tfbreak.data.mnli.BertPairTokenizer`.
    """
    if handle is None:
        raise ValueError(
            "build_model('bert') needs handle=<local directory (or URL) of a TF-Hub BERT "
            f"SavedModel>, e.g. a downloaded copy of {PAPER_HANDLE}"
        )
    seq_len = input_shape[0] if input_shape is not None else DEFAULT_SEQUENCE_LENGTH
    inputs = {key: keras.Input(shape=(seq_len,), dtype="int32", name=key) for key in INPUT_KEYS}
    pooled = HubBertEncoder(handle, encoder_dropout=encoder_dropout, name="bert_encoder")(inputs)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name="logits",
    )(pooled)
    return keras.Model(inputs, logits, name=name)
