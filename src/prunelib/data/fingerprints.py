"""Fingerprints: which data a run was made from.

A run stores the fingerprint of its data in its configuration's ``data_id``, so a
result computed from other data (a different or broken copy) is never mistaken for
it.
"""

from __future__ import annotations

import os

from ..config import OOD_SETS
from .cifar import CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILE
from .common import _files_stamp, _fingerprint_cached, _hash_arrays, _pkg, _resolve_root
from .mnist import MNIST_IMAGES_FILE, MNIST_LABELS_FILE
from .tinyimagenet import TINYIMAGENET_FILE

__all__ = ["fingerprint"]

_OOD_FILES = {"tinyimagenet": (TINYIMAGENET_FILE,), "mnist": (MNIST_IMAGES_FILE, MNIST_LABELS_FILE),
              "cifar100": (), "gaussian": ()}


def fingerprint(dataset: str, root: str | os.PathLike[str] | None = None) -> str:
    """The identity of a data set's source content, ``"<name>:<16 hex digits>"``.

    A SHA-256 over the raw arrays actually read (before any split or normalisation): the
    offline files, or torchvision's download, so a broken or different copy gets another
    fingerprint. ``dataset``: ``"cifar10"``, ``"moons"`` (generated: the fingerprint of a
    reference sample of ``sklearn.datasets.make_moons``, which changes if the generator
    does) or an OOD set name (``OOD_SETS``; ``"gaussian"`` hashes a reference sample of
    its generator). Computed once per process and source (files are re-hashed when their
    size or modification time changes). Raises :class:`.DataNotFoundError` as the loaders do.

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
        return _fingerprint_cached(key, lambda: _hash_arrays(
            "cifar10", *_pkg()._cifar10_arrays(rootp)[:4]))
    name = dataset.lower()
    if name not in _OOD_FILES:
        raise ValueError(f"unknown data set {dataset!r}; allowed: 'moons', 'cifar10', "
                         + ", ".join(map(repr, OOD_SETS)))
    key = ("ood", name, rootp, _files_stamp(rootp, *_OOD_FILES[name]))

    def compute() -> str:
        ood = _pkg().load_ood(name, root=rootp, n=64 if name == "gaussian" else None, seed=0)
        return _hash_arrays(name, ood.x.numpy(), ood.y.numpy())

    return _fingerprint_cached(key, compute)
