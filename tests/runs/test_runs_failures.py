"""Environment failures told in one line (cause, path, what to do), the traceback in a log
file, and a metrics file never left with a torn row by a failed write. TensorFlow-free."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile

import pytest

from tfbreak.runs import RunWriter, failures, names


class ResourceExhaustedError(Exception):
    """Stands in for TensorFlow's (the module recognises errors by their words, not classes)."""


TF_DISK_FULL = (
    "{{function_node __wrapped__SaveV2_dtypes_14_device_/job:localhost/replica:0/task:0/device:"
    "CPU:0}} /runs/r/checkpoints/ckpt-2_temp/part-00000-of-00001.data-00000-of-00001.tempstate1"
    "; No space left on device [Op:SaveV2]"
)


@pytest.mark.parametrize(
    ("err", "reason", "advice"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/runs/r/arrays/x.npz"),
            "no space left on device: /runs/r/arrays/x.npz",
            "free space on that file system, then run the same command to resume",
        ),
        (
            ResourceExhaustedError(TF_DISK_FULL),
            "no space left on device: /runs/r/checkpoints/ckpt-2_temp/part-00000-of-00001.data-"
            "00000-of-00001.tempstate1",
            "free space on that file system, then run the same command to resume",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/runs/r/.lock"),
            "read-only file system: /runs/r/.lock",
            "make it writable (e.g. remount read-write), then run the same command to resume",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/runs/r"),
            "permission denied: /runs/r",
            "give this user access there, then run the same command to resume",
        ),
        (
            ResourceExhaustedError("OOM when allocating tensor with shape[4096,300]"),
            "out of memory",
            "free memory, or measure with less of it (a smaller --hessian_batch_size",
        ),
        (MemoryError(), "out of memory", "free memory"),
        (RuntimeError("disk on fire\nsecond line"), "RuntimeError: disk on fire", None),
    ],
)
def test_a_failure_is_one_line_with_its_cause_and_what_to_do(err, reason, advice):
    assert failures.reason(err) == reason
    told = failures.advice(err)
    assert told == advice if advice is None else told.startswith(advice)


def test_the_traceback_goes_to_the_run_directory_or_else_a_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    try:
        raise OSError(errno.ENOSPC, "No space left on device", "/x")
    except OSError as err:
        error = err
    assert failures.write_log(tmp_path, error, "first").parent == tmp_path / "tmp"  # no run
    (tmp_path / "metadata.json").write_text("{}")
    assert failures.write_log(tmp_path, error, "first") == tmp_path / failures.LOG_FILE
    failures.write_log(tmp_path, error, "second")
    text = (tmp_path / failures.LOG_FILE).read_text()
    assert text.startswith("== first\nTraceback (most recent call last):")
    assert "== second\n" in text and text.count("OSError: [Errno 28]") == 2


def test_a_row_that_fails_to_be_written_leaves_no_torn_line(tmp_path, monkeypatch):
    with RunWriter(tmp_path / "r", tensorboard=False) as writer:
        writer.write_metadata({"status": "running"})
        writer.append({"step": 0, "epoch": 0.0, names.LR: 0.1})
        real_write = os.write

        def half_then_full(fd, data):
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(OSError, match="No space left"):
            writer.append({"step": 1, "epoch": 0.1, names.LR: 0.1})
        monkeypatch.undo()
        writer.append({"step": 2, "epoch": 0.2, names.LR: 0.1})
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 2]


def test_a_removed_run_directory_stops_the_writer_and_writes_name_their_file(tmp_path, monkeypatch):
    run_dir = tmp_path / "r"
    writer = RunWriter(run_dir, tensorboard=False)
    writer.write_metadata({"status": "running"})
    with monkeypatch.context() as m:  # a full disk: the write of an open file names no file
        m.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        with pytest.raises(OSError) as info:
            writer.write_metadata({"status": "running", "x": 1})
        assert info.value.filename == str(run_dir / "metadata.json")
        with pytest.raises(OSError) as info:
            writer.append({"step": 0, "epoch": 0.0})
        assert failures.reason(info.value) == f"no space left on device: {run_dir}/metrics.jsonl"
    shutil.rmtree(run_dir)
    for write in (
        lambda: writer.append({"step": 0, "epoch": 0.0}),
        lambda: writer.save_arrays(0, K_eigenvalues=[1.0]),
        lambda: writer.update_metadata(status="failed"),
    ):
        with pytest.raises(FileNotFoundError) as info:
            write()
        assert failures.reason(info.value) == f"no such file or directory: {run_dir}"
    assert not run_dir.exists()  # nothing re-created
    writer.close()
