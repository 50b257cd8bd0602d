"""Loss and accuracy of the model on the whole held-out split (the paper's validation curves,
App. E), written in epoch rows as `test/loss` and `test/accuracy`."""

from __future__ import annotations

import tensorflow as tf

from tfbreak.curvature import cross_entropy
from tfbreak.data import evaluation_batches
from tfbreak.runs import names


class HeldOutEvaluation:
    """`evaluate()` -> {test/loss, test/accuracy} of `model` (logits, inference mode) over
    `dataset` (unbatched, e.g. a DataBundle's test split) in batches of `batch_size`."""

    def __init__(self, model, dataset: tf.data.Dataset, batch_size: int):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self._logits = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def evaluate(self) -> dict[str, float]:
        loss, correct, count = 0.0, 0, 0
        for x, y in evaluation_batches(self.dataset, self.batch_size):
            logits = self._logits(x)
            loss += float(tf.reduce_sum(cross_entropy(y, logits)))
            predicted = tf.argmax(logits, -1, output_type=tf.int32)
            correct += int(
                tf.reduce_sum(tf.cast(tf.equal(predicted, tf.cast(y, tf.int32)), tf.int32))
            )
            count += int(y.shape[0])
        return {names.TEST_LOSS: loss / count, names.TEST_ACCURACY: correct / count}
