"""One writer per run directory (the flock), the repair of what a killed writer leaves
(temporaries, start-up leftovers), and at most one stop row. TensorFlow-free."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tfbreak.runs import RunDirLocked, RunLock, RunWriter, load_run, lock_holder, names
from tfbreak.runs.files import (
    is_temporary,
    remove_if_unstarted,
    remove_temporary_files,
    startup_leftovers,
)
from tfbreak.runs.synthetic import synthetic_metadata

HOLD = (
    "import sys, time; from tfbreak.runs import RunLock; lock = RunLock(sys.argv[1]); "
    "print('locked', flush=True); time.sleep(60)"
)


def _writer(path, **kw):
    return RunWriter(path, tensorboard=False, **kw)


def test_lock_excludes_a_second_holder_in_the_same_process(tmp_path):
    first = RunLock(tmp_path)
    assert lock_holder(tmp_path) == f"{os.getpid()}@{os.uname().nodename}"
    with pytest.raises(RunDirLocked, match=f"process {os.getpid()}@") as info:
        RunLock(tmp_path)
    assert info.value.run_dir == tmp_path
    first.release()
    assert lock_holder(tmp_path) is None
    with RunLock(tmp_path) as again:
        assert again.held
    assert not again.held


def test_lock_of_another_process_names_it_and_dies_with_it(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert lock_holder(tmp_path).startswith(f"{proc.pid}@")
        with pytest.raises(RunDirLocked, match=f"in use by process {proc.pid}@"):
            _writer(tmp_path, resume=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert lock_holder(tmp_path) is None  # the kernel released it with the process
    _writer(tmp_path, resume=True).close()


def test_lock_holder_creates_nothing(tmp_path):
    assert lock_holder(tmp_path / "missing") is None
    assert lock_holder(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_writer_holds_the_lock_until_closed(tmp_path):
    w = _writer(tmp_path / "r")
    w.write_metadata(synthetic_metadata())
    assert lock_holder(tmp_path / "r") is not None
    with pytest.raises(RunDirLocked):
        _writer(tmp_path / "r", resume=True)
    w.close()
    assert lock_holder(tmp_path / "r") is None


def test_killed_writers_temporaries_are_removed_under_the_lock(tmp_path):
    d = tmp_path / "r"
    with _writer(d) as w:
        w.write_metadata(synthetic_metadata())
        w.save_arrays(0, K_eigenvalues=[1.0])
    stale = [d / ".metadata.json.ab12cd34.tmp", d / "arrays" / ".step_00000003.npz.x_y9.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    keep = d / "arrays" / "step_00000000.npz"
    assert all(is_temporary(p.name) for p in stale) and not is_temporary(keep.name)
    w = _writer(d, resume=True)
    assert sorted(w.removed) == sorted(stale)
    assert not any(p.exists() for p in stale) and keep.exists()
    w.close()
    assert remove_temporary_files(d) == []


def test_startup_leftovers_are_recognised_and_cleared(tmp_path):
    d = tmp_path / "r"
    assert startup_leftovers(d) == []  # missing: nothing to clear
    d.mkdir()
    (d / ".lock").write_text("123@host\n")
    (d / "flags.txt").write_text("--lr=0.1\n")
    (d / ".flags.txt.abcd1234.tmp").write_text("--lr")
    (d / "metrics.jsonl").write_text("")  # tfbreak 0.1 created these before metadata.json
    (d / "arrays").mkdir()
    assert len(startup_leftovers(d)) == 5
    with _writer(d) as w:  # a new run in it: the leftovers go
        assert sorted(p.name for p in d.iterdir()) == [".lock"]
        w.write_metadata(synthetic_metadata())
    assert startup_leftovers(d) is None  # now a started run
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert startup_leftovers(other) is None
    with pytest.raises(ValueError, match="non-empty"):
        _writer(other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]  # nothing added


def test_writer_that_records_nothing_leaves_nothing(tmp_path):
    _writer(tmp_path / "a" / "b" / "run").close()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "keep").mkdir()
    _writer(tmp_path / "keep" / "run").close()
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]
    assert list((tmp_path / "keep").iterdir()) == []
    with _writer(tmp_path / "started") as w:
        w.write_metadata(synthetic_metadata())
    assert (tmp_path / "started" / "metadata.json").is_file()
    assert not remove_if_unstarted(tmp_path / "started", tmp_path)


def test_finish_keeps_one_stop_row(tmp_path):
    d = tmp_path / "r"
    with _writer(d) as w:
        w.write_metadata(synthetic_metadata())
        w.append({"step": 3, "epoch": 0.1, names.K_LAMBDA_1: 1.0})
        w.finish("failed", "RuntimeError: boom")
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "ep')  # torn by a kill
    for attempt in range(3):  # e.g. resumes that fail again before truncating
        with _writer(d, resume=True) as w:
            w.finish("interrupted", f"SIGTERM at step {5 + attempt}", signal="SIGTERM")
    run = load_run(d)
    assert [r["kind"] for r in run.rows] == ["measurement", "stop"]
    assert run.rows[-1] == {
        "step": 3,
        "epoch": 0.1,
        "kind": "stop",
        "reason": "SIGTERM at step 7",
        "signal": "SIGTERM",
    }
    assert run.status == "interrupted" and "signal" not in run.metadata
    assert run.metric_names() == [names.K_LAMBDA_1]


def _hold_briefly(path, seconds: float) -> threading.Thread:
    """Hold an flock on `path` (as a `lock_holder` probe does) for `seconds` in a thread."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    thread = threading.Thread(target=lambda: (time.sleep(seconds), os.close(fd)))
    thread.start()
    return thread


def test_acquirer_retries_past_a_probe_but_not_past_a_holder(tmp_path):
    probe = _hold_briefly(tmp_path / ".lock", 0.03)
    with RunLock(tmp_path) as lock:  # retried for up to 80 ms
        assert lock.held
    probe.join()
    holder = _hold_briefly(tmp_path / ".lock", 0.5)
    with pytest.raises(RunDirLocked):
        RunLock(tmp_path)
    holder.join()
