"""Out-of-distribution image sets for a CIFAR-10 model.

``"cifar100"`` (download only), ``"tinyimagenet"`` (near-OOD, CIFAR-10 classes
removed), ``"mnist"`` (far-OOD) and ``"gaussian"`` (a sanity set), all as float32
NCHW ``[N, 3, 32, 32]`` normalised with the *in-distribution* statistics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..config import OOD_SETS
from .common import DATA_ENV, DataNotFoundError, _pkg, _resolve_root
from .containers import DataInfo, DataSplits, OODSet
from .images import _read_npz_images, _subsample, to_normalized_nchw
from .mnist import MNIST_IMAGES_FILE, MNIST_LABELS_FILE, mnist_to_cifar_format, read_idx
from .tinyimagenet import TINYIMAGENET_FILE, tinyimagenet_keep_mask

__all__ = ["GAUSSIAN_MEAN", "GAUSSIAN_STD", "OOD_SETS", "available_ood_sets", "load_ood"]

#: Mean of the Gaussian sanity set's pixels, i.i.d. N(0.5, 0.25^2) clipped to [0, 1]
#: (N(0, 0.5^2) clipped to [-1, 1] in the [-1, 1] pixel scale).
GAUSSIAN_MEAN = 0.5
#: Standard deviation of the Gaussian sanity set's pixels (see ``GAUSSIAN_MEAN``).
GAUSSIAN_STD = 0.25


def _normalization(
    normalize_with: DataInfo | DataSplits | tuple[Sequence[float], Sequence[float]] | None,
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    if normalize_with is None:
        return None, None
    if isinstance(normalize_with, DataSplits):
        normalize_with = normalize_with.info
    if isinstance(normalize_with, DataInfo):
        if normalize_with.mean is None or normalize_with.std is None:
            raise ValueError(f"{normalize_with.name} info carries no normalisation statistics")
        return tuple(normalize_with.mean), tuple(normalize_with.std)
    mean, std = normalize_with
    mean_t, std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean_t) != 3 or len(std_t) != 3:
        raise ValueError("normalize_with needs 3 channel means and 3 stds")
    return mean_t, std_t


def _require_file(root: Path | None, filename: str, what: str) -> Path:
    if root is None:
        raise DataNotFoundError(
            f"{what} is only available from the offline data folder, and the environment "
            f"variable {DATA_ENV} is not set: set {DATA_ENV} to a folder holding {filename} "
            "(or pass root=...). Online, use the 'cifar100' OOD set (torchvision download)."
        )
    path = root / filename
    if not path.is_file():
        raise DataNotFoundError(
            f"{what}: {path} not found. Point {DATA_ENV} (or root=...) at a folder holding "
            f"{filename}. Online, use the 'cifar100' OOD set (torchvision download)."
        )
    return path


def load_ood(
    name: str,
    root: str | os.PathLike[str] | None = None,
    normalize_with: DataInfo | DataSplits | tuple[Sequence[float], Sequence[float]] | None = None,
    n: int | None = None,
    seed: int = 0,
    channels_last: bool = False,
) -> OODSet:
    """An out-of-distribution image set for a CIFAR-10 model, as float32 NCHW [N,3,32,32].

    ``name``:
      * ``"cifar100"``: CIFAR-100 test (10,000), ``torchvision.datasets.CIFAR100`` download only.
      * ``"tinyimagenet"``: Tiny-ImageNet-200 val at 32 px (``tinyimagenet_val32.npz``) without the
        classes overlapping CIFAR-10 (:data:`.TINYIMAGENET_CIFAR10_OVERLAP`): near-OOD.
      * ``"mnist"``: MNIST test digits (IDX files), bilinear 28 -> 32 px, grey -> 3 channels: far-OOD.
      * ``"gaussian"``: i.i.d. N(0.5, 0.25^2) pixels clipped to [0, 1], seeded; ``n`` defaults
        to 10,000. A sanity set.

    ``normalize_with``: the IN-distribution statistics, i.e. CIFAR-10 ``splits.info`` (or the
    ``DataSplits``, or ``(mean, std)``); None leaves pixels in [0, 1]. ``n``: a seeded random
    subset of that many images (all when None). ``seed`` also seeds the Gaussian noise.

    >>> noise = load_ood("gaussian", n=4, normalize_with=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    >>> tuple(noise.x.shape), noise.info.name
    ((4, 3, 32, 32), 'Gaussian noise')
    """
    key = name.lower().replace("-", "").replace("_", "")
    mean, std = _normalization(normalize_with)
    rootp = _resolve_root(root)
    notes = ""
    caveat = ""
    if key == "cifar100":
        hint = (
            "CIFAR-100 has no offline copy; offline, use the 'tinyimagenet' (near-OOD) and "
            f"'mnist' (far-OOD) sets from the {DATA_ENV} folder instead."
        )
        ds = _pkg()._torchvision_download("CIFAR100", False, "CIFAR-100", hint)
        x_u8 = np.asarray(ds.data, dtype=np.uint8)
        y = np.asarray(ds.targets, dtype=np.int64)
        classes = tuple(ds.classes)
        display = "CIFAR-100 test"
        source = (
            "torchvision.datasets.CIFAR100 test split (https://www.cs.toronto.edu/~kriz/cifar.html)"
            f", cached in {_pkg().cache_dir() / 'torchvision'}"
        )
    elif key == "tinyimagenet":
        path = _require_file(rootp, TINYIMAGENET_FILE, "Tiny-ImageNet")
        d = _read_npz_images(path)
        wnids, names = d["wnids"], d["names"]
        keep_cls = tinyimagenet_keep_mask(wnids, names)
        keep = keep_cls[d["y"]]
        x_u8, y = d["x"][keep], d["y"][keep].astype(np.int64)
        classes = tuple(str(s) for s in names[keep_cls])
        n_removed = int((~keep_cls).sum())
        display = "Tiny-ImageNet-200 val (CIFAR-10 classes removed)"
        source = (
            f"offline copy {path} (Tiny-ImageNet-200 validation split from the public repository "
            "rangeetpan/IMagenet, box-downsampled 64 -> 32 px)"
        )
        notes = (
            f"{n_removed} of {len(wnids)} classes overlapping CIFAR-10 removed "
            f"({int((~keep).sum())} images); {int(keep_cls.sum())} classes kept"
        )
        caveat = (
            "Offline substitute for CIFAR-100: Tiny-ImageNet images are downsampled from 64 px, "
            "and the overlap list is a hand-made judgement (see prunelib.data)."
        )
    elif key == "mnist":
        ipath = _require_file(rootp, MNIST_IMAGES_FILE, "MNIST")
        lpath = _require_file(rootp, MNIST_LABELS_FILE, "MNIST")
        images = read_idx(ipath)
        y = read_idx(lpath).astype(np.int64)
        if images.ndim != 3 or images.shape[0] != y.shape[0]:
            raise ValueError(f"MNIST: images {images.shape} do not match labels {y.shape}")
        x_u8 = mnist_to_cifar_format(images)
        classes = tuple(str(i) for i in range(10))
        display = "MNIST test"
        source = f"offline copy {ipath} and {lpath} (the original MNIST t10k IDX files)"
        notes = "grey copied to 3 channels; bilinear resize 28 -> 32 px"
        caveat = "Offline substitute for CIFAR-100 (far-OOD)."
    elif key in ("gaussian", "noise", "gaussiannoise"):
        n_g = 10_000 if n is None else n
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((n_g, 3, 32, 32), generator=gen).mul_(GAUSSIAN_STD).add_(GAUSSIAN_MEAN)
        x.clamp_(0.0, 1.0)
        if mean is not None and std is not None:
            x.sub_(torch.tensor(mean).view(1, 3, 1, 1)).div_(torch.tensor(std).view(1, 3, 1, 1))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        info = DataInfo(
            name="Gaussian noise",
            source=(
                f"generated: i.i.d. N({GAUSSIAN_MEAN}, {GAUSSIAN_STD}^2) pixels clipped to [0, 1], "
                f"torch.Generator seed {seed}"
            ),
            n={"test": n_g},
            mean=mean,
            std=std,
            notes="a sanity set: any detector should flag it",
        )
        return OODSet(x, torch.full((n_g,), -1, dtype=torch.int64), info)
    else:
        raise ValueError(f"unknown OOD set {name!r}; choose from {OOD_SETS}")

    if n is not None and n > x_u8.shape[0]:
        notes = (notes + "; " if notes else "") + f"asked for {n}, only {x_u8.shape[0]} available"
    elif n is not None:
        notes = (notes + "; " if notes else "") + f"random subset of {n} (seed {seed})"
    idx = _subsample(x_u8.shape[0], n, seed)
    x_u8, y = x_u8[idx], y[idx]
    info = DataInfo(
        name=display,
        source=source,
        caveat=caveat,
        n={"test": int(x_u8.shape[0])},
        classes=classes,
        mean=mean,
        std=std,
        notes=notes,
    )
    x_t = to_normalized_nchw(x_u8, mean, std, channels_last)
    return OODSet(x_t, torch.from_numpy(np.ascontiguousarray(y)), info)


def _cifar100_cached() -> bool:
    folder = _pkg().cache_dir() / "torchvision" / "cifar-100-python"
    return (folder / "test").is_file() and (folder / "meta").is_file()


def available_ood_sets(
    root: str | os.PathLike[str] | None = None, try_download: bool = False
) -> list[str]:
    """OOD set names that :func:`load_ood` can serve now, in order of preference.

    ``"cifar100"`` is listed when it is already in the cache, or, with ``try_download=True``,
    when downloading it succeeds (which also caches it). ``"tinyimagenet"``/``"mnist"`` are listed
    when their files are in ``root`` (default ``$PRUNELIB_DATA``); ``"gaussian"`` always is.

    >>> "gaussian" in available_ood_sets()
    True
    """
    rootp = _resolve_root(root)
    out = []
    if _cifar100_cached():
        out.append("cifar100")
    elif try_download:
        try:
            _pkg()._torchvision_download("CIFAR100", False, "CIFAR-100", "")
            out.append("cifar100")
        except DataNotFoundError:
            pass
    if rootp is not None:
        if (rootp / TINYIMAGENET_FILE).is_file():
            out.append("tinyimagenet")
        if (rootp / MNIST_IMAGES_FILE).is_file() and (rootp / MNIST_LABELS_FILE).is_file():
            out.append("mnist")
    out.append("gaussian")
    return out
