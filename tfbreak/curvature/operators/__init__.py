"""Curvature matrices as operators (`matvec`, `dim`, `dtype`, a scipy LinearOperator view):
the Hessian H over a fixed sample and the gradient covariance K from L gradients."""

from tfbreak.curvature.operators.base import CurvatureOperator
from tfbreak.curvature.operators.covariance import CovarianceOperator
from tfbreak.curvature.operators.hessian import HessianOperator

__all__ = ["CovarianceOperator", "CurvatureOperator", "HessianOperator"]
