"""Where the data live, the errors when they do not, and torchvision downloads.

* **Offline copy** (preferred when present): the folder named by the environment
  variable ``PRUNELIB_DATA`` (:data:`DATA_ENV`, or a loader's ``root=`` argument);
* **Download** (online users, e.g. Colab): ``torchvision.datasets`` into a cache
  folder, ``$PRUNELIB_CACHE`` (:data:`CACHE_ENV`) or ``~/.cache/prunelib``.

A data set that is neither raises :class:`DataNotFoundError` naming both routes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CACHE_ENV",
    "DATA_ENV",
    "DOWNLOAD_TIMEOUT_S",
    "DataNotFoundError",
    "cache_dir",
    "data_root",
]

#: The environment variable naming the offline data folder.
DATA_ENV = "PRUNELIB_DATA"
#: The environment variable naming the download cache folder.
CACHE_ENV = "PRUNELIB_CACHE"

#: Seconds a torchvision download may wait on a silent network before giving up.
DOWNLOAD_TIMEOUT_S = 30.0


class DataNotFoundError(RuntimeError):
    """A data set is neither in the data root nor downloadable (e.g. offline without files)."""


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


def data_root() -> Path | None:
    """The offline data folder from ``$PRUNELIB_DATA`` (``~`` expanded), or None when unset/empty.

    >>> import os
    >>> os.environ["PRUNELIB_DATA"] = "~/data"
    >>> str(data_root()).endswith("data"), data_root().is_absolute()
    (True, True)
    >>> del os.environ["PRUNELIB_DATA"]
    """
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Folder for downloads: ``$PRUNELIB_CACHE`` or ``~/.cache/prunelib`` (not created here).

    >>> cache_dir().name in ("prunelib", cache_dir().name)
    True
    """
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "prunelib"


def _resolve_root(root: str | os.PathLike[str] | None) -> Path | None:
    return Path(root).expanduser() if root is not None else _pkg().data_root()


def _pkg():
    """The ``prunelib.data`` package. The loaders call each other through it, so that
    replacing one of its functions (as tests do with ``monkeypatch.setattr``) reaches
    every module of the package, as it did when the package was one module."""
    return sys.modules[__package__]


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
    target = _pkg().cache_dir() / "torchvision"
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


# --------------------------------------------------------------------------------------------
# Fingerprint helpers (cached per process and source)
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
    """(name, size, mtime) of files in ``root``, or ("download", the cache folder) when they
    are not all there."""
    if root is None or not all((root / n).is_file() for n in names):
        return ("download", str(cache_dir()))
    return tuple((n, (root / n).stat().st_size, (root / n).stat().st_mtime_ns) for n in names)


def _fingerprint_cached(key, compute) -> str:
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = compute()
    return _FINGERPRINTS[key]
