"""The answer first: what changes the reading (truncated, excluded, single-seed runs, different
measurement densities) comes before the verdicts, and no sentence of a report repeats."""

from __future__ import annotations

import re
from collections import Counter

from report_pages import rendered

from tfbreak import report
from tfbreak.analysis.caveats import find_caveats, truncation
from tfbreak.analysis.summary import summarize_sweep
from tfbreak.analysis.sweep import make_sweep
from tfbreak.report import prose
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import paper_like_series, write_synthetic_run

CUT = {"total_steps": 50, "steps_per_epoch": 937, "config": {"epochs": 5.0, "max_steps": 50}}


def _sweep(root, lrs=(0.1, 0.01), every=(10, 10), **metadata):
    """An η sweep in the predicted order; run i measured every `every[i]` steps up to 290."""
    paths = []
    for lr, step in zip(lrs, every, strict=True):
        steps = list(range(0, 300, step))
        n = len(steps)
        paths.append(
            write_synthetic_run(
                root / f"lr{lr:g}",
                steps=steps,
                measurements={
                    names.K_LAMBDA_1: list(paper_like_series(0.03 / lr, n, n // 3)),
                    names.HESSIAN_LAMBDA_1: list(paper_like_series(2.2 / lr, n, n // 3)),
                },
                lr=lr,
                sweep={"axis": "lr", "value": lr},
                **metadata,
            )
        )
    return paths


def test_truncation_from_metadata(tmp_path):
    (cut,) = _sweep(tmp_path / "a", lrs=(0.1,), every=(10,), **CUT)
    t = truncation(load_run(cut))
    assert (t.steps, t.planned, t.max_steps) == (50, 4685, 50)
    assert round(t.epochs, 4) == 0.0534 and t.planned_epochs == 5.0
    whole = dict(CUT, total_steps=4685)
    (full,) = _sweep(tmp_path / "b", lrs=(0.1,), every=(10,), **whole)
    assert truncation(load_run(full)) is None
    (bare,) = _sweep(tmp_path / "c", lrs=(0.1,), every=(10,))  # no config: not known
    assert truncation(load_run(bare)) is None


def test_caveats_of_a_sweep(tmp_path):
    """Truncated runs, one run per η and measurement counts that differ by more than 20 %."""
    sweep = make_sweep([load_run(p) for p in _sweep(tmp_path, every=(10, 5), **CUT)])
    caveats = find_caveats(summarize_sweep(sweep, replicates=10), compared=True)
    assert set(caveats.truncated) == {"lr=0.1", "lr=0.01"} and caveats.single_seed
    assert caveats.measurements == {"lr=0.01": 59, "lr=0.1": 29}
    items = prose.caveat_items(caveats, "lr")
    assert items[0] == (
        "Truncated by --max_steps=50: lr=0.01, lr=0.1: 50 of 4685 steps (0.053 of 5 epochs). The "
        "conjectures concern whole trajectories: these verdicts describe the first part of "
        "training only."
    )
    assert items[1].startswith("One run per η: the intervals hold measurement noise only")
    assert items[2].startswith("The runs were measured at different numbers of points (lr=0.01:")
    assert not find_caveats(summarize_sweep(sweep, replicates=10), compared=False).single_seed


def test_truncated_sweep_says_so_before_its_verdicts(tmp_path):
    _sweep(tmp_path / "sweep", **CUT)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out), "--no-umap"]) == 0
    md = (out / "report.md").read_text()
    assert md.index("Truncated by --max_steps=50") < md.index("## Verdicts")
    assert md.index("## Verdicts") < md.index("## Break-even point") < md.index("## Method")


def _sentences(page) -> list[str]:
    texts = page.flow + page.items
    return [s for t in texts for s in re.split(r"(?<=[.:])\s+(?=[A-Z])", t) if len(s) > 25]


def test_no_sentence_repeats(synthetic_report):
    for name in ("report.md",):
        page = rendered((synthetic_report / name).read_text())
        repeated = [s for s, n in Counter(_sentences(page)).items() if n > 1]
        assert repeated == []
