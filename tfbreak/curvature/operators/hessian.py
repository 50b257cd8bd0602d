"""The Hessian of the training loss over a fixed sample as an operator (paper Sec. 4, App. C).

H v = (1/N) sum_b sum_{i in b} (d^2 l_i / d theta^2) v, N the number of examples in the sample
(e.g. 5% of the training set). Each batch's product runs in one `tf.function`, traced once per
batch size.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import tensorflow as tf

from tfbreak.curvature.operators.base import CurvatureOperator, rounding_precision
from tfbreak.curvature.parameters import (
    ParameterSpace,
    all_finite,
    host_array,
    host_pieces,
    release_free_heap,
    to_numpy,
)
from tfbreak.curvature.sharding import Batch, BatchFunction, LossFn, as_batches, num_examples

HVPMode = Literal["reverse_over_reverse", "forward_over_reverse"]
Pieces = list[list[tf.Tensor]]
"""Vectors of parameter space, each as its per-variable tensors (shaped like the variables)."""


class HessianOperator(CurvatureOperator):
    r"""H of the mean loss over a fixed sample (paper Sec. 4, App. C: 5% of the training set):

    .. math:: H = \frac{1}{N} \sum_{i=1}^{N} \nabla^2_\theta \ell_i(\theta), \qquad
              H v = \frac{1}{N} \sum_b \sum_{i \in b} \nabla^2_\theta \ell_i(\theta)\, v.

    Least squares, l_i = (x_i . w - y_i)^2 / 2, has the closed form H = X^T X / N:

    >>> import numpy as np, tensorflow as tf
    >>> x = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]])
    >>> w = tf.Variable(np.zeros(2))
    >>> def loss_fn(batch):
    ...     xb, yb = batch
    ...     return 0.5 * (tf.linalg.matvec(xb, w) - yb) ** 2
    >>> H = HessianOperator([w], loss_fn, (x, np.ones(3)), mode="reverse_over_reverse")
    >>> v = np.array([1.0, -2.0])
    >>> bool(np.allclose(H.matvec(v), x.T @ x @ v / 3, rtol=1e-12))
    True

    Args:
      variables: the parameters theta (tf.Variables or keras.Variables; float32 or float64).
      loss_fn: `loss_fn(batch)` -> per-example losses; reads the variables (see `keras_loss`).
      batches: the fixed sample: a list of batches (weighted by their number of examples), or
        one batch `(x, y)` (a tuple is one batch, see `sharding.as_batches`).
      mode: "reverse_over_reverse" (nested GradientTape, v entering as the output gradient of
        the gradient) or "forward_over_reverse" (tf.autodiff.ForwardAccumulator). They cost the
        same within noise on CPU, ~3x the gradient's convolutions (benchmarks/hvp_cost.py);
        forward mode cannot go through the while loop of a rolled LSTM. Several vectors in one
        pass (`matvec_block`) share the forward and backward pass in reverse-over-reverse mode
        (then one outer backward pass per vector, in turn: 1.9-2.1x a gradient per vector on
        SimpleCNN against ~2.3x alone; the shared pass is held for all of them, so the peak
        memory is ~1.6x a single product's on ResNet-32 at batch 512); forward-over-reverse
        repeats it per vector.
      strategy: optional `tf.distribute.Strategy` the variables were created under. Each batch
        is split into per-replica shards once (uneven shards allowed), every replica computes
        the HVP of its shard's summed loss, and the shards' products are added before the
        division by N (`tfbreak.curvature.sharding`). None: a single device.
    """

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        loss_fn: LossFn,
        batches: Iterable[Batch],
        *,
        mode: HVPMode,
        strategy: tf.distribute.Strategy | None = None,
    ):
        bodies = {
            "reverse_over_reverse": self._reverse_over_reverse,
            "forward_over_reverse": self._forward_over_reverse,
        }
        if mode not in bodies:
            raise ValueError(f"mode: expected one of {tuple(bodies)}, got {mode!r}")
        self.space = ParameterSpace(variables)
        self.dtype = np.dtype(self.space.dtype.as_numpy_dtype)
        self.precision = rounding_precision(self.dtype)
        self.loss_fn = loss_fn
        self.mode = mode
        self.matvecs = 0
        self.traces = 0
        # Traced once per batch size and number of vectors (a fixed sample has at most two
        # batch sizes): with static shapes the graph is 2-10 % faster than with an open batch
        # dimension (benchmarks/hvp_cost.py).
        self._batch_hvp = BatchFunction(
            bodies[mode],
            strategy=strategy,
            exact_shapes=True,
        )
        self._use_sample(batches)

    def _use_sample(self, batches: Iterable[Batch]) -> None:
        """Check the sample and prepare it (sharded under a strategy) once."""
        batches = [tf.nest.map_structure(tf.convert_to_tensor, b) for b in as_batches(batches)]
        if not batches:
            raise ValueError("batches: the Hessian sample is empty; need at least one batch")
        self.counts = [num_examples(b) for b in batches]
        if min(self.counts) < 1:
            raise ValueError("batches: a batch of the Hessian sample holds no examples")
        self.num_examples = int(sum(self.counts))
        self._batches = [self._batch_hvp.prepare(b) for b in batches]

    def on(self, batches: Iterable[Batch]) -> HessianOperator:
        """H of the same variables and loss over another sample, sharing this operator's
        traced products: a batch shape already seen is not traced again (a fresh or a grown
        sample costs no tracing). Its `matvecs` count from 0; traces are counted on the
        operator that made the traced function (this one)."""
        other = copy.copy(self)
        other.matvecs = 0
        other._use_sample(batches)
        return other

    @property
    def dim(self) -> int:
        return self.space.dim

    def _summed_loss(self, batch: Batch) -> tf.Tensor:
        return tf.reduce_sum(self.loss_fn(batch))

    def _reverse_over_reverse(self, batch: Batch, vectors: Pieces) -> Pieces:
        """H_batch v for each vector v (given and returned as lists of per-variable tensors);
        one forward and backward pass for all of them."""
        self.traces += 1
        variables = self.space.variables
        with tf.GradientTape(watch_accessed_variables=False, persistent=True) as outer:
            outer.watch(variables)
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(variables)
                loss = self._summed_loss(batch)
            grads = inner.gradient(loss, variables, unconnected_gradients="zero")
            grads = [tf.convert_to_tensor(g) for g in grads]  # IndexedSlices (embeddings)
        # d/dtheta <grad, v>: v enters as the output gradient (no flatten, no dot product).
        # One vector after the other: outer passes run side by side would each hold their
        # intermediates (ResNet-32, batch 512, 4 vectors: 14 GB peak against 7.8 GB in turn).
        # Returned per variable: no flattened or stacked copy of the products in the graph.
        products: Pieces = []
        for v in vectors:
            with tf.control_dependencies(products[-1] if products else []):
                hv = outer.gradient(grads, variables, output_gradients=list(v))
                products.append(self.space.dense(hv))
        return products

    def _forward_over_reverse(self, batch: Batch, vectors: Pieces) -> Pieces:
        """H_batch v for each vector v (given and returned as lists of per-variable tensors);
        one forward accumulator (and pass) per vector, in turn (not side by side: memory)."""
        self.traces += 1
        variables = self.space.variables
        products: Pieces = []
        for v in vectors:
            with tf.control_dependencies(products[-1] if products else []):
                with tf.autodiff.ForwardAccumulator(variables, list(v)) as acc:
                    with tf.GradientTape(watch_accessed_variables=False) as tape:
                        tape.watch(variables)
                        loss = self._summed_loss(batch)
                    grad = self.space.dense(tape.gradient(loss, variables))
                hv = acc.jvp(grad, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            products.append(list(hv))
        return products

    def _check_finite(self, finite: bool) -> None:
        if not finite:
            raise FloatingPointError(
                "loss_fn: the Hessian-vector product is not finite (NaN/inf); the loss or its "
                "curvature overflowed at these parameters"
            )

    def apply_block(self, vectors: tf.Tensor | np.ndarray) -> tf.Tensor:
        """H V^T as rows: (b, D) of the variables' dtype for the rows of V (b, D), in one pass
        over the sample, on the variables' device; raises on a non-finite product."""
        vectors = self.space.rows_to_device(vectors, "vectors")
        pieces = [self.space.unflatten(v) for v in tf.unstack(vectors)]
        total = None
        for batch in self._batches:
            hv = self._batch_hvp(batch, pieces)
            total = hv if total is None else tf.nest.map_structure(tf.add, total, hv)
        self.matvecs += len(pieces)
        n = tf.cast(self.num_examples, self.space.dtype)
        result = tf.stack([self.space.flatten([p / n for p in product]) for product in total])
        self._check_finite(bool(tf.reduce_all(tf.math.is_finite(result))))
        return result

    def apply(self, v: tf.Tensor | np.ndarray) -> tf.Tensor:
        """H v as a flat tensor of the variables' dtype; raises on a non-finite product."""
        return self.apply_block(self.space.to_device(v, "v")[None])[0]

    def matvec_block(self, vectors: np.ndarray) -> np.ndarray:
        return to_numpy(self.apply_block(vectors))

    def matvec_rows(self, vectors: np.ndarray) -> np.ndarray:
        """H v for each row v, as host rows of the variables' dtype (one pass, no float64 copy)."""
        return self.matvec_rows_into(vectors, np.empty(np.shape(vectors), self.dtype))

    def matvec_rows_into(self, vectors: np.ndarray, out: np.ndarray) -> np.ndarray:
        """H v for each row v, written into the rows of `out` ((b, D) host array of the
        variables' dtype, e.g. free rows of a Krylov basis) and returned; raises on a non-finite
        product. The same numbers as `apply_block` (each batch's products added in turn, then
        divided by N, elementwise in the variables' dtype), computed in host memory piece by
        piece: the vectors are read in place (`host_pieces`), a pass holds the b products once,
        per variable, beside `out`."""
        self.space.check_rows(np.shape(vectors), "vectors")
        if out.shape != np.shape(vectors) or out.dtype != self.dtype or not out.flags.writeable:
            raise ValueError(
                f"out: expected writable rows of shape {np.shape(vectors)} and dtype "
                f"{self.dtype}, got {out.shape} {out.dtype}"
            )
        vectors = np.asarray(vectors, self.dtype)
        pieces = [host_pieces(self.space, v) for v in vectors]
        offsets = self.space.offsets
        for n, batch in enumerate(self._batches):
            products = self._batch_hvp(batch, pieces)
            for row, product in zip(out, products, strict=True):
                for (a, z), piece in zip(offsets, product, strict=True):
                    if n == 0:
                        row[a:z] = host_array(piece).reshape(-1)
                    else:
                        np.add(row[a:z], host_array(piece).reshape(-1), out=row[a:z])
                product.clear()  # a vector's products freed once added
        del products
        release_free_heap(out.nbytes)
        self.matvecs += len(out)
        np.divide(out, self.dtype.type(self.num_examples), out=out)
        self._check_finite(all_finite(out))
        return out

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return to_numpy(self.apply(v))
