"""Uncertainty metrics: calibration, temperature scaling, OOD detection, intervals.

One idea per module; every name is importable from ``prunelib.metrics`` itself.

* :mod:`prunelib.metrics.calibration` -- top-label ECE, MCE, class-wise ECE, the two
  binary ECEs, Brier score, NLL, accuracy and ``calibration_summary``;
* :mod:`prunelib.metrics.binning` -- the reliability diagram's bins
  (``reliability_bins``);
* :mod:`prunelib.metrics.temperature` -- temperature scaling
  (``fit_temperature``, ``apply_temperature``);
* :mod:`prunelib.metrics.scores` -- OOD scores from logits (``msp``,
  ``neg_entropy``, ``neg_energy``, ``max_logit``), higher = more in-distribution;
* :mod:`prunelib.metrics.ood` -- detection metrics (``auroc``, ``aupr_in``,
  ``aupr_out``, ``fpr_at_95_tpr``) with keyword-only ``id_scores=``/``ood_scores=``;
* :mod:`prunelib.metrics.intervals` -- means over seeds with intervals (``mean_ci``).

Conventions shared by every function
------------------------------------
Inputs
    Arrays may be NumPy arrays, torch tensors (any device, any float dtype) or
    nested lists; they are copied to float64 NumPy arrays.  ``probs`` is an
    ``(n_samples, n_classes)`` matrix of probabilities: entries in [0, 1], rows
    summing to 1 within ``PROB_ATOL`` (wider for float16/bfloat16 input).
    Calibration metrics take probabilities, or logits with an explicit
    ``from_logits=True``; functions that take logits (temperature scaling, OOD
    scores) raise when every row looks like probabilities, unless ``from_logits``
    says otherwise. Nothing is guessed from the value range (no hidden softmax or
    sigmoid). ``labels`` are integers in ``[0, n_classes)``.  Bad input raises
    :class:`ValueError` whose message says what is wrong.

Calibration
    Top-label confidence against top-label correctness, bins ``(lo, hi]`` with 0
    in the first and 1.0 in the last bin; errors are fractions in [0, 1].

OOD detection
    Scores are oriented so that **higher = more in-distribution**; the
    in-distribution set is the positive class of every detection metric.

>>> import torch
>>> from prunelib import metrics as M
>>> logits = torch.tensor([[2.0, 0.0], [0.5, 1.5], [1.0, 0.0]])
>>> labels = torch.tensor([0, 1, 1])
>>> T = M.fit_temperature(logits, labels)
>>> round(M.ece(M.apply_temperature(logits, T), labels, from_logits=True), 2) <= round(
...     M.ece(logits, labels, from_logits=True), 2)
True
"""

from ._inputs import (
    _SCHEMES,
    PROB_ATOL,
    _as_float,
    _as_scores_matrix,
    _check_n_bins,
    _check_probs,
    _check_scheme,
    _labels,
    _probs,
    _source_eps,
    _to_numpy,
)
from .binning import ReliabilityBins, _assign, _bin_stats, _edges, _top_label, reliability_bins
from .calibration import (
    _binary_pos,
    accuracy,
    binary_positive_class_ece,
    binary_top_label_ece,
    brier,
    calibration_summary,
    classwise_ece,
    ece,
    mce,
    nll,
)
from .intervals import MeanCI, mean_ci
from .ood import _id_ood, aupr_in, aupr_out, auroc, fpr_at_95_tpr, fpr_at_tpr
from .scores import max_logit, msp, neg_energy, neg_entropy, softmax
from .temperature import apply_temperature, fit_temperature

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

# private helpers other modules of prunelib import from here
_REEXPORTED = (_SCHEMES, _as_float, _as_scores_matrix, _check_n_bins, _check_probs, _check_scheme,
            _labels, _probs, _source_eps, _to_numpy, _assign, _bin_stats, _edges, _top_label,
            _binary_pos, _id_ood)
