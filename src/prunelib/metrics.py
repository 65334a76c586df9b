"""Uncertainty metrics: calibration, temperature scaling, OOD detection, intervals.

Conventions (shared by every function in this module)
-----------------------------------------------------
Inputs
    Arrays may be NumPy arrays, torch tensors (any device, any float dtype) or
    nested lists; they are copied to float64 NumPy arrays.  ``probs`` is an
    ``(n_samples, n_classes)`` matrix of probabilities: entries in [0, 1], rows
    summing to 1 within :data:`PROB_ATOL` (wider for float16/bfloat16 input).
    Functions that also take logits say so and require an explicit
    ``from_logits=True``; nothing is ever guessed from the value range (no
    hidden softmax or sigmoid).  ``labels`` are
    integers in ``[0, n_classes)``.  Bad input raises :class:`ValueError` whose
    message says what is wrong.

Calibration
    ``ece``/``mce``/``reliability_bins`` bin the **top-label** confidence
    ``max_k p_k`` (never the probability of class 0) against top-label
    correctness ``argmax_k p_k == label`` (ties go to the lowest class index,
    like ``numpy.argmax``).  Bins are half-open ``(lo, hi]``; a confidence of
    exactly 0 goes to the first bin and exactly 1.0 to the last, so no sample is
    ever dropped.  ``scheme="equal_width"`` uses edges
    ``numpy.linspace(0, 1, n_bins + 1)``; ``scheme="equal_mass"`` (adaptive
    ECE) uses the outer edges 0 and 1 and, inside, the ``k / n_bins`` quantiles
    of the binned confidences (``numpy.quantile``, linear interpolation), so
    each bin holds about ``n / n_bins`` samples.  Empty bins contribute
    nothing.  All calibration errors are fractions in [0, 1] (not percent).

OOD detection
    Scores are oriented so that **higher = more in-distribution**.  The
    in-distribution set is the **positive class** (label 1) of every
    detection metric; scores are passed to scikit-learn unchanged.

Intervals
    :func:`mean_ci` reduces over axis 0 (one row per seed) and returns the
    mean (sum divided by the number of seeds k) with a two-sided Student-t
    (default) or seeded percentile-bootstrap interval.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import optimize, special
from scipy import stats as _stats
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

__all__ = [
    "PROB_ATOL",
    "MeanCI",
    "ReliabilityBins",
    "accuracy",
    "apply_temperature",
    "aupr_in",
    "aupr_out",
    "auroc",
    "binary_positive_class_ece",
    "binary_top_label_ece",
    "brier",
    "calibration_summary",
    "classwise_ece",
    "ece",
    "fit_temperature",
    "fpr_at_95_tpr",
    "fpr_at_tpr",
    "max_logit",
    "mce",
    "mean_ci",
    "msp",
    "neg_energy",
    "neg_entropy",
    "nll",
    "reliability_bins",
    "softmax",
]

#: Tolerance on ``|row sum - 1|`` (and on entries straying outside [0, 1])
#: when an array is checked to be a matrix of probabilities.  For low-precision
#: input (float16, bfloat16) it widens to ``n_classes * eps`` of that dtype.
PROB_ATOL = 1e-4

_SCHEMES = ("equal_width", "equal_mass")


# --------------------------------------------------------------------------- #
# input handling
# --------------------------------------------------------------------------- #
def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Copy a NumPy array / torch tensor / sequence into a NumPy array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        t = x.detach().cpu()
        if t.is_floating_point():
            t = t.double()  # bfloat16 has no numpy counterpart
        x = t.numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object:
        raise ValueError(f"{name} must be a numeric array, got an object array")
    return arr


def _as_float(x: Any, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    arr = _to_numpy(x, name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if arr.size == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
    return arr


def _as_scores_matrix(x: Any, name: str = "logits") -> np.ndarray:
    arr = _as_float(x, name, 2)
    if arr.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 classes (columns), got shape {arr.shape}")
    return arr


def _source_eps(x: Any) -> float:
    """Machine epsilon of the caller's float dtype (0 for non-float input)."""
    if hasattr(x, "detach") and hasattr(x, "is_floating_point"):
        if x.is_floating_point():
            import torch

            return float(torch.finfo(x.dtype).eps)
        return 0.0
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.issubdtype(dtype, np.floating):
        return float(np.finfo(dtype).eps)
    return 0.0


def _check_probs(p: np.ndarray, name: str = "probs", src_eps: float = 0.0) -> np.ndarray:
    atol = max(PROB_ATOL, p.shape[1] * src_eps)
    lo, hi = float(p.min()), float(p.max())
    if lo < -atol or hi > 1 + atol:
        raise ValueError(
            f"{name} must be probabilities in [0, 1], found values in [{lo:.6g}, {hi:.6g}]; "
            "pass from_logits=True if these are logits"
        )
    sums = p.sum(axis=1)
    dev = np.abs(sums - 1.0)
    if np.any(dev > atol):
        i = int(np.argmax(dev))
        raise ValueError(
            f"{name} rows must sum to 1 (within {atol:g}); row {i} sums to {sums[i]:.6g} "
            f"({int(np.sum(dev > atol))} bad row(s)); pass from_logits=True if these are logits"
        )
    return np.clip(p, 0.0, 1.0)


def softmax(logits: Any) -> np.ndarray:
    """Row-wise softmax of an ``(n, C)`` logit matrix (float64, numerically stable)."""
    z = _as_scores_matrix(logits)
    return special.softmax(z, axis=1)


def _probs(x: Any, from_logits: bool, name: str = "probs") -> np.ndarray:
    if not isinstance(from_logits, (bool, np.bool_)):
        raise TypeError(f"from_logits must be True or False, got {from_logits!r}")
    arr = _as_scores_matrix(x, "logits" if from_logits else name)
    if from_logits:
        return special.softmax(arr, axis=1)
    return _check_probs(arr, name, _source_eps(x))


def _labels(y: Any, n: int, n_classes: int, name: str = "labels") -> np.ndarray:
    arr = _to_numpy(y, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(
            f"shape mismatch: {n} sample(s) of predictions but {arr.shape[0]} label(s)"
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains non-finite values (NaN or inf)")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be integer class indices, got non-integer floats")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"{name} must lie in [0, {n_classes - 1}] for {n_classes} classes; "
            f"found min={int(arr.min())}, max={int(arr.max())}"
        )
    return arr


def _check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, (bool, np.bool_)) or not isinstance(n_bins, (int, np.integer)):
        raise TypeError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins}")
    return int(n_bins)


def _check_scheme(scheme: str) -> str:
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
    return scheme


# --------------------------------------------------------------------------- #
# binning
# --------------------------------------------------------------------------- #
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

    Attributes
    ----------
    edges : (n_bins + 1,) bin edges; bin ``i`` is ``(edges[i], edges[i+1]]``
        (the first bin also holds confidence 0).
    counts : (n_bins,) number of samples per bin (int).
    mean_confidence : (n_bins,) mean binned confidence, NaN for empty bins.
    accuracy : (n_bins,) fraction correct (or fraction positive, for the
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


# --------------------------------------------------------------------------- #
# calibration
# --------------------------------------------------------------------------- #
def accuracy(probs_or_logits: Any, labels: Any) -> float:
    """Top-1 accuracy, a fraction in [0, 1].

    Accepts probabilities or logits alike (the argmax is the same); ties go
    to the lowest class index.
    """
    s = _as_scores_matrix(probs_or_logits, "probs_or_logits")
    y = _labels(labels, s.shape[0], s.shape[1])
    return float(np.mean(np.argmax(s, axis=1) == y))


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
    probs : (n, C) probabilities (or logits with ``from_logits=True``).
    labels : (n,) integer labels in ``[0, C)``.
    n_bins : number of bins (>= 1).
    scheme : ``"equal_width"`` (edges ``linspace(0, 1, n_bins + 1)``) or
        ``"equal_mass"`` (quantile edges, about ``n / n_bins`` samples per bin).

    Bins are ``(lo, hi]``; confidence 0 goes to the first bin, 1.0 to the
    last.  Empty bins have count 0 and NaN confidence/accuracy.
    """
    n_bins = _check_n_bins(n_bins)
    _check_scheme(scheme)
    p = _probs(probs, from_logits)
    y = _labels(labels, p.shape[0], p.shape[1])
    conf, hit = _top_label(p, y)
    return _bin_stats(conf, hit, n_bins, scheme)


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
    """Class-wise ECE (Kull et al., 2019): mean over classes k of the binned ECE of ``p_k``.

    For class ``k`` the confidence is ``p[:, k]`` and the "accuracy" of a bin is
    the fraction of its samples with label ``k``.  Binning as in :func:`ece`
    (``(lo, hi]``, 0 -> first bin, 1.0 -> last; equal-mass edges per class).
    Returns the mean over classes, or the ``(C,)`` per-class values with
    ``per_class=True``.
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
    """
    n_bins = _check_n_bins(n_bins)
    _check_scheme(scheme)
    pos = _binary_pos(probs, from_logits)
    y = _labels(labels, pos.shape[0], 2)
    return _bin_stats(pos, y == 1, n_bins, scheme).ece


def brier(probs: Any, labels: Any, *, from_logits: bool = False) -> float:
    """Multiclass Brier score: mean over samples of ``sum_k (p_k - onehot_k)^2``, in [0, 2]."""
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


# --------------------------------------------------------------------------- #
# temperature scaling
# --------------------------------------------------------------------------- #
def fit_temperature(
    logits: Any,
    labels: Any,
    *,
    bounds: tuple[float, float] = (1e-2, 1e2),
    xatol: float = 1e-6,
) -> float:
    """Fit a temperature T > 0 minimising the NLL of ``softmax(logits / T)``.

    Fit it on a **validation** split, never on the test split; then report on
    test logits with :func:`apply_temperature` (``logits / T``).

    The NLL is convex in ``1 / T``, hence unimodal in ``log T``; it is minimised
    by bounded Brent search (``scipy.optimize.minimize_scalar``) over
    ``log T`` within ``bounds`` (absolute tolerance ``xatol`` on ``log T``).  A
    :class:`RuntimeWarning` is emitted when the optimum sits on a bound (e.g.
    perfectly separated training logits, where NLL keeps falling as T -> 0).
    """
    z = _as_scores_matrix(logits)
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


def apply_temperature(logits: Any, temperature: float) -> Any:
    """Return ``logits / temperature`` (same type as the input: tensor in, tensor out).

    Use the temperature fitted on the validation split by :func:`fit_temperature`.
    """
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if hasattr(logits, "detach"):
        return logits / t
    return _as_scores_matrix(logits) / t


# --------------------------------------------------------------------------- #
# OOD scores (higher = more in-distribution)
# --------------------------------------------------------------------------- #
def msp(logits: Any) -> np.ndarray:
    """Maximum softmax probability ``max_k softmax(z)_k``, in [1/C, 1]. Higher = more ID."""
    return softmax(logits).max(axis=1)


def neg_entropy(logits: Any) -> np.ndarray:
    """Negative entropy ``sum_k p_k log p_k`` (nats), in [-log C, 0]. Higher = more ID."""
    z = _as_scores_matrix(logits)
    logp = special.log_softmax(z, axis=1)
    return np.sum(np.exp(logp) * logp, axis=1)


def neg_energy(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Negative energy ``T * logsumexp(z / T)`` (Liu et al., 2020), unbounded. Higher = more ID."""
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    z = _as_scores_matrix(logits)
    return t * special.logsumexp(z / t, axis=1)


def max_logit(logits: Any) -> np.ndarray:
    """Maximum logit ``max_k z_k``, unbounded. Higher = more ID."""
    return _as_scores_matrix(logits).max(axis=1)


# --------------------------------------------------------------------------- #
# OOD detection metrics (in-distribution = positive class)
# --------------------------------------------------------------------------- #
def _id_ood(id_scores: Any, ood_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float(id_scores, "id_scores", 1)
    b = _as_float(ood_scores, "ood_scores", 1)
    y = np.concatenate([np.ones(len(a), dtype=np.int64), np.zeros(len(b), dtype=np.int64)])
    return y, np.concatenate([a, b])


def auroc(id_scores: Any, ood_scores: Any) -> float:
    """Area under the ROC curve, in-distribution as positive class, higher score = more ID.

    ``sklearn.metrics.roc_auc_score`` on the raw scores (no sigmoid or other
    transform; only the ranking matters).  1 = perfect separation, 0.5 = chance.
    """
    y, s = _id_ood(id_scores, ood_scores)
    return float(roc_auc_score(y, s))


def aupr_in(id_scores: Any, ood_scores: Any) -> float:
    """Area under the precision-recall curve with in-distribution as positive class.

    ``sklearn.metrics.average_precision_score(is_id, score)``; chance level is
    the ID fraction.
    """
    y, s = _id_ood(id_scores, ood_scores)
    return float(average_precision_score(y, s))


def aupr_out(id_scores: Any, ood_scores: Any) -> float:
    """Area under the precision-recall curve with OOD as positive class.

    ``average_precision_score(is_ood, -score)`` (lower score = more OOD);
    chance level is the OOD fraction.
    """
    y, s = _id_ood(id_scores, ood_scores)
    return float(average_precision_score(1 - y, -s))


def fpr_at_tpr(id_scores: Any, ood_scores: Any, tpr: float = 0.95) -> float:
    """False-positive rate at the largest threshold keeping at least ``tpr`` of ID samples.

    In-distribution is the positive class and a sample is "accepted as ID" when
    its score is **at or above** the threshold; the result is the fraction of OOD
    samples accepted.  Read off ``sklearn.metrics.roc_curve`` (all thresholds).
    """
    level = float(tpr)
    if not (0 < level <= 1):
        raise ValueError(f"tpr must be in (0, 1], got {tpr!r}")
    y, s = _id_ood(id_scores, ood_scores)
    fpr, tpr_arr, _ = roc_curve(y, s, drop_intermediate=False)
    i = int(np.argmax(tpr_arr >= level - 1e-12))
    return float(fpr[i])


def fpr_at_95_tpr(id_scores: Any, ood_scores: Any) -> float:
    """FPR95: fraction of OOD samples scored at or above the threshold that keeps 95% of ID.

    See :func:`fpr_at_tpr`; lower is better.
    """
    return fpr_at_tpr(id_scores, ood_scores, 0.95)


# --------------------------------------------------------------------------- #
# intervals over seeds
# --------------------------------------------------------------------------- #
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
    values : (k,) per-seed values, or (k, m) per-seed curves (one row per seed);
        reduced over axis 0.  The mean is the sum over the k seeds divided by k.
    confidence : interval coverage in (0, 1), default 0.95.
    method : ``"t"`` -- Student-t interval ``mean +/- t_{(1+c)/2, k-1} * s / sqrt(k)``
        (``scipy.stats.t``, ``s`` with ddof=1); ``"bootstrap"`` -- percentile
        bootstrap of the mean with ``n_boot`` resamples from
        ``numpy.random.default_rng(seed)`` (deterministic for a given seed).

    Returns
    -------
    MeanCI(mean, lower, upper) -- floats for 1-D input, ``(m,)`` arrays for 2-D.
    With a single seed (k = 1) the bounds are NaN: there is no spread to report.
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
