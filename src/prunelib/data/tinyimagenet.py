"""Tiny-ImageNet classes that overlap CIFAR-10, and the mask that drops them.

The Tiny-ImageNet near-OOD set must not contain CIFAR-10 classes: such images would
be counted as detection errors for reasons that have nothing to do with OOD
detection. :data:`TINYIMAGENET_CIFAR10_OVERLAP` lists the removed classes with the
reason for each; :func:`tinyimagenet_keep_mask` applies it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["TINYIMAGENET_CIFAR10_OVERLAP", "TINYIMAGENET_FILE", "tinyimagenet_keep_mask"]

TINYIMAGENET_FILE = "tinyimagenet_val32.npz"

# Hand-reviewed against all 200 Tiny-ImageNet-200 wnids/glosses (and, for the borderline ones,
# against grids of the actual 32x32 validation images). Rule: a class is removed when a person
# labelling with CIFAR-10's ten classes could plausibly give its images one of those labels,
# i.e. it is a kind of a CIFAR-10 class (WordNet hyponym, or within CIFAR-10's own class
# description), or a close look-alike of one at 32x32 px. Such images in an "OOD" set would be
# counted as false positives/negatives for reasons that have nothing to do with OOD detection.
# Entries: (wnid, gloss as in the file, CIFAR-10 class it overlaps, reason).
# fmt: off
#: The Tiny-ImageNet classes removed from the near-OOD set, as (wnid, gloss, CIFAR-10 class, reason).
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

    >>> tinyimagenet_keep_mask(names=["goldfish, Carassius auratus", "tabby, tabby cat"])
    array([ True, False])
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
