"""LSTM for IMDB (appendix D): Embedding(20000, dim) -> LSTM(100) -> Dense(classes).

The paper gives the vocabulary (20,000), the sequence length (80) and the 100 hidden units but not
the embedding size; the default 128 follows the Keras ``imdb_lstm`` example it is based on. The
LSTM is built with ``use_cudnn=False`` so that the generic (differentiable twice) implementation is
used on every device: second-order derivatives (Hessian-vector products via nested GradientTape)
are not available through the cuDNN kernel.
"""

from __future__ import annotations

import keras

DEFAULT_SEQUENCE_LENGTH = 80
DEFAULT_VOCAB_SIZE = 20000


def build_lstm(
    *,
    num_classes: int,
    input_shape: tuple[int, ...] | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    embedding_dim: int = 128,
    units: int = 100,
    dtype: str | None = None,
    name: str = "lstm",
) -> keras.Model:
    """Build the IMDB LSTM classifier; ``input_shape`` is ``(sequence_length,)`` of int ids."""
    shape = tuple(input_shape) if input_shape is not None else (DEFAULT_SEQUENCE_LENGTH,)
    inputs = keras.Input(shape=shape, dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, dtype=dtype)(inputs)
    x = keras.layers.LSTM(units, use_cudnn=False, dtype=dtype)(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
