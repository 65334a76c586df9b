"""What the layer-by-layer (Sequential) structured pruning can prove it handles.

The algorithm of :mod:`prunelib.pruning.structured` follows the chain of leaf modules
in registration order. That order is the order in which they run only when every
container is a plain :class:`torch.nn.Sequential` (nested Sequentials are fine); a
residual block, a concatenation or any custom ``forward`` breaks it. The chain
supports:

* parametrised layers: ``Linear``, ``Conv2d`` with ``groups=1``, ``BatchNorm1d``,
  ``BatchNorm2d``;
* between a pruned layer and the layer that consumes it: element-wise activations,
  dropout, 2-D pooling, ``Identity``, BatchNorms and one ``Flatten`` (from a conv to
  a linear layer).

:func:`check_structured` raises :class:`UnsupportedModelError` naming the first
module outside this set; models beyond it go through the dependency graph of
:mod:`prunelib.pruning.graph` (``prune_structured(..., method="graph")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models import layer_roles
from ._common import _is_torch_pruned

__all__ = ["SUPPORTED", "UnsupportedModelError", "check_structured"]


class UnsupportedModelError(ValueError):
    """A model (or one of its modules) that a pruning routine cannot prove it handles.

    The message names the module and says what is supported. A subclass of
    :class:`ValueError`, so ``except ValueError`` still catches it.
    """


# modules that may sit between a pruned layer and the next parametrised layer
_PASSTHROUGH = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
    nn.Softplus, nn.Mish, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_LAYERS = (nn.Linear, nn.Conv2d)

#: What the Sequential path of structured pruning supports, in words (error messages).
SUPPORTED = (
    "nn.Sequential containers (nested too) of Linear, Conv2d (groups=1), BatchNorm1d/2d, "
    "Flatten, element-wise activations, dropout and 2-D pooling"
)
_GRAPH_HINT = ("for other architectures use prune_structured(model, ratio, method='graph', "
               "example_inputs=...) (Torch-Pruning's dependency graph: "
               "pip install 'prunelib[graph]')")


def _unsupported(what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"structured pruning cannot handle {what}. Supported: "
                                 f"{SUPPORTED}; {_GRAPH_HINT}")


def _where(name: str) -> str:
    return f"module {name!r}" if name else "the model itself"


def check_structured(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` unless the Sequential path can prune ``model``.

    Refused, with the module named: a container that is not a plain ``nn.Sequential``
    (a residual block, a custom ``forward``), a parametrised layer other than
    ``Linear``/``Conv2d``/``BatchNorm1d/2d`` (``Conv1d``, ``Conv3d``,
    ``ConvTranspose*``, ``Embedding``, ``LayerNorm``, ...), a grouped convolution, a
    module with parameters used at two places, and layers carrying masks (make them permanent first).

    >>> import torch.nn as nn
    >>> check_structured(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2)))
    >>> try:
    ...     check_structured(nn.Sequential(nn.Conv1d(1, 4, 3)))
    ... except UnsupportedModelError as err:
    ...     print(str(err)[:75])
    structured pruning cannot handle the parametrised layer module '0' (Conv1d,
    """
    seen: dict[int, str] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        stateful = len(m._modules) or any(v is not None for v in m._parameters.values())
        if id(m) in seen and stateful:
            raise _unsupported(f"{_where(name)} ({type(m).__name__}): the same module object is "
                               f"also registered as {seen[id(m)]!r}, so it runs twice")
        seen[id(m)] = name
        if parametrize.is_parametrized(m) or any(
                _is_torch_pruned(m, p[:-5]) for p in m._parameters if p.endswith("_orig")):
            raise _unsupported(f"{_where(name)} ({type(m).__name__}): it carries masks or "
                               "parametrisations; call prunelib.pruning.make_permanent(model) "
                               "(or remove them) first")
        if len(m._modules):
            if not isinstance(m, nn.Sequential) or type(m).forward is not nn.Sequential.forward:
                raise _unsupported(
                    f"{_where(name)} ({type(m).__name__}): it has child modules but is not a "
                    "plain nn.Sequential, so the order in which its layers run (a residual "
                    "connection, a concatenation) is unknown")
            continue
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            raise _unsupported(f"grouped convolution {_where(name)} (groups={m.groups})")
        if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
            raise _unsupported(f"{_where(name)} (Flatten with start_dim={m.start_dim}, "
                               f"end_dim={m.end_dim}; only the default 1, -1 is followed)")
        owns = [p for p in list(m._parameters) + list(m._buffers)
                if getattr(m, p, None) is not None]
        if owns and not isinstance(m, _LAYERS + _BN):
            raise _unsupported(f"the parametrised layer {_where(name)} ({type(m).__name__}, "
                               f"holding {', '.join(owns)})")


# ---------------------------------------------------------------------------
# the chain of layers: who feeds whom
# ---------------------------------------------------------------------------
@dataclass
class _Link:
    """Out-edges of a hidden layer: BatchNorms after it and the layer that consumes it."""

    source: str
    bns: list
    consumer: str | None
    repeat: int = 1               # consumer input columns per unit (H*W across a Flatten)
    error: str | None = None      # why this layer cannot be removed from, if it cannot


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if len(m._modules) == 0 and n != ""] or (
        [("", model)] if len(model._modules) == 0 else [])


def _n_units(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _links(model: nn.Module) -> dict[str, _Link]:
    """``{layer: _Link}`` for every Linear/Conv2d that has a layer after it."""
    links: dict[str, _Link] = {}
    cur: _Link | None = None
    cur_mod: nn.Module | None = None
    flattened = False
    sequential = isinstance(model, nn.Sequential)
    for name, m in _leaves(model):
        if isinstance(m, _LAYERS):
            if cur is not None and cur.error is None:
                cur.consumer = name
                n_out = _n_units(cur_mod)
                if isinstance(m, nn.Linear):
                    if isinstance(cur_mod, nn.Conv2d):
                        if not flattened:
                            cur.error = f"no Flatten between conv {cur.source!r} and linear {name!r}"
                        elif m.in_features % n_out:
                            cur.error = (f"{name!r} has {m.in_features} inputs, not a multiple of "
                                         f"the {n_out} channels of {cur.source!r}")
                        else:
                            cur.repeat = m.in_features // n_out
                    elif m.in_features != n_out:
                        cur.error = f"{name!r} has {m.in_features} inputs but {cur.source!r} has " \
                                    f"{n_out} units"
                else:
                    if not isinstance(cur_mod, nn.Conv2d) or m.in_channels != n_out:
                        cur.error = f"{name!r} (Conv2d) cannot consume {cur.source!r}"
                    elif m.groups != 1:
                        cur.error = f"grouped convolution {name!r} is not supported"
            elif cur is not None:
                cur.consumer = name
            cur = _Link(source=name, bns=[], consumer=None)
            if not sequential:
                cur.error = ("structured pruning needs an nn.Sequential (leaf modules run in "
                             "registration order)")
            elif isinstance(m, nn.Conv2d) and m.groups != 1:
                cur.error = f"grouped convolution {name!r} is not supported"
            links[name] = cur
            cur_mod = m
            flattened = False
        elif cur is None or cur.error is not None:
            continue
        elif isinstance(m, _BN):
            if m.num_features != _n_units(cur_mod):
                cur.error = f"BatchNorm {name!r} does not match the units of {cur.source!r}"
            else:
                cur.bns.append(name)
        elif isinstance(m, nn.Flatten):
            flattened = True
        elif not isinstance(m, _PASSTHROUGH):
            cur.error = (f"module {name!r} ({type(m).__name__}) after {cur.source!r} is not "
                         "supported by structured pruning")
    return links


def _producers(links: dict[str, _Link]) -> dict[str, _Link]:
    return {lk.consumer: lk for lk in links.values() if lk.consumer is not None}


def _input_cols(name: str, kept: dict, producers: dict[str, _Link]) -> torch.Tensor | None:
    """Input columns of layer ``name`` that survive its producer's removal (None: all)."""
    lk = producers.get(name)
    if lk is None or lk.source not in kept:
        return None
    units = kept[lk.source]
    if lk.repeat == 1:
        return units
    return (units[:, None] * lk.repeat + torch.arange(lk.repeat)).reshape(-1)


def _check_kept(model: nn.Module, kept: dict | None) -> dict[str, torch.Tensor]:
    roles = layer_roles(model)
    hidden = [n for n, r in roles.items() if r != "output"]
    modules = dict(model.named_modules())
    out = {}
    for name, idx in (kept or {}).items():
        if name not in roles or roles[name] == "output":
            raise ValueError(f"kept names unknown hidden layer {name!r}; hidden layers: {hidden}")
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1).sort().values
        n = _n_units(modules[name])
        if idx.numel() == 0 or idx[0] < 0 or idx[-1] >= n or idx.unique().numel() != idx.numel():
            raise ValueError(f"kept[{name!r}] must be distinct unit indices in [0, {n}), "
                             "at least one")
        out[name] = idx
    return out


def _layer_index(model: nn.Module, kept: dict):
    """[(layer name, module, rows or None, cols or None, bns)] for every changed layer."""
    links = _links(model)
    producers = _producers(links)
    for name in kept:
        lk = links.get(name)
        if lk is None or lk.consumer is None or lk.error is not None:
            why = "feeds no later layer" if lk is None or lk.error is None else lk.error
            raise ValueError(f"cannot remove units of {name!r}: {why}")
    out = []
    for name, m in model.named_modules():
        if not isinstance(m, _LAYERS):
            continue
        rows = kept.get(name)
        cols = _input_cols(name, kept, producers)
        if rows is None and cols is None:
            continue
        bns = links[name].bns if rows is not None else []
        out.append((name, m, rows, cols, bns))
    return out
