"""A tiny BERT exported as a TF-Hub SavedModel (TF-Hub BERT encoder interface), for tests."""

from __future__ import annotations

import tensorflow as tf

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + "the a cat dog sat ran on mat . ##s".split()
SEQ = 12
KEYS = ("input_word_ids", "input_mask", "input_type_ids")


def export_tiny_bert(directory) -> str:
    """Export a tiny keras_hub BertBackbone with TF-Hub's BERT encoder interface.

    Like TF-Hub's BERT SavedModels: ``__call__(dict, training)`` traced for training in
    {False, True}, returning ``pooled_output``/``sequence_output``; ``variables`` and
    ``trainable_variables`` attributes (reusable SavedModel API); ``assets/vocab.txt``.
    """
    import keras_hub

    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=64,  # >= 40, the MNLI packing length (App. D)
        dropout=0.1,
    )
    root = tf.train.Checkpoint()
    root.backbone = backbone
    root.vocab_file = tf.saved_model.Asset(str(vocab))
    root.variables = [v.value for v in backbone.variables]
    root.trainable_variables = [v.value for v in backbone.trainable_variables]

    @tf.function
    def call(inputs, training=False):
        out = backbone(
            {
                "token_ids": inputs["input_word_ids"],
                "padding_mask": inputs["input_mask"],
                "segment_ids": inputs["input_type_ids"],
            },
            training=training,
        )
        return {"pooled_output": out["pooled_output"], "sequence_output": out["sequence_output"]}

    spec = {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in KEYS}
    for training in (False, True):
        call.get_concrete_function(spec, training=training)
    root.__call__ = call
    path = directory / "tiny_bert"
    tf.saved_model.save(root, str(path))
    return str(path)
