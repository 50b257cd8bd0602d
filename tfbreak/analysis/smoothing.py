"""Moving-average smoothing and maxima of metric series.

The paper smooths its curves "using moving average for clarity" (Sec. 4.2) without giving the
window; the conjecture maxima (Sec. 4.2, "max(λ1_K) = 0.68 ...") are reported here both raw and
smoothed so that the effect of smoothing on a verdict is visible.

Definitions (window w >= 1, over the measurements of one series in order, NaNs ignored):
  trailing: s[i] = mean(v[max(0, i-w+1) .. i])        (causal; the first w-1 points average fewer)
  centred:  s[i] = mean(v[i - (w-1)//2 .. i + w//2])  (truncated at both ends)
A window containing no finite value gives NaN. w = 1 returns the series unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["trailing", "centred"]


def moving_average(values: np.ndarray, window: int, mode: Mode = "trailing") -> np.ndarray:
    """Moving average over the last axis of `values` (one series, or one per row: bootstrap
    replicates), over `window` measurements, NaN-ignoring (see module doc)."""
    v = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"smoothing window must be >= 1, got {window}")
    if mode not in ("trailing", "centred"):
        raise ValueError(f"smoothing mode must be 'trailing' or 'centred', got {mode!r}")
    n = v.shape[-1] if v.ndim else 0
    if window == 1 or n == 0:
        return v.copy()
    finite = np.isfinite(v)
    zero = np.zeros(v.shape[:-1] + (1,))
    csum = np.concatenate([zero, np.cumsum(np.where(finite, v, 0.0), axis=-1)], axis=-1)
    ccnt = np.concatenate([zero, np.cumsum(finite, axis=-1)], axis=-1)
    i = np.arange(n)
    if mode == "trailing":
        lo, hi = np.maximum(0, i - window + 1), i + 1
    else:
        lo, hi = np.maximum(0, i - (window - 1) // 2), np.minimum(n, i + window // 2 + 1)
    cnt = ccnt[..., hi] - ccnt[..., lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (csum[..., hi] - csum[..., lo]) / cnt
    out[cnt == 0] = np.nan
    return out


@dataclass(frozen=True)
class Maximum:
    """The maximum of a series and where it is attained (first occurrence)."""

    value: float
    step: int
    epoch: float
    index: int


def series_max(steps: np.ndarray, epochs: np.ndarray, values: np.ndarray) -> Maximum | None:
    """Maximum over the finite values (first attaining index), or None if there is none."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return None
    idx = int(np.argmax(np.where(finite, v, -np.inf)))
    return Maximum(float(v[idx]), int(steps[idx]), float(epochs[idx]), idx)


def running_median(values: np.ndarray, width: int = 3) -> np.ndarray:
    """Centred running median over `width` measurements (odd), NaN-ignoring, truncated at the
    ends: a maximum of it needs `width // 2 + 1` neighbouring measurements as high, so one
    outlying measurement cannot make it."""
    v = np.asarray(values, dtype=np.float64)
    half = width // 2
    out = np.full(v.shape, np.nan)
    if not v.size:
        return out
    padded = np.concatenate([np.full(half, np.nan), v, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    some = np.isfinite(windows).any(axis=1)  # a window of NaNs only stays NaN
    out[some] = np.nanmedian(windows[some], axis=1)
    return out


ROBUST_WIDTH = 3


@dataclass(frozen=True)
class Maxima:
    """Raw, robust (of the 3-point running median) and, if a window was given, smoothed maximum
    of one metric of one run."""

    raw: Maximum | None
    smoothed: Maximum | None
    window: int | None
    mode: Mode
    robust: Maximum | None = None


def maxima(
    steps: np.ndarray,
    epochs: np.ndarray,
    values: np.ndarray,
    window: int | None = None,
    mode: Mode = "trailing",
) -> Maxima:
    """Raw maximum, maximum of the 3-point running median, and maximum of the moving average
    (`window` None or 1: smoothed = None)."""
    raw = series_max(steps, epochs, values)
    robust = series_max(steps, epochs, running_median(values, ROBUST_WIDTH))
    smoothed = None
    if window is not None and window > 1:
        smoothed = series_max(steps, epochs, moving_average(values, window, mode))
    return Maxima(raw, smoothed, window if window and window > 1 else None, mode, robust)
