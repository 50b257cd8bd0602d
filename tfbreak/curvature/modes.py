"""The measurement core's modes, TensorFlow-free (the settings and flags name them).

BN_MODES: the BatchNorm statistics a measurement uses (never updated): inference = moving
averages (the model called with training=False), batch = statistics of the measured batch
(the model called with training=True through `stateless_call`: dropout, if any, is on too),
auto = batch for models with BatchNorm (their moving averages are those of no data early in
training), inference otherwise (`tfbreak.curvature.keras_loss.resolve_bn_mode`).

HVP_MODES: the autodiff mode of Hessian-vector products (`HessianOperator`).
"""

from __future__ import annotations

BN_MODES: tuple[str, ...] = ("auto", "inference", "batch")
HVP_MODES: tuple[str, ...] = ("reverse_over_reverse", "forward_over_reverse")

__all__ = ["BN_MODES", "HVP_MODES"]
