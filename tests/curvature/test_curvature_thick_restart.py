"""Lanczos with a capped basis (thick restart, `lanczos(basis_vectors=...)`) against dense float64
eigenvalues: the cap forces several restarts, and the certified interval of lambda_1 still holds
the exact eigenvalue (tol 1e-6 relative, so the intervals are narrow)."""

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import tensorflow as tf

from tfbreak.curvature import lanczos
from tfbreak.curvature.algorithms.krylov import HostBasis
from tfbreak.curvature.operators.base import rounding_precision
from tfbreak.curvature.parameters import TENSOR_ALIGNMENT
from tfbreak.measure.settings import MeasurementSettings
from tfbreak.validation import ConfigError


def spectrum_matrix(spectrum, seed=2):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(spectrum),) * 2))
    return (q * spectrum) @ q.T


SPECTRA = {
    # slow convergence: a smooth top end, lambda_2 / lambda_1 = 0.98
    "quartic": np.linspace(0.0, 2.0, 300) ** 4,
    # three top eigenvalues 0.1 % apart: a block of 3 resolves them
    "cluster": np.concatenate([[10.0, 9.99, 9.98, 5.0], np.linspace(-1.0, 3.0, 296)]),
    # lambda_1 - lambda_2 = 1e-4 lambda_1: a block of 2
    "near_double": np.concatenate([[8.0, 8.0 - 8e-4], np.linspace(-1.0, 6.0, 298)]),
    # the largest |eigenvalues| are negative: lambda_1 = 5 is the algebraically largest
    "negative": np.concatenate([[-20.0, -18.0, 5.0, 4.5], np.linspace(-3.0, 4.0, 296)]),
}


def run(a, **kwargs):
    args = {"tol": 1e-6, "max_iter": 400, "converge_k": 1, "seed": 0, "basis": "host"}
    return lanczos(sla.aslinearoperator(a), **{**args, **kwargs})


@pytest.mark.parametrize(
    "name,k,block,cap",
    [("quartic", 1, 1, 6), ("cluster", 3, 3, 12), ("near_double", 1, 2, 7), ("negative", 2, 1, 8)],
)
def test_restarted_lanczos_certifies_lambda_1(name, k, block, cap):
    spectrum = SPECTRA[name]
    true = np.sort(spectrum)[::-1]
    a = spectrum_matrix(spectrum)
    for seed in range(3):
        capped = run(a, k=k, block=block, basis_vectors=cap, seed=seed)
        assert capped.converged and capped.thick_restarts >= 2, (seed, capped.thick_restarts)
        lo, hi = capped.intervals[0]
        assert lo <= true[0] <= hi, (seed, lo, true[0], hi)
        assert hi - lo <= 2e-6 * abs(true[0])
        # Every product is counted: more than the restarts left in the basis.
        assert capped.matvecs > cap
    # Without a cap (or with one no run reaches) the same problem takes no restart.
    free = run(a, k=k, block=block)
    wide = run(a, k=k, block=block, basis_vectors=free.matvecs + block + 1)
    assert free.thick_restarts == wide.thick_restarts == 0
    np.testing.assert_array_equal(free.eigenvalues, wide.eigenvalues)
    np.testing.assert_array_equal(free.error_bounds, wide.error_bounds)


def test_warm_start_with_restarts():
    """A warm start (the previous eigenvectors, perturbed) with a block of 2 and a cap of 9:
    the thick-restart steps follow the residual of the least converged wanted pair."""
    spectrum = SPECTRA["quartic"]
    true = np.sort(spectrum)[::-1]
    a = spectrum_matrix(spectrum)
    _, vectors = np.linalg.eigh(a)
    rng = np.random.default_rng(1)
    v0 = vectors[:, ::-1][:, :2].T + 0.05 * rng.standard_normal((2, 300))
    capped = run(a, k=3, converge_k=2, block=2, v0=v0, basis_vectors=9)
    assert capped.converged and capped.thick_restarts >= 2
    lo, hi = capped.intervals[:2].T
    assert np.all((lo <= true[:2]) & (true[:2] <= hi))


def test_float32_basis_with_restarts_agrees_with_float64():
    """The float32 basis restarts like the float64 one; its rounding (every stored vector
    counted, those the restarts rewrite too) stays in the interval."""
    spectrum = SPECTRA["quartic"]
    a = spectrum_matrix(spectrum)
    args = {"k": 1, "block": 1, "basis_vectors": 8, "tol": 1e-5}
    f32 = run(a.astype(np.float32).astype(np.float64), **args)
    f64 = run(a.astype(np.float32).astype(np.float64), **{**args, "basis": "host_float64"})
    assert f32.thick_restarts >= 2 and f32.converged and f64.converged
    assert abs(f32.eigenvalues[0] - f64.eigenvalues[0]) <= 1e-5 * 16.0
    assert f32.rounding <= 4 * (f32.matvecs + f32.thick_restarts * 8) * 1e-16 * 16.0 + 1e-12


class DenseDeviceOperator:
    """A dense float32 matrix with `apply_block` (tensors), for the tf.Variable basis."""

    dtype = np.dtype(np.float32)
    precision = rounding_precision(np.float32)

    def __init__(self, a):
        self.a, self.shape = tf.constant(a, tf.float32), a.shape

    def apply_block(self, vectors):
        return tf.matmul(tf.convert_to_tensor(vectors, tf.float32), self.a)

    def matvec(self, v):
        return self.apply_block(np.asarray(v, np.float32)[None])[0].numpy().astype(np.float64)

    def matvec_rows(self, vectors):
        return self.apply_block(vectors).numpy()


def test_device_basis_restarts_like_the_host_basis():
    spectrum = SPECTRA["negative"]
    a = spectrum_matrix(spectrum)
    op = DenseDeviceOperator(a)
    args = {"k": 2, "tol": 1e-4, "max_iter": 200, "converge_k": 1, "block": 2, "seed": 3}
    host = lanczos(op, basis="host", basis_vectors=8, **args)
    device = lanczos(op, basis="device", basis_vectors=8, **args)
    assert host.converged and device.converged
    assert host.thick_restarts >= 2 and device.thick_restarts == host.thick_restarts
    assert device.matvecs == host.matvecs
    np.testing.assert_allclose(device.eigenvalues, host.eigenvalues, rtol=1e-6)
    assert device.intervals[0, 0] <= 5.0 <= device.intervals[0, 1]


def test_a_cap_below_what_a_restart_keeps_is_refused():
    a = spectrum_matrix(SPECTRA["quartic"])
    with pytest.raises(ValueError, match=r"^basis_vectors: must be an integer >= .* = 7 "):
        run(a, k=3, block=2, basis_vectors=6)
    with pytest.raises(ConfigError) as error:
        MeasurementSettings(top_k=5, lanczos_block=2, lanczos_basis_vectors=8).validate()
    message = str(error.value)
    assert message.startswith("--lanczos_basis_vectors: expected an integer >= --top_k + ")
    assert "= 9" in message and "\n" not in message
    assert MeasurementSettings(top_k=5, lanczos_basis_vectors=9).validate().basis_vectors() == 9


def tiny_hessian(batch_sizes=(16,), mode="reverse_over_reverse"):
    """The Hessian of a 7-9-3 MLP's loss (float32) over batches of these sizes."""
    import keras

    from tfbreak.curvature import HessianOperator, classification_loss

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((7,)), keras.layers.Dense(9, activation="relu"), keras.layers.Dense(3)]
    )
    rng = np.random.default_rng(0)
    batches = [
        (rng.standard_normal((n, 7)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32))
        for n in batch_sizes
    ]
    loss = classification_loss(model, bn_mode="inference")
    return HessianOperator(model.trainable_variables, loss, batches, mode=mode)


def test_basis_rows_are_aligned_and_a_hessian_pass_leaves_them_unchanged():
    """The rows are handed to TensorFlow in place (DLPack, `parameters.host_pieces`): they are
    aligned, and a Hessian-vector pass does not write into them."""
    basis = HostBasis(1001, capacity=3, dtype=np.float32)
    assert all(basis.data[i].ctypes.data % TENSOR_ALIGNMENT == 0 for i in range(3))
    op = tiny_hessian()
    basis = HostBasis(op.dim, capacity=2, dtype=np.float32)
    basis.data[:] = np.random.default_rng(0).standard_normal((2, op.dim))
    before = basis.data.copy()
    in_place = op.matvec_rows(basis.data[:1])
    stacked = op.matvec_rows(basis.data[:2])
    np.testing.assert_array_equal(basis.data, before)
    reference = op.matvec_rows(np.ascontiguousarray(before))
    np.testing.assert_array_equal(stacked, reference)
    np.testing.assert_array_equal(in_place[0], reference[0])


@pytest.mark.parametrize("mode", ["reverse_over_reverse", "forward_over_reverse"])
def test_products_written_into_basis_rows_are_bit_identical_to_the_tensorflow_sum(mode):
    """`matvec_rows_into` adds the batches' per-variable products into host rows and divides
    them there (numpy, in the variables' dtype); `apply_block` does the same in TensorFlow: the
    float32 results agree bit for bit (3 uneven batches, 2 vectors), and are H v (float64
    dense reference, float32 rounding)."""
    op = tiny_hessian((6, 6, 4), mode)
    basis = HostBasis(op.dim, capacity=4, dtype=np.float32)
    rng = np.random.default_rng(1)
    for _ in range(2):
        basis.append(rng.standard_normal(op.dim), 1.0)
    out = basis.free_rows(2)
    assert basis.free_rows(3) is None
    written = op.matvec_rows_into(basis.data[:2], out)
    assert written is out and np.shares_memory(out, basis.data)
    expected = op.apply_block(basis.data[:2]).numpy()
    np.testing.assert_array_equal(basis.data[2:4].view(np.uint32), expected.view(np.uint32))
    dense = np.stack([op.matvec(np.eye(op.dim)[i]) for i in range(op.dim)])
    np.testing.assert_allclose(out, basis.data[:2].astype(np.float64) @ dense, atol=1e-5)
    wrong = r"^out: expected writable rows of shape \(2, \d+\) and dtype float32"
    with pytest.raises(ValueError, match=wrong):
        op.matvec_rows_into(basis.data[:2], np.zeros((2, op.dim)))


def test_lanczos_products_in_the_basis_rows_change_nothing():
    """Lanczos with the Hessian writing its products into the basis' free rows (`in_place`)
    gives bit for bit the result of products returned and copied there (thick restarts
    included)."""

    class Copied:  # the operator without matvec_rows_into
        def __init__(self, op):
            self.shape, self.dtype, self.precision = op.shape, op.dtype, op.precision
            self.matvec, self.matvec_rows = op.matvec, op.matvec_rows

    op = tiny_hessian((6, 6, 4))
    args = {"tol": 1e-3, "max_iter": 40, "converge_k": 1, "block": 2, "basis": "host"}
    for cap in (None, 7):
        direct = lanczos(op, 2, basis_vectors=cap, **args)
        copied = lanczos(Copied(op), 2, basis_vectors=cap, **args)
        assert direct.thick_restarts == copied.thick_restarts >= (cap is not None)
        np.testing.assert_array_equal(direct.eigenvalues, copied.eigenvalues)
        np.testing.assert_array_equal(direct.eigenvectors, copied.eigenvectors)
