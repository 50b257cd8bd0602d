"""The measurement core: curvature operators (Hessian H, gradient covariance K), the algorithms
that take them (Lanczos, Hutchinson, SLQ, Gram spectrum, jackknife) and stability along e1_H.

Inputs are a list of variables and a loss callable on a batch returning per-example losses;
`sharding` is the one dispatch between a single device and a tf.distribute strategy.
"""

from tfbreak.curvature.algorithms import (
    CovarianceJackknife,
    CovarianceSpectrum,
    LanczosResult,
    LanczosWarning,
    SpectralDensity,
    TraceEstimate,
    covariance_spectrum,
    hutchinson_trace,
    jackknife,
    lanczos,
    slq_density,
)
from tfbreak.curvature.gradients import GradientFunctions
from tfbreak.curvature.keras_loss import classification_loss, cross_entropy
from tfbreak.curvature.operators import CovarianceOperator, CurvatureOperator, HessianOperator
from tfbreak.curvature.parameters import ParameterSpace
from tfbreak.curvature.sharding import Batch, BatchFunction, LossFn, num_examples, split_batches
from tfbreak.curvature.stability import CurvatureAlong, DeltaLoss, DirectionalCurvature

__all__ = [
    "Batch",
    "BatchFunction",
    "CovarianceJackknife",
    "CovarianceOperator",
    "CovarianceSpectrum",
    "CurvatureAlong",
    "CurvatureOperator",
    "DeltaLoss",
    "DirectionalCurvature",
    "GradientFunctions",
    "HessianOperator",
    "LanczosResult",
    "LanczosWarning",
    "LossFn",
    "ParameterSpace",
    "SpectralDensity",
    "TraceEstimate",
    "classification_loss",
    "covariance_spectrum",
    "cross_entropy",
    "hutchinson_trace",
    "jackknife",
    "lanczos",
    "num_examples",
    "slq_density",
    "split_batches",
]
