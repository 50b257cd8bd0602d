"""Write a run directory (format: docs/run_directory.md).

`RunWriter` is the only writer of a run directory. TensorFlow is imported lazily, only when the
first TensorBoard scalar is written, so that creating and filling a run without TensorBoard (tests,
tools) costs no TensorFlow start-up.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tfbreak.runs import names
from tfbreak.runs.files import (
    ARRAYS_DIR,
    FLAGS_FILE,
    METADATA_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    atomic_write,
    atomic_write_text,
    clear_startup_leftovers,
    nearest_existing,
    remove_if_unstarted,
    remove_temporary_files,
    startup_leftovers,
    with_path,
)
from tfbreak.runs.lock import RunLock

ROW_KINDS = ("measurement", "epoch", "event", "stop")
STATUSES = ("running", "completed", "diverged", "failed", "interrupted")
# Row keys that are not metric names ("fit": the index of the model.fit call that wrote a row of
# a BreakEvenCallback run, docs/run_directory.md).
RESERVED_KEYS = frozenset({"step", "epoch", "kind", "reason", "event", "signal", "fit"})
_ARRAYS_RE = re.compile(r"^step_(\d+)\.npz$")


def arrays_filename(step: int) -> str:
    """File name of the arrays saved at `step` (``step_00000123.npz``)."""
    return f"step_{int(step):08d}.npz"


def parse_arrays_filename(name: str) -> int | None:
    """Step encoded in an arrays file name, or None if `name` is not one."""
    m = _ARRAYS_RE.match(name)
    return int(m.group(1)) if m else None


def now_iso() -> str:
    """Current UTC time, ISO 8601 (the format of metadata ``started`` / ``finished``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def to_jsonable(value: Any) -> Any:
    """Convert a value to plain JSON: numpy scalars/arrays -> float/int/lists, NaN/inf -> None.

    Booleans and strings pass through; nested lists/tuples/arrays become lists.
    """
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return to_jsonable(value.item())
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    # Tensors and other array-likes (e.g. tf.Tensor has .numpy()).
    if hasattr(value, "numpy"):
        return to_jsonable(np.asarray(value.numpy()))
    raise TypeError(f"cannot write value of type {type(value).__name__} to metrics: {value!r}")


class RunWriter:
    """Writer of one run directory: flags, metadata, metrics (JSONL + TensorBoard), arrays.

    The writer holds the run directory's lock (`tfbreak.runs.lock`) from construction to
    `close`: one writer per run directory, across processes; a second gets `RunDirLocked`
    naming the holder. Under the lock it removes the temporary files a killed writer left.

    Args:
      run_dir: the run directory; created if missing.
      resume: continue an existing run. Without it, a directory holding anything but the
        leftovers of a start-up killed before metadata.json was written (which are removed) is
        refused (ValueError), so that a new run never mixes its rows into an old one.
      tensorboard: also write every scalar metric with `tf.summary.scalar` under
        ``run_dir/tensorboard`` (TensorFlow imported at the first `append`).
      strict_names: reject metric and array keys that are not in `tfbreak.runs.names`.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        resume: bool = False,
        tensorboard: bool = True,
        strict_names: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"run directory {str(self.run_dir)!r} exists and is not a directory")
        self._refuse_unless_new(resume)  # before creating anything
        # What this writer creates, it removes again if it records nothing (see `close`).
        self._created_below = None if self.run_dir.exists() else nearest_existing(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = RunLock(self.run_dir)
        stat = os.stat(self.run_dir)
        self._identity = (stat.st_dev, stat.st_ino)
        try:
            self.removed = remove_temporary_files(self.run_dir)
            self._refuse_unless_new(resume)  # again, under the lock
            if not resume:
                clear_startup_leftovers(self.run_dir)
        except BaseException:
            self._lock.release()
            raise
        self.metrics_path = self.run_dir / METRICS_FILE
        self.metadata_path = self.run_dir / METADATA_FILE
        self.arrays_dir = self.run_dir / ARRAYS_DIR
        self.resume = resume
        self._tensorboard = tensorboard
        self._strict = strict_names
        self._tb_writer: Any = None
        self._metrics: int | None = None  # file descriptor, opened at the first row
        self._closed = False

    def _refuse_unless_new(self, resume: bool) -> None:
        if not resume and startup_leftovers(self.run_dir) is None:
            raise ValueError(
                f"refusing to start a new run in non-empty directory {str(self.run_dir)!r}; "
                "choose an empty directory or resume the run there"
            )

    def check_present(self) -> None:
        """Raise FileNotFoundError when the run directory was removed (or replaced) since this
        writer locked it: writing on would scatter the run, as TensorFlow re-creates the
        directories it saves checkpoints in. Called before every write."""
        try:
            stat = os.stat(self.run_dir)
            present = (stat.st_dev, stat.st_ino) == self._identity
        except FileNotFoundError:
            present = False
        if not present:
            raise FileNotFoundError(
                errno.ENOENT,
                "the run directory was removed while the run wrote it",
                str(self.run_dir),
            )

    # --------------------------------------------------------------- flags/metadata
    def write_flags(self, text: str) -> None:
        """Write the absl flags used (flagfile format, one ``--name=value`` per line)."""
        if text and not text.endswith("\n"):
            text += "\n"
        self.check_present()
        atomic_write_text(self.run_dir / FLAGS_FILE, text)

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Replace metadata.json atomically (tmp + fsync + rename). Values must be JSON-able."""
        data = to_jsonable(dict(metadata))
        status = data.get("status")
        if status is not None and status not in STATUSES:
            raise ValueError(f"metadata status must be one of {STATUSES}, got {status!r}")
        self.check_present()
        atomic_write_text(self.metadata_path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def read_metadata(self) -> dict[str, Any]:
        """Current metadata.json contents ({} if none written yet)."""
        if not self.metadata_path.exists():
            return {}
        with open(self.metadata_path, encoding="utf-8") as f:
            return json.load(f)

    def update_metadata(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into metadata.json (atomic rewrite); returns the new metadata."""
        data = self.read_metadata()
        data.update(fields)
        self.write_metadata(data)
        return data

    def finish(self, status: str = "completed", reason: str | None = None, **fields: Any) -> None:
        """Record the end of the run: metadata status/stop_reason/finished (+ `fields`).

        For abnormal ends (any status but "completed") a ``kind="stop"`` row with `reason` is also
        appended, at the step/epoch of the last row written (or `fields` ``step``/``epoch``); it
        replaces an earlier stop row (a run has at most one, its last row). `fields` ``signal``
        (e.g. "SIGTERM", for status "interrupted") goes into the stop row only.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if status != "completed":
            step = fields.pop("step", None)
            epoch = fields.pop("epoch", None)
            self._rewrite_rows(lambda row: row.get("kind") != "stop")
            if step is None or epoch is None:
                last = self._last_row()
                step = last.get("step", 0) if step is None else step
                epoch = last.get("epoch", 0.0) if epoch is None else epoch
            stop = {"step": step, "epoch": epoch, "kind": "stop", "reason": reason or status}
            signal = fields.pop("signal", None)
            self.append(stop if signal is None else {**stop, "signal": signal})
        self.update_metadata(status=status, stop_reason=reason, finished=now_iso(), **fields)

    # ------------------------------------------------------------------ metrics
    def append(self, row: Mapping[str, Any]) -> None:
        """Append one metrics row (JSON line), flushed and fsync'd before returning.

        `row` needs ``step`` (int) and ``epoch`` (float); ``kind`` defaults to "measurement".
        Other keys are metric names from `tfbreak.runs.names` (values: numbers, numpy scalars,
        or lists/arrays for ``hessian/top_k``). NaN/inf are written as null. Scalar metrics also
        go to TensorBoard if enabled.
        """
        self._check_open()
        if "step" not in row or "epoch" not in row:
            raise ValueError(f"metrics row needs 'step' and 'epoch', got keys {sorted(row)}")
        out: dict[str, Any] = {
            "step": int(row["step"]),
            "epoch": to_jsonable(row["epoch"]),
            "kind": str(row.get("kind", "measurement")),
        }
        if out["kind"] not in ROW_KINDS:
            raise ValueError(f"row kind must be one of {ROW_KINDS}, got {out['kind']!r}")
        for key, value in row.items():
            if key in ("step", "epoch", "kind"):
                continue
            if self._strict and key not in RESERVED_KEYS and key not in names.DESCRIPTIONS:
                raise ValueError(
                    f"unknown metric name {key!r}; metric names are defined in "
                    "tfbreak.runs.names (pass strict_names=False to allow others)"
                )
            out[key] = to_jsonable(value)
        self._write_line((json.dumps(out, allow_nan=False) + "\n").encode("utf-8"))
        if self._tensorboard:
            self._write_tensorboard(out)

    def _write_line(self, data: bytes) -> None:
        """Append `data` to metrics.jsonl and fsync; if that fails (a full disk), cut the file
        back to its previous end, so that it never holds a torn row of this writer's."""
        self.check_present()
        if self._metrics is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._metrics = os.open(self.metrics_path, flags, 0o644)
        end = os.fstat(self._metrics).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._metrics, view) :]
            os.fsync(self._metrics)
        except BaseException as err:
            try:
                os.ftruncate(self._metrics, end)
            except OSError:
                pass  # the reader and `truncate_after` drop a torn last line
            if isinstance(err, OSError):
                raise with_path(err, self.metrics_path) from err
            raise

    def _close_metrics(self) -> None:
        if self._metrics is not None:
            fd, self._metrics = self._metrics, None
            os.close(fd)

    def _write_tensorboard(self, row: Mapping[str, Any]) -> None:
        scalars = {
            k: v
            for k, v in row.items()
            if k not in RESERVED_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if not scalars:
            return
        if self._tb_writer is None:
            import tensorflow as tf  # lazy: only runs that write TensorBoard pay for it
            from tensorflow.core.framework import summary_pb2

            # tf.summary.scalar lives in the `tensorboard` package, which TensorFlow does not
            # always bring; tf.summary.write with the scalars plugin metadata is what it does.
            meta = summary_pb2.SummaryMetadata()
            meta.plugin_data.plugin_name = "scalars"
            self._tf = tf
            self._tb_meta = meta.SerializeToString()
            self._tb_writer = tf.summary.create_file_writer(str(self.run_dir / TENSORBOARD_DIR))
        tf = self._tf
        with self._tb_writer.as_default():
            for key, value in scalars.items():
                tf.summary.write(
                    key,
                    tf.constant(value, dtype=tf.float32),
                    step=int(row["step"]),
                    metadata=self._tb_meta,
                )

    def rebuild_tensorboard(self) -> None:
        """Replace ``run_dir/tensorboard`` by the scalars of metrics.jsonl's rows (nothing for a
        writer without TensorBoard). A kill in the middle leaves a partial view that the next
        resume rebuilds again."""
        if not self._tensorboard:
            return
        if self._tb_writer is not None:
            self._tb_writer.close()
            self._tb_writer = None
        shutil.rmtree(self.run_dir / TENSORBOARD_DIR, ignore_errors=True)
        for _, row in self._rows():
            if row is not None:
                self._write_tensorboard(row)
        if self._tb_writer is not None:
            self._tb_writer.flush()

    def _rows(self) -> list[tuple[str, dict[str, Any] | None]]:
        """(line, row) of metrics.jsonl; row None for a line that is not JSON (a torn one)."""
        if not self.metrics_path.is_file():
            return []
        out: list[tuple[str, dict[str, Any] | None]] = []
        with open(self.metrics_path, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append((line, json.loads(line)))
                except json.JSONDecodeError:
                    out.append((line, None))
        return out

    def _last_row(self) -> dict[str, Any]:
        rows = [row for _, row in self._rows() if row is not None]
        return rows[-1] if rows else {}

    def _rewrite_rows(self, keep: Callable[[dict[str, Any]], bool]) -> int:
        """Rewrite metrics.jsonl atomically with the rows `keep` accepts (a torn line is always
        dropped); returns the number of lines dropped. Nothing is written when all are kept."""
        lines = self._rows()
        kept = [line.rstrip("\n") + "\n" for line, r in lines if r is not None and keep(r)]
        if len(kept) == len(lines):
            return 0
        self._close_metrics()
        atomic_write_text(self.metrics_path, "".join(kept))
        return len(lines) - len(kept)

    # ------------------------------------------------------------------ arrays
    def save_arrays(self, step: int, **arrays: Any) -> Path:
        """Save per-measurement arrays as ``arrays/step_XXXXXXXX.npz`` (keys: run_directory.md).

        Written to a temporary file and renamed, so a reader never sees a half-written npz.
        """
        self._check_open()
        if not arrays:
            raise ValueError("save_arrays needs at least one array")
        unknown = sorted(k for k in arrays if k not in names.ARRAY_DESCRIPTIONS)
        if self._strict and unknown:
            raise ValueError(
                f"unknown array keys {unknown}; array keys are defined in tfbreak.runs.names "
                "(pass strict_names=False to allow others)"
            )
        self.check_present()
        self.arrays_dir.mkdir(exist_ok=True)
        path = self.arrays_dir / arrays_filename(step)
        data = {k: np.asarray(v) for k, v in arrays.items()}
        atomic_write(path, lambda f: np.savez(f, **data), binary=True)
        return path

    # ------------------------------------------------------------------ resume
    def truncate_after(self, step: int, *, rebuild: bool = True) -> int:
        """Resume support: drop metric rows with ``step > step`` and arrays files after `step`.

        Also drops all ``kind="stop"`` rows (the run continues) and a torn last line left by a
        crash. The rewrite is atomic. The TensorBoard events, a view of metrics.jsonl, are
        rebuilt from the rows kept (`rebuild_tensorboard`; `rebuild=False` leaves that to the
        caller, e.g. after a block that holds signals back, as it takes O(rows) writes), so that
        the resumed run's points never show twice. Metadata is left untouched (set
        ``status="running"`` yourself). Returns the number of rows dropped.
        """
        self._check_open()
        dropped = self._rewrite_rows(
            lambda row: int(row.get("step", 0)) <= step and row.get("kind") != "stop"
        )
        if rebuild:
            self.rebuild_tensorboard()
        if self.arrays_dir.is_dir():
            for path in self.arrays_dir.iterdir():
                s = parse_arrays_filename(path.name)
                if s is not None and s > step:
                    path.unlink()
        return dropped

    # ------------------------------------------------------------------ lifecycle
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"RunWriter for {str(self.run_dir)!r} is closed")

    def close(self) -> None:
        """Flush and close the metrics file and the TensorBoard writer, release the run
        directory's lock (idempotent). A directory this writer created and recorded nothing in
        (no metadata.json) is removed, with the parents it created. A TensorBoard flush that
        fails (a full disk) is let go: tensorboard/ is a view of metrics.jsonl that a resumed
        run rebuilds, and the failure that closes a run must not be hidden by it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close_metrics()
            if self._tb_writer is not None:
                try:
                    self._tb_writer.flush()
                    self._tb_writer.close()
                except Exception:  # noqa: BLE001 - see the docstring
                    pass
                self._tb_writer = None
            if self._created_below is not None:
                remove_if_unstarted(self.run_dir, self._created_below)
        finally:
            self._lock.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
