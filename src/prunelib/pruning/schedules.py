"""Iterative schedules: per-round rates that end exactly at a one-shot target.

* for masks: :func:`iterative_keep_fractions` (fraction kept after each round) and
  :func:`iterative_round_ratios` (the constant per-round rate among survivors);
* for structured removal: :func:`structured_round_ratios` (cumulative ratios for
  :func:`prunelib.pruning.structured.prune_structured_to`, the last one the target, so
  the last round keeps exactly the one-shot count ``n - floor(target * n)``;
  intermediate rounds round down) and :func:`structured_keep_counts` (the resulting
  unit counts).
"""

from __future__ import annotations

from ._common import _check_ratio, _check_rounds, n_removed

__all__ = [
    "iterative_keep_fractions",
    "iterative_round_ratios",
    "structured_keep_counts",
    "structured_round_ratios",
]


def iterative_keep_fractions(target: float, rounds: int) -> list[float]:
    """Fraction of weights kept after each of ``rounds`` rounds at a constant rate.

    ``(1 - target) ** (r / rounds)`` for ``r = 1..rounds``; the last is exactly
    ``1 - target``. The per-round rate (fraction of the survivors removed each round)
    is ``1 - (1 - target) ** (1 / rounds)``.

    >>> [round(f, 4) for f in iterative_keep_fractions(0.75, 2)]
    [0.5, 0.25]
    """
    target, rounds = _check_ratio(target, "target"), _check_rounds(rounds)
    return [(1.0 - target) ** (r / rounds) if r < rounds else 1.0 - target
            for r in range(1, rounds + 1)]


def iterative_round_ratios(target: float, rounds: int) -> list[float]:
    """Ratio of the still-unmasked weights to mask in each round (for ``magnitude_masks``).

    Round ``r`` masks ``1 - keep[r] / keep[r-1]`` of the survivors, so the product of
    the per-round keep fractions is exactly ``1 - target`` (up to integer counts: use
    ``cumulative=True`` with ``1 - iterative_keep_fractions(...)[r]`` for exact counts).

    >>> [round(r, 4) for r in iterative_round_ratios(0.75, 2)]
    [0.5, 0.5]
    """
    keep = [1.0] + iterative_keep_fractions(target, rounds)
    return [1.0 - keep[r] / keep[r - 1] for r in range(1, len(keep))]


def structured_round_ratios(target: float, rounds: int) -> list[float]:
    """Cumulative removal ratios ``1 - (1 - target) ** (r / rounds)`` for
    :func:`prunelib.pruning.structured.prune_structured_to`; the last is exactly
    ``target``, so after the last round each layer keeps exactly the one-shot count
    ``n - floor(target * n)``.

    >>> [round(r, 4) for r in structured_round_ratios(0.75, 2)]
    [0.5, 0.75]
    """
    return [1.0 - k if r < rounds else _check_ratio(target, "target")
            for r, k in enumerate(iterative_keep_fractions(target, rounds), 1)]


def structured_keep_counts(n: int, target: float, rounds: int) -> list[int]:
    """Units kept by a layer of ``n`` after each round of :func:`structured_round_ratios`.

    >>> structured_keep_counts(10, 0.8, 3)
    [6, 4, 2]
    """
    return [n - n_removed(r, n) for r in structured_round_ratios(target, rounds)]
