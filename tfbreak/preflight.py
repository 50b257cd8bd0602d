"""Checks of a configuration against this machine, before any work is done: the directories a
run writes can be created, the files it reads exist, the network is needed only with
--download, and $TFBREAK_MEMORY_LIMIT, if set, is a size. TensorFlow-free; each error is a
`ConfigError` naming the flag (or variable) the user set."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from pathlib import Path

from tfbreak import catalog, extras, hub
from tfbreak.catalog import MODELS, canonical_dataset, dataset
from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.measure.budget import available_memory
from tfbreak.runs.files import nearest_existing

PATH_OPTIONS = {"vocab_path": "file", "fashion_mnist_dir": "directory", "manual_dir": "directory"}
"""--data_option values that are paths, and what they must be."""


def check_writable(path: str, flag: str) -> None:
    """`path` (existing or not) can be created and written in: its nearest existing ancestor is
    a directory in which a directory can be made (tried, and removed at once)."""
    existing = nearest_existing(Path(path).expanduser())
    if not existing.is_dir():
        raise ConfigError(f"--{flag}: {path} cannot be created: {existing} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tfbreak-probe-", dir=existing))
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(
            f"--{flag}: {path} cannot be created: making a directory in {existing} failed "
            f"({reason})"
        ) from err


def _check_data_dir(config: ExperimentConfig) -> None:
    data_dir = config.data_dir
    if not data_dir or hub.is_url(data_dir):
        return
    path = Path(data_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--data_dir: {data_dir} is not a directory")
    if not path.exists():
        if not config.download:
            raise ConfigError(
                f"--data_dir: {data_dir} does not exist; give the directory the data set was "
                "prepared in (tensorflow-datasets' data_dir), or add --download to fetch it there"
            )
        check_writable(data_dir, "data_dir")


def _check_data_options(config: ExperimentConfig) -> None:
    for key, kind in PATH_OPTIONS.items():
        value = config.data_options.get(key)
        if value is None:
            continue
        path = Path(str(value)).expanduser()
        if not (path.is_file() if kind == "file" else path.is_dir()):
            problem = "does not exist" if not path.exists() else f"is not a {kind}"
            raise ConfigError(f"--data_option: {key}={value} {problem}")


def _check_bert(config: ExperimentConfig, passed: Collection[str]) -> None:
    handle = config.model_options.get("handle")
    if config.model != "bert":
        if "bert_handle" in passed:
            raise ConfigError(
                f"--bert_handle: only --model=bert uses a BERT handle (got --model={config.model})"
            )
        return
    if handle is None:
        raise ConfigError(
            "--model: bert needs --bert_handle=DIR, a TF-Hub BERT SavedModel; " + hub.PREPARE_HINT
        )
    flag = (
        "bert_handle"
        if "bert_handle" in passed or "model_option" not in passed
        else ("model_option")
    )
    need_vocab = (
        canonical_dataset(config.dataset) == "glue/mnli" and "vocab_path" not in config.data_options
    )
    problem = hub.handle_problem(str(handle), download=config.download, need_vocab=need_vocab)
    if problem is not None:
        raise ConfigError(f"--{flag}: {problem}; {hub.PREPARE_HINT}")


def check_extras(config: ExperimentConfig, report: bool = False) -> None:
    """Raise ConfigError (`--flag: ... needs P: pip install "tfbreak[extra]"`) when the model,
    the data set or the report (`report`) needs an extra that is not installed."""
    needs = [
        *((f"--model: {config.model}", e) for e in MODELS[config.model].extras),
        *((f"--dataset: {config.dataset}", e) for e in dataset(config.dataset).extras),
        *((("--report: the report", "report"),) if report else ()),
    ]
    for feature, extra in needs:
        absent = extras.missing(extra)
        if absent:
            raise ConfigError(f"{feature} needs {', '.join(absent)}: {extras.install_hint(extra)}")


def check_paths(config: ExperimentConfig, passed: Collection[str] = ()) -> None:
    """Raise ConfigError unless `config` can run here without surprises: --output_dir can be
    written (unless the run directory exists: one that cannot be written is an environment
    failure, `tfbreak.runs.files.probe_writable`), --data_dir and path --data_options exist (a
    missing --data_dir is fine with --download), BERT's handle is a local SavedModel (a URL only
    with --download) and the extras the model and data set need are installed. `passed`: the
    flags the user set, to name the one they used."""
    if not (Path(config.output_dir).expanduser() / config.run_name).exists():
        check_writable(config.output_dir, "output_dir")
    check_extras(config)
    _check_data_dir(config)
    _check_data_options(config)
    _check_bert(config, passed)
    available_memory()  # the memory budget's limit (checked against the model once built)


def tfds_dir(data_dir: str | None) -> Path:
    """The tensorflow-datasets data directory: `data_dir`, else $TFDS_DATA_DIR, else
    ~/tensorflow_datasets (tensorflow-datasets' own default)."""
    default = os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return Path(data_dir or default).expanduser()


def check_prepared(config: ExperimentConfig) -> None:
    """Without --download, a data set read from tensorflow-datasets must be prepared in its
    data directory (a ``NAME/[CONFIG/]VERSION/dataset_info.json``), else ConfigError naming
    --dataset. For the command line: a library call may give tensorflow-datasets' mock data."""
    spec = catalog.dataset(config.dataset)
    names = spec.tfds
    if "tfds_name" in config.data_options:
        names = (str(config.data_options["tfds_name"]),)
    if config.download or not names or hub.is_url(config.data_dir or ""):
        return
    root = tfds_dir(config.data_dir)
    for name in names:
        if any((root / name).glob("*/dataset_info.json")) or any(
            (root / name).glob("*/*/dataset_info.json")
        ):
            return
    where = f" --data_dir={config.data_dir}" if config.data_dir else ""
    raise ConfigError(
        f"--dataset: {config.dataset} is not prepared in {root} (looked for "
        f"{' or '.join(names)}); prepare it with `tfds build {names[0]}{where}` (needs the "
        "network), or add --download to fetch it"
    )


__all__ = [
    "PATH_OPTIONS",
    "check_extras",
    "check_paths",
    "check_prepared",
    "check_writable",
    "tfds_dir",
]
