"""MNIST test digits as a far-OOD set: the IDX file format and the resize to CIFAR's format."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

__all__ = ["MNIST_IMAGES_FILE", "MNIST_LABELS_FILE", "mnist_to_cifar_format", "read_idx"]

MNIST_IMAGES_FILE = "mnist_t10k-images-idx3-ubyte.gz"
MNIST_LABELS_FILE = "mnist_t10k-labels-idx1-ubyte.gz"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an (optionally gzipped) IDX file (the MNIST format) of unsigned bytes.

    >>> import struct, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny-idx1-ubyte"
    >>> _ = path.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes([7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
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
    to the three RGB channels (the digits are scaled, not padded).

    >>> import numpy as np
    >>> mnist_to_cifar_format(np.zeros((2, 28, 28), dtype=np.uint8)).shape
    (2, 32, 32, 3)
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 [N,H,W], got {images.dtype} {images.shape}")
    t = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).float()
    t = torch.nn.functional.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False)
    t = t.round_().clamp_(0, 255).to(torch.uint8)
    return t.squeeze(1).unsqueeze(-1).expand(-1, -1, -1, 3).contiguous().numpy()
