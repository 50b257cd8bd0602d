"""MultiNLI (appendix D: BERT), sentence pairs tokenised with BERT's WordPiece vocabulary.

Pairs are packed to length 40 (appendix D) as ``[CLS] premise [SEP] hypothesis [SEP]`` with
segment ids 0 then 1, padding 0 and an attention mask; when too long, tokens are dropped
round-robin from the end of the longer segment. The vocabulary is ``assets/vocab.txt`` of the
TF-Hub BERT SavedModel (option ``bert_handle``) or a file (option ``vocab_path``); the paper's
multilingual BERT is cased, so no lower-casing or accent stripping. Labels: 0 entailment,
1 neutral, 2 contradiction. The test split is ``validation_matched`` (MNLI's test labels are
hidden).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfbreak import extras
from tfbreak.data.common import (
    DataBundle,
    DatasetUnavailableError,
    in_memory_dataset,
    load_tfds_splits,
)
from tfbreak.hub import vocab_path_from_handle

INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
TFDS_NAMES = ("glue/mnli", "multi_nli")


class BertPairTokenizer:
    """WordPiece-tokenise and pack (premise, hypothesis) pairs into BERT's dict inputs."""

    def __init__(self, vocab_path: str, sequence_length: int = 40, lowercase: bool = False):
        extras.require("bert", "the BERT tokenizer of MNLI", ("keras_hub",))
        import keras_hub

        self.sequence_length = sequence_length
        self.tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocab_path, lowercase=lowercase, strip_accents=lowercase
        )
        ids = {tok: self.tokenizer.token_to_id(tok) for tok in ("[CLS]", "[SEP]", "[PAD]")}
        self.cls_id, self.sep_id, self.pad_id = ids["[CLS]"], ids["[SEP]"], ids["[PAD]"]
        self.packer = keras_hub.layers.MultiSegmentPacker(
            sequence_length=sequence_length,
            start_value=self.cls_id,
            end_value=self.sep_id,
            pad_value=self.pad_id,
        )

    def __call__(self, premise, hypothesis) -> dict[str, tf.Tensor]:
        """Batched strings -> ``{input_word_ids, input_mask, input_type_ids}`` int32 [B, L]."""
        a = self.tokenizer(tf.convert_to_tensor(premise))
        b = self.tokenizer(tf.convert_to_tensor(hypothesis))
        token_ids, segment_ids = self.packer((a, b))
        token_ids = tf.cast(token_ids, tf.int32)
        return {
            "input_word_ids": token_ids,
            "input_mask": tf.cast(token_ids != self.pad_id, tf.int32),
            "input_type_ids": tf.cast(segment_ids, tf.int32),
        }


def load_mnli(
    *,
    data_dir: str | None = None,
    download: bool = False,
    vocab_path: str | None = None,
    bert_handle: str | None = None,
    sequence_length: int = 40,
    test_split: str = "validation_matched",
    tfds_name: str | None = None,
) -> DataBundle:
    """MNLI from tfds (``glue/mnli``, falling back to ``multi_nli``), tokenised in memory."""
    if vocab_path is None:
        if bert_handle is None:
            raise ValueError("glue/mnli needs option vocab_path=... or bert_handle=...")
        vocab_path = vocab_path_from_handle(bert_handle)
    tokenizer = BertPairTokenizer(vocab_path, sequence_length)
    names = (tfds_name,) if tfds_name else TFDS_NAMES
    errors = []
    for name in names:
        try:
            splits = load_tfds_splits(
                name, ("train", test_split), data_dir=data_dir, download=download
            )
            break
        except DatasetUnavailableError as err:
            errors.append(str(err))
    else:
        raise DatasetUnavailableError(" | ".join(errors))
    arrays = {}
    for split, ds in splits.items():
        pairs = ds.map(
            lambda ex: (ex["premise"], ex["hypothesis"], tf.cast(ex["label"], tf.int32))
        ).batch(1024)
        xs, ys = [], []
        for premise, hypothesis, label in pairs:
            xs.append({k: v.numpy() for k, v in tokenizer(premise, hypothesis).items()})
            ys.append(label.numpy())
        if not ys:
            raise DatasetUnavailableError(f"{name} split {split!r} is empty")
        x = {k: np.concatenate([c[k] for c in xs]) for k in INPUT_KEYS}
        arrays[split] = (x, np.concatenate(ys))
    train, lookup = in_memory_dataset(arrays["train"])
    test, _ = in_memory_dataset(arrays[test_split])
    return DataBundle(
        name="glue/mnli",
        train=train,
        test=test,
        num_train=len(arrays["train"][1]),
        num_test=len(arrays[test_split][1]),
        num_classes=3,
        input_shape=(sequence_length,),
        augment=None,
        source=f"tfds:{name}",
        train_lookup=lookup,
        metadata={"vocab_path": vocab_path},
    )
