"""Temperature scaling (Guo et al., 2017): one scalar ``T`` fitted on validation logits.

:func:`fit_temperature` minimises the validation NLL of ``softmax(logits / T)``;
:func:`apply_temperature` divides test logits by it. Both take logits: probability
rows raise.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import optimize, special

from ._inputs import (
    _as_scores_matrix,
    _check_from_logits,
    _labels,
    _logits,
    _looks_like_probs,
    _probs_hint,
    _source_eps,
)

__all__ = ["apply_temperature", "fit_temperature"]


def fit_temperature(
    logits: Any,
    labels: Any,
    *,
    bounds: tuple[float, float] = (1e-2, 1e2),
    xatol: float = 1e-6,
    from_logits: bool | None = None,
) -> float:
    """Fit a temperature T > 0 minimising the NLL of ``softmax(logits / T)``.

    Fit it on a **validation** split, never on the test split; then report on
    test logits with :func:`apply_temperature` (``logits / T``).

    The NLL is convex in ``1 / T``, hence unimodal in ``log T``; it is minimised
    by bounded Brent search (``scipy.optimize.minimize_scalar``) over
    ``log T`` within ``bounds`` (absolute tolerance ``xatol`` on ``log T``).  A
    :class:`RuntimeWarning` is emitted when the optimum sits on a bound (e.g.
    perfectly separated training logits, where NLL keeps falling as T -> 0).

    ``logits`` must be logits: rows that look like probabilities (non-negative,
    summing to 1) raise ``ValueError``, since scaling probabilities by ``1 / T``
    fits a meaningless temperature. ``from_logits=False`` accepts probabilities
    instead (their logarithms are logits up to a per-row constant, which softmax
    ignores, so T is the same); ``from_logits=True`` skips the check.

    >>> import numpy as np
    >>> from scipy.special import softmax
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(scale=3.0, size=(2000, 5))            # over-confident logits
    >>> y = np.array([rng.choice(5, p=p) for p in softmax(z / 3, axis=1)])
    >>> 2.5 < fit_temperature(z, y) < 3.5                     # the true T is 3
    True
    """
    z = _logits(logits, "fit_temperature", from_logits, allow_probs=True)
    y = _labels(labels, z.shape[0], z.shape[1])
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"bounds must satisfy 0 < low < high < inf, got {bounds!r}")
    zy = z[np.arange(len(y)), y]

    def objective(log_t: float) -> float:
        s = z / math.exp(log_t)
        return float(np.mean(special.logsumexp(s, axis=1) - zy / math.exp(log_t)))

    res = optimize.minimize_scalar(
        objective,
        bounds=(math.log(lo), math.log(hi)),
        method="bounded",
        options={"xatol": xatol},
    )
    log_t = float(res.x)
    f_opt = float(res.fun)
    tol = 1e-12 * max(1.0, abs(f_opt))
    edge = [b for b in bounds if objective(math.log(b)) <= f_opt + tol]
    if edge:
        warnings.warn(
            f"fit_temperature: T={math.exp(log_t):.4g}, but the NLL at the search bound "
            f"T={edge[0]:g} is as low; the NLL has no interior minimum within {bounds} "
            "(e.g. perfectly separated logits, or labels unrelated to the logits)",
            RuntimeWarning,
            stacklevel=2,
        )
    return math.exp(log_t)


def apply_temperature(logits: Any, temperature: float, *,
                      from_logits: bool | None = None) -> Any:
    """Return ``logits / temperature`` (same type as the input: tensor in, tensor out).

    Use the temperature fitted on the validation split by :func:`fit_temperature`.
    Rows that look like probabilities raise ``ValueError`` (``from_logits=True``
    skips the check).

    >>> apply_temperature([[2.0, -1.0]], 2.0)
    array([[ 1. , -0.5]])
    """
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    _check_from_logits(from_logits)
    if from_logits is False:
        raise ValueError("apply_temperature divides logits; pass logits, not probabilities")
    if hasattr(logits, "detach"):
        if from_logits is None and logits.dim() == 2 and logits.shape[1] >= 2 and \
                logits.numel() and _looks_like_probs(_as_scores_matrix(logits), _source_eps(logits)):
            raise ValueError(_probs_hint("apply_temperature", False))
        return logits / t
    if from_logits is None:
        return _logits(logits, "apply_temperature") / t
    return _as_scores_matrix(logits) / t
