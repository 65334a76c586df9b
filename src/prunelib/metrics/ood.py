"""OOD detection metrics, with the in-distribution set as the **positive class**.

Scores are oriented so that higher = more in-distribution (see
:mod:`prunelib.metrics.scores`) and passed to scikit-learn unchanged. The two
score sets are keyword-only, ``id_scores=`` and ``ood_scores=``: a swapped pair
would silently give ``1 - AUROC``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ._inputs import _as_float

__all__ = ["aupr_in", "aupr_out", "auroc", "fpr_at_95_tpr", "fpr_at_tpr"]


def _scores_by_keyword(fn):
    """Make ``fn(*, id_scores, ood_scores, ...)`` also accept the old positional form
    ``fn(id, ood, ...)``, with a :class:`DeprecationWarning`."""
    names = [p.name for p in inspect.signature(fn).parameters.values()]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if args:
            if len(args) > len(names) or any(n in kwargs for n in names[:len(args)]):
                raise TypeError(f"{fn.__name__}() takes id_scores= and ood_scores= by keyword")
            warnings.warn(f"{fn.__name__}(id, ood) with positional scores is deprecated: pass "
                          "id_scores=... and ood_scores=... by keyword (a swapped pair silently "
                          "gives the complementary value)", DeprecationWarning, stacklevel=2)
            kwargs.update(zip(names, args))
        return fn(**kwargs)

    return wrapper


def _id_ood(id_scores: Any, ood_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float(id_scores, "id_scores", 1)
    b = _as_float(ood_scores, "ood_scores", 1)
    y = np.concatenate([np.ones(len(a), dtype=np.int64), np.zeros(len(b), dtype=np.int64)])
    return y, np.concatenate([a, b])


@_scores_by_keyword
def auroc(*, id_scores: Any, ood_scores: Any) -> float:
    """Area under the ROC curve, in-distribution as positive class, higher score = more ID.

    ``sklearn.metrics.roc_auc_score`` on the raw scores (no sigmoid or other
    transform; only the ranking matters).  1 = perfect separation, 0.5 = chance.

    >>> round(auroc(id_scores=[0.9, 0.8, 0.4], ood_scores=[0.1, 0.5]), 4)
    0.8333
    """
    y, s = _id_ood(id_scores, ood_scores)
    return float(roc_auc_score(y, s))


@_scores_by_keyword
def aupr_in(*, id_scores: Any, ood_scores: Any) -> float:
    """Area under the precision-recall curve with in-distribution as positive class.

    ``sklearn.metrics.average_precision_score(is_id, score)``; chance level is
    the ID fraction.

    >>> round(aupr_in(id_scores=[0.9, 0.8, 0.4], ood_scores=[0.1, 0.5]), 4)
    0.9167
    """
    y, s = _id_ood(id_scores, ood_scores)
    return float(average_precision_score(y, s))


@_scores_by_keyword
def aupr_out(*, id_scores: Any, ood_scores: Any) -> float:
    """Area under the precision-recall curve with OOD as positive class.

    ``average_precision_score(is_ood, -score)`` (lower score = more OOD);
    chance level is the OOD fraction.

    >>> round(aupr_out(id_scores=[0.9, 0.8, 0.4], ood_scores=[0.1, 0.5]), 4)
    0.8333
    """
    y, s = _id_ood(id_scores, ood_scores)
    return float(average_precision_score(1 - y, -s))


@_scores_by_keyword
def fpr_at_tpr(*, id_scores: Any, ood_scores: Any, tpr: float = 0.95) -> float:
    """False-positive rate at the largest threshold keeping at least ``tpr`` of ID samples.

    In-distribution is the positive class and a sample is "accepted as ID" when
    its score is **at or above** the threshold; the result is the fraction of OOD
    samples accepted.  Read off ``sklearn.metrics.roc_curve`` (all thresholds).

    >>> fpr_at_tpr(id_scores=[0.9, 0.8, 0.4], ood_scores=[0.1, 0.5], tpr=0.6)
    0.0
    """
    level = float(tpr)
    if not (0 < level <= 1):
        raise ValueError(f"tpr must be in (0, 1], got {tpr!r}")
    y, s = _id_ood(id_scores, ood_scores)
    fpr, tpr_arr, _ = roc_curve(y, s, drop_intermediate=False)
    i = int(np.argmax(tpr_arr >= level - 1e-12))
    return float(fpr[i])


@_scores_by_keyword
def fpr_at_95_tpr(*, id_scores: Any, ood_scores: Any) -> float:
    """FPR95: fraction of OOD samples scored at or above the threshold that keeps 95% of ID.

    See :func:`fpr_at_tpr`; lower is better.

    >>> fpr_at_95_tpr(id_scores=[0.9, 0.8, 0.4], ood_scores=[0.1, 0.5])
    0.5
    """
    return fpr_at_tpr(id_scores=id_scores, ood_scores=ood_scores, tpr=0.95)
