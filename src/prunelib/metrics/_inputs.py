"""Input handling shared by the metrics: conversion, validation, and the logit guard.

Arrays may be NumPy arrays, torch tensors (any device, any float dtype) or nested
lists; they are copied to float64 NumPy arrays. ``probs`` are checked to be
probabilities (:data:`PROB_ATOL`); functions that take logits check that the rows
do not look like probabilities (non-negative, summing to 1), the mistake of passing
``softmax`` output where logits belong.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

__all__ = ["PROB_ATOL"]

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
# logits, never probabilities
# --------------------------------------------------------------------------- #
def _looks_like_probs(z: np.ndarray, src_eps: float = 0.0) -> bool:
    """Every row non-negative and summing to 1 (within :data:`PROB_ATOL`)."""
    atol = max(PROB_ATOL, z.shape[1] * src_eps)
    return bool(z.min() >= 0 and np.all(np.abs(z.sum(axis=1) - 1.0) <= atol))


def _probs_hint(fn: str, allow_probs: bool) -> str:
    return (f"{fn} expects logits (the network's outputs before softmax), but every row is "
            "non-negative and sums to 1: these look like probabilities, and softmax would be "
            "applied to them a second time. Pass the logits"
            + (", or from_logits=False to use these probabilities as they are" if allow_probs
               else "") + "; if these really are logits, pass from_logits=True")


def _check_from_logits(from_logits: Any) -> None:
    if from_logits is not None and not isinstance(from_logits, (bool, np.bool_)):
        raise TypeError(f"from_logits must be None, True or False, got {from_logits!r}")


def _logits(x: Any, fn: str, from_logits: bool | None = None, *,
            allow_probs: bool = False) -> np.ndarray:
    """The ``(n, C)`` logit matrix for the logit-only function ``fn``.

    ``from_logits`` None (default): logits expected, and rows that look like
    probabilities raise; True: logits, unchecked; False: probabilities (checked), turned
    into logits ``log p`` (which softmax maps back to ``p``) where ``allow_probs``.
    """
    _check_from_logits(from_logits)
    if from_logits is False or from_logits is np.False_:
        if not allow_probs:
            raise ValueError(f"{fn} takes logits, not probabilities (probabilities do not "
                             "determine it); pass the network's outputs before softmax")
        p = _check_probs(_as_scores_matrix(x, "probs"), "probs", _source_eps(x))
        return np.log(np.maximum(p, np.finfo(np.float64).tiny))
    z = _as_scores_matrix(x)
    if from_logits is None and _looks_like_probs(z, _source_eps(x)):
        raise ValueError(_probs_hint(fn, allow_probs))
    return z
