"""Gradients of the loss as flat parameter-space vectors: of a mini-batch's mean loss, and of
every example's loss (the g_i of K, paper Sec. 3 and App. C)."""

from __future__ import annotations

import tensorflow as tf

from tfbreak.curvature.parameters import LossFunctions
from tfbreak.curvature.sharding import Batch, BatchFunction, num_examples


class GradientFunctions(LossFunctions):
    """`minibatch(batch)`: the gradient of the mean loss over the batch, (D,).
    `per_example(batch)`: the (n, D) per-example gradients, vectorised with `tf.vectorized_map`.

    Each is one `tf.function` (`BatchFunction`), traced once per batch structure; with a
    `strategy` (the one the variables were created under) the batch is split across replicas:
    the mini-batch gradient is the cross-replica sum of the shards' gradients of summed losses
    divided by the batch's example count, per-example gradients are gathered in example order.

    Least squares, l_i = (x_i . w - y_i)^2 / 2, has g_i = (x_i . w - y_i) x_i:

    >>> import numpy as np, tensorflow as tf
    >>> x, y = np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([1.0, 0.0])
    >>> w = tf.Variable([0.5, 0.5], dtype=tf.float64)
    >>> grads = GradientFunctions([w], lambda b: 0.5 * (tf.linalg.matvec(b[0], w) - b[1]) ** 2)
    >>> grads.per_example((x, y)).numpy().tolist()  # residuals 0.5 and 1.0
    [[0.5, 1.0], [3.0, -1.0]]
    >>> grads.minibatch((x, y)).numpy().tolist()
    [1.75, 0.0]
    """

    def _build(self) -> None:
        self._summed = BatchFunction(self._summed_gradient, strategy=self.strategy)
        self._per_example = BatchFunction(
            self._per_example_gradients, strategy=self.strategy, gather=True
        )

    def _gradient(self, batch: Batch) -> tf.Tensor:
        """Gradient of the summed loss of `batch`."""
        variables = self.space.variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            loss = tf.reduce_sum(self.loss_fn(batch))
        return self.space.flatten(tape.gradient(loss, variables))

    def _summed_gradient(self, batch: Batch) -> tf.Tensor:
        self.traces += 1
        return self._gradient(batch)

    def _per_example_gradients(self, batch: Batch) -> tf.Tensor:
        self.traces += 1

        def one(example):
            return self._gradient(tf.nest.map_structure(lambda t: t[None], example))

        return tf.vectorized_map(one, batch)

    def minibatch(self, batch: Batch) -> tf.Tensor:
        """(1/|B|) sum_{i in B} g_i."""
        return self._summed(batch) / tf.cast(num_examples(batch), self.space.dtype)

    def per_example(self, batch: Batch) -> tf.Tensor:
        """[g_1, ..., g_n], shape (n, D)."""
        return self._per_example(batch)
