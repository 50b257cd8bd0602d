"""The models and data sets tfbreak knows (paper App. D), and what each takes or gives, so that
a configuration is checked before TensorFlow is imported. TensorFlow-free; the registries
(`tfbreak.models`, `tfbreak.data`) build exactly these names."""

from __future__ import annotations

IMAGES, TOKENS, SENTENCE_PAIRS = "images", "token sequences", "sentence pairs"

MODEL_INPUTS: dict[str, str] = {
    "simple_cnn": IMAGES,
    "simple_cnn_bn": IMAGES,
    "resnet32": IMAGES,
    "lstm": TOKENS,
    "mlp": IMAGES,
    "densenet121": IMAGES,
    "bert": SENTENCE_PAIRS,
}
"""What each model takes as input."""

DATASET_INPUTS: dict[str, str] = {
    "cifar10": IMAGES,
    "imdb_reviews": TOKENS,
    "glue/mnli": SENTENCE_PAIRS,
    "imagenet2012": IMAGES,
    "fashion_mnist": IMAGES,
}
"""What each data set gives."""

DATASET_ALIASES: dict[str, str] = {
    "mnli": "glue/mnli",
    "multi_nli": "glue/mnli",
    "imagenet": "imagenet2012",
}

MODEL_NAMES: tuple[str, ...] = tuple(MODEL_INPUTS)
DATASET_NAMES: tuple[str, ...] = tuple(DATASET_INPUTS)


def canonical_dataset(name: str) -> str:
    """The registry name of a data set name or alias (``mnli`` -> ``glue/mnli``)."""
    return DATASET_ALIASES.get(name, name)


def datasets_for(model: str) -> list[str]:
    """The data sets whose examples `model` takes."""
    return [d for d, kind in DATASET_INPUTS.items() if kind == MODEL_INPUTS[model]]


def models_for(dataset: str) -> list[str]:
    """The models that take the examples of `dataset` (a name or an alias)."""
    kind = DATASET_INPUTS[canonical_dataset(dataset)]
    return [m for m, taken in MODEL_INPUTS.items() if taken == kind]


def fits(model: str, dataset: str) -> bool:
    """True when `model` takes what `dataset` gives (both known names)."""
    return MODEL_INPUTS[model] == DATASET_INPUTS[canonical_dataset(dataset)]


__all__ = [
    "DATASET_ALIASES",
    "DATASET_INPUTS",
    "DATASET_NAMES",
    "MODEL_INPUTS",
    "MODEL_NAMES",
    "canonical_dataset",
    "datasets_for",
    "fits",
    "models_for",
]
