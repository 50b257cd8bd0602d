"""Checks of a configuration against this machine, before any work is done: the directories a
run writes can be created, the files it reads exist, the network is needed only with
--download, and $TFBREAK_MEMORY_LIMIT, if set, is a size. TensorFlow-free; each error is a
`ConfigError` naming the flag (or variable) the user set."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from pathlib import Path

from tfbreak import hub
from tfbreak.catalog import canonical_dataset
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


def check_paths(config: ExperimentConfig, passed: Collection[str] = ()) -> None:
    """Raise ConfigError unless `config` can run here without surprises: --output_dir can be
    written, --data_dir and path --data_options exist (a missing --data_dir is fine with
    --download), and BERT's handle is a local SavedModel (a URL only with --download).
    `passed`: the flags the user set, to name the one they used."""
    check_writable(config.output_dir, "output_dir")
    _check_data_dir(config)
    _check_data_options(config)
    _check_bert(config, passed)
    available_memory()  # the memory budget's limit (checked against the model once built)


__all__ = ["PATH_OPTIONS", "check_paths", "check_writable"]
