"""The measurement core: curvature operators (Hessian H, gradient covariance K), the algorithms
that take them (Lanczos, Hutchinson, SLQ, Gram spectrum, jackknife) and stability along e1_H.

Inputs are a list of variables and a loss callable on a batch returning per-example losses;
`sharding` is the one dispatch between a single device and a tf.distribute strategy.
Names are imported on first use, so that the TensorFlow-free module `tfbreak.curvature.eq1`
(Eq. 1) can be imported by the analysis without TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "classification_loss": "tfbreak.curvature.keras_loss",
    "ClassificationLoss": "tfbreak.curvature.keras_loss",
    "covariance_spectrum": "tfbreak.curvature.algorithms",
    "CovarianceJackknife": "tfbreak.curvature.algorithms",
    "CovarianceOperator": "tfbreak.curvature.operators",
    "CovarianceSpectrum": "tfbreak.curvature.algorithms",
    "cross_entropy": "tfbreak.curvature.keras_loss",
    "CurvatureAlong": "tfbreak.curvature.stability",
    "CurvatureOperator": "tfbreak.curvature.operators",
    "DeltaLoss": "tfbreak.curvature.stability",
    "DirectionalCurvature": "tfbreak.curvature.stability",
    "FactoredGradients": "tfbreak.curvature.operators.factored",
    "FunctionalLoss": "tfbreak.curvature.sharding",
    "GradientFunctions": "tfbreak.curvature.gradients",
    "HessianOperator": "tfbreak.curvature.operators",
    "hutchinson_trace": "tfbreak.curvature.algorithms",
    "jackknife": "tfbreak.curvature.algorithms",
    "KerasPerExample": "tfbreak.curvature.keras_per_example",
    "lanczos": "tfbreak.curvature.algorithms",
    "LanczosResult": "tfbreak.curvature.algorithms",
    "LanczosWarning": "tfbreak.curvature.algorithms",
    "LossFn": "tfbreak.curvature.sharding",
    "ParameterSpace": "tfbreak.curvature.parameters",
    "slq_density": "tfbreak.curvature.algorithms",
    "SpectralDensity": "tfbreak.curvature.algorithms",
    "TraceEstimate": "tfbreak.curvature.algorithms",
    "eq1_lhs": "tfbreak.curvature.eq1",
    "lr_max": "tfbreak.curvature.eq1",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfbreak.curvature' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
