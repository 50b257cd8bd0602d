"""tfbreak: measure what SGD does to the loss surface along a training run.

Reimplements and extends "The Break-Even Point on Optimization Trajectories of Deep Neural
Networks" (Jastrzebski et al., ICLR 2020). The public names (`__all__`) are imported on first
use, so that `import tfbreak` does not import TensorFlow:

- `tfbreak.Curvature`: H and K of a Keras classifier on its data (Lanczos, Hutchinson, SLQ).
- `tfbreak.BreakEvenCallback`: the measurements along `model.fit`, into a run directory.
- `tfbreak.MeasurementSettings`: what to measure and how (every default, in one place).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "BreakEvenCallback": "tfbreak.training.callback",
    "Curvature": "tfbreak.measure.curvature",
    "MeasurementSettings": "tfbreak.measure.settings",
}

__all__ = ["BreakEvenCallback", "Curvature", "MeasurementSettings", "__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time they are imported on first use
    from tfbreak.measure.curvature import Curvature
    from tfbreak.measure.settings import MeasurementSettings
    from tfbreak.training.callback import BreakEvenCallback


def __getattr__(name: str) -> Any:
    """`tfbreak.BreakEvenCallback`, `tfbreak.Curvature`, `tfbreak.MeasurementSettings` without
    importing TensorFlow on `import tfbreak`."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfbreak' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (and the module's dunders), for completion: `dir(tfbreak)`."""
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
