"""Model registry: ``build_model(name, ...)`` for the models of `tfbreak.catalog.MODELS`
(appendix D), each declared once there."""

from __future__ import annotations

import keras

from tfbreak.catalog import MODEL_NAMES, MODELS
from tfbreak.models.variables import WEIGHT_DECAY_POLICY_ATTR


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
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    spec = MODELS[name]
    builder = spec.build_function()
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    kwargs = {**dict(spec.builder_options), **options}
    model = builder(num_classes=num_classes, input_shape=input_shape, **kwargs)
    setattr(model, WEIGHT_DECAY_POLICY_ATTR, spec.weight_decay)
    return model
