"""The measurement core: Hessian, gradient covariance K and stability (framework-agnostic).

Inputs are a list of variables and a loss callable on a batch returning per-example losses.
"""

from tfbreak.curvature.covariance import GradientCovariance, GradientFunctions
from tfbreak.curvature.hvp import HVP_MODES, HessianOperator, batch_size_of
from tfbreak.curvature.keras_loss import BN_MODES, classification_loss, cross_entropy
from tfbreak.curvature.lanczos import LanczosResult, LanczosWarning, lanczos
from tfbreak.curvature.parameters import ParameterSpace
from tfbreak.curvature.stability import (
    CurvatureAlong,
    DirectionalCurvature,
    curvature_along,
    delta_loss,
)
from tfbreak.curvature.trace import SpectralDensity, TraceEstimate, hutchinson_trace, slq_density

__all__ = [
    "CurvatureAlong",
    "BN_MODES",
    "HVP_MODES",
    "DirectionalCurvature",
    "GradientCovariance",
    "GradientFunctions",
    "HessianOperator",
    "LanczosResult",
    "LanczosWarning",
    "ParameterSpace",
    "SpectralDensity",
    "TraceEstimate",
    "batch_size_of",
    "classification_loss",
    "cross_entropy",
    "curvature_along",
    "delta_loss",
    "hutchinson_trace",
    "lanczos",
    "slq_density",
]
