"""The command line's answers before any work: every bad flag, flagfile line, path and size is
one line ``tfbreak: error: --flag: ...`` with exit code 2 and nothing written; a legal but
degenerate setting is a one-line warning; a run directory that cannot be written is one line
with exit code 1. Run in this process (`run_cli`); one subprocess checks the contract of the
real command and that none of these answers imports TensorFlow."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tfbreak.config import ExperimentConfig
from tfbreak.runs import stored_config

BERT_FLAGFILE = Path(__file__).parents[1] / "configs" / "bert_mnli.flags"

BAD_INPUT = [
    (["--bogus=1"], "--bogus: unknown flag (tfbreak --help lists them)"),
    (["--lrr=0.1"], "--lrr: unknown flag; did you mean --lr"),
    (["--flagfile=/nonexistent/x.flags"], "--flagfile: /nonexistent/x.flags is not a file"),
    (["--flagfile={tmp}/typo.flags"], "--flagfile: {tmp}/typo.flags line 3: --lrr: unknown flag"),
    (["--flagfile={tmp}/value.flags"], "--flagfile: {tmp}/value.flags line 1: --lr: expected a "),
    (["--flagfile={tmp}/stray.flags"], "--flagfile: {tmp}/stray.flags line 1: 'lr=0.1' is not a"),
    (["--flagfile={tmp}/nested.flags"], "--flagfile: {tmp}/nested.flags line 1: --flagfile: /no"),
    (["--lr=0"], "--lr: expected a positive number, got 0.0"),
    (["--lr=abc"], "--lr: expected a number, got 'abc'"),
    (["--lr", "abc"], "--lr: expected a number, got 'abc'"),
    (["--batch_size=-5"], "--batch_size:"),
    (["--bn_mode=train"], "--bn_mode: expected one of auto, inference, batch, got 'train'"),
    (["--progress=maybe"], "--progress: expected true or false, got 'maybe'"),
    (["--noprogress=1"], "--noprogress: takes no value"),
    (["--sweep=lr:"], "--sweep"),
    (["--sweep=depth:1,2"], "--sweep"),
    (["stray"], "unexpected arguments ['stray']"),
    # sizes (the catalog's data sets) and ranges, before TensorFlow
    (["--epochs=1e30"], "--epochs: 1e+30 epochs of 937 steps (--batch_size=64, 60000 training "),
    (["--max_steps=1e30"], "--max_steps: expected an integer, got '1e30'"),
    (["--max_steps=100000001"], "--max_steps: expected an integer in [1, 100000000]"),
    (["--seed=1e20"], "--seed: expected an integer, got '1e20'"),
    (["--seed=100000000000000000000"], "--seed: expected an integer in [0, 4294967295]"),
    (["--seeds=0,4294967296"], "--seeds: expected distinct integers in [0, 4294967295]"),
    (["--batch_size=100000"], "--batch_size: 100000 is larger than the training set (60000 "),
    (["--k_L=1000", "--k_M=100"], "--k_L: L * M = 1000 * 100 = 100000 exceeds the training set"),
    (
        ["--measure_every_epochs=1e-9", "--epochs=200"],
        "--measure_every_epochs: the schedule measures up to 187,435 times (every 1 of the "
        "187,400 steps, and 33 early steps up to --measure_dense_until=1000)",
    ),
    (["--measure_per_decade=5000"], "--measure_per_decade: expected an integer in [1, 1000]"),
    (
        ["--hessian_target_error=0.1", "--hessian_sample_size=20000"],
        "--hessian_max_fraction: 0.25 of the training set is 15000 examples, fewer than",
    ),
    (["--model_option=depth=3"], "--model_option: unknown option depth; the options are "),
    (["--data_option=foo=1"], "--data_option: unknown option foo; the options are "),
    (["--model=nope"], "--model: expected one of"),
    (["--dataset=nope"], "--dataset: expected one of"),
    (
        ["--model=simple_cnn", "--dataset=cifar10", "--data_dir={tmp}/tfds"],
        "--dataset: cifar10 is not prepared in {tmp}/tfds (looked for cifar10); prepare it",
    ),
    # paths and settings that only make sense together (issue 15)
    (["--output_dir={tmp}/file/runs"], "--output_dir:"),
    (["--output_dir=/proc/tfbreak_runs"], "--output_dir:"),
    (["--run_name=.."], "--run_name:"),
    (["--run_name=."], "--run_name:"),
    (["--weight_decay=inf"], "--weight_decay:"),
    (["--model=bert"], "--model: bert takes sentence pairs"),
    ([f"--flagfile={BERT_FLAGFILE}"], "--bert_handle: data/bert_multi_cased"),
    (
        [f"--flagfile={BERT_FLAGFILE}", "--bert_handle=https://tfhub.dev/x/1"],
        "--bert_handle: https://tfhub.dev/x/1 is a URL, and tfbreak uses the network only "
        "with --download",
    ),
    (["--model=bert", "--dataset=mnli", "--bert_handle={tmp}/none"], "--bert_handle: "),
    (["--model=bert", "--dataset=mnli", "--bert_handle={tmp}"], "--bert_handle: {tmp} holds no"),
    (["--sweep=lr:0.1,0.01", "--lr=0.3"], "--lr: --sweep=lr:0.1,0.01"),
    (["--seeds=0,1", "--seed=2"], "--seed: --seeds=0,1"),
    (["--data_dir={tmp}/none"], "--data_dir:"),
]
"""Arguments, and the start of the one error line after ``tfbreak: error: ``."""


def _files(tmp: Path) -> list[str]:
    (tmp / "file").write_text("")
    (tmp / "tfds").mkdir()
    (tmp / "typo.flags").write_text("# a flagfile with a typo\n--lr=0.1\n--lrr=0.2\n")
    (tmp / "value.flags").write_text("--lr=abc\n")
    (tmp / "stray.flags").write_text("lr=0.1\n")
    (tmp / "nested.flags").write_text("--flagfile=/nope.flags\n")
    return sorted(p.name for p in tmp.iterdir())


@pytest.mark.parametrize(("args", "line"), BAD_INPUT)
def test_bad_input_is_one_line_naming_the_flag_and_nothing_is_written(
    args, line, tmp_path, run_cli
):
    before = _files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = run_cli(f"--output_dir={tmp_path}/out", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert proc.stderr.startswith("tfbreak: error: " + line.replace("{tmp}", str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_degenerate_settings_warn_in_one_line_each(run_cli, monkeypatch):
    from tfbreak import main

    started = []
    monkeypatch.setattr(main, "_train", lambda config, *_: started.append(config) or exit(0))
    proc = run_cli("--hessian_fraction=1e-9", "--k_L=2", "--output_dir=/tmp/never")
    assert proc.returncode == 0 and len(started) == 1
    assert proc.stderr.splitlines() == [
        "tfbreak: warning: --hessian_fraction: 1e-09 of 60000 examples is a Hessian sample of "
        "one example: lambda_1(H) is that example's, with no standard error",
        "tfbreak: warning: --k_L: K from L = 2 gradients has one non-zero eigenvalue, so "
        "lambda_*(K) = lambda_1(K) (ratio 1), and no jackknife error bars (L >= 3)",
    ]
    assert started[0].degenerate() == [
        line[len("tfbreak: warning: ") :] for line in proc.stderr.splitlines()
    ]
    assert ExperimentConfig().degenerate() == []


def test_a_run_directory_that_cannot_be_written_is_one_line_and_exit_1(
    tmp_path, run_cli, monkeypatch
):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = ExperimentConfig.create(output_dir=str(tmp_path))
    metadata = {"status": "interrupted", "config": stored_config(config)}
    (run_dir / "metadata.json").write_text(json.dumps(metadata))

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    proc = run_cli(f"--output_dir={tmp_path}")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"tfbreak: {run_dir}: failed (read-only file system: {run_dir}); make it writable (e.g. "
        "remount read-write), then run the same command to resume"
    ]
    assert sorted(p.name for p in run_dir.iterdir()) == ["metadata.json"]


ANSWERS = """
import runpy, sys, time
for args in {cases!r}:
    sys.argv = ['tfbreak', *args]
    start = time.monotonic()
    try:
        runpy.run_module('tfbreak.main', run_name='__main__')
    except SystemExit as exit_:
        print(exit_.code, round(time.monotonic() - start, 2), flush=True)
print('tensorflow' in sys.modules)
"""


def test_the_command_answers_without_importing_tensorflow(tmp_path):
    """The real command (its absl app, exit codes, one stderr line per case), and proof that the
    checks never import TensorFlow: every case in one process, which must not have loaded it."""
    _files(tmp_path)
    out = f"--output_dir={tmp_path}/out"
    cases = [
        [out, "--epochs=1e30"],
        [out, "--seed=100000000000000000000"],
        [out, "--batch_size=100000"],
        [out, "--model_option=depth=3"],
        [out, f"--flagfile={tmp_path}/typo.flags"],
        [out, "--bogus"],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", ANSWERS.format(cases=cases)], capture_output=True, text=True
    )
    *codes, imported = proc.stdout.split("\n")[:-1]
    assert [c.split()[0] for c in codes] == ["2"] * len(cases), proc.stderr
    assert imported == "False"
    errors = proc.stderr.splitlines()
    assert len(errors) == len(cases) and all(e.startswith("tfbreak: error: --") for e in errors)
    assert not (tmp_path / "out").exists()
