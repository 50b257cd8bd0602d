"""RunWriter / load_run: round trip, flushing, refusal, NaN handling, truncate_after."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfbreak.runs import NotARunError, RunWriter, find_runs, load_run, names
from tfbreak.runs.synthetic import synthetic_metadata, write_synthetic_run


def _writer(path, **kw):
    return RunWriter(path, tensorboard=False, **kw)


def test_round_trip_metadata_rows_series_arrays(tmp_path):
    d = tmp_path / "run"
    with _writer(d) as w:
        w.write_flags("--lr=0.1\n--batch_size=32")
        w.write_metadata(synthetic_metadata(lr=0.1, status="running"))
        w.append({"step": 0, "epoch": 0.0, names.K_LAMBDA_1: np.float32(1.5)})
        w.append({"step": 5, "epoch": 0.5, "kind": "epoch", names.TRAIN_ACCURACY_EPOCH: 0.25})
        w.append(
            {
                "step": 10,
                "epoch": np.float64(1.0),
                names.K_LAMBDA_1: float("nan"),
                names.HESSIAN_TOP_K: np.array([3.0, 2.0, np.inf]),
                names.HESSIAN_MATVECS: np.int64(40),
            }
        )
        w.save_arrays(10, K_eigenvalues=np.array([3.0, 1.0]), test_predictions=np.eye(3))
    run = load_run(d)
    assert run.metadata["lr"] == 0.1 and run.status == "running"
    assert run.flags == "--lr=0.1\n--batch_size=32\n"
    steps, epochs, values = run.series(names.K_LAMBDA_1)
    np.testing.assert_array_equal(steps, [0, 10])
    np.testing.assert_array_equal(epochs, [0.0, 1.0])
    assert values[0] == 1.5 and math.isnan(values[1])
    s, _, acc = run.series(names.TRAIN_ACCURACY_EPOCH)  # skips rows without the metric
    assert s.tolist() == [5] and acc.tolist() == [0.25]
    assert run.rows[2][names.HESSIAN_TOP_K] == [3.0, 2.0, None]
    assert run.rows[2][names.HESSIAN_MATVECS] == 40
    assert run.rows[0]["kind"] == "measurement"
    with pytest.raises(ValueError, match="not scalar"):
        run.series(names.HESSIAN_TOP_K)
    assert run.array_steps() == [10] and run.array_steps("hessian_density") == []
    np.testing.assert_array_equal(run.arrays(10)["K_eigenvalues"], [3.0, 1.0])
    with pytest.raises(KeyError):
        run.arrays(3)
    # NaN is stored as JSON null, never as the non-standard NaN token.
    text = (d / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text and "null" in text


def test_each_row_is_flushed_and_fsynced(tmp_path, monkeypatch):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    w = _writer(tmp_path / "run")
    for i in range(3):
        w.append({"step": i, "epoch": i / 10, names.TRAIN_LOSS_SINCE_LAST: 1.0 / (i + 1)})
        # Visible to an independent reader before close().
        assert len(load_run(tmp_path / "run").rows) == i + 1
    assert len(calls) == 3
    w.close()


def test_refuses_new_run_in_non_empty_directory(tmp_path):
    d = tmp_path / "busy"
    d.mkdir()
    (d / "something.txt").write_text("x")
    with pytest.raises(ValueError, match=str(d)):
        RunWriter(d)
    _writer(tmp_path / "empty_ok").close()  # a fresh or empty directory is fine
    (tmp_path / "empty").mkdir()
    _writer(tmp_path / "empty").close()
    _writer(d, resume=True).close()  # resuming is allowed


def test_rejects_bad_rows(tmp_path):
    with _writer(tmp_path / "r") as w:
        with pytest.raises(ValueError, match="unknown metric name"):
            w.append({"step": 0, "epoch": 0.0, "K/lambda1": 1.0})
        with pytest.raises(ValueError, match="'step' and 'epoch'"):
            w.append({"step": 0, names.TRAIN_LOSS_EPOCH: 1.0})
        with pytest.raises(ValueError, match="kind"):
            w.append({"step": 0, "epoch": 0.0, "kind": "weird"})
        with pytest.raises(ValueError, match="status"):
            w.update_metadata(status="exploded")


def test_truncate_after_for_resume(tmp_path):
    d = tmp_path / "run"
    with _writer(d) as w:
        w.write_metadata(synthetic_metadata())
        for s in range(0, 50, 10):
            w.append({"step": s, "epoch": s / 100, names.K_LAMBDA_1: float(s)})
            w.save_arrays(s, K_eigenvalues=np.array([float(s)]))
        w.finish("interrupted", "SIGTERM")
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"step": 60, "epoch"')  # torn last line from a crash
    with pytest.warns(UserWarning, match="torn"):
        assert load_run(d).last_step() == 40
    with _writer(d, resume=True) as w:
        dropped = w.truncate_after(20)
        assert dropped == 4  # rows 30, 40, the stop row, the torn line
        w.update_metadata(status="running", stop_reason=None)
        w.append({"step": 30, "epoch": 0.3, names.K_LAMBDA_1: 99.0})
    run = load_run(d)
    steps, _, values = run.series(names.K_LAMBDA_1)
    assert steps.tolist() == [0, 10, 20, 30] and values.tolist() == [0, 10, 20, 99]
    assert run.array_steps() == [0, 10, 20]
    assert run.stop_reason is None and all(r["kind"] != "stop" for r in run.rows)


def test_unparsable_rows_anywhere_are_skipped_with_one_warning(tmp_path):
    """A torn line mid-file (a crash before a resume that appended), a line that is not a JSON
    object, one without an integer step: skipped, one warning naming the file and the lines."""
    d = write_synthetic_run(
        tmp_path / "r", steps=[0, 10, 20], measurements={names.K_LAMBDA_1: [1.0, 2.0, 3.0]}
    )
    path = d / "metrics.jsonl"
    lines = path.read_text().splitlines()
    bad = ['{"step": 15, "ep', "[1, 2]", '{"epoch": 0.1}', '{"step": NaN}', '{"step": "x"}']
    path.write_text("\n".join(lines[:2] + bad + lines[2:]) + "\n")
    with pytest.warns(UserWarning) as caught:
        run = load_run(d)
    assert len(caught) == 1
    assert str(caught[0].message) == f"{path}: skipped lines 3, 4, 5, 6, 7: not a metrics row"
    assert run.series(names.K_LAMBDA_1)[0].tolist() == [0, 10, 20]
    (d / "metadata.json").write_text("[1]")
    with pytest.raises(NotARunError, match="not a JSON object"):
        load_run(d)
    (d / "metadata.json").write_text("{")
    with pytest.raises(NotARunError, match="not JSON"):
        load_run(d)


def test_finish_records_status_reason_and_stop_row(tmp_path):
    d = write_synthetic_run(
        tmp_path / "r",
        steps=[0, 10],
        measurements={names.K_LAMBDA_1: [1.0, float("nan")]},
        status="diverged",
        stop_reason="loss is NaN at step 10",
    )
    run = load_run(d)
    assert run.status == "diverged" and run.stop_reason == "loss is NaN at step 10"
    assert run.rows[-1]["kind"] == "stop" and run.rows[-1]["step"] == 10
    assert run.metadata["finished"]


def test_not_a_run_and_sweep_discovery(tmp_path):
    with pytest.raises(NotARunError, match=str(tmp_path / "nothing")):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARunError, match="neither a run directory"):
        find_runs(tmp_path / "empty")
    for name in ("b", "a"):
        write_synthetic_run(tmp_path / "sweep" / name, steps=[0], measurements={})
    assert [p.name for p in find_runs(tmp_path / "sweep")] == ["a", "b"]
    assert find_runs(tmp_path / "sweep" / "a") == [tmp_path / "sweep" / "a"]


def test_metadata_is_atomic_json(tmp_path):
    with _writer(tmp_path / "r") as w:
        w.write_metadata({"a": np.float32(0.5), "b": float("inf"), "status": "running"})
        md = w.update_metadata(status="completed")
    assert md["status"] == "completed"
    data = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert data == {"a": 0.5, "b": None, "status": "completed"}
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


def test_reader_and_report_do_not_import_tensorflow(tmp_path):
    d = write_synthetic_run(tmp_path / "r", steps=[0], measurements={names.K_LAMBDA_1: [1.0]})
    code = (
        "import sys; from tfbreak.runs import load_run; import tfbreak.report; "
        f"load_run({str(d)!r}).series('K/lambda_1'); "
        "sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_tensorboard_scalars_written(tmp_path):
    pytest.importorskip("tensorflow")
    d = tmp_path / "tb"
    with RunWriter(d) as w:
        w.append({"step": 1, "epoch": 0.1, names.K_LAMBDA_1: 2.0, names.HESSIAN_TOP_K: [1, 2]})
    events = list((d / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    import tensorflow as tf

    found = {}
    for ev in tf.compat.v1.train.summary_iterator(str(events[0])):
        for v in ev.summary.value:
            found[v.tag] = (ev.step, float(tf.make_ndarray(v.tensor)))
            assert v.metadata.plugin_data.plugin_name == "scalars"
    assert found == {names.K_LAMBDA_1: (1, 2.0)}  # lists (top_k) are not scalars: JSONL only


def _tensorboard_points(run_dir) -> list[tuple[str, int, float]]:
    import tensorflow as tf

    points = []
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        for ev in tf.compat.v1.train.summary_iterator(str(events)):
            for v in ev.summary.value:
                points.append((v.tag, ev.step, float(tf.make_ndarray(v.tensor))))
    return sorted(points)


def test_tensorboard_after_resume_has_each_point_once(tmp_path):
    """A resume drops the rows after the checkpoint and rebuilds TensorBoard from the rows kept:
    the rerun steps show once, with the rerun's values."""
    pytest.importorskip("tensorflow")
    d = tmp_path / "tb"
    with RunWriter(d) as w:
        for step in range(5):
            w.append({"step": step, "epoch": step / 10, names.K_LAMBDA_1: float(step)})
    with RunWriter(d, resume=True) as w:
        assert w.truncate_after(2) == 2
        for step in (3, 4):
            w.append({"step": step, "epoch": step / 10, names.K_LAMBDA_1: 10.0 + step})
    expected = [(names.K_LAMBDA_1, s, v) for s, v in [(0, 0), (1, 1), (2, 2), (3, 13), (4, 14)]]
    assert _tensorboard_points(d) == expected


def test_legacy_metric_names_are_read_as_todays(tmp_path):
    """tfbreak 0.1 wrote train/accuracy and val/accuracy in both row kinds; the reader tells
    the estimates apart by the row kind."""
    d = tmp_path / "old"
    with _writer(d, strict_names=False) as w:
        w.write_metadata(synthetic_metadata())
        w.append({"step": 10, "epoch": 0.1, "train/accuracy": 0.5, "val/accuracy": 0.4})
        w.append(
            {
                "step": 100,
                "epoch": 1.0,
                "kind": "epoch",
                "train/accuracy": 0.6,
                "val/loss": 1.5,
                "val/accuracy": 0.55,
                "train/loss": 1.2,
            }
        )
    run = load_run(d)
    assert run.rows[0] == {
        "step": 10,
        "epoch": 0.1,
        "kind": "measurement",
        names.TRAIN_ACCURACY_SINCE_LAST: 0.5,
        names.TEST_ACCURACY_SUBSET: 0.4,
    }
    assert run.series(names.TEST_ACCURACY)[2].tolist() == [0.55]
    assert run.series(names.TRAIN_ACCURACY_EPOCH)[2].tolist() == [0.6]
    assert run.series(names.TRAIN_LOSS_EPOCH)[2].tolist() == [1.2]
    assert run.series(names.TEST_LOSS)[2].tolist() == [1.5]
    assert not run.has("train/accuracy")


def test_unknown_array_key_is_refused(tmp_path):
    with _writer(tmp_path / "run") as w, pytest.raises(ValueError, match="unknown array keys"):
        w.save_arrays(0, eigenvalues=np.ones(2))
