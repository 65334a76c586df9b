"""Binning of the top-label confidence: reliability diagrams and their statistics.

Bins are half-open ``(lo, hi]``; a confidence of exactly 0 goes to the first bin and
exactly 1.0 to the last, so no sample is ever dropped. ``scheme="equal_width"``
uses edges ``numpy.linspace(0, 1, n_bins + 1)``; ``scheme="equal_mass"`` (adaptive
ECE) uses the outer edges 0 and 1 and, inside, the ``k / n_bins`` quantiles of the
binned confidences (``numpy.quantile``, linear interpolation), so each bin holds
about ``n / n_bins`` samples. Empty bins contribute nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._inputs import _check_n_bins, _check_scheme, _labels, _probs

__all__ = ["ReliabilityBins", "reliability_bins"]


def _edges(conf: np.ndarray, n_bins: int, scheme: str) -> np.ndarray:
    if scheme == "equal_width":
        return np.linspace(0.0, 1.0, n_bins + 1)
    inner = np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return np.concatenate([[0.0], inner, [1.0]])


def _assign(conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each confidence for bins ``(lo, hi]``; 0 -> first, 1.0 -> last."""
    idx = np.searchsorted(edges, conf, side="left") - 1
    return np.clip(idx, 0, len(edges) - 2)


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics of a reliability diagram.

    * ``edges`` -- ``(n_bins + 1,)`` bin edges; bin ``i`` is ``(edges[i], edges[i+1]]``
      (the first bin also holds confidence 0);
    * ``counts`` -- ``(n_bins,)`` number of samples per bin (int);
    * ``mean_confidence`` -- ``(n_bins,)`` mean binned confidence, NaN for empty bins;
    * ``accuracy`` -- ``(n_bins,)`` fraction correct (or fraction positive, for the
      positive-class variant), NaN for empty bins.
    """

    edges: np.ndarray
    counts: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def proportion(self) -> np.ndarray:
        """Fraction of all samples in each bin (sums to 1)."""
        return self.counts / self.counts.sum()

    @property
    def gap(self) -> np.ndarray:
        """``accuracy - mean_confidence``; negative = over-confident. NaN when empty."""
        return self.accuracy - self.mean_confidence

    @property
    def ece(self) -> float:
        """Count-weighted mean absolute gap over non-empty bins."""
        nz = self.counts > 0
        return float(np.sum(self.proportion[nz] * np.abs(self.gap[nz])))

    @property
    def mce(self) -> float:
        """Largest absolute gap over non-empty bins."""
        nz = self.counts > 0
        return float(np.max(np.abs(self.gap[nz])))


def _bin_stats(conf: np.ndarray, hit: np.ndarray, n_bins: int, scheme: str) -> ReliabilityBins:
    edges = _edges(conf, n_bins, scheme)
    idx = _assign(conf, edges)
    counts = np.bincount(idx, minlength=n_bins)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_hit = np.bincount(idx, weights=hit.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, sum_conf / counts, np.nan)
        acc = np.where(counts > 0, sum_hit / counts, np.nan)
    return ReliabilityBins(edges=edges, counts=counts, mean_confidence=mean_conf, accuracy=acc)


def _top_label(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.argmax(p, axis=1)
    conf = p[np.arange(len(p)), pred]
    return conf, pred == y


def reliability_bins(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    scheme: str = "equal_width",
    *,
    from_logits: bool = False,
) -> ReliabilityBins:
    """Bin the **top-label** confidence and return per-bin count, mean confidence, accuracy.

    Parameters
    ----------
    probs : array of shape (n, C)
        Probabilities (or logits with ``from_logits=True``).
    labels : array of shape (n,)
        Integer labels in ``[0, C)``.
    n_bins : int
        Number of bins (>= 1).
    scheme : str
        ``"equal_width"`` (edges ``linspace(0, 1, n_bins + 1)``) or ``"equal_mass"``
        (quantile edges, about ``n / n_bins`` samples per bin).

    Bins are ``(lo, hi]``; confidence 0 goes to the first bin, 1.0 to the
    last.  Empty bins have count 0 and NaN confidence/accuracy.

    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> rb = reliability_bins(probs, [0, 1, 1, 0], n_bins=2)
    >>> rb.counts.tolist(), rb.accuracy.tolist()
    ([0, 4], [nan, 0.75])
    """
    n_bins = _check_n_bins(n_bins)
    _check_scheme(scheme)
    p = _probs(probs, from_logits)
    y = _labels(labels, p.shape[0], p.shape[1])
    conf, hit = _top_label(p, y)
    return _bin_stats(conf, hit, n_bins, scheme)
