"""The optional parts of tfbreak and the packages each needs (pyproject.toml's extras).

The core (training, measurement, `tfbreak.Curvature`, `tfbreak.BreakEvenCallback`, the run
directory) needs TensorFlow, Keras, NumPy, SciPy, absl-py and tqdm only. The report, the
tensorflow-datasets data sets and BERT need an extra; a feature whose extra is missing stops
with one line naming it (`require`). TensorFlow-free: the command checks before it loads
anything (`tfbreak.preflight`).
"""

from __future__ import annotations

import importlib.util

EXTRAS: dict[str, dict[str, str]] = {
    "report": {"matplotlib": "matplotlib", "markupsafe": "markupsafe", "umap": "umap-learn"},
    "data": {"tensorflow_datasets": "tensorflow-datasets"},
    "bert": {
        "tensorflow_hub": "tensorflow-hub",
        "tf_keras": "tf-keras",
        "tensorflow_text": "tensorflow-text",
        "keras_hub": "keras-hub",
    },
}
"""Extra -> {module it provides: the package that installs it}."""


class MissingExtra(ImportError):
    """A feature needs packages of an extra that are not installed (the message is one line)."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The packages of `extra` (or of its `modules` only) that cannot be imported here."""
    return [
        package
        for module, package in EXTRAS[extra].items()
        if (modules is None or module in modules) and not _installed(module)
    ]


def install_hint(extra: str) -> str:
    return f'pip install "tfbreak[{extra}]"'


def require(extra: str, feature: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise `MissingExtra` ("`feature` needs P, Q: pip install "tfbreak[extra]"") unless
    every package of `extra` (or those of its `modules`) is installed."""
    absent = missing(extra, modules)
    if absent:
        raise MissingExtra(f"{feature} needs {', '.join(absent)}: {install_hint(extra)}")


__all__ = ["EXTRAS", "MissingExtra", "install_hint", "missing", "require"]
