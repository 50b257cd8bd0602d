"""lambda_1..k(H) by Lanczos on the Hessian sample (paper Sec. 4, App. C), warm-started from the
previous measurement's top eigenvectors, with the certified Kato-Temple bound of lambda_1 and
its sampling error from the curvatures H_i = e1^T H_i e1 of the sample's examples along e1_H:
se = sqrt(Var_i[H_i] / n (N - n) / (N - 1)). With a target error the sample grows through
nested larger draws until that error meets it (`tfbreak.measure.adaptive_sample`)."""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from tfbreak.curvature import CurvatureAlong, HessianOperator, LanczosResult, lanczos
from tfbreak.curvature.stability import DirectionalCurvature
from tfbreak.measure.adaptive_sample import relative_error
from tfbreak.measure.parts.base import Measurement, MeasurementPart
from tfbreak.runs import names


class HessianSampleWarning(UserWarning):
    """The adaptive Hessian sample reached its largest size above the target error."""


@dataclass(frozen=True)
class TopEigenpairs:
    """What the part leaves for the parts after it (`Measurement.results["hessian"]`): the
    Lanczos result and the curvatures of the sample's examples along e1_H."""

    lanczos: LanczosResult
    curvatures: DirectionalCurvature


class TopEigenvalues(MeasurementPart):
    """lambda_1..k(H), its bound and sampling error; the warm start is `suite.warm_start`."""

    def __init__(self, suite):
        super().__init__(suite)
        self.curvature_along = CurvatureAlong(
            suite.variables, suite.loss_fn, strategy=suite.strategy
        )
        self._warned_sample_cap = False

    def _top_eigenpairs(self, op: HessianOperator, v0: np.ndarray | None, seed: int):
        s = self.suite.settings
        block = min(s.lanczos_block, op.dim)
        return lanczos(
            op,
            k=min(s.top_k, op.dim),
            tol=s.lanczos_tol,
            max_iter=s.lanczos_max_iter,
            converge_k=min(s.lanczos_converge_k, s.top_k, op.dim),
            block=block,
            v0=None if v0 is None else v0[:block],
            seed=seed,
            basis=s.lanczos_basis,
            basis_vectors=s.basis_vectors(),
        )

    def measure(self, m: Measurement) -> None:
        """Lanczos, warm-started from the previous top eigenvectors (a block, thick restart);
        with a target error the sample grows along `samples.hessian_ladder` (each size
        warm-started from the last) until the sampling error of lambda_1 meets it."""
        suite, row = self.suite, m.row
        ladder = suite.samples.hessian_ladder
        size, v0, matvecs = suite.samples.hessian_size, suite.warm_start, 0
        while True:
            op = suite.hessian_on(size)
            recorded = warnings.catch_warnings(record=True) if ladder else nullcontext([])
            with recorded as caught:
                result = self._top_eigenpairs(op, v0, m.seed)
            matvecs += result.matvecs
            # The curvatures H_i of the sample's examples along e1_H: the sampling error of
            # lambda_1 and, for Eq. 1, their variance s^2.
            curv = self.curvature_along(suite.samples.hessian_at(size), result.eigenvectors[0])
            lam = float(result.eigenvalues[0])
            grown = ladder.next_size(size, curv, lam, suite.num_train) if ladder else None
            if grown is None:
                break  # a LanczosWarning of a sample that grew is moot: said of the last one only
            size, v0 = grown, result.eigenvectors
        suite.hessian = op
        if ladder is not None:
            for caught_warning in caught:
                warnings.warn(caught_warning.message, caught_warning.category, stacklevel=2)
            row[names.HESSIAN_SAMPLE_SIZE] = size
            self._warn_if_capped(relative_error(curv, lam, suite.num_train), size)
        # The warm start is kept in float32 (as checkpointed), so a resumed run starts Lanczos
        # from exactly the same vectors as an uninterrupted one.
        suite.warm_start = result.eigenvectors.astype(np.float32)
        row[names.HESSIAN_LAMBDA_1] = float(result.eigenvalues[0])
        row[names.HESSIAN_TOP_K] = [float(x) for x in result.eigenvalues]
        row[names.HESSIAN_RESIDUAL_1] = float(result.residuals[0])
        row[names.HESSIAN_LAMBDA_1_BOUND] = float(result.error_bounds[0])
        row[names.HESSIAN_MATVECS] = matvecs
        m.arrays[names.ARRAY_HESSIAN_RITZ_VALUES] = result.eigenvalues
        m.arrays[names.ARRAY_HESSIAN_RITZ_BOUNDS] = result.error_bounds
        if suite.settings.save_eigenvectors:
            m.arrays[names.ARRAY_HESSIAN_EIGENVECTORS] = result.eigenvectors.astype(np.float32)
        row[names.HESSIAN_LAMBDA_1_STDERR] = curv.mean_stderr(suite.num_train)
        m.results["hessian"] = TopEigenpairs(result, curv)

    def _warn_if_capped(self, error: float, size: int) -> None:
        settings = self.suite.settings
        target = settings.hessian_target_error
        if error <= target or self._warned_sample_cap:
            return
        self._warned_sample_cap = True
        warnings.warn(
            f"--hessian_target_error={target}: the relative sampling error of lambda_1(H) is "
            f"{error:.3g} with the largest sample, {size} examples (--hessian_max_fraction="
            f"{settings.hessian_max_fraction}); hessian/lambda_1_stderr holds it at each "
            "measurement (said once per process)",
            HessianSampleWarning,
            stacklevel=2,
        )
