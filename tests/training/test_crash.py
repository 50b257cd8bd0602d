"""Crash-proof runs, end to end: SIGKILL at start-up, in a write and at random (the CI-sized
chaos run of scripts/chaos.py), SIGTERM and SIGINT, a second process on the same directory,
corrupt checkpoints, a torn row, failures on resume, a full disk and exhausted memory. Every
resumed run must equal the uninterrupted one: the same metric rows (wall-clock fields aside)
and bit-identical arrays."""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from absl import flags

from tfbreak import flags as tfflags
from tfbreak.config import ExperimentConfig
from tfbreak.runs import load_run, lock_holder
from tfbreak.training.checkpoints import checkpoint_numbers
from tfbreak.training.trainer import Trainer

_spec = importlib.util.spec_from_file_location(
    "chaos", Path(__file__).parents[2] / "scripts" / "chaos.py"
)
chaos = sys.modules["chaos"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chaos)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of scripts/chaos.py's configuration, and its phase timings."""
    return chaos.run_reference(tmp_path_factory.mktemp("reference"))


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None and time.monotonic() < deadline, chaos.log_tail(proc)
        time.sleep(0.02)


def _tfbreak_lines(text: str) -> list[str]:
    """The command's own lines, but for the start-up memory budget (`tfbreak: memory: ...`)."""
    return [
        line
        for line in text.splitlines()
        if line.startswith("tfbreak:") and not line.startswith("tfbreak: memory:")
    ]


def _in_process_config(run_dir: Path) -> ExperimentConfig:
    """The ExperimentConfig `python -m tfbreak.main` builds for chaos.FLAGS in `run_dir`
    (whose name must be "run")."""
    fl = flags.FLAGS
    fl.unparse_flags()
    try:
        fl(["tfbreak", *chaos.FLAGS, f"--output_dir={run_dir.parent}", "--run_name=run"])
        return tfflags.config_from_flags()
    finally:
        fl.unparse_flags()


@pytest.mark.slow
def test_chaos_kills_at_startup_in_a_write_and_at_random(tmp_path, reference):
    ref_dir, timing = reference
    kills, problems, left = chaos.trial(
        tmp_path, "chaos", list(chaos.WINDOWS), random.Random(1), timing, ref_dir
    )
    assert problems == [] and left == []
    assert len(kills) >= 2  # a run may end before a late kill
    assert kills[0].window == "start-up" and kills[0].landed_in_startup


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_a_second_process_is_refused(tmp_path, reference, run_cli):
    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    proc = chaos.launch(tmp_path, "run", chaos.FLAGS)
    rows = run_dir / "metrics.jsonl"
    _wait_for(lambda: rows.is_file() and len(rows.read_text().splitlines()) >= 6, proc)

    start = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "tfbreak.main", *chaos.FLAGS]
        + [f"--output_dir={tmp_path}", "--run_name=run"],
        capture_output=True,
        text=True,
    )
    assert second.returncode == 2
    assert second.stderr.splitlines() == [  # one line, before TensorFlow is even imported
        f"tfbreak: error: {run_dir} is in use by process {lock_holder(run_dir)} "
        f"(lock {run_dir}/.lock); wait for it to end, or stop it (a stopped run resumes when "
        "its command is run again)"
    ]
    assert lock_holder(run_dir).startswith(f"{proc.pid}@")
    assert time.monotonic() - start < 10

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    lines = _tfbreak_lines(chaos.log_tail(proc))
    assert len(lines) == 1 and lines[0].startswith(f"tfbreak: {run_dir}: interrupted (SIGTERM ")
    assert lines[0].endswith("run the same command to resume")
    run = load_run(run_dir)
    assert run.status == "interrupted" and run.stop_reason.startswith("SIGTERM at step ")
    assert [r["kind"] for r in run.rows].count("stop") == 1
    assert run.rows[-1]["kind"] == "stop" and run.rows[-1]["signal"] == "SIGTERM"
    assert lock_holder(run_dir) is None and checkpoint_numbers(run_dir / "checkpoints")

    resumed = run_cli(*chaos.FLAGS, f"--output_dir={tmp_path}", "--run_name=run")
    assert resumed.returncode == 0, resumed.stderr
    assert chaos.differences(run_dir, ref_dir) == []
    assert load_run(run_dir).status == "completed" and chaos.temporaries(run_dir) == []


@pytest.mark.slow
def test_sigint_during_startup_records_nothing(tmp_path):
    proc = chaos.launch(tmp_path / "out", "run", chaos.FLAGS, log_dir=tmp_path)
    _wait_for(lambda: (tmp_path / "out" / "run" / ".lock").exists(), proc)  # loading data
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert _tfbreak_lines(chaos.log_tail(proc)) == [
        f"tfbreak: {tmp_path / 'out' / 'run'}: interrupted (SIGINT while starting; nothing was "
        "recorded); run the same command to resume"
    ]
    assert "Traceback" not in chaos.log_tail(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.0.log"]  # out/ is gone


def _flip_data(prefix: Path) -> None:
    data = next(prefix.parent.glob(prefix.name + ".data-*"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))


def _truncate_index(prefix: Path) -> None:
    index = prefix.parent / (prefix.name + ".index")
    index.write_bytes(index.read_bytes()[:40])


def _delete_data(prefix: Path) -> None:
    next(prefix.parent.glob(prefix.name + ".data-*")).unlink()


def _delete_data_and_garble_the_state_file(prefix: Path) -> None:
    next(prefix.parent.glob(prefix.name + ".data-*")).unlink()
    (prefix.parent / "checkpoint").write_text("garbage {{{")


CORRUPTIONS = {
    "flipped-data": _flip_data,
    "truncated-index": _truncate_index,
    "missing-data-garbled-state": _delete_data_and_garble_the_state_file,
}


def _interrupted_copy(ref_dir: Path, run_dir: Path) -> None:
    """`ref_dir` as if it had been stopped (a completed run is not resumed)."""
    shutil.copytree(ref_dir, run_dir)
    meta = json.loads((run_dir / "metadata.json").read_text())
    (run_dir / "metadata.json").write_text(json.dumps({**meta, "status": "interrupted"}))


@pytest.mark.slow
@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_latest_checkpoint_falls_back_to_an_intact_one(tmp_path, reference, how, capsys):
    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    _interrupted_copy(ref_dir, run_dir)
    ckpts = run_dir / "checkpoints"
    numbers = checkpoint_numbers(ckpts)
    CORRUPTIONS[how](ckpts / f"ckpt-{numbers[0]}")
    capsys.readouterr()

    result = Trainer(_in_process_config(run_dir), progress=False).run()

    assert result.status == "completed"
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "cannot be restored" in line]
    assert len(warnings) == 1  # one line
    assert all(w.startswith("tfbreak: warning: checkpoint ") for w in warnings)
    assert chaos.differences(run_dir, ref_dir) == []
    assert not any(r["kind"] == "stop" for r in load_run(run_dir).rows)
    assert checkpoint_numbers(ckpts) == numbers  # rewritten intact, the same steps
    state = (ckpts / "checkpoint").read_text()
    assert f'model_checkpoint_path: "ckpt-{numbers[0]}"' in state
    assert chaos.temporaries(run_dir) == []


@pytest.mark.slow
def test_failing_resumes_leave_one_stop_row_and_a_restart_from_scratch_is_identical(
    tmp_path, reference
):
    """A run that fails at its first measurement has no checkpoint: each resume restarts it
    from the start (the path taken when no checkpoint can be restored, too)."""
    ref_dir, _ = reference
    config = _in_process_config(tmp_path / "run")
    for _ in range(2):
        trainer = Trainer(config, progress=False)

        def failing(step, lr, *args, **kwargs):
            raise RuntimeError("disk on fire")

        trainer.suite.measure = failing
        with pytest.raises(RuntimeError, match="disk on fire"):
            trainer.run()
        run = load_run(tmp_path / "run")
        assert run.status == "failed" and run.stop_reason == "RuntimeError: disk on fire"
        assert [r["kind"] for r in run.rows] == ["stop"]
        assert lock_holder(tmp_path / "run") is None  # released on the way out
    assert Trainer(config, progress=False).run().status == "completed"
    assert chaos.differences(tmp_path / "run", ref_dir) == []


@pytest.mark.slow
def test_rerunning_a_completed_run_loads_nothing(reference, tmp_path):
    ref_dir, _ = reference
    shutil.copytree(ref_dir, tmp_path / "done")
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['tfbreak', *{chaos.FLAGS!r}, '--output_dir={tmp_path}', '--run_name=done']\n"
        "try:\n"
        "    runpy.run_module('tfbreak.main', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print(exit.code, 'tensorflow' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["0", "False"]
    assert proc.stderr.splitlines() == [
        f"tfbreak: {tmp_path / 'done'}: completed (already completed; nothing to do)"
    ]


@pytest.mark.slow
def test_torn_row_at_the_checkpoint_is_measured_again_and_an_orphan_array_removed(
    tmp_path, reference, capsys
):
    """Outside damage (not a kill) to the row of the newest checkpoint's step: the run resumes
    from the checkpoint before it, so that it ends with every row of the uninterrupted run."""
    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    _interrupted_copy(ref_dir, run_dir)
    newest = checkpoint_numbers(run_dir / "checkpoints")[0]
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    i = next(
        i
        for i, line in enumerate(lines)
        if json.loads(line)["step"] == newest and json.loads(line)["kind"] == "measurement"
    )
    lines[i] = lines[i][: len(lines[i]) // 2] + "\n"
    metrics.write_text("".join(lines))
    orphan = run_dir / "arrays" / "step_00000009.npz"
    assert not orphan.exists()
    shutil.copy(run_dir / "arrays" / "step_00000002.npz", orphan)
    capsys.readouterr()

    result = Trainer(_in_process_config(run_dir), progress=False).run()

    assert result.status == "completed"
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"tfbreak: warning: {run_dir}: the measurement row of step {newest} is missing or torn; "
        f"resuming from the checkpoint of step "
    )
    assert warnings[0].endswith("removed arrays/step_00000009.npz (no row)")
    assert chaos.differences(run_dir, ref_dir) == [] and not orphan.exists()


@pytest.mark.slow
def test_a_full_disk_then_out_of_memory_are_one_line_each_and_the_rerun_is_identical(
    tmp_path, reference, run_cli, monkeypatch
):
    """Environment failures through the command: exit 1, one line naming the cause and what to
    do, the traceback in RUN_DIR/error.log, a stop row, nothing written before lost; the same
    command after the fix completes the run as if nothing had happened."""
    import tensorflow as tf

    from tfbreak.measure import MeasurementSuite
    from tfbreak.runs import RunWriter

    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    args = [*chaos.FLAGS, f"--output_dir={tmp_path}", "--run_name=run"]
    save_arrays, measure = RunWriter.save_arrays, MeasurementSuite.measure

    def disk_full(self, step, **arrays):
        if step >= 6:
            raise OSError(28, "No space left on device", str(self.arrays_dir / "x.tmp"))
        return save_arrays(self, step, **arrays)

    def out_of_memory(self, step, *args, **kwargs):
        if step >= 40:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return measure(self, step, *args, **kwargs)

    for patch, cause, advice in [
        (("save_arrays", disk_full), f"no space left on device: {run_dir}/arrays/x.tmp", "free"),
        (("measure", out_of_memory), "out of memory", "free memory, or measure with less"),
    ]:
        cls = RunWriter if patch[0] == "save_arrays" else MeasurementSuite
        monkeypatch.setattr(cls, *patch)
        restored = checkpoint_numbers(run_dir / "checkpoints")[:1]
        before = [r for r in load_run(run_dir).rows if r["step"] <= restored[0]] if restored else []
        proc = run_cli(*args)
        monkeypatch.undo()
        lines = _tfbreak_lines(proc.stderr)
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"tfbreak: {run_dir}: failed ({cause}); {advice}")
        assert lines[0].endswith(f"; traceback in {run_dir}/error.log")
        assert "Traceback" not in proc.stderr
        run = load_run(run_dir)
        assert run.status == "failed" and run.stop_reason == cause
        assert run.rows[-1]["kind"] == "stop" and run.rows[-1]["reason"] == cause
        assert run.rows[: len(before)] == before  # what the resumed checkpoint had, kept
    assert (run_dir / "error.log").read_text().count("Traceback (most recent call last)") == 2
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert chaos.differences(run_dir, ref_dir) == [] and chaos.temporaries(run_dir) == []


@pytest.mark.slow
def test_sigterm_at_any_moment_of_startup_exits_143_within_seconds(tmp_path):
    for i, when in enumerate(["importing", "locked"]):
        out = tmp_path / f"out{i}"
        proc = chaos.launch(out, "run", chaos.FLAGS, log_dir=tmp_path)
        if when == "locked":  # loading data, building the model
            _wait_for(lambda out=out: (out / "run" / ".lock").exists(), proc)
        else:  # importing TensorFlow (or, on a fast machine, already loading data)
            time.sleep(3.0)
        proc.send_signal(signal.SIGTERM)
        # 143 from tfbreak's handler; -15 (143 to a shell) if Python was still starting up
        assert proc.wait(timeout=10) in (143, -signal.SIGTERM)
        assert "Traceback" not in chaos.log_tail(proc, 4000)
        assert not (out / "run").exists()
