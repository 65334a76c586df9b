"""Make Moons: the two-dimensional toy problem, seeded train/val/test splits."""

from __future__ import annotations

import numpy as np
import torch

from .common import _pkg
from .containers import DataInfo, DataSplits, Split

__all__ = ["make_moons_splits"]


def make_moons_splits(
    n_train: int = 1000,
    n_val: int = 500,
    n_test: int = 1000,
    noise: float = 0.2,
    seed: int = 0,
    standardize: bool = False,
) -> DataSplits:
    """Two-moons train/val/test splits (``sklearn.datasets.make_moons``), seeded.

    One sample of ``n_train + n_val + n_test`` points is drawn with ``random_state=seed`` (shuffled
    by sklearn) and cut into consecutive train/val/test blocks, so the three splits are disjoint
    draws from the same distribution. ``x`` is float32 [n, 2], ``y`` int64 in {0, 1}.

    ``standardize=False`` (default) keeps the raw coordinates (handy for drawing decision
    boundaries). ``standardize=True`` rescales every split with the *train* split's per-feature
    mean and std, recorded in ``info.mean``/``info.std``.

    >>> splits = make_moons_splits(n_train=100, n_val=20, n_test=20, seed=1)
    >>> tuple(splits.train.x.shape), splits.train.y.dtype
    ((100, 2), torch.int64)
    """
    from sklearn.datasets import make_moons

    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if any(v < 1 for v in sizes.values()):
        raise ValueError(f"every split needs at least one point, got {sizes}")
    total = n_train + n_val + n_test
    x, y = make_moons(n_samples=total, noise=noise, shuffle=True, random_state=seed)
    x = x.astype(np.float32)
    mean = std = None
    if standardize:
        mean_arr = x[:n_train].mean(axis=0)
        std_arr = x[:n_train].std(axis=0)
        std_arr = np.where(std_arr > 0, std_arr, 1.0).astype(np.float32)
        x = (x - mean_arr) / std_arr
        mean = tuple(float(v) for v in mean_arr)
        std = tuple(float(v) for v in std_arr)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    a, b = n_train, n_train + n_val
    info = DataInfo(
        name="Make Moons",
        source=(
            f"sklearn.datasets.make_moons(n_samples={total}, noise={noise}, "
            f"random_state={seed}), split {n_train}/{n_val}/{n_test}"
        ),
        n=dict(sizes),
        classes=("moon 0", "moon 1"),
        fingerprint=_pkg().fingerprint("moons"),
        mean=mean,
        std=std,
        notes="standardised with train statistics" if standardize else "raw coordinates",
    )
    return DataSplits(
        train=Split(xt[:a], yt[:a]), val=Split(xt[a:b], yt[a:b]), test=Split(xt[b:], yt[b:]),
        info=info,
    )  # fmt: skip
