"""Calibration metrics of the **top-label** confidence, Brier score and NLL.

``ece``/``mce``/``reliability_bins`` bin the top-label confidence ``max_k p_k``
(never the probability of class 0) against top-label correctness
``argmax_k p_k == label`` (ties go to the lowest class index, like
``numpy.argmax``); binning as in :mod:`prunelib.metrics.binning`. ``probs`` is an
``(n_samples, n_classes)`` matrix of probabilities (rows summing to 1 within
``PROB_ATOL``); logits need an explicit
``from_logits=True``: nothing is guessed from the value range. ``labels`` are
integers in ``[0, n_classes)``. All calibration errors are fractions in [0, 1]
(not percent). Bad input raises :class:`ValueError` saying what is wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from ._inputs import (
    PROB_ATOL,
    _as_float,
    _as_scores_matrix,
    _check_n_bins,
    _check_probs,
    _check_scheme,
    _labels,
    _probs,
    _source_eps,
)
from .binning import _bin_stats, reliability_bins

__all__ = [
    "accuracy",
    "binary_positive_class_ece",
    "binary_top_label_ece",
    "brier",
    "calibration_summary",
    "classwise_ece",
    "ece",
    "mce",
    "nll",
]


def accuracy(probs_or_logits: Any, labels: Any) -> float:
    """Top-1 accuracy, a fraction in [0, 1].

    Accepts probabilities or logits alike (the argmax is the same); ties go
    to the lowest class index.

    >>> accuracy([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]], [0, 1, 1])
    0.6666666666666666
    """
    s = _as_scores_matrix(probs_or_logits, "probs_or_logits")
    y = _labels(labels, s.shape[0], s.shape[1])
    return float(np.mean(np.argmax(s, axis=1) == y))


def ece(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    scheme: str = "equal_width",
    *,
    from_logits: bool = False,
) -> float:
    """Expected calibration error of the **top-label** confidence (a fraction in [0, 1]).

    ``ECE = sum_i |B_i| / n * |acc(B_i) - conf(B_i)|`` (the poster's formula),
    where ``conf`` is ``max_k p_k`` and ``acc`` the fraction of samples in the
    bin whose argmax equals the label.  Bins are ``(lo, hi]`` with 0 in the first
    and 1.0 in the last bin; empty bins contribute nothing.
    ``scheme="equal_mass"`` gives the adaptive ECE.  On two classes this is the
    top-label ECE (see :func:`binary_positive_class_ece` for the other one).

    >>> P = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
    >>> Y = [0, 1, 1, 0]
    >>> round(ece(P, Y, n_bins=10), 4)
    0.4
    >>> round(ece([[2.0, 0.0], [0.0, 1.0]], [0, 1], from_logits=True), 4)
    0.1941
    """
    return reliability_bins(probs, labels, n_bins, scheme, from_logits=from_logits).ece


def mce(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    scheme: str = "equal_width",
    *,
    from_logits: bool = False,
) -> float:
    """Maximum calibration error: the largest ``|acc(B_i) - conf(B_i)|`` over non-empty bins.

    Same top-label confidence and ``(lo, hi]`` binning as :func:`ece`; always ``>= ece``.

    >>> P = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
    >>> Y = [0, 1, 1, 0]
    >>> round(mce(P, Y, n_bins=10), 4)
    0.8
    """
    return reliability_bins(probs, labels, n_bins, scheme, from_logits=from_logits).mce


def classwise_ece(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    scheme: str = "equal_width",
    *,
    from_logits: bool = False,
    per_class: bool = False,
) -> float | np.ndarray:
    """Class-wise ECE: the mean over classes k of the binned ECE of ``p_k``.

    For class ``k`` the confidence is ``p[:, k]`` and the "accuracy" of a bin is
    the fraction of its samples with label ``k``.  Binning as in :func:`ece`
    (``(lo, hi]``, 0 -> first bin, 1.0 -> last; equal-mass edges per class).
    Returns the mean over classes, or the ``(C,)`` per-class values with
    ``per_class=True``.

    >>> P = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
    >>> Y = [0, 1, 1, 0]
    >>> round(classwise_ece(P, Y, n_bins=2), 4)
    0.15
    """
    n_bins = _check_n_bins(n_bins)
    _check_scheme(scheme)
    p = _probs(probs, from_logits)
    y = _labels(labels, p.shape[0], p.shape[1])
    per = np.array(
        [_bin_stats(p[:, k], y == k, n_bins, scheme).ece for k in range(p.shape[1])]
    )
    return per if per_class else float(per.mean())


def _binary_pos(probs: Any, from_logits: bool) -> np.ndarray:
    if not isinstance(from_logits, (bool, np.bool_)):
        raise TypeError(f"from_logits must be True or False, got {from_logits!r}")
    arr = _as_float(probs, "probs", (1, 2))
    if arr.ndim == 2:
        if arr.shape[1] != 2:
            raise ValueError(
                f"binary probs must be (n,) or (n, 2), got shape {arr.shape}; "
                "use ece / classwise_ece for more classes"
            )
        if from_logits:
            p = special.softmax(arr, axis=1)
        else:
            p = _check_probs(arr, "probs", _source_eps(probs))
        return p[:, 1]
    if from_logits:
        return special.expit(arr)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -PROB_ATOL or hi > 1 + PROB_ATOL:
        raise ValueError(
            f"probs must be positive-class probabilities in [0, 1], found values in "
            f"[{lo:.6g}, {hi:.6g}]; pass from_logits=True if these are logits"
        )
    return np.clip(arr, 0.0, 1.0)


def binary_top_label_ece(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    scheme: str = "equal_width",
    *,
    from_logits: bool = False,
) -> float:
    """Top-label ECE of a two-class problem.

    ``probs`` is either ``(n,)`` = P(class 1) or ``(n, 2)`` probabilities
    (``from_logits=True``: a single logit, sigmoid; or two logits, softmax).
    Confidence is ``max(p, 1 - p)`` in [0.5, 1] and a sample counts as correct
    when the predicted class (1 if ``p > 0.5``; a tie at 0.5 predicts class 0)
    equals its label.  Identical to :func:`ece` on the ``(n, 2)`` matrix.
    Differs from :func:`binary_positive_class_ece`.

    >>> round(binary_top_label_ece([0.1, 0.2, 0.7, 0.4], [0, 1, 1, 0], n_bins=10), 4)
    0.4
    """
    pos = _binary_pos(probs, from_logits)
    return ece(np.stack([1.0 - pos, pos], axis=1), labels, n_bins, scheme)


def binary_positive_class_ece(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    scheme: str = "equal_width",
    *,
    from_logits: bool = False,
) -> float:
    """Positive-class ECE of a two-class problem (calibration of P(y = 1)).

    Bins the probability of class 1, ``p`` in [0, 1], and compares each bin's
    mean ``p`` with the fraction of its samples whose label is 1.  Input as for
    :func:`binary_top_label_ece`; binning ``(lo, hi]``, 0 -> first, 1.0 -> last.
    This is what scikit-learn's ``calibration_curve`` plots; it is *not* the
    top-label ECE and the two generally differ.

    >>> round(binary_positive_class_ece([0.1, 0.2, 0.7, 0.4], [0, 1, 1, 0], n_bins=2), 4)
    0.15
    """
    n_bins = _check_n_bins(n_bins)
    _check_scheme(scheme)
    pos = _binary_pos(probs, from_logits)
    y = _labels(labels, pos.shape[0], 2)
    return _bin_stats(pos, y == 1, n_bins, scheme).ece


def brier(probs: Any, labels: Any, *, from_logits: bool = False) -> float:
    """Multiclass Brier score: mean over samples of ``sum_k (p_k - onehot_k)^2``, in [0, 2].

    >>> brier([[1.0, 0.0], [0.5, 0.5]], [0, 1])
    0.25
    """
    p = _probs(probs, from_logits)
    y = _labels(labels, p.shape[0], p.shape[1])
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def nll(probs: Any, labels: Any, *, from_logits: bool = False, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class, in nats.

    With ``from_logits=True`` it is computed exactly from ``log_softmax``.  With
    probabilities the true-class probability is clipped below at ``eps``
    (default 1e-12, so a zero gives ``-log(1e-12) ~= 27.6``; ``eps=0`` gives inf).

    >>> round(nll([[0.5, 0.5], [0.9, 0.1]], [0, 0]), 4)
    0.3993
    >>> round(nll([[0.0, 0.0]], [1], from_logits=True), 4)
    0.6931
    """
    if from_logits:
        z = _as_scores_matrix(probs, "logits")
        y = _labels(labels, z.shape[0], z.shape[1])
        logp = z[np.arange(len(y)), y] - special.logsumexp(z, axis=1)
        return float(-np.mean(logp))
    p = _probs(probs, False)
    y = _labels(labels, p.shape[0], p.shape[1])
    py = p[np.arange(len(y)), y]
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.log(np.maximum(py, eps))))


def calibration_summary(
    logits_or_probs: Any,
    labels: Any,
    *,
    from_logits: bool,
    n_bins: int = 15,
) -> dict[str, float]:
    """All calibration numbers at once, as a flat dict of floats.

    ``from_logits`` is required (no guessing).  Keys: ``n``, ``n_classes``,
    ``n_bins``, ``accuracy``, ``ece`` (top-label, equal width), ``adaptive_ece``
    (top-label, equal mass), ``mce``, ``classwise_ece``, ``brier``, ``nll``;
    for two classes also ``positive_class_ece``.

    >>> s = calibration_summary([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]], [0, 1, 1], from_logits=True)
    >>> s["accuracy"], round(s["nll"], 4)
    (0.6666666666666666, 0.4714)
    """
    n_bins = _check_n_bins(n_bins)
    p = _probs(logits_or_probs, from_logits, "logits_or_probs")
    y = _labels(labels, p.shape[0], p.shape[1])
    rb = reliability_bins(p, y, n_bins, "equal_width")
    out: dict[str, float] = {
        "n": float(len(y)),
        "n_classes": float(p.shape[1]),
        "n_bins": float(n_bins),
        "accuracy": accuracy(p, y),
        "ece": rb.ece,
        "adaptive_ece": ece(p, y, n_bins, "equal_mass"),
        "mce": rb.mce,
        "classwise_ece": float(classwise_ece(p, y, n_bins)),
        "brier": brier(p, y),
        "nll": nll(logits_or_probs, y, from_logits=True) if from_logits else nll(p, y),
    }
    if p.shape[1] == 2:
        out["positive_class_ece"] = binary_positive_class_ece(p, y, n_bins)
    return out
