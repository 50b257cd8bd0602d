"""The models and data sets tfbreak knows (paper App. D), each declared once: a `ModelSpec` or
`DatasetSpec` record holds its name, where it is built or loaded from (a ``"module:function"``
path, imported on first use), what it takes or gives (which fit together), its size and the
paper section it comes from. TensorFlow-free, so that a configuration is checked before
TensorFlow is imported; `tfbreak.models.build_model` and `tfbreak.data.load_dataset` build
exactly these. Adding a model or a data set: docs/extending.md.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGES, TOKENS, SENTENCE_PAIRS = "images", "token sequences", "sentence pairs"
"""The kinds of examples: what a data set gives and a model takes."""


def _load(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _source_file(module: str) -> Path | None:
    """The source file of a dotted module name, found without importing it or its parent
    packages (tfbreak.models and tfbreak.data import Keras and TensorFlow)."""
    parts = module.split(".")
    spec = importlib.util.find_spec(parts[0])
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return None
        locations = list(spec.submodule_search_locations)
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), locations)
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def keywords(path: str) -> frozenset[str] | None:
    """The parameter names of the function at `path` (``"module:function"``), read from its
    module's source without importing it, so that options are checked before TensorFlow loads;
    None when it takes ``**kwargs`` or its source cannot be read (the call checks them then)."""
    module, _, name = path.partition(":")
    source = _source_file(module)
    if source is None:
        return None
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            a = node.args
            if a.kwarg is not None:
                return None
            return frozenset(p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs))
    return None


@dataclass(frozen=True)
class ModelSpec:
    """One model: `builder` (``"module:function"``, keywords num_classes, input_shape and the
    builder's own options) called with `builder_options` first; `inputs`: the kind of examples
    it takes; `weight_decay`: the variables weight decay acts on ("kernels", or "conv_kernels"
    for ResNet-32, App. D); `paper`: where the paper describes it; `extras`: the extras of
    `tfbreak.extras` it needs beyond the core."""

    name: str
    builder: str
    inputs: str
    paper: str
    weight_decay: str = "kernels"
    builder_options: tuple[tuple[str, Any], ...] = ()
    extras: tuple[str, ...] = ()

    def build_function(self) -> Callable[..., Any]:
        """The builder (imports its module, and so Keras)."""
        return _load(self.builder)

    def options(self) -> frozenset[str] | None:
        """The names `--model_option` may set: the builder's keywords (None: not known)."""
        found = keywords(self.builder)
        return None if found is None else found - {"num_classes", "input_shape"}


@dataclass(frozen=True)
class DatasetSpec:
    """One data set: `loader` (``"module:function"``, keywords data_dir, download and the
    loader's own options); `gives`: the kind of its examples; `num_train`, `num_test`: the
    sizes of the real data set's splits (a loader's options or a mock may give fewer);
    `aliases`: other names it answers to; `paper`: where the paper uses it; `tfds`: the
    tensorflow-datasets names it is read from, one of which must be prepared in the data
    directory unless tfds may download it (empty when the loader has another source too);
    `extras`: the extras of `tfbreak.extras` it needs beyond the core (tensorflow-datasets:
    "data")."""

    name: str
    loader: str
    gives: str
    num_train: int
    num_test: int
    num_classes: int
    paper: str
    aliases: tuple[str, ...] = ()
    tfds: tuple[str, ...] = ()
    extras: tuple[str, ...] = ("data",)

    def load_function(self) -> Callable[..., Any]:
        """The loader (imports its module, and so TensorFlow)."""
        return _load(self.loader)

    def options(self) -> frozenset[str] | None:
        """The names `--data_option` may set: the loader's keywords (None: not known)."""
        found = keywords(self.loader)
        return None if found is None else found - {"data_dir", "download"}


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "simple_cnn",
            "tfbreak.models.simple_cnn:build_simple_cnn",
            IMAGES,
            "App. D: SimpleCNN (Keras's cifar10_cnn example, dense 128), Secs. 4.1-4.2",
        ),
        ModelSpec(
            "simple_cnn_bn",
            "tfbreak.models.simple_cnn:build_simple_cnn",
            IMAGES,
            "Sec. 4.3: SimpleCNN with BatchNorm after each layer",
            builder_options=(("batch_norm", True),),
        ),
        ModelSpec(
            "resnet32",
            "tfbreak.models.resnet:build_resnet32",
            IMAGES,
            "App. D: ResNet-32 (He et al. 2016), weight decay on convolution kernels",
            weight_decay="conv_kernels",
        ),
        ModelSpec("lstm", "tfbreak.models.lstm:build_lstm", TOKENS, "App. D: LSTM(100) on IMDB"),
        ModelSpec(
            "mlp", "tfbreak.models.mlp:build_mlp", IMAGES, "App. D: MLP 300-100 on Fashion-MNIST"
        ),
        ModelSpec(
            "densenet121",
            "tfbreak.models.densenet:build_densenet121",
            IMAGES,
            "App. D: DenseNet-121 on ImageNet",
        ),
        ModelSpec(
            "bert",
            "tfbreak.models.bert:build_bert",
            SENTENCE_PAIRS,
            "App. D: multilingual cased BERT-base (TF-Hub) on MNLI",
            extras=("bert",),
        ),
    )
}
"""Every model, by name."""

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "cifar10",
            "tfbreak.data.cifar10:load_cifar10",
            IMAGES,
            50_000,
            10_000,
            10,
            "App. D",
            tfds=("cifar10",),
        ),
        DatasetSpec(
            "imdb_reviews",
            "tfbreak.data.imdb:load_imdb",
            TOKENS,
            25_000,
            25_000,
            2,
            "App. D",
            tfds=("imdb_reviews",),
        ),
        DatasetSpec(
            "glue/mnli",
            "tfbreak.data.mnli:load_mnli",
            SENTENCE_PAIRS,
            392_702,
            9_815,
            3,
            "App. D (validation_matched as the held-out split)",
            aliases=("mnli", "multi_nli"),
            tfds=("glue/mnli", "multi_nli"),
            extras=("data", "bert"),
        ),
        DatasetSpec(
            "imagenet2012",
            "tfbreak.data.imagenet:load_imagenet",
            IMAGES,
            1_281_167,
            50_000,
            1000,
            "App. D",
            aliases=("imagenet",),
            tfds=("imagenet2012",),
        ),
        DatasetSpec(
            "fashion_mnist",
            "tfbreak.data.fashion_mnist:load_fashion_mnist",
            IMAGES,
            60_000,
            10_000,
            10,
            "App. D (the MLP's data set)",
            extras=(),  # Debian's IDX files, or a tfds copy when tensorflow-datasets is there
        ),
    )
}
"""Every data set, by name."""

DATASET_ALIASES: dict[str, str] = {
    alias: spec.name for spec in DATASETS.values() for alias in spec.aliases
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)


def canonical_dataset(name: str) -> str:
    """The registry name of a data set name or alias (``mnli`` -> ``glue/mnli``)."""
    return DATASET_ALIASES.get(name, name)


def dataset(name: str) -> DatasetSpec:
    """The record of a data set name or alias (KeyError if unknown)."""
    return DATASETS[canonical_dataset(name)]


def datasets_for(model: str) -> list[str]:
    """The data sets whose examples `model` takes."""
    return [d for d, spec in DATASETS.items() if spec.gives == MODELS[model].inputs]


def models_for(dataset_name: str) -> list[str]:
    """The models that take the examples of `dataset_name` (a name or an alias)."""
    gives = dataset(dataset_name).gives
    return [m for m, spec in MODELS.items() if spec.inputs == gives]


def fits(model: str, dataset_name: str) -> bool:
    """True when `model` takes what `dataset_name` gives (both known names)."""
    return MODELS[model].inputs == dataset(dataset_name).gives


__all__ = [
    "DATASETS",
    "DATASET_ALIASES",
    "DATASET_NAMES",
    "IMAGES",
    "MODELS",
    "MODEL_NAMES",
    "SENTENCE_PAIRS",
    "TOKENS",
    "DatasetSpec",
    "ModelSpec",
    "canonical_dataset",
    "dataset",
    "datasets_for",
    "fits",
    "keywords",
    "models_for",
]
