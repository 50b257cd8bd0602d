"""The registry of measurement parts and metrics: every record is consistent with the others,
so that a part declared once is measured, named by the flags and shown by the report."""

from tfbreak.measure.parts import MEASUREMENTS, PARTS
from tfbreak.measure.parts.base import MeasurementPart
from tfbreak.runs import names


def test_every_part_loads_and_runs_after_what_it_requires():
    seen = set()
    for part in PARTS:
        assert issubclass(part.load(), MeasurementPart), part.name
        assert set(part.requires) <= seen, part.name  # requirements run first
        seen.add(part.name)
    assert MEASUREMENTS == tuple(p.name for p in PARTS if p.selectable)


def test_every_metric_and_array_names_a_part_and_every_part_writes_something():
    parts = {p.name for p in PARTS}
    for m in names.METRICS.values():
        assert m.part in parts | {names.TRAINING}, m.name
        assert m.label and m.math, m.name
    for a in names.ARRAYS.values():
        assert a.part in parts, a.name
    written = {m.part for m in names.METRICS.values()} | {a.part for a in names.ARRAYS.values()}
    assert parts <= written


def test_metric_and_array_names_are_declared_once():
    import pytest

    with pytest.raises(ValueError, match="declared twice"):
        names.metric(names.LOSS_DELTA, "again", label="x", part="delta_loss")
    with pytest.raises(ValueError, match="declared twice"):
        names.array_key(names.ARRAY_K_EIGENVALUES, "again", part="K")
