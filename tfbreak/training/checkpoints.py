"""The checkpoints of a run directory on resume: the newest one that can be restored, and the
repair of what a kill or a corrupted file left.

`tf.train.CheckpointManager` saves ``ckpt-N`` (N = the SGD step) as ``ckpt-N.index`` +
``ckpt-N.data-*``, written under temporary names (a ``ckpt-N_temp/`` directory, ``*.tempstate*``
files), and lists the checkpoints in the state file ``checkpoint``. A kill can leave those
temporaries, a data shard without its index, or a state file that names a checkpoint that was
never completed; a disk can flip bytes or truncate a file. So the checkpoint to resume from is
found from the files themselves, newest first, reading every tensor (TensorFlow checks each
tensor's CRC32C); the rest is repaired by the run directory's writer (`prune`).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from tfbreak.runs.files import atomic_write_text, is_temporary

PREFIX = "ckpt"
STATE_FILE = "checkpoint"
_INDEX_RE = re.compile(rf"^{PREFIX}-(\d+)\.index$")
_NUMBER_RE = re.compile(rf"^{PREFIX}-(\d+)[._]")
_TF_TEMPORARY_RE = re.compile(
    rf"(^{PREFIX}-\d+_temp$|\.tempstate\d*$|^{STATE_FILE}\.tmp[0-9a-f]*$)"
)


def checkpoint_prefix(directory: str | Path, number: int) -> str:
    """``DIRECTORY/ckpt-N``, the path TensorFlow reads and writes checkpoint N under."""
    return str(Path(directory) / f"{PREFIX}-{number}")


def checkpoint_numbers(directory: str | Path) -> list[int]:
    """Numbers of the checkpoints with an index file in `directory`, newest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = (_INDEX_RE.match(p.name) for p in d.iterdir())
    return sorted((int(m.group(1)) for m in found if m), reverse=True)


def unreadable(prefix: str) -> str | None:
    """Why the checkpoint at `prefix` cannot be restored (one line), or None if every tensor in
    it reads back (a missing shard, a truncated index or a flipped byte all fail here)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except Exception as err:  # tf.errors.OpError, or ValueError from a garbled index
        text = " ".join(str(err).split())
        return f"{type(err).__name__}: {text[:200]}"
    return None


def newest_readable(
    directory: str | Path, warn: Callable[[str], None], before: int | None = None
) -> int | None:
    """The number of the newest checkpoint in `directory` (before step `before`, if given) that
    can be restored, calling `warn(one line)` for each newer one that cannot; None when none
    can."""
    for number in checkpoint_numbers(directory):
        if before is not None and number >= before:
            continue
        prefix = checkpoint_prefix(directory, number)
        problem = unreadable(prefix)
        if problem is None:
            return number
        warn(f"checkpoint {prefix} cannot be restored ({problem}); trying an earlier one")
    return None


def _stale(path: Path, keep_until: int | None) -> bool:
    """A temporary of TensorFlow's or of ours, or a file of a checkpoint after `keep_until`, or
    a data shard whose index is missing (a save killed between the two renames)."""
    name = path.name
    if _TF_TEMPORARY_RE.search(name) or is_temporary(name):
        return True
    m = _NUMBER_RE.match(name)
    if m is None:
        return False
    number = int(m.group(1))
    if keep_until is None or number > keep_until:
        return True
    return not (path.parent / f"{PREFIX}-{number}.index").exists()


def prune(directory: str | Path, keep_until: int | None) -> list[Path]:
    """Repair `directory` for a resume from checkpoint `keep_until` (None: from scratch): delete
    temporaries, checkpoints after it and shards without an index, and rewrite the state file
    to list the checkpoints left, `keep_until` newest. Returns what was deleted. Only the
    process holding the run directory's lock may call it."""
    d = Path(directory)
    if not d.is_dir():
        return []
    removed = [p for p in sorted(d.iterdir()) if _stale(p, keep_until)]
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    kept = sorted(checkpoint_numbers(d))
    state = d / STATE_FILE
    if not kept:
        state.unlink(missing_ok=True)
        return removed
    # The CheckpointState text format as the manager writes it: paths relative to the directory,
    # and save times after the last preserved one, else the manager would never delete them
    # (it deletes the oldest beyond max_to_keep at its next save).
    times = [(d / f"{PREFIX}-{n}.index").stat().st_mtime for n in kept]
    lines = [f'model_checkpoint_path: "{PREFIX}-{kept[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{PREFIX}-{n}"' for n in kept]
    lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in times]
    lines.append(f"last_preserved_timestamp: {min(times) - 1.0!r}")
    atomic_write_text(state, "\n".join(lines) + "\n")
    return removed


__all__ = [
    "checkpoint_numbers",
    "checkpoint_prefix",
    "newest_readable",
    "prune",
    "unreadable",
]
