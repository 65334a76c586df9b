"""Data layer: Make Moons, CIFAR-10 and out-of-distribution (OOD) sets as in-memory tensors.

One idea per module; every name is importable from ``prunelib.data`` itself.

* :mod:`prunelib.data.common` -- where the data live (``$PRUNELIB_DATA``, the
  download cache), ``DataNotFoundError``, torchvision downloads;
* :mod:`prunelib.data.containers` -- what loaders return (``Split``,
  ``DataSplits``, ``OODSet``, ``DataInfo`` with the provenance the book prints);
* :mod:`prunelib.data.images` -- uint8 images to normalised float32 NCHW tensors;
* :mod:`prunelib.data.moons` -- Make Moons splits (``make_moons_splits``);
* :mod:`prunelib.data.cifar` -- CIFAR-10 (``load_cifar10``);
* :mod:`prunelib.data.ood` -- OOD sets (``load_ood``, ``available_ood_sets``);
* :mod:`prunelib.data.tinyimagenet` -- the Tiny-ImageNet classes that overlap
  CIFAR-10, removed from the near-OOD set;
* :mod:`prunelib.data.mnist` -- MNIST's IDX files and the resize to 32 px;
* :mod:`prunelib.data.fingerprints` -- which data a run was made from.

Where the data come from
------------------------
* **Offline copy** (preferred when present): the folder named by the environment variable
  ``PRUNELIB_DATA`` (or the ``root=`` argument) holding ``cifar10_train.npz``,
  ``cifar10_test.npz``, ``tinyimagenet_val32.npz`` and the MNIST test IDX files
  (``mnist_t10k-images-idx3-ubyte.gz``, ``mnist_t10k-labels-idx1-ubyte.gz``).
* **Download** (online users, e.g. Colab): ``torchvision.datasets.CIFAR10/CIFAR100`` into a cache
  folder, ``$PRUNELIB_CACHE`` or ``~/.cache/prunelib``.

Every loader returns a ``DataInfo`` naming the data set it actually used and its provenance,
so that the book can print it; offline substitutes carry their caveat (e.g. the JPEG-recompressed
CIFAR-10 copy).

Tensors are plain in-memory tensors, not per-sample ``Dataset`` objects: images are float32 NCHW,
labels int64. Image normalisation is per channel, ``(x / 255 - mean) / std``, with ``mean``/``std``
computed on the *training* split only (after the validation hold-out); OOD sets are normalised
with the in-distribution (CIFAR-10 train) statistics, never their own.

>>> from prunelib.data import make_moons_splits
>>> (X, y), val, test = make_moons_splits(n_train=200, seed=0)
>>> tuple(X.shape)
(200, 2)
"""

from ..config import OOD_SETS
from .cifar import (
    CIFAR10_CLASSES,
    CIFAR10_JPEG_CAVEAT,
    CIFAR10_TEST_FILE,
    CIFAR10_TRAIN_FILE,
    _cifar10_arrays,
    _offline_hint_cifar10,
    load_cifar10,
)
from .common import (
    _FINGERPRINTS,
    CACHE_ENV,
    DATA_ENV,
    DOWNLOAD_TIMEOUT_S,
    DataNotFoundError,
    _files_stamp,
    _fingerprint_cached,
    _hash_arrays,
    _resolve_root,
    _socket_timeout,
    _torchvision_download,
    cache_dir,
    data_root,
)
from .containers import DataInfo, DataSplits, OODSet, Split
from .fingerprints import _OOD_FILES, fingerprint
from .images import _read_npz_images, _subsample, channel_stats, to_normalized_nchw
from .mnist import MNIST_IMAGES_FILE, MNIST_LABELS_FILE, mnist_to_cifar_format, read_idx
from .moons import make_moons_splits
from .ood import (
    GAUSSIAN_MEAN,
    GAUSSIAN_STD,
    _cifar100_cached,
    _normalization,
    _require_file,
    available_ood_sets,
    load_ood,
)
from .tinyimagenet import (
    _OVERLAP_LEMMAS,
    _OVERLAP_WNIDS,
    TINYIMAGENET_CIFAR10_OVERLAP,
    TINYIMAGENET_FILE,
    _first_lemma,
    tinyimagenet_keep_mask,
)

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

# names that stay reachable as prunelib.data.<name>, as they were when it was one module
_REEXPORTED = (CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILE, DOWNLOAD_TIMEOUT_S, GAUSSIAN_MEAN, GAUSSIAN_STD,
               MNIST_IMAGES_FILE, MNIST_LABELS_FILE, TINYIMAGENET_FILE, _torchvision_download,
               _FINGERPRINTS, _OOD_FILES, _OVERLAP_LEMMAS, _OVERLAP_WNIDS, _cifar100_cached,
            _cifar10_arrays, _files_stamp, _fingerprint_cached, _first_lemma, _hash_arrays,
            _normalization, _offline_hint_cifar10, _read_npz_images, _require_file,
            _resolve_root, _socket_timeout, _subsample)
