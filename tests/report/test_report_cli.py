"""The report CLI on synthetic sweeps: files, figures (non-empty, not blank), verdicts, messages."""

from __future__ import annotations

import csv
import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest

from tfbreak import report
from tfbreak.analysis import noise
from tfbreak.report.cli import default_out, group_inputs
from tfbreak.runs import names
from tfbreak.runs.synthetic import write_synthetic_run, write_synthetic_sweep


def _assert_image(path):
    assert path.is_file() and path.stat().st_size > 0
    img = mpimg.imread(path)
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 1


def test_report_on_synthetic_sweep(synthetic_report):
    out = synthetic_report
    for name in (
        "fig4_K",
        "fig5_hessian",
        "fig2_scatter",
        "fig3_spectra",
        "trace_K",
        "accuracy",
        "breakeven_eq1",
    ):
        _assert_image(out / f"{name}.png")
    assert not (out / "fig7_bn.png").exists() and not (out / "fig9_M.png").exists()
    md = (out / "report.md").read_text()
    assert "**Conjecture 1 (variance reduction): holds (max λ1_H: holds, 1.00; max λ1_K: " in md
    assert "**Conjecture 2 (pre-conditioning): holds (" in md
    assert "max λ1_K: lr=0.1 → 0.3 < lr=0.01 → 3: holds" in md
    assert "Fig. 7: skipped" in md and "UMAP (Figs. 1, 8): disabled" in md
    assert "![" in md and "fig4_K.png" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 7
    rows = list(csv.DictReader((out / "conjectures.csv").open()))
    assert [r["run"] for r in rows] == ["lr=0.01", "lr=0.1"]
    assert float(rows[0]["max_K/lambda_1"]) == pytest.approx(3.0)
    assert (out / "conjectures.md").read_text() in md  # the same table, verbatim


def test_single_diverged_run_and_bn_and_fig9(tmp_path):
    steps = [0, 10, 20, 30]
    for m in (1, 128):
        write_synthetic_run(
            tmp_path / "sweep" / f"m{m}",
            steps=steps,
            measurements={
                names.K_LAMBDA_1: [1.0 * m, 2.0 * m, 3.5 * m, 3.0 * m],
                names.BN_GAMMA_NORM: [5.0, 4.0, 3.0, 2.5],
                names.GRAD_NORM_OVER_TOP5: [1.2, 1.5, 1.9, 2.0],
            },
            K_M=m,
        )
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out), "--no-umap"]) == 0
    _assert_image(out / "fig7_bn.png")
    _assert_image(out / "fig9_M.png")
    md = (out / "report.md").read_text()
    assert "the runs do not differ in η or S" in md

    d = write_synthetic_run(
        tmp_path / "lonely",
        steps=steps,
        measurements={names.K_LAMBDA_1: [1.0, 2.0, float("nan"), None]},
        status="diverged",
        stop_reason="loss is NaN at step 20",
    )
    assert report.main([str(d), "--no-umap", "--no-html"]) == 0
    md = (d / "figures" / "report.md").read_text()
    assert "Excluded lonely from the verdicts: diverged (loss is NaN at step 20)" in md
    assert "a single run: nothing to compare" in md and "holds (" not in md
    assert "| lonely | — | — | unavailable | — | — |" in md  # no Eq. 1, no accuracy
    assert not (d / "figures" / "report.html").exists()


def test_inputs_grouped_into_sweeps_and_default_output(tmp_path):
    a, b = write_synthetic_sweep(tmp_path / "sweep", lrs=(0.1, 0.01), n=3, with_predictions=False)
    assert group_inputs([a, b, tmp_path / "sweep"]) == [
        ("runs", [a, b]),  # run directories given directly: one sweep, first
        ("sweep", sorted([a, b])),
    ]
    assert group_inputs([a]) == [(a.name, [a])]
    assert default_out([a]) == a / "figures"
    assert default_out([tmp_path / "sweep"]) == tmp_path / "sweep" / "report"
    assert str(default_out([a, b])) == "tfbreak_report"


def test_cli_errors_on_non_run(tmp_path):
    (tmp_path / "x").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "tfbreak.report", str(tmp_path / "x"), "--no-umap"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "neither a run directory" in proc.stderr


def test_python_m_report_never_imports_tensorflow(tmp_path):
    """``python -m tfbreak.report`` writes a whole report (HTML included) without TensorFlow."""
    d = write_synthetic_run(tmp_path / "r", steps=[0, 10], measurements={names.K_LAMBDA_1: [1, 2]})
    argv = ["tfbreak.report", str(d), "--no-umap", "--out", str(tmp_path / "out")]
    code = (
        f"import runpy, sys; sys.argv = {argv!r}\n"
        "try:\n"
        "    runpy.run_module('tfbreak.report', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    sys.exit(stop.code or (3 if 'tensorflow' in sys.modules else 0))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "report.html").is_file()


@pytest.mark.slow
def test_report_with_umap(tmp_path):
    write_synthetic_sweep(tmp_path / "sweep", lrs=(0.1, 0.01))
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    _assert_image(out / "fig1_umap.png")
    _assert_image(out / "fig8_umap.png")


N = 12  # measurements per run
BREAK = 4  # index of the first measurement with Eq. 1 LHS >= 1


def _write_windowed_run(path, lr, seed):
    """A run with 1 % standard errors and a break-even point at measurement `BREAK`. λ1_H, λ1_K
    and Tr(K) ∝ 1/η (in the predicted order in every window); λ*_K/λ1_K has an early spike
    0.6 − 2η (reversed) before break-even and a late peak 0.1 + 2η (in order) after it.
    Seeds scale every series by 1 + seed / 100."""
    shape = np.array([0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    ratio = np.full(N, 0.05)
    ratio[1], ratio[8] = 0.6 - 2 * lr, 0.1 + 2 * lr
    series = {
        names.HESSIAN_LAMBDA_1: 2.2 / lr * shape,
        names.K_LAMBDA_1: 0.03 / lr * shape,
        names.K_RATIO: ratio,
        names.K_TRACE: 0.1 / lr * shape,
    }
    meas = {names.BREAKEVEN_EQ1_LHS: [0.5] * BREAK + [1.2] * (N - BREAK)}
    for metric, values in series.items():
        meas[metric] = list(values * (1 + seed / 100))
        meas[noise.STDERR_OF[metric][0]] = list(values / 100)
    return write_synthetic_run(
        path,
        steps=[10 * i for i in range(N)],
        measurements=meas,
        lr=lr,
        seed=seed,
        sweep={"axis": "lr", "value": lr},
    )


def test_report_noise_aware_windows(tmp_path):
    """2 learning rates x 2 seeds with standard errors and a known break-even step."""
    for lr in (0.1, 0.01):
        for s in (0, 1):
            _write_windowed_run(tmp_path / "sweep" / f"lr{lr:g}_s{s}", lr, s)
    out = tmp_path / "out"
    args = [str(tmp_path / "sweep"), "--out", str(out), "--no-umap", "--bootstrap", "300"]
    assert report.main(args) == 0
    md = (out / "report.md").read_text()
    assert (
        "| conjecture | check | paper's rule | on robust maxima | whole trajectory: max | "
        "before break-even: max | after break-even: max | second half: max | second half: "
        "median |"
    ) in md
    assert "| 2 (pre-conditioning) | all checks | violated | — | violated (0.00) | " in md
    assert "violated on the whole trajectory, violated before break-even, holds after" in md
    assert "every run attains its whole-trajectory maximum before its break-even point" in md
    assert "lr=0.1 (seed 0)" in md and "lr=0.1 (seed 1)" in md
    rows = list(csv.DictReader((out / "conjectures_windows.csv").open()))
    after = [
        r
        for r in rows
        if r["record"] == "check"
        and r["metric"] == names.K_RATIO
        and (r["window"], r["statistic"]) == ("after", "max")
    ]
    assert after[0]["status"] == "holds" and float(after[0]["seed_share"]) == 1.0
