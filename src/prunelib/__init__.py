"""prunelib: prune neural networks and measure what pruning does to uncertainty.

The parts, each a submodule reachable as an attribute (``prunelib.metrics``), imported
on first use so that ``import prunelib`` stays light:

* :mod:`prunelib.pruning` -- structured removal (Sequential or dependency graph),
  unstructured masks, persistent masks, schedules, treatments;
* :mod:`prunelib.metrics` -- calibration, temperature scaling, OOD detection,
  intervals over seeds;
* :mod:`prunelib.data` -- Make Moons, CIFAR-10 and OOD sets as tensors;
* :mod:`prunelib.training` -- an early-stopping trainer that holds masks;
* :mod:`prunelib.models` -- the study's networks and layer roles.

>>> import prunelib
>>> prunelib.metrics.ece([[0.9, 0.1], [0.2, 0.8]], [0, 1]) < 0.2
True
"""

from __future__ import annotations

import importlib
import pkgutil


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return "0+unknown"
    try:
        return version("prunelib")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


#: The installed distribution's version (``importlib.metadata``), "0+unknown" if none.
__version__ = _version()


def _submodules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name: str):
    if name in _submodules():
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_submodules()))
