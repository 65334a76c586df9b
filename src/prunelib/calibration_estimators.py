"""Calibration estimators beyond the binned ECE: its noise floor, a debiased ECE, smooth ECE.

All take the **top-label** confidence ``max_k p_k`` and correctness ``argmax_k p_k == label``
(ties to the lowest class index), as :func:`~prunelib.metrics.calibration.ece` does, and return fractions
in [0, 1] (ECE units, not percent). Re-exported by :mod:`prunelib.stats`.

* :func:`ece_noise_floor` -- the binned ECE that a *perfectly calibrated* predictor with the
  same confidences would show by chance: an ECE near it is indistinguishable from zero;
* :func:`debiased_ece` -- Kumar, Liang & Ma (NeurIPS 2019), removing the upward bias of the
  binned (squared) error;
* :func:`smooth_ece` -- Blasiok & Nakkiran (ICLR 2024), through the ``relplot`` package.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .metrics import PROB_ATOL, reliability_bins

__all__ = ["NoiseFloor", "debiased_ece", "ece_noise_floor", "smooth_ece"]


class NoiseFloor(NamedTuple):
    """Mean and 5% / 95% quantiles of a calibrated predictor's ECE over simulated draws."""

    mean: float
    lower: float
    upper: float


def _top_label(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence and correctness (0./1.) after checking the input."""
    p, y = np.asarray(probs, dtype=float), np.asarray(labels)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2 or y.shape != p.shape[:1]:
        raise ValueError(f"probs must be [N, C] with C >= 2 and labels [N], got shapes {p.shape} "
                         f"and {y.shape}")
    if not np.all(np.isfinite(p)) or p.min() < -PROB_ATOL or p.max() > 1 + PROB_ATOL \
            or np.abs(p.sum(axis=1) - 1).max() > PROB_ATOL:
        raise ValueError("probs must be probabilities (rows in [0, 1] summing to 1); apply a "
                         "softmax to logits first")
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must be integer class indices in [0, {p.shape[1] - 1}]")
    pred = np.argmax(p, axis=1)
    return p[np.arange(len(p)), pred], (pred == y).astype(np.float64)


def _equal_width_bin(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index as in :mod:`prunelib.metrics`: bins ``(lo, hi]``, 0 -> first, 1.0 -> last."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)


def _binned_ece(conf: np.ndarray, hit: np.ndarray, n_bins: int) -> float:
    """Equal-width top-label ECE, ``sum_b |sum(hit_b) - sum(conf_b)| / n``."""
    idx = _equal_width_bin(conf, n_bins)
    gap = np.bincount(idx, weights=hit, minlength=n_bins)
    gap -= np.bincount(idx, weights=conf, minlength=n_bins)
    return float(np.abs(gap).sum() / len(conf))


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return int(v)


def ece_noise_floor(confidences: Any, n_bins: int = 15, n_draws: int = 200,
                    seed: int = 0) -> NoiseFloor:
    """ECE of a perfectly calibrated predictor with these confidences (same n, same bins).

    Each draw makes every example correct with probability equal to its confidence
    (``Bernoulli(c)``) and computes the equal-width, top-label ECE with the binning of
    :func:`~prunelib.metrics.calibration.ece` (bins ``(lo, hi]``, 0 in the first, 1.0 in the last).
    Returns the mean and the 5% / 95% quantiles over ``n_draws`` draws. A measured ECE
    inside this range is what sampling noise alone produces on a test set of this size.

    >>> conf = np.full(100, 0.8)
    >>> f = ece_noise_floor(conf, n_draws=100)
    >>> 0.01 < f.mean < 0.05, f.lower <= f.mean <= f.upper
    (True, True)
    """
    c = np.asarray(confidences, dtype=float)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"confidences must be a non-empty 1-D array (top-label confidence "
                         f"per example), got shape {c.shape}")
    if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
        raise ValueError("confidences must be finite and in [0, 1]; pass max_k p_k, not logits")
    n_bins = _positive_int(n_bins, "n_bins")
    n_draws = _positive_int(n_draws, "n_draws")
    rng = np.random.default_rng(seed)
    draws = np.array([_binned_ece(c, (rng.random(c.size) < c).astype(np.float64), n_bins)
                      for _ in range(n_draws)])
    lo, hi = np.quantile(draws, [0.05, 0.95])
    return NoiseFloor(float(draws.mean()), float(lo), float(hi))


def debiased_ece(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Debiased l2 calibration error (Kumar, Liang & Ma, NeurIPS 2019), in ECE units.

    With equal-mass bins (the ``scheme="equal_mass"`` bins of
    :func:`~prunelib.metrics.binning.reliability_bins`) of the top-label confidence, the squared
    error is estimated without the bias that sampling noise adds to each bin:
    ``sum_b (n_b / n) [(acc_b - conf_b)^2 - acc_b (1 - acc_b) / (n_b - 1)]``.
    Bins with fewer than 2 examples contribute 0 (as in the authors' code). The result is
    ``sqrt(max(estimate, 0))``, so it is in the units of ECE; 0 means "no calibration error
    detectable beyond noise". For a predictor that is off by ``e`` everywhere it is ``~e``.

    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.5, 1.0, 20_000)
    >>> y = (rng.random(20_000) >= conf - 0.1).astype(int)  # accuracy = conf - 0.1
    >>> round(debiased_ece(np.stack([conf, 1 - conf], 1), y), 2)
    0.1
    """
    n_bins = _positive_int(n_bins, "n_bins")
    rb = reliability_bins(probs, labels, n_bins, scheme="equal_mass")
    nb = rb.counts
    ok = nb >= 2
    acc, conf = rb.accuracy[ok], rb.mean_confidence[ok]
    terms = (acc - conf) ** 2 - acc * (1 - acc) / (nb[ok] - 1)
    est = float(np.sum(nb[ok] / nb.sum() * terms))
    return float(np.sqrt(max(est, 0.0)))


def smooth_ece(probs: Any, labels: Any, bootstrap: int = 0, level: float = 0.95,
               seed: int = 0) -> float | tuple[float, float, float]:
    """Smooth ECE (Blasiok & Nakkiran, ICLR 2024) of the top-label confidence via ``relplot``.

    ``relplot.smECE(confidence, correct)`` kernel-smooths the residual ``correct - conf``
    with a reflected Gaussian kernel whose bandwidth it chooses itself (the fixed point
    ``smECE(sigma) = sigma``); a perfectly calibrated predictor therefore scores about
    that bandwidth (~0.01 on 10,000 examples), not 0. With ``bootstrap > 0`` returns
    ``(value, lower, upper)``: a percentile interval of coverage ``level`` from ``bootstrap``
    resamples of the (confidence, correct) pairs (seeded; relplot's own bootstrap lives
    inside its plotting helper and is unseeded), else the value alone.

    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.5, 1.0, 20_000)
    >>> y = (rng.random(20_000) >= conf - 0.1).astype(int)  # accuracy = conf - 0.1
    >>> round(smooth_ece(np.stack([conf, 1 - conf], 1), y), 2)
    0.1
    """
    import relplot  # imported here: it pulls in matplotlib and scikit-learn

    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) \
            or bootstrap < 0:
        raise ValueError(f"bootstrap must be an integer >= 0 (resamples), got {bootstrap!r}")
    if not 0 < float(level) < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")
    conf, hit = _top_label(probs, labels)
    value = float(relplot.smECE(conf, hit))
    if bootstrap == 0:
        return value
    rng = np.random.default_rng(seed)
    boots = np.empty(int(bootstrap))
    for r in range(int(bootstrap)):
        i = rng.integers(0, conf.size, conf.size)
        boots[r] = relplot.smECE(conf[i], hit[i])
    q = (1 - float(level)) / 2
    lower, upper = np.quantile(boots, [q, 1 - q])
    return value, float(lower), float(upper)
