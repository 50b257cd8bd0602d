"""TF-Hub BERT handles: a local SavedModel directory, or a URL that only `--download` may fetch.

The BERT model (`tfbreak.models.bert`) loads the SavedModel and the MNLI loader
(`tfbreak.data.mnli`) tokenises with its ``assets/vocab.txt``; `handle_problem` tells, without
TensorFlow and without the network, whether a handle can be used. How to prepare a local copy
of the paper's BERT and the MNLI data once: README.md, section "BERT and MNLI offline".
"""

from __future__ import annotations

import os
from pathlib import Path

from tfbreak import extras

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
VOCAB_FILE = os.path.join("assets", "vocab.txt")
PAPER_HANDLE = "https://tfhub.dev/tensorflow/bert_multi_cased_L-12_H-768_A-12/4"
"""Multilingual cased BERT-base as a TF2 SavedModel (App. D uses version 1, a TF1 hub.Module)."""
PREPARE_HINT = (
    "prepare a local SavedModel and the MNLI data once with the commands in README.md "
    "('BERT and MNLI offline') and pass its directory, or add --download"
)


def is_url(handle: str) -> bool:
    """True for a handle that names a remote module (``https://...``, ``gs://...``)."""
    return "://" in handle


def handle_problem(handle: str, *, download: bool, need_vocab: bool = True) -> str | None:
    """Why `handle` cannot be used as a BERT SavedModel (a phrase naming it), or None.

    A URL is usable only with `download` (it is fetched through TF-Hub's cache); a directory
    must hold a SavedModel and, with `need_vocab`, ``assets/vocab.txt``. Reads only the file
    system."""
    if is_url(handle):
        if download:
            return None
        return f"{handle} is a URL, and tfbreak uses the network only with --download"
    path = Path(handle).expanduser()
    if not path.exists():
        return f"{handle} does not exist"
    if not path.is_dir():
        return f"{handle} is not a directory"
    if not any((path / name).is_file() for name in SAVED_MODEL_FILES):
        return f"{handle} holds no SavedModel (no saved_model.pb)"
    if need_vocab and not (path / VOCAB_FILE).is_file():
        return f"{handle} has no {VOCAB_FILE} (the WordPiece vocabulary of the model)"
    return None


def local_directory(handle: str) -> str:
    """The directory of `handle`: itself, or for a URL TF-Hub's cached copy (downloaded if it
    is not cached yet; callers check `handle_problem` first)."""
    if not is_url(handle):
        return str(Path(handle).expanduser())
    extras.require("bert", "a TF-Hub handle", ("tensorflow_hub",))
    import tensorflow_hub as hub

    return hub.resolve(handle)


def vocab_path_from_handle(handle: str) -> str:
    """Path of the WordPiece vocabulary (``assets/vocab.txt``) shipped with a TF-Hub BERT."""
    path = os.path.join(local_directory(handle), VOCAB_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {VOCAB_FILE} in the BERT SavedModel at {handle!r}")
    return path


__all__ = [
    "PAPER_HANDLE",
    "PREPARE_HINT",
    "handle_problem",
    "is_url",
    "local_directory",
    "vocab_path_from_handle",
]
