"""Structured pruning: remove whole units (neurons, channels) and their edges.

The poster's algorithm (the Sequential path)
--------------------------------------------
For each prunable hidden layer *in model order*, remove ``floor(ratio * n)`` of
its ``n`` units (neurons of a ``Linear``, output channels of a ``Conv2d``) with
the lowest score, then remove their out-edges: the matching input columns of
the next ``Linear``/``Conv2d`` -- across a ``Flatten`` too, where each channel
owns ``in_features / channels`` consecutive input features -- and the matching
entries of any ``BatchNorm`` between the two. A layer's scores are computed on
the weights that remain after the previous layer was pruned. Scores: ``"l1"``
(the poster's) or ``"l2"`` norm of a unit's incoming weights (bias excluded),
or ``"random"`` (seeded). Ties go to the lower index. The output layer, found
by role (:func:`prunelib.models.output_layer_name`), is never pruned; it only
loses input columns.

* :func:`prune_structured` returns a physically smaller copy and the kept
  indices; :func:`prune_structured_to` only computes the kept indices (on the
  dense numbering, continuing from a previous round's ``kept``), :func:`shrink`
  builds the small model from them, and :func:`unit_masks` expresses the same
  removal as dense masks (rows, biases, BatchNorm parameters and the next
  layer's input columns): the dense model with those masks computes what the
  small one computes.

What the Sequential path supports is checked before anything is removed
(:func:`prunelib.pruning.chain.check_structured`): ``nn.Sequential`` (nested too)
of ``Linear``, ``Conv2d`` (``groups=1``), ``BatchNorm1d/2d``, element-wise
activations, dropout, pooling and ``Flatten``, which includes the library's models.
Anything else raises :class:`prunelib.pruning.chain.UnsupportedModelError` naming
the module. Other architectures (residual blocks, concatenations, other layer
types) go through ``prune_structured(..., method="graph")``: Torch-Pruning's
dependency graph (:mod:`prunelib.pruning.graph`).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..models import layer_roles, prunable_layers
from ._common import _check_ratio, n_removed
from .chain import (
    UnsupportedModelError,
    _check_kept,
    _input_cols,
    _layer_index,
    _links,
    _producers,
    check_structured,
)

__all__ = [
    "METHODS",
    "STRUCTURED_SCORES",
    "StructuredPruning",
    "prune_structured",
    "prune_structured_to",
    "shrink",
    "surviving_units",
    "unit_masks",
]

STRUCTURED_SCORES = ("l1", "l2", "random")
#: Structured pruning methods of :func:`prune_structured`.
METHODS = ("sequential", "graph", "auto")


@dataclass
class StructuredPruning:
    """Result of :func:`prune_structured`: the small model and, per pruned layer, the
    sorted indices (dense numbering) of the units it kept; ``method`` is the path
    that pruned it (``"sequential"`` or ``"graph"``)."""

    model: nn.Module
    kept: dict
    method: str = "sequential"


def _scores(w: torch.Tensor, score: str, gen: torch.Generator) -> torch.Tensor:
    if score == "random":
        return torch.rand(w.shape[0], generator=gen, dtype=torch.float64)
    flat = w.detach().reshape(w.shape[0], -1).double()
    return flat.abs().sum(1) if score == "l1" else flat.pow(2).sum(1).sqrt()


def prune_structured_to(model: nn.Module, ratio: float, *, kept: dict | None = None,
                        score: str = "l1", layers: str | Iterable[str] = "all",
                        seed: int = 0, features_ratio: float | None = None) -> dict:
    """Kept unit indices after pruning ``model``'s selected layers to ``ratio``.

    ``model`` is the dense network (its weights as they are now). ``kept`` is a
    previous round's result (dense numbering): units already removed stay removed and
    their weights are ignored. Each selected layer of ``n`` units ends with
    ``n - floor(ratio * n)`` units (or fewer, if a previous round kept fewer).
    Returns ``{layer name: sorted LongTensor of kept units}`` for every layer pruned
    now or before; the model is not changed. ``features_ratio`` (None: ``ratio``) is the
    ratio of the hidden convolutions (role ``"features"``: channels), e.g. a smaller rate
    for the convolutions than for the fully connected layers. The Sequential path only
    (:func:`prunelib.pruning.chain.check_structured`); ``UnsupportedModelError``
    otherwise.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> net = MLP(2, (10, 6), 2)
    >>> kept = prune_structured_to(net, 0.5)
    >>> {name: len(units) for name, units in kept.items()}
    {'0': 5, '2': 3}
    >>> {name: len(units) for name, units in prune_structured_to(net, 0.8, kept=kept).items()}
    {'0': 2, '2': 2}
    """
    ratio = _check_ratio(ratio)
    if features_ratio is not None:
        features_ratio = _check_ratio(features_ratio, "features_ratio")
    if score not in STRUCTURED_SCORES:
        raise ValueError(f"unknown score {score!r}; allowed: "
                         f"{', '.join(map(repr, STRUCTURED_SCORES))}")
    check_structured(model)
    names = prunable_layers(model, layers)
    roles = layer_roles(model)
    base_ratio = ratio
    kept = _check_kept(model, kept)
    links = _links(model)
    producers = _producers(links)
    modules = dict(model.named_modules())
    gen = torch.Generator().manual_seed(int(seed))
    for name in names:
        lk = links.get(name)
        if lk is None or lk.consumer is None:
            raise ValueError(f"layer {name!r} feeds no later layer; cannot remove its units")
        if lk.error is not None:
            raise ValueError(f"cannot remove units of {name!r}: {lk.error}")
        w = modules[name].weight.detach().cpu()
        n = w.shape[0]
        ratio = features_ratio if features_ratio is not None and roles[name] == "features" \
            else base_ratio
        n_keep = n - n_removed(ratio, n)
        if n_keep < 1:
            raise ValueError(f"ratio {ratio} would leave layer {name!r} with no units (it has "
                             f"{n}); allowed: a ratio that keeps at least one unit, at most "
                             f"(n - 1) / n = {(n - 1) / n:.6g}")
        rows = kept.get(name, torch.arange(n))
        cols = _input_cols(name, kept, producers)
        w = w[rows]
        if cols is not None:
            w = w[:, cols]
        s = _scores(w, score, gen)
        if n_keep >= rows.numel():
            kept[name] = rows
            continue
        order = torch.sort(s, stable=True).indices
        kept[name] = rows[order[rows.numel() - n_keep:]].sort().values
    return kept


def prune_structured(model: nn.Module, ratio: float, score: str = "l1",
                     layers: str | Iterable[str] = "all", seed: int = 0, *,
                     method: str = "sequential", example_inputs=None) -> StructuredPruning:
    """Remove ``floor(ratio * n)`` lowest-score units of each selected hidden layer.

    ``layers``: ``"all"``, ``"head"`` (hidden Linear), ``"features"`` (hidden
    convolutions) or a list of hidden-layer names. ``score``: ``"l1"``, ``"l2"`` or
    ``"random"`` (seeded by ``seed``). Returns a new, physically smaller model
    (``model`` is not changed) and the kept indices. ``ValueError`` for a ratio outside
    [0, 1), one that would leave a layer empty, an unknown score or unknown layer names.

    ``method``:

    * ``"sequential"`` (default) -- the poster's layer-by-layer algorithm on an
      ``nn.Sequential``; a model it cannot prove it handles raises
      :class:`prunelib.pruning.chain.UnsupportedModelError` naming the module;
    * ``"graph"`` -- any architecture (residual blocks, concatenations, other layer
      types) through Torch-Pruning's dependency graph
      (:func:`prunelib.pruning.graph.prune_structured_graph`; ``pip install
      'prunelib[graph]'``); needs ``example_inputs`` (a small batch to trace);
    * ``"auto"`` -- ``"sequential"`` where it applies, else ``"graph"`` with a
      :class:`UserWarning` saying why.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> res = prune_structured(MLP(2, (10, 6), 2), 0.5)
    >>> res.model
    MLP(
      (0): Linear(in_features=2, out_features=5, bias=True)
      (1): ReLU()
      (2): Linear(in_features=5, out_features=3, bias=True)
      (3): ReLU()
      (4): Linear(in_features=3, out_features=2, bias=True)
    )
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(map(repr, METHODS))}")
    if method == "auto":
        try:
            check_structured(model)
            method = "sequential"
        except UnsupportedModelError as exc:
            warnings.warn(f"prune_structured(method='auto'): using the dependency graph "
                          f"(method='graph') because {exc}", UserWarning, stacklevel=2)
            method = "graph"
    if method == "graph":
        from .graph import prune_structured_graph

        return prune_structured_graph(model, ratio, example_inputs=example_inputs, score=score,
                                      layers=layers, seed=seed)
    kept = prune_structured_to(model, ratio, score=score, layers=layers, seed=seed)
    return StructuredPruning(model=shrink(model, kept), kept=kept)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _take(t: torch.Tensor, rows, cols) -> torch.Tensor:
    if rows is not None:
        t = t[rows]
    if cols is not None and t.dim() > 1:
        t = t[:, cols]
    return t.detach().clone()


def shrink(model: nn.Module, kept: dict) -> nn.Module:
    """A physically smaller deep copy of ``model`` keeping the units ``kept``.

    ``kept``: ``{hidden layer: unit indices}`` (dense numbering); layers not named keep
    all units. Rows, biases and following BatchNorms are cut and the next layer loses
    the matching input columns; weights and BatchNorm statistics are copied.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> net = MLP(2, (10,), 2)
    >>> shrink(net, {"0": torch.tensor([1, 4, 7])})
    MLP(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
      (2): Linear(in_features=3, out_features=2, bias=True)
    )
    """
    check_structured(model)
    kept = _check_kept(model, kept)
    small = copy.deepcopy(model)
    modules = dict(model.named_modules())
    for name, m, rows, cols, bns in _layer_index(model, kept):
        w = _take(m.weight, rows, cols)
        if isinstance(m, nn.Linear):
            new = nn.Linear(w.shape[1], w.shape[0], bias=m.bias is not None,
                            device=w.device, dtype=w.dtype)
        else:
            new = nn.Conv2d(w.shape[1], w.shape[0], m.kernel_size, stride=m.stride,
                            padding=m.padding, dilation=m.dilation, bias=m.bias is not None,
                            padding_mode=m.padding_mode, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            new.weight.copy_(w)
            if m.bias is not None:
                new.bias.copy_(_take(m.bias, rows, None))
        new.train(m.training)
        _set_module(small, name, new)
        for bn_name in bns:
            bn = modules[bn_name]
            nb = type(bn)(rows.numel(), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                          track_running_stats=bn.track_running_stats,
                          device=w.device, dtype=w.dtype)
            sd = {k: (v[rows].clone() if v.dim() == 1 else v.clone())
                  for k, v in bn.state_dict().items()}
            nb.load_state_dict(sd)
            nb.train(bn.training)
            _set_module(small, bn_name, nb)
    return small


def surviving_units(model: nn.Module) -> dict:
    """``{hidden layer: unit indices}`` of the units a masked model still uses.

    The inverse of :func:`unit_masks` for a dense-shaped model whose removed units are
    exact zeros (e.g. one rebuilt from a stored structured run): a hidden unit survives
    when its weights or bias are not all zero. Only layers that lost units are named, so
    ``shrink(model, surviving_units(model))`` is the physically smaller network.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> net = MLP(2, (4,), 2)
    >>> with torch.no_grad():
    ...     net[0].weight[1:3] = 0
    ...     net[0].bias[1:3] = 0
    >>> surviving_units(net)
    {'0': tensor([0, 3])}
    """
    modules = dict(model.named_modules())
    kept = {}
    for name, role in layer_roles(model).items():
        if role == "output":
            continue
        m = modules[name]
        alive = m.weight.detach().reshape(m.weight.shape[0], -1).ne(0).any(1)
        if m.bias is not None:
            alive |= m.bias.detach().ne(0)
        if not alive.all():
            kept[name] = torch.nonzero(alive).ravel()
    return kept


def unit_masks(model: nn.Module, kept: dict) -> dict:
    """Dense 0/1 masks equivalent to removing the units not in ``kept``.

    ``{parameter name: mask}`` for every parameter the removal touches: a pruned
    layer's weight rows and bias entries (a layer that only loses input columns has
    no bias mask), the weight and bias of BatchNorms after it,
    and the next layer's input columns (across a Flatten, ``H*W`` per channel). The
    dense model with these masks applied computes what :func:`shrink` computes.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> net = MLP(2, (4,), 2)
    >>> masks = unit_masks(net, {"0": torch.tensor([0, 3])})
    >>> sorted(masks)
    ['0.bias', '0.weight', '2.weight']
    >>> masks["2.weight"]
    tensor([[1., 0., 0., 1.],
            [1., 0., 0., 1.]])
    """
    check_structured(model)
    kept = _check_kept(model, kept)
    masks = {}
    modules = dict(model.named_modules())
    for name, m, rows, cols, bns in _layer_index(model, kept):
        r = rows if rows is not None else torch.arange(m.weight.shape[0])
        c = cols if cols is not None else torch.arange(m.weight.shape[1])
        wm = torch.zeros_like(m.weight, requires_grad=False)
        wm[r[:, None], c] = 1
        masks[f"{name}.weight"] = wm
        if m.bias is not None and rows is not None:
            bm = torch.zeros_like(m.bias, requires_grad=False)
            bm[r] = 1
            masks[f"{name}.bias"] = bm
        for bn_name in bns:
            bn = modules[bn_name]
            for pname, p in (("weight", bn.weight), ("bias", bn.bias)):
                if p is not None:
                    pm = torch.zeros_like(p, requires_grad=False)
                    pm[r] = 1
                    masks[f"{bn_name}.{pname}"] = pm
    return masks
