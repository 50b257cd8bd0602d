"""Per-example gradients kept as per-layer factors: the Gram matrix of K (M = 1) without the
n x D matrix of gradients (BackPACK's batch_grad, Dangel et al. 2020; ViViT, Dangel et al. 2022).

For a dense layer z = a W + b applied once per example, the gradient of example i's loss is the
outer product g_i[W] = a_i delta_i^T (delta_i = d l_i / d z_i, back-propagated) and g_i[b] =
delta_i, so <g_i, g_j> restricted to the layer is (a_i . a_j)(delta_i . delta_j) +
delta_i . delta_j: an n x n product of n x p and n x q matrices instead of n x (p q) gradients.
Layers whose per-example gradients are sums over positions (convolutions, BatchNorm) keep their
per-example rows (n x size of the layer). Everything is combined in float64 from the float32
factors; the deviations g_i - g_bar enter through the double-centred Gram matrix and centred
coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class OuterBlock:
    """g_i[start : start + p q] = vec(a_i delta_i^T) (row-major, a (p, q) kernel) and, when
    `bias` is not None, g_i[bias : bias + q] = delta_i. inputs (n, p), deltas (n, q)."""

    inputs: tf.Tensor
    deltas: tf.Tensor
    start: int
    bias: int | None


@dataclass(frozen=True)
class RowsBlock:
    """g_i[start : start + size] = rows[i]; rows (n, size)."""

    rows: tf.Tensor
    start: int


Block = OuterBlock | RowsBlock


def _f64(t: tf.Tensor) -> tf.Tensor:
    return tf.cast(t, tf.float64)


def _centred(values: tf.Tensor, axis: int) -> tf.Tensor:
    return values - tf.reduce_mean(values, axis=axis, keepdims=True)


class FactoredGradients:
    """The n per-example gradients of one batch as per-layer blocks covering all D parameters
    (a `covariance.GradientSet`: the operator of K with M = 1 is built from it)."""

    def __init__(self, blocks: list[Block], dim: int, dtype: tf.DType):
        if not blocks:
            raise ValueError("blocks: need at least one block of per-example gradients")
        self.blocks = blocks
        self._dim = int(dim)
        self.dtype = dtype
        first = blocks[0].inputs if isinstance(blocks[0], OuterBlock) else blocks[0].rows
        self.L = int(first.shape[0])

    @property
    def dim(self) -> int:
        return self._dim

    def _uncentred_gram(self) -> tf.Tensor:
        gram = tf.zeros([self.L, self.L], tf.float64)
        for block in self.blocks:
            if isinstance(block, OuterBlock):
                a, d = _f64(block.inputs), _f64(block.deltas)
                dd = tf.matmul(d, d, transpose_b=True)
                kernel = tf.matmul(a, a, transpose_b=True) * dd
                gram += kernel + dd if block.bias is not None else kernel
            else:
                rows = _f64(block.rows)
                gram += tf.matmul(rows, rows, transpose_b=True)
        return gram

    def gram(self) -> np.ndarray:
        """[<g_i - g_bar, g_j - g_bar>]_ij: the Gram matrix of the gradients, double-centred
        (J G J, J = I - 11^T / n), float64."""
        return _centred(_centred(self._uncentred_gram(), 0), 1).numpy()

    def _flat(self, g) -> tf.Tensor:
        g = _f64(tf.convert_to_tensor(g))
        if g.shape.rank != 1 or g.shape[0] != self.dim:
            raise ValueError(f"g: expected a flat vector of length {self.dim}, got {g.shape}")
        return g

    def dots(self, g) -> np.ndarray:
        """[<g_i - g_bar, g>]_i, float64."""
        g = self._flat(g)
        total = tf.zeros([self.L], tf.float64)
        for block in self.blocks:
            if isinstance(block, OuterBlock):
                a, d = _f64(block.inputs), _f64(block.deltas)
                p, q = a.shape[1], d.shape[1]
                w = tf.reshape(g[block.start : block.start + p * q], [p, q])
                total += tf.reduce_sum(tf.matmul(a, w) * d, axis=1)
                if block.bias is not None:
                    total += tf.linalg.matvec(d, g[block.bias : block.bias + q])
            else:
                rows = _f64(block.rows)
                total += tf.linalg.matvec(rows, g[block.start : block.start + rows.shape[1]])
        return _centred(total, 0).numpy()

    def norm(self, g) -> float:
        """||g||, in float64."""
        return float(tf.norm(self._flat(g)))

    def combine(self, coeffs: np.ndarray) -> tf.Tensor:
        """sum_i c_ki (g_i - g_bar) = sum_i (c_ki - mean_i c_ki) g_i for each row of `coeffs`
        (k, n): (k, D) vectors, computed in float64, returned in the gradients' dtype."""
        c = _centred(tf.constant(np.atleast_2d(np.asarray(coeffs, dtype=np.float64))), 1)
        pieces = []  # (start, (k, size)) in float64
        for block in self.blocks:
            if isinstance(block, OuterBlock):
                a, d = _f64(block.inputs), _f64(block.deltas)
                kernel = tf.einsum("kn,np,nq->kpq", c, a, d)
                pieces.append((block.start, tf.reshape(kernel, [c.shape[0], -1])))
                if block.bias is not None:
                    pieces.append((block.bias, tf.matmul(c, d)))
            else:
                pieces.append((block.start, tf.matmul(c, _f64(block.rows))))
        pieces.sort(key=lambda piece: piece[0])
        out = tf.concat([p for _, p in pieces], axis=1)
        if out.shape[1] != self.dim:
            raise ValueError(f"blocks: cover {out.shape[1]} of {self.dim} parameters")
        return tf.cast(out, self.dtype)
