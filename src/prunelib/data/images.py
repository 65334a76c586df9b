"""Image helpers: uint8 NHWC arrays to normalised float32 NCHW tensors.

Normalisation is per channel, ``(x / 255 - mean) / std``, with ``mean``/``std``
computed on the *training* split only (after the validation hold-out); OOD sets are
normalised with the in-distribution statistics, never their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["channel_stats", "to_normalized_nchw"]


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of uint8 NHWC images, in the [0, 1] scale.

    Uses a 256-bin histogram per channel, so it needs no float copy of the images.

    >>> import numpy as np
    >>> x = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    >>> x[1] = 255
    >>> channel_stats(x)
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    """
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4:
        raise ValueError(f"expected uint8 NHWC images, got {x.dtype} with shape {x.shape}")
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[-1]):
        counts = np.bincount(x[..., c].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float((counts * levels).sum() / total)
        var = float((counts * (levels - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(var**0.5)
    return tuple(means), tuple(stds)


def to_normalized_nchw(
    x: np.ndarray | Tensor,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    channels_last: bool = False,
) -> Tensor:
    """uint8 NHWC images -> float32 NCHW in [0, 1], then ``(x - mean) / std`` per channel if given.

    ``channels_last=True`` returns the same NCHW-shaped tensor in ``torch.channels_last`` memory
    format (often faster for convolutions on CPU).

    >>> import numpy as np
    >>> x = np.full((1, 2, 2, 3), 255, dtype=np.uint8)
    >>> t = to_normalized_nchw(x, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> tuple(t.shape), t.unique().tolist()
    ((1, 3, 2, 2), [1.0])
    """
    u8 = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    if u8.dtype != torch.uint8 or u8.ndim != 4:
        raise ValueError(f"expected uint8 NHWC images, got {u8.dtype} with shape {tuple(u8.shape)}")
    n, h, w, c = u8.shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((n, c, h, w), dtype=torch.float32, memory_format=fmt)
    out.copy_(u8.permute(0, 3, 1, 2))
    out.div_(255.0)
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1)
        out.sub_(m).div_(s)
    return out


def _subsample(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of size ``n`` (all, in order, when n is None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def _read_npz_images(path: Path, label_key: str = "y") -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    x = out["x"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{path}: expected 'x' uint8 [N,H,W,3], got {x.dtype} {x.shape}")
    if out[label_key].shape[0] != x.shape[0]:
        raise ValueError(f"{path}: {x.shape[0]} images but {out[label_key].shape[0]} labels")
    return out
