"""The checkpoint to resume from: the newest one that reads back whole; and the repair of what
a kill or a corrupted file leaves in checkpoints/ (tfbreak.training.checkpoints)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfbreak.training.checkpoints import (
    checkpoint_numbers,
    checkpoint_prefix,
    newest_readable,
    prune,
    unreadable,
)


def _saved(directory, numbers=(0, 4, 8)):
    v = tf.Variable(np.zeros(1000, np.float32))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), str(directory), max_to_keep=3)
    for n in numbers:
        v.assign_add(tf.ones_like(v))
        manager.save(checkpoint_number=n)
    return v


def test_newest_readable_skips_corrupt_checkpoints_with_one_warning_each(tmp_path):
    _saved(tmp_path)
    assert checkpoint_numbers(tmp_path) == [8, 4, 0]
    assert unreadable(checkpoint_prefix(tmp_path, 8)) is None
    data = next(tmp_path.glob("ckpt-8.data-*"))
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0x01  # one flipped bit
    data.write_bytes(bytes(raw))
    (tmp_path / "ckpt-4.index").write_bytes(b"")
    warnings = []
    assert newest_readable(tmp_path, warnings.append) == 0
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert "ckpt-8 cannot be restored (" in warnings[0] and "Checksum" in warnings[0]
    assert "ckpt-4 cannot be restored (" in warnings[1]
    assert newest_readable(tmp_path / "missing", warnings.append) is None


def test_prune_removes_temporaries_later_checkpoints_and_orphan_shards(tmp_path):
    _saved(tmp_path)
    (tmp_path / "ckpt-12_temp").mkdir()  # a save killed mid-way
    (tmp_path / "ckpt-12_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    (tmp_path / "ckpt-9.index.tempstate123").write_bytes(b"x")
    (tmp_path / "checkpoint.tmp0a1b2c").write_text("x")
    (tmp_path / ".checkpoint.ab12cd34.tmp").write_text("x")
    (tmp_path / "ckpt-2.data-00000-of-00001").write_bytes(b"x")  # no index: orphan
    removed = {p.name for p in prune(tmp_path, keep_until=4)}
    assert removed == {
        "ckpt-12_temp",
        "ckpt-9.index.tempstate123",
        "checkpoint.tmp0a1b2c",
        ".checkpoint.ab12cd34.tmp",
        "ckpt-2.data-00000-of-00001",
        "ckpt-8.index",
        "ckpt-8.data-00000-of-00001",
    }
    assert checkpoint_numbers(tmp_path) == [4, 0]
    assert tf.train.latest_checkpoint(str(tmp_path)) == checkpoint_prefix(tmp_path, 4)
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in state.all_model_checkpoint_paths] == ["ckpt-0", "ckpt-4"]
    # The manager takes over: the next save keeps max_to_keep of them.
    v = tf.Variable(np.zeros(1000, np.float32))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), str(tmp_path), max_to_keep=2)
    manager.save(checkpoint_number=8)
    assert checkpoint_numbers(tmp_path) == [8, 4]


def test_prune_to_nothing_removes_the_state_file(tmp_path):
    _saved(tmp_path, numbers=(0,))
    prune(tmp_path, keep_until=None)
    assert list(tmp_path.iterdir()) == []
    assert prune(tmp_path / "missing", keep_until=None) == []
