"""Data pipelines on tfds mock data (offline): shapes, ranges, determinism, errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfbreak.catalog import DATASETS
from tfbreak.data import (
    DATASET_NAMES,
    BertPairTokenizer,
    DatasetUnavailableError,
    evaluation_batches,
    fixed_subset,
    load_dataset,
    train_batches,
)
from tfbreak.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s"]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return str(path)


def _mock(name, num_examples=24, **options):
    with tfds.testing.mock_data(num_examples=num_examples):
        return load_dataset(name, **options)


def _np(batch):
    return tf.nest.map_structure(lambda t: t.numpy(), batch)


def _epoch(bundle, seed, epoch, batch_size=8, **kw):
    return [_np(b) for b in train_batches(bundle, batch_size, seed, epoch, **kw)]


def _assert_same(a, b):
    for u, v in zip(tf.nest.flatten(a), tf.nest.flatten(b), strict=True):
        np.testing.assert_array_equal(u, v)


def test_names_and_unknown():
    for spec in DATASETS.values():  # every record names an importable loader
        assert callable(spec.load_function()), spec.name
        assert 0 < spec.num_test and spec.num_classes >= 2, spec.name
    assert set(DATASET_NAMES) == {
        "cifar10",
        "imdb_reviews",
        "glue/mnli",
        "imagenet2012",
        "fashion_mnist",
    }
    with pytest.raises(ValueError, match="cifar10"):
        load_dataset("svhn")


@pytest.mark.parametrize("name", ["cifar10", "imdb_reviews", "imagenet2012", "fashion_mnist"])
def test_unprepared_dataset_fails_fast_with_instructions(name, tmp_path):
    options = {"source": "tfds"} if name == "fashion_mnist" else {}
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError, match=f"tfds build {name} --data_dir={tmp_path}"):
        load_dataset(name, data_dir=str(tmp_path), **options)
    assert time.monotonic() - start < 5
    assert issubclass(DatasetUnavailableError, ValueError)


def test_unprepared_mnli_mentions_both_names(tmp_path, vocab_file):
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError, match="glue/mnli.*multi_nli"):
        load_dataset("glue/mnli", data_dir=str(tmp_path), vocab_path=vocab_file)
    assert time.monotonic() - start < 5


def test_cifar10_shapes_normalisation_and_augmentation():
    bundle = _mock("cifar10")
    assert bundle.source == "tfds:cifar10"
    assert (bundle.num_train, bundle.num_test, bundle.num_classes) == (24, 24, 10)
    assert bundle.input_shape == (32, 32, 3)
    x, y = next(iter(bundle.train))
    assert x.dtype == tf.float32 and x.shape == (32, 32, 3) and y.dtype == tf.int32
    lo = (0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    hi = (1 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    xs = np.stack([e[0].numpy() for e in bundle.train])
    assert (xs >= lo - 1e-5).all() and (xs <= hi + 1e-5).all()
    # The test split is never augmented; the training batches are.
    raw = np.stack([e[0].numpy() for e in bundle.train])
    x_aug, y_aug = _epoch(bundle, seed=0, epoch=0, batch_size=24)[0]
    assert x_aug.shape == (24, 32, 32, 3)
    order = _order(bundle, seed=0, epoch=0)
    assert not np.allclose(x_aug, raw[order])
    # Every augmented image is a (possibly flipped) 4-pixel shift of the original, black-padded.
    black = (0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    for img, src in zip(x_aug[:4], raw[order][:4], strict=True):
        assert _is_shift_or_flip(img, src, black)
    test_x = np.stack([e[0].numpy() for e in bundle.test])
    np.testing.assert_array_equal(test_x, np.stack([e[0].numpy() for e in bundle.test]))


def _order(bundle, seed, epoch):
    from tfbreak.data.common import epoch_permutation

    return epoch_permutation(bundle.num_train, seed, epoch).numpy()


def _is_shift_or_flip(img, src, black, pad=4):
    padded = np.empty((40, 40, 3), np.float32)
    padded[...] = black
    padded[pad:-pad, pad:-pad] = src
    for cand in (img, img[:, ::-1]):
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if np.allclose(padded[dy : dy + 32, dx : dx + 32], cand, atol=1e-5):
                    return True
    return False


@pytest.mark.parametrize("name", ["cifar10", "imdb_reviews", "fashion_mnist"])
def test_train_batches_deterministic_per_seed_and_epoch(name):
    bundle = _mock(name)
    a = _epoch(bundle, seed=3, epoch=1)
    b = _epoch(bundle, seed=3, epoch=1)
    assert len(a) == 3  # 24 examples, batch 8, drop_remainder
    for u, v in zip(a, b, strict=True):
        _assert_same(u, v)
    c = _epoch(bundle, seed=3, epoch=2)
    assert any(not np.array_equal(u[0], v[0]) for u, v in zip(a, c, strict=True))
    # Resuming: skipping batches reproduces the remaining batches exactly.
    resumed = _epoch(bundle, seed=3, epoch=1, start_batch=1)
    for u, v in zip(a[1:], resumed, strict=True):
        _assert_same(u, v)
    # An epoch is a permutation of the training set.
    labels = np.sort(np.concatenate([u[1] for u in _epoch(bundle, 3, 1, 24)]))
    np.testing.assert_array_equal(labels, np.sort([int(e[1]) for e in bundle.train]))
    last = _epoch(bundle, seed=3, epoch=1, batch_size=10, drop_remainder=False)
    assert [len(u[1]) for u in last] == [10, 10, 4]


def test_fixed_subset_deterministic():
    bundle = _mock("cifar10")
    x1, y1 = fixed_subset(bundle.train, 5, seed=1)
    x2, y2 = fixed_subset(bundle.train, 5, seed=1)
    x3, _ = fixed_subset(bundle.train, 5, seed=2)
    assert x1.shape == (5, 32, 32, 3) and y1.dtype == tf.int32
    np.testing.assert_array_equal(x1.numpy(), x2.numpy())
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    assert not np.array_equal(x1.numpy(), x3.numpy())
    with pytest.raises(ValueError):
        fixed_subset(bundle.train, 25, seed=1)
    sizes = [int(b[1].shape[0]) for b in evaluation_batches(bundle.test, 10)]
    assert sizes == [10, 10, 4]


def test_imdb_vocabulary_and_sequences():
    bundle = _mock("imdb_reviews")
    assert bundle.source == "tfds:imdb_reviews"
    assert bundle.input_shape == (80,) and bundle.num_classes == 2
    vocab = bundle.metadata["vocabulary"]
    assert 0 < len(vocab) <= 20000 - 2 and min(vocab.values()) == 2
    x, y = next(iter(bundle.train))
    assert x.dtype == tf.int32 and x.shape == (80,) and y.dtype == tf.int32
    xs = np.stack([e[0].numpy() for e in bundle.train])
    assert xs.min() >= 0 and xs.max() < 20000
    # The vocabulary is a deterministic function of the training text.
    assert _mock("imdb_reviews").metadata["vocabulary"] == vocab
    assert bundle.augment is None


def test_imdb_encoding_rules():
    from tfbreak.data.imdb import build_vocabulary, encode

    vocab = build_vocabulary(["b a a<br />c", "c a"], vocab_size=4)
    assert vocab == {"a": 2, "c": 3}
    ids = encode(["a b c " * 3, "c"], vocab, 4)
    # Keep the last 4 words (c a b c), pad at the front, 1 = out of vocabulary.
    np.testing.assert_array_equal(ids, [[3, 2, 1, 3], [0, 0, 0, 3]])


def test_mnli_pairs(vocab_file):
    bundle = _mock("glue/mnli", vocab_path=vocab_file)
    assert bundle.source == "tfds:glue/mnli"
    assert bundle.num_classes == 3 and bundle.input_shape == (40,)
    x, y = next(iter(bundle.train))
    assert set(x) == {"input_word_ids", "input_mask", "input_type_ids"}
    assert all(v.dtype == tf.int32 and v.shape == (40,) for v in x.values())
    assert int(x["input_word_ids"][0]) == VOCAB.index("[CLS]")
    assert y.dtype == tf.int32 and 0 <= int(y) < 3


def test_bert_pair_tokenizer_packing(vocab_file):
    tok = BertPairTokenizer(vocab_file, sequence_length=10)
    out = tok(["the cat sat", "the mats"], ["on the mat", "cats"])
    ids = out["input_word_ids"].numpy()
    cls, sep, pad = (VOCAB.index(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    v = VOCAB.index
    np.testing.assert_array_equal(
        ids[0], [cls, v("the"), v("cat"), v("sat"), sep, v("on"), v("the"), v("mat"), sep, pad]
    )
    np.testing.assert_array_equal(out["input_type_ids"].numpy()[0], [0] * 5 + [1] * 4 + [0])
    np.testing.assert_array_equal(out["input_mask"].numpy()[0], [1] * 9 + [0])
    # "mats" -> mat ##s; cased vocabulary: "The" is not lower-cased.
    np.testing.assert_array_equal(ids[1][:7], [cls, v("the"), v("mat"), v("##s"), sep, 6, 10])
    upper = tok(["The"], ["cat"])["input_word_ids"].numpy()[0]
    assert upper[1] == VOCAB.index("[UNK]")


def test_imagenet_preprocessing():
    bundle = _mock("imagenet2012", num_examples=6, image_size=32)
    assert bundle.input_shape == (32, 32, 3) and bundle.num_classes == 1000
    assert bundle.augment is None and bundle.train_lookup is None
    x, y = next(iter(bundle.train))
    assert x.shape == (32, 32, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert -2.2 < float(tf.reduce_min(x)) and float(tf.reduce_max(x)) < 2.7
    a = _epoch(bundle, seed=0, epoch=0, batch_size=3)
    b = _epoch(bundle, seed=0, epoch=0, batch_size=3)
    for u, w in zip(a, b, strict=True):
        _assert_same(u, w)


def test_fashion_mnist_mock_range():
    bundle = _mock("fashion_mnist")
    assert bundle.source == "tfds:fashion_mnist"
    xs = np.stack([e[0].numpy() for e in bundle.train])
    assert xs.shape[1:] == (28, 28, 1) and xs.min() >= 0 and xs.max() <= 1
    assert bundle.augment is None


def test_fashion_mnist_missing_idx_files(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="IDX files missing"):
        load_dataset("fashion_mnist", data_dir=str(tmp_path), fashion_mnist_dir=str(tmp_path))


def test_download_without_a_network_fails_fast_and_leaves_nothing(tmp_path, monkeypatch):
    """--download: an unreachable host is an error within seconds (tfds would retry for
    minutes), and a download that fails or is interrupted removes what it created, not what
    was there before."""
    import errno
    import socket

    from tfbreak.data.common import NetworkUnreachableError, check_network, load_tfds_splits

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    listening = socket.create_server(("127.0.0.1", 0))
    with pytest.raises(NetworkUnreachableError) as info:
        check_network(url, timeout=2)
    assert info.value.errno == errno.ENETUNREACH and info.value.filename.startswith("127.0.0.1:")
    check_network(f"http://127.0.0.1:{listening.getsockname()[1]}/", timeout=2)

    data_dir = tmp_path / "data"
    (data_dir / "downloads" / "other").mkdir(parents=True)
    before = sorted(data_dir.rglob("*"))

    class Builder:
        class info:  # noqa: N801 - tfds's attribute name
            homepage = f"http://127.0.0.1:{listening.getsockname()[1]}/"

        def is_prepared(self):
            return False

        def download_and_prepare(self, download_config=None):
            (data_dir / "downloads" / "x.tar.gz.tmp.123").write_bytes(b"partial")
            (data_dir / "cifar10" / "3.0.2.incomplete").mkdir(parents=True)
            raise KeyboardInterrupt  # a signal in the middle of the download

    monkeypatch.setattr(tfds, "builder", lambda name, data_dir: Builder())
    with pytest.raises(KeyboardInterrupt):
        load_tfds_splits("cifar10", ("train",), data_dir=str(data_dir), download=True)
    assert sorted(data_dir.rglob("*")) == before
    Builder.info.homepage = url
    with pytest.raises(NetworkUnreachableError):
        load_tfds_splits("cifar10", ("train",), data_dir=str(tmp_path / "new"), download=True)
    assert not (tmp_path / "new").exists()
    closed.close()
    listening.close()


@pytest.mark.slow
def test_sigterm_during_a_download_exits_143_at_once_and_leaves_nothing(tmp_path):
    """The command downloading through a proxy that never answers (a download that hangs):
    SIGTERM ends it within seconds, although tfds' download threads would retry for minutes."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    silent = socket.create_server(("127.0.0.1", 0))
    env = {**os.environ, "https_proxy": f"http://127.0.0.1:{silent.getsockname()[1]}"}
    env.pop("HTTPS_PROXY", None)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    args = ["--model=simple_cnn", "--dataset=cifar10", "--download", f"--data_dir={data_dir}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfbreak.main", *args, f"--output_dir={tmp_path}/out"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (data_dir / "downloads").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    assert "interrupted (SIGTERM while starting" in proc.stderr.read()
    assert list(data_dir.iterdir()) == [] and not (tmp_path / "out").exists()
    silent.close()


def test_the_options_checked_before_tensorflow_are_the_loaders_keywords():
    """`--data_option` names are read from each loader's source without importing it."""
    import inspect

    for spec in DATASETS.values():
        keywords = set(inspect.signature(spec.load_function()).parameters)
        assert spec.options() == keywords - {"data_dir", "download"}, spec.name
