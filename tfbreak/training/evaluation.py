"""Loss and accuracy of the model on the whole held-out split (the paper's validation curves,
App. E), written in epoch rows as `test/loss` and `test/accuracy`."""

from __future__ import annotations

import tensorflow as tf

from tfbreak.curvature.keras_loss import OutputConvention
from tfbreak.data import evaluation_batches
from tfbreak.runs import names


class HeldOutEvaluation:
    """`evaluate()` -> {test/loss, test/accuracy} of `model` (inference mode, its output read by
    `convention`) over `dataset` (unbatched, e.g. a DataBundle's test split) in batches of
    `batch_size`."""

    def __init__(
        self, model, dataset: tf.data.Dataset, batch_size: int, convention: OutputConvention
    ):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.convention = convention
        self._outputs = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def evaluate(self) -> dict[str, float]:
        loss, correct, count = 0.0, 0, 0
        for x, y in evaluation_batches(self.dataset, self.batch_size):
            outputs = self._outputs(x)
            loss += float(tf.reduce_sum(self.convention.loss(y, outputs)))
            correct += int(self.convention.correct(y, outputs))
            count += int(y.shape[0])
        return {names.TEST_LOSS: loss / count, names.TEST_ACCURACY: correct / count}
