"""First epoch with training accuracy above a threshold (analysis.thresholds, Fig. 4 lines)."""

from __future__ import annotations

import numpy as np

from tfbreak.analysis.thresholds import accuracy_crossings, first_crossing
from tfbreak.runs import load_run
from tfbreak.runs.synthetic import write_synthetic_run


def test_first_crossing_is_strict_and_first():
    steps = np.array([0, 100, 200, 300, 400])
    epochs = steps / 100
    acc = np.array([0.1, 0.6, 0.65, 0.5, 0.8])
    c = first_crossing(steps, epochs, acc, 0.6)  # 0.6 is not "larger than" 0.6
    assert (c.step, c.epoch, c.value) == (200, 2.0, 0.65)
    assert first_crossing(steps, epochs, acc, 0.75).epoch == 4.0
    assert first_crossing(steps, epochs, acc, 0.9) is None
    # Order by step, not by file order.
    c = first_crossing(steps[::-1], epochs[::-1], acc[::-1], 0.6)
    assert c.step == 200


def test_accuracy_crossings_on_a_run(tmp_path):
    d = write_synthetic_run(
        tmp_path / "r",
        steps=[0],
        measurements={},
        accuracy=[(50, 0.3), (100, 0.61), (150, 0.7), (200, 0.76)],
    )
    cr = accuracy_crossings(load_run(d), [0.6, 0.75, 0.99])
    assert cr[0.6].epoch == 1.0 and cr[0.75].epoch == 2.0 and cr[0.99] is None
