"""OOD scores from logits, oriented so that **higher = more in-distribution**.

Every score takes logits. Rows that look like probabilities (non-negative, summing
to 1) raise ``ValueError`` unless ``from_logits`` says what they are: ``True``
(they are logits after all) or, for the scores that probabilities determine
(:func:`softmax`, :func:`msp`, :func:`neg_entropy`), ``False`` (use them as
probabilities).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from ._inputs import _logits

__all__ = ["max_logit", "msp", "neg_energy", "neg_entropy", "softmax"]


def softmax(logits: Any, *, from_logits: bool | None = None) -> np.ndarray:
    """Row-wise softmax of an ``(n, C)`` logit matrix (float64, numerically stable).

    >>> softmax([[0.0, 0.0], [1.0, 0.0]]).round(4)
    array([[0.5   , 0.5   ],
           [0.7311, 0.2689]])
    """
    return special.softmax(_logits(logits, "softmax", from_logits), axis=1)


def msp(logits: Any, *, from_logits: bool | None = None) -> np.ndarray:
    """Maximum softmax probability ``max_k softmax(z)_k``, in [1/C, 1]. Higher = more ID.

    ``from_logits=False`` takes probabilities (``max_k p_k``).

    >>> msp([[2.0, 0.0], [0.0, 0.0]]).round(4)
    array([0.8808, 0.5   ])
    >>> msp([[0.25, 0.75]], from_logits=False)
    array([0.75])
    """
    return special.softmax(_logits(logits, "msp", from_logits, allow_probs=True),
                           axis=1).max(axis=1)


def neg_entropy(logits: Any, *, from_logits: bool | None = None) -> np.ndarray:
    """Negative entropy ``sum_k p_k log p_k`` (nats), in [-log C, 0]. Higher = more ID.

    ``from_logits=False`` takes probabilities.

    >>> neg_entropy([[0.0, 0.0], [0.0, 10.0]]).round(4).tolist()
    [-0.6931, -0.0005]
    """
    z = _logits(logits, "neg_entropy", from_logits, allow_probs=True)
    logp = special.log_softmax(z, axis=1)
    return np.sum(np.exp(logp) * logp, axis=1)


def neg_energy(logits: Any, temperature: float = 1.0, *,
               from_logits: bool | None = None) -> np.ndarray:
    """Negative energy ``T * logsumexp(z / T)`` (Liu et al., 2020), unbounded. Higher = more ID.

    Logits only (probabilities do not determine it; ``from_logits=True`` skips the
    check that the rows do not look like probabilities).

    >>> neg_energy([[0.0, 0.0]]).round(4)
    array([0.6931])
    """
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    z = _logits(logits, "neg_energy", from_logits)
    return t * special.logsumexp(z / t, axis=1)


def max_logit(logits: Any, *, from_logits: bool | None = None) -> np.ndarray:
    """Maximum logit ``max_k z_k``, unbounded. Higher = more ID.

    Logits only, as :func:`neg_energy`.

    >>> max_logit([[2.0, -1.0], [0.5, 3.0]])
    array([2., 3.])
    """
    return _logits(logits, "max_logit", from_logits).max(axis=1)
