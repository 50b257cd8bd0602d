"""tfbreak: measure what SGD does to the loss surface along a training run.

Reimplements and extends "The Break-Even Point on Optimization Trajectories of Deep Neural
Networks" (Jastrzebski et al., ICLR 2020).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`tfbreak.BreakEvenCallback` without importing TensorFlow on `import tfbreak`."""
    if name == "BreakEvenCallback":
        from tfbreak.training.callback import BreakEvenCallback

        return BreakEvenCallback
    raise AttributeError(f"module 'tfbreak' has no attribute {name!r}")
