"""Accuracy, loss and class probabilities on the fixed held-out subset (`--eval_subset`
examples): the validation curves between epoch ends and the predictions of the UMAP view of
the trajectory (Figs. 1, 8)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfbreak.curvature.keras_loss import measurement_mode
from tfbreak.curvature.sharding import batch_signature
from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class Evaluation(MeasurementPart):
    """Predictions of the model (inference mode, float32) on `suite.samples.evaluation`; not
    measured when the suite cannot read the model's outputs as class scores."""

    def __init__(self, suite):
        super().__init__(suite)
        self._predict = None

    def applies(self) -> bool:
        return bool(self.suite.samples.evaluation) and self.suite.convention is not None

    def _probabilities(self, x):
        with measurement_mode(self.suite.model):  # float32, noise layers off
            return self.suite.convention.class_probabilities(self.suite.model(x, training=False))

    def measure(self, m: Measurement) -> None:
        suite = self.suite
        batches = suite.samples.evaluation
        if self._predict is None:
            self._predict = tf.function(
                self._probabilities, input_signature=[batch_signature(batches[0])[0]]
            )
        probs, labels = [], []
        for x, y in batches:
            probs.append(self._predict(x).numpy())
            labels.append(np.asarray(y))
        p = np.concatenate(probs).astype(np.float32)
        y = np.concatenate(labels)
        if y.ndim == 2:  # one-hot labels, or class ids of shape (n, 1)
            y = np.argmax(y, -1) if y.shape[1] > 1 else y[:, 0]
        y = y.astype(np.int64)
        m.row[names.TEST_ACCURACY_SUBSET] = float(np.mean(np.argmax(p, -1) == y))
        m.row[names.TEST_LOSS_SUBSET] = float(
            -np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-30)))
        )
        m.arrays[names.ARRAY_TEST_PREDICTIONS] = p
