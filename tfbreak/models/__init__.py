"""Keras 3 models for the seven settings of Jastrzebski et al. (ICLR 2020), appendix D.

All models output logits (no softmax) and carry no kernel regulariser: weight decay is applied by
the training step to :func:`weight_decay_variables`. The measurement core differentiates with
respect to :func:`trainable_tf_variables`.
"""

from __future__ import annotations

from tfbreak.models.registry import MODEL_NAMES, build_model
from tfbreak.models.variables import (
    batchnorm_gammas,
    trainable_tf_variables,
    weight_decay_variables,
)

__all__ = [
    "MODEL_NAMES",
    "batchnorm_gammas",
    "build_model",
    "trainable_tf_variables",
    "weight_decay_variables",
]
