"""IMDB reviews (appendix D: LSTM): 20,000-word vocabulary, sequences of length 80.

The vocabulary is built from the training text, deterministically: words are counted after
lower-casing, removing ``<br />`` tags and splitting on non-alphanumeric characters (apostrophes
kept inside words); ties in frequency are broken alphabetically. Id 0 is padding, id 1 the
out-of-vocabulary token, ids 2.. the ``vocab_size - 2`` most frequent words. As in Keras'
``pad_sequences`` (used by the Keras ``imdb_lstm`` example) sequences longer than 80 keep their
last 80 tokens and shorter ones are zero-padded at the front.
"""

from __future__ import annotations

import collections
import re

import numpy as np
import tensorflow as tf

from tfbreak.data.common import DataBundle, in_memory_bundle, load_tfds_splits, materialise

PAD_ID = 0
OOV_ID = 1
_TAG = re.compile(r"<[^>]*>")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def words(text: str) -> list[str]:
    """Split one review into lower-case words."""
    return _WORD.findall(_TAG.sub(" ", text.lower()))


def build_vocabulary(texts: list[str], vocab_size: int) -> dict[str, int]:
    """Word -> id for the ``vocab_size - 2`` most frequent words (ids from 2)."""
    counts = collections.Counter()
    for text in texts:
        counts.update(words(text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab_size - 2]
    return {word: i + 2 for i, (word, _) in enumerate(ranked)}


def encode(texts: list[str], vocabulary: dict[str, int], sequence_length: int) -> np.ndarray:
    """Texts -> int32 ``[len(texts), sequence_length]`` (pre-truncated, pre-padded)."""
    out = np.full((len(texts), sequence_length), PAD_ID, dtype=np.int32)
    for row, text in enumerate(texts):
        ids = [vocabulary.get(w, OOV_ID) for w in words(text)][-sequence_length:]
        if ids:
            out[row, sequence_length - len(ids) :] = ids
    return out


def load_imdb(
    *,
    data_dir: str | None = None,
    download: bool = False,
    vocab_size: int = 20000,
    sequence_length: int = 80,
) -> DataBundle:
    """IMDB from tfds (``imdb_reviews``), tokenised in memory."""
    splits = load_tfds_splits(
        "imdb_reviews", ("train", "test"), data_dir=data_dir, download=download
    )
    raw = {
        split: materialise(ds.map(lambda ex: (ex["text"], tf.cast(ex["label"], tf.int32))))
        for split, ds in splits.items()
    }
    decode = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])
    texts = {split: list(decode(r[0])) for split, r in raw.items()}
    vocabulary = build_vocabulary(texts["train"], vocab_size)
    arrays = {
        split: (encode(texts[split], vocabulary, sequence_length), raw[split][1]) for split in raw
    }
    return in_memory_bundle(
        "imdb_reviews",
        arrays,
        num_classes=2,
        source="tfds:imdb_reviews",
        metadata={"vocabulary": vocabulary, "vocab_size": vocab_size},
    )
