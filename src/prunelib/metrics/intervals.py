"""Means over seeds with confidence intervals.

:func:`mean_ci` reduces over axis 0 (one row per seed) and returns the mean (sum
divided by the number of seeds k) with a two-sided Student-t (default) or seeded
percentile-bootstrap interval.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as _stats

from ._inputs import _as_float

__all__ = ["MeanCI", "mean_ci"]


class MeanCI(NamedTuple):
    """Mean and interval bounds (floats, or arrays for 2-D input)."""

    mean: Any
    lower: Any
    upper: Any


def mean_ci(
    values: Any,
    confidence: float = 0.95,
    method: str = "t",
    *,
    n_boot: int = 10_000,
    seed: int = 0,
) -> MeanCI:
    """Mean over seeds with a two-sided confidence interval.

    Parameters
    ----------
    values : array of shape (k,) or (k, m)
        Per-seed values, or per-seed curves (one row per seed); reduced over axis 0.
        The mean is the sum over the k seeds divided by k.
    confidence : float
        Interval coverage in (0, 1), default 0.95.
    method : str
        ``"t"`` -- Student-t interval ``mean +/- t_{(1+c)/2, k-1} * s / sqrt(k)``
        (``scipy.stats.t``, ``s`` with ddof=1); ``"bootstrap"`` -- percentile
        bootstrap of the mean with ``n_boot`` resamples from
        ``numpy.random.default_rng(seed)`` (deterministic for a given seed).

    Returns
    -------
    MeanCI
        ``(mean, lower, upper)``: floats for 1-D input, ``(m,)`` arrays for 2-D. With
        a single seed (k = 1) the bounds are NaN: there is no spread to report.

    >>> mean, lower, upper = mean_ci([0.80, 0.82, 0.81])
    >>> round(mean, 3), round(lower, 3), round(upper, 3)
    (0.81, 0.785, 0.835)
    """
    v = _as_float(values, "values", (1, 2))
    c = float(confidence)
    if not (0 < c < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    k = v.shape[0]
    mean = v.sum(axis=0) / k
    if k < 2:
        lower = np.full_like(mean, np.nan)
        upper = np.full_like(mean, np.nan)
    elif method == "t":
        se = v.std(axis=0, ddof=1) / math.sqrt(k)
        h = _stats.t.ppf((1 + c) / 2, k - 1) * se
        lower, upper = mean - h, mean + h
    else:
        if int(n_boot) < 1:
            raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, k, size=(int(n_boot), k))
        boots = v[idx].mean(axis=1)
        alpha = (1 - c) / 2
        lower = np.quantile(boots, alpha, axis=0)
        upper = np.quantile(boots, 1 - alpha, axis=0)
    if v.ndim == 1:
        return MeanCI(float(mean), float(lower), float(upper))
    return MeanCI(np.asarray(mean), np.asarray(lower), np.asarray(upper))
