"""The parts of a measurement: what `--measurements` names, in the order a measurement runs them.

A part is declared once, here, as a `Part` record (TensorFlow-free, so that the settings and the
flags can name the parts); its implementation is a `MeasurementPart` in its own module of this
package, found by the dotted path in `implementation` and imported on first use; the metrics
and arrays it writes are declared in `tfbreak.runs.names` with ``part=<its name>``. Adding a
quantity: docs/extending.md.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One part of a measurement.

    name: its name in `--measurements` and in `tfbreak.runs.names` (`Metric.part`);
    description: what it measures (paper section); implementation: ``"module:Class"`` of its
    `MeasurementPart`; requires: parts it reads the results of (declared before it);
    selectable: named in `--measurements` (False: measured whenever it applies, e.g. ||gamma||
    of a model with BatchNorm); hessian_sample: measured over the Hessian sample; sparse: only
    at the steps of the sparser density schedule (`--density_every_epochs`); progress: a step
    of the measurement's progress bar (False for parts that take no time)."""

    name: str
    description: str
    implementation: str
    requires: tuple[str, ...] = ()
    selectable: bool = True
    hessian_sample: bool = False
    sparse: bool = False
    progress: bool = True

    def load(self) -> type:
        """The implementation class (imports its module)."""
        module, _, attr = self.implementation.partition(":")
        return getattr(importlib.import_module(module), attr)


_HERE = __name__

PARTS: tuple[Part, ...] = (
    Part(
        "hessian",
        "lambda_1..k(H) by Lanczos on the Hessian sample, warm-started, with lambda_1's "
        "certified bound and sampling error (Sec. 4, App. C)",
        f"{_HERE}.hessian:TopEigenvalues",
        hessian_sample=True,
    ),
    Part(
        "breakeven",
        "s^2 along e1_H and the left side of Eq. 1, the largest stable learning rate (Sec. 3)",
        f"{_HERE}.breakeven:BreakEven",
        requires=("hessian",),
        progress=False,
    ),
    Part(
        "trace",
        "Tr(H) by Hutchinson's estimator",
        f"{_HERE}.trace:Trace",
        hessian_sample=True,
    ),
    Part(
        "density",
        "spectral density of H by stochastic Lanczos quadrature (Fig. 3)",
        f"{_HERE}.density:Density",
        hessian_sample=True,
        sparse=True,
    ),
    Part(
        "K",
        "spectrum of the gradient covariance K from L mini-batch gradients, Tr(K), "
        "||g||/||g5|| (App. C, Sec. 4.3)",
        f"{_HERE}.covariance:Covariance",
    ),
    Part(
        "overlap",
        "|cos| between the probe batch's gradient and e1_H (Gur-Ari et al. 2018)",
        f"{_HERE}.overlap:GradientOverlap",
        requires=("hessian",),
    ),
    Part(
        "delta_loss",
        "Delta L: the loss on the probe batch before minus after one SGD step (Sec. 4.1)",
        f"{_HERE}.delta_loss:DeltaL",
    ),
    Part(
        "bn_gamma",
        "||gamma|| of the model's last BatchNorm layer (Sec. 4.3)",
        f"{_HERE}.bn_gamma:GammaNorm",
        selectable=False,
        progress=False,
    ),
    Part(
        "evaluation",
        "accuracy, loss and predictions on the fixed held-out subset",
        f"{_HERE}.evaluation:Evaluation",
        selectable=False,
    ),
)
"""Every part, in the order a measurement runs them."""

BY_NAME: dict[str, Part] = {p.name: p for p in PARTS}
MEASUREMENTS: tuple[str, ...] = tuple(p.name for p in PARTS if p.selectable)
"""The names `--measurements` takes."""
HESSIAN_MEASUREMENTS: frozenset[str] = frozenset(p.name for p in PARTS if p.hessian_sample)
"""Measurements over the Hessian sample (they need it drawn)."""


def describe() -> str:
    """One line per selectable part: its name and what it measures (flag help, docs)."""
    return "; ".join(f"{p.name}: {p.description}" for p in PARTS if p.selectable)
