"""tfbreak: measure what SGD does to the loss surface along a training run.

Reimplements and extends "The Break-Even Point on Optimization Trajectories of Deep Neural
Networks" (Jastrzebski et al., ICLR 2020).
"""

__version__ = "0.1.0"


_LAZY = {
    "BreakEvenCallback": "tfbreak.training.callback",
    "Curvature": "tfbreak.measure.curvature",
    "MeasurementSettings": "tfbreak.measure.settings",
}


def __getattr__(name: str):
    """`tfbreak.BreakEvenCallback`, `tfbreak.Curvature`, `tfbreak.MeasurementSettings` without
    importing TensorFlow on `import tfbreak`."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfbreak' has no attribute {name!r}")
