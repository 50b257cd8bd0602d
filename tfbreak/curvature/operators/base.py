"""A curvature matrix known through its products: the interface every algorithm takes."""

from __future__ import annotations

import abc

import numpy as np
from scipy.sparse.linalg import LinearOperator


def rounding_precision(dtype) -> float:
    """Relative accuracy assumed for products computed in `dtype`: 64 units in the last place,
    a margin for the sums over examples and parameters (a float32 Hessian-vector product of a
    conv net agrees with float64 to ~1e-6)."""
    return 64 * float(np.finfo(dtype).eps)


class CurvatureOperator(abc.ABC):
    """A symmetric D x D matrix A (the Hessian H, the gradient covariance K) as a linear operator.

    `matvec(v)` takes and returns float64 host vectors (what `scipy.sparse.linalg` calls);
    `matvec_rows` gives products in the operator's own precision `dtype` (what Lanczos,
    Hutchinson and SLQ use: no float64 copy of a float32 product); `as_linear_operator()` is the
    scipy view, so e.g. `scipy.sparse.linalg.eigsh(op.as_linear_operator(), k=5)` works on any
    operator.
    """

    dtype = np.dtype(np.float64)
    """The host dtype of `matvec_rows`' products."""
    precision = rounding_precision(np.float64)
    """Relative accuracy of `matvec`: ||computed - exact|| <= precision * ||A|| ||v||."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """D, the number of parameters."""

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dim, self.dim)

    @abc.abstractmethod
    def matvec(self, v: np.ndarray) -> np.ndarray:
        """A v for a host vector of length D, as a float64 host vector."""

    def matvec_block(self, vectors: np.ndarray) -> np.ndarray:
        """A v for each row v of a (b, D) host array, as (b, D) float64 rows. Operators whose
        products share work across vectors (the Hessian) compute them in one pass."""
        return np.stack([self.matvec(v) for v in np.atleast_2d(vectors)])

    def matvec_rows(self, vectors: np.ndarray) -> np.ndarray:
        """A v for each row v of a (b, D) host array (any float dtype), as (b, D) host rows of
        `dtype`, in one call where the products share work (`matvec_block`)."""
        return np.asarray(self.matvec_block(vectors), dtype=self.dtype)

    def as_linear_operator(self) -> LinearOperator:
        """The operator as a `scipy.sparse.linalg.LinearOperator` (float64, symmetric)."""
        return LinearOperator(
            self.shape,
            matvec=lambda v: self.matvec(np.ravel(v)),
            rmatvec=lambda v: self.matvec(np.ravel(v)),
            matmat=lambda x: self.matvec_block(np.asarray(x).T).T,
            dtype=np.float64,
        )
