"""What a resumed run checks of its rows and arrays up to the checkpoint's step: every damage
found at its step, arrays without a row found. TensorFlow-free."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfbreak.runs import RunWriter, arrays_filename, integrity, names

MEASURED = (0, 2, 4, 6)
EPOCHS = (4,)


def _run(path, break_even_at: int | None = None):
    """Measurements at MEASURED (Hessian metrics, so an arrays file each), an epoch row at 4,
    and the break-even event after the measurement `break_even_at`."""
    with RunWriter(path, tensorboard=False) as w:
        w.write_metadata({"status": "interrupted"})
        for step in range(7):
            if step in EPOCHS:
                w.append({"step": step, "epoch": 1.0, "kind": "epoch", names.LR: 0.1})
            if step in MEASURED:
                lhs = 2.0 if break_even_at is not None and step >= break_even_at else 0.5
                row = {"step": step, "epoch": step / 4, names.HESSIAN_LAMBDA_1: 1.0}
                w.append({**row, names.BREAKEVEN_EQ1_LHS: lhs})
                if step == break_even_at:
                    w.append({"step": step, "epoch": step / 4, "kind": "event", "event": "x"})
                w.save_arrays(step, **{names.ARRAY_HESSIAN_RITZ_VALUES: np.ones(2)})
    return path


def _check(path, until=6):
    return integrity.check(
        path,
        until,
        measurements=MEASURED,
        epoch_ends=EPOCHS,
        reaches_break_even=lambda row: row.get(names.BREAKEVEN_EQ1_LHS, 0) >= 1,
    )


def _edit_lines(path, edit):
    metrics = path / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(edit(lines)))


def _index(lines, step, kind):
    return next(
        i for i, line in enumerate(lines) if f'"step": {step},' in line and f'"{kind}"' in line
    )


def test_a_whole_run_has_no_damage(tmp_path):
    found = _check(_run(tmp_path / "r", break_even_at=4))
    assert found == integrity.Findings(None, "", (), 0)


def _torn(lines, step=4, kind="measurement"):
    i = _index(lines, step, kind)
    lines[i] = lines[i][: len(lines[i]) // 2] + "\n"
    return lines


def _dropped(lines, step=4, kind="measurement"):
    del lines[_index(lines, step, kind)]
    return lines


DAMAGES = {
    "torn measurement row": (lambda p: _edit_lines(p, _torn), 4, "measurement row of step 4"),
    "lost measurement row": (lambda p: _edit_lines(p, _dropped), 4, "measurement row of step 4"),
    "torn epoch row": (
        lambda p: _edit_lines(p, lambda lines: _torn(lines, 4, "epoch")),
        4,
        "epoch row of step 4",
    ),
    "lost event row": (
        lambda p: _edit_lines(p, lambda lines: _dropped(lines, 4, "event")),
        4,
        "break-even event row of step 4",
    ),
    "missing arrays": (
        lambda p: (p / "arrays" / arrays_filename(2)).unlink(),
        2,
        "arrays/step_00000002.npz is missing",
    ),
    "unreadable arrays": (
        lambda p: (p / "arrays" / arrays_filename(2)).write_bytes(b"PK\x03\x04garbage"),
        2,
        "arrays/step_00000002.npz cannot be read",
    ),
    "arrays of another part": (
        lambda p: np.savez(p / "arrays" / arrays_filename(6), K_eigenvalues=np.ones(3)),
        6,
        "arrays/step_00000006.npz lacks the arrays of hessian",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damage_is_found_at_its_step(tmp_path, damage):
    path = _run(tmp_path / "r", break_even_at=4)
    make, step, why = DAMAGES[damage]
    make(path)
    found = _check(path)
    assert found.damaged == step and why in found.why
    assert _check(path, until=step - 1).damaged is None  # an earlier checkpoint is whole


def test_torn_lines_after_the_checkpoint_and_stop_rows_are_no_damage(tmp_path):
    path = _run(tmp_path / "r")
    with open(path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 6, "epoch": 1.5, "kind": "stop", "reason": "SIGTERM"}) + "\n")
        f.write('{"step": 7, "epoch": 1.7')  # a kill in the next row's write
    found = _check(path)
    assert found.damaged is None and found.unreadable == 1


def test_arrays_without_a_row_are_orphans(tmp_path):
    path = _run(tmp_path / "r")
    orphan = path / "arrays" / arrays_filename(3)
    np.savez(orphan, hessian_ritz_values=np.ones(2))
    assert _check(path).orphans == (orphan,)
    _edit_lines(path, lambda lines: _dropped(lines, 6))  # damage at 6: arrays/6 goes with it
    assert _check(path).orphans == (orphan,)
