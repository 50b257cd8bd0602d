"""Model registry: ``build_model(name, ...)`` for the seven settings of appendix D."""

from __future__ import annotations

from collections.abc import Callable

import keras

from tfbreak.catalog import MODEL_NAMES
from tfbreak.models.bert import build_bert
from tfbreak.models.densenet import build_densenet121
from tfbreak.models.lstm import build_lstm
from tfbreak.models.mlp import build_mlp
from tfbreak.models.resnet import build_resnet32
from tfbreak.models.simple_cnn import build_simple_cnn
from tfbreak.models.variables import WEIGHT_DECAY_POLICY_ATTR


def _simple_cnn_bn(**kwargs) -> keras.Model:
    return build_simple_cnn(batch_norm=True, **kwargs)


_BUILDERS: dict[str, tuple[Callable[..., keras.Model], str]] = {
    "simple_cnn": (build_simple_cnn, "kernels"),
    "simple_cnn_bn": (_simple_cnn_bn, "kernels"),
    "resnet32": (build_resnet32, "conv_kernels"),
    "lstm": (build_lstm, "kernels"),
    "mlp": (build_mlp, "kernels"),
    "densenet121": (build_densenet121, "kernels"),
    "bert": (build_bert, "kernels"),
}


def build_model(
    name: str,
    *,
    num_classes: int,
    input_shape: tuple[int, ...] | None = None,
    seed: int | None = None,
    **options,
) -> keras.Model:
    """Build model ``name`` (one of :data:`tfbreak.catalog.MODEL_NAMES`), outputting logits.

    ``seed`` seeds the initialisation through ``keras.utils.set_random_seed`` (which also seeds
    Python, NumPy and TensorFlow's global generators). ``options`` go to the builder, e.g.
    ``activation``/``dtype`` (simple_cnn, resnet32, mlp), ``vocab_size``/``embedding_dim``/
    ``units`` (lstm), ``handle``/``encoder_dropout`` (bert). For text models ``input_shape`` is
    ``(sequence_length,)``.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    builder, policy = _BUILDERS[name]
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    model = builder(num_classes=num_classes, input_shape=input_shape, **options)
    setattr(model, WEIGHT_DECAY_POLICY_ATTR, policy)
    return model
