"""An adaptive Hessian sample: as many examples as a target sampling error of lambda_1(H) needs.

The paper measures H on a fixed 5% of the training set (App. C); how well lambda_1 of that
sample stands for lambda_1 of the training loss depends on how much the examples' curvatures
along e1_H differ. To first order the sampling error of lambda_1 on n of N examples drawn
without replacement is the standard error of the mean of the per-example curvatures H_i along
e1_H (`DirectionalCurvature.mean_stderr`):

    se(n)^2 = s_u^2 / n * (N - n) / (N - 1),   s_u^2 = Var_i[H_i] (ddof = 1).

Solving se(n) = t * |lambda_1| for n gives the size `required_size` a target relative error t
needs. The sample grows along a ladder of nested draws, n_0, 2 n_0, 4 n_0, ... capped at
n_max (every size is a prefix of one random permutation, so a larger sample holds the smaller
one): `SampleLadder.next_size` jumps to the first rung at or above the required size (times a
margin for the noise of s_u^2 itself), so a measurement passes through few sizes and each size's
batches are traced once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfbreak.curvature.stability import DirectionalCurvature

MARGIN = 1.1
"""The required size is multiplied by this before choosing a rung: s_u^2 is itself estimated
from the smaller sample."""


def relative_error(curvatures: DirectionalCurvature, lambda_1: float, population: int) -> float:
    """se / |lambda_1|: the relative sampling error of lambda_1(H) on this sample of the
    `population` of N training examples (inf when lambda_1 is 0)."""
    se = curvatures.mean_stderr(population)
    return se / abs(lambda_1) if lambda_1 != 0 else math.inf


def required_size(
    curvatures: DirectionalCurvature, lambda_1: float, target: float, population: int
) -> float:
    """The n at which se(n) = target * |lambda_1| with the variance s_u^2 of these curvatures:

        n = s_u^2 N / (t^2 lambda_1^2 (N - 1) + s_u^2),

    at most N (se(N) = 0: the whole training set has no sampling error)."""
    n = curvatures.values.size
    if n < 2:
        return float(population)
    s2u = float(curvatures.s2) * n / (n - 1)
    denominator = target**2 * lambda_1**2 * (population - 1) + s2u
    return float(population) if denominator == 0 else s2u * population / denominator


@dataclass(frozen=True)
class SampleLadder:
    """The sample sizes an adaptive measurement may use: initial * 2^j, and maximum."""

    initial: int
    maximum: int
    target: float

    def sizes(self) -> list[int]:
        """The rungs, ascending: initial, 2 initial, 4 initial, ..., maximum."""
        out, n = [], self.initial
        while n < self.maximum:
            out.append(n)
            n *= 2
        return [*out, self.maximum]

    def next_size(
        self, current: int, curvatures: DirectionalCurvature, lambda_1: float, population: int
    ) -> int | None:
        """The next sample size, or None when the relative error meets the target (or the
        sample is at its maximum): the first rung above `current` at or above
        MARGIN * `required_size`."""
        if current >= self.maximum:
            return None
        if relative_error(curvatures, lambda_1, population) <= self.target:
            return None
        needed = MARGIN * required_size(curvatures, lambda_1, self.target, population)
        return next(n for n in self.sizes() if n > current and (n >= needed or n == self.maximum))
