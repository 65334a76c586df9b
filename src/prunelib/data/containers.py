"""What the loaders return: splits as in-memory tensors and their provenance.

Tensors are plain in-memory tensors, not per-sample ``Dataset`` objects: images are
float32 NCHW, labels int64. Every loader returns a :class:`DataInfo` naming the data
set it actually used and its provenance, so that the book can print it; offline
substitutes carry their caveat.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["DataInfo", "DataSplits", "OODSet", "Split"]


@dataclass(frozen=True)
class DataInfo:
    """What a loader actually returned: printable provenance for the book.

    ``n`` maps split name to size; ``mean``/``std`` are the per-channel (or per-feature)
    normalisation statistics that were applied, in the [0, 1] pixel scale for images, or None when
    the data were not normalised. ``fingerprint`` identifies the source data (see
    :func:`.fingerprint`); runs store it in their configuration's ``data_id``.
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
        """A few human-readable lines: name, sizes, source, preprocessing notes, caveat.

        >>> print(DataInfo("toy", "generated", n={"train": 3}).describe())
        toy (train 3)
        source: generated
        """
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

    >>> import torch
    >>> X, y = Split(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))
    >>> X.shape, y.tolist()
    (torch.Size([4, 2]), [0, 1, 0, 1])
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
    """Train / validation / test splits plus the :class:`DataInfo` describing them.

    Iterates as ``train, val, test``:

    >>> from prunelib.data import make_moons_splits
    >>> train, val, test = make_moons_splits(n_train=8, n_val=4, n_test=4)
    >>> len(train.y), len(val.y), len(test.y)
    (8, 4, 4)
    """

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

    >>> from prunelib.data import load_ood
    >>> noise = load_ood("gaussian", n=3)
    >>> len(noise), tuple(noise.x.shape)
    (3, (3, 3, 32, 32))
    """

    x: Tensor
    y: Tensor
    info: DataInfo

    def __len__(self) -> int:
        return int(self.x.shape[0])
