"""Measurement along a trajectory: the settings (the only defaults), the fixed samples drawn from
the data with named seeds, and the suite that measures one point (`build_suite`).

`tfbreak.measure.settings` is TensorFlow-free; the rest is imported on first use, so that the
configuration (and `import tfbreak.config`) never imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

from tfbreak.curvature.modes import BN_MODES, HVP_MODES
from tfbreak.measure.parts import MEASUREMENTS, PARTS, Part
from tfbreak.measure.settings import MeasurementSettings

_LAZY = {
    "Curvature": "tfbreak.measure.curvature",
    "Examples": "tfbreak.measure.inputs",
    "as_examples": "tfbreak.measure.inputs",
    "Samples": "tfbreak.measure.samples",
    "SampleStream": "tfbreak.measure.samples",
    "MeasurementSuite": "tfbreak.measure.suite",
    "build_suite": "tfbreak.measure.suite",
    "break_even_event": "tfbreak.measure.suite",
    "Measurement": "tfbreak.measure.parts.base",
    "MeasurementPart": "tfbreak.measure.parts.base",
}

__all__ = ["BN_MODES", "HVP_MODES", "MEASUREMENTS", "PARTS", "MeasurementSettings", "Part", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfbreak.measure' has no attribute {name!r}")
