"""Structured pruning of any architecture through a dependency graph (Torch-Pruning).

The Sequential path of :mod:`prunelib.pruning.structured` refuses residual blocks,
concatenations and layer types it cannot follow. :func:`prune_structured_graph`
(``prune_structured(..., method="graph")``) handles them with Torch-Pruning
(``torch_pruning``, an optional dependency: ``pip install 'prunelib[graph]'``),
which traces the model on ``example_inputs`` and groups the channels that must be
removed together: a convolution, its BatchNorm, the input channels of every layer
that reads it and, through a residual addition, the coupled channels of every
layer added to it.

The algorithm follows the poster's as closely as a graph allows:

* groups are visited in model order (the order of their first layer); each group
  of ``n`` channels loses ``floor(ratio * n)`` of them, scored on the weights left
  after the previous groups were pruned;
* a channel's score is the ``"l1"`` (or ``"l2"``) norm of its incoming weights
  (bias excluded), summed over the coupled ``Linear``/convolution layers of the
  group, or ``"random"`` (seeded); ties go to the lower index;
* the output layer, found by role (the model's ``output_layer`` attribute, else
  the last parametrised layer: :func:`prunelib.models.output_layer_name`), never
  loses outputs; nor does any layer coupled to it.

On an ``nn.Sequential`` of the supported layers this removes the same units as
the Sequential path. The returned ``kept`` names the kept output channels (dense
numbering) of every pruned ``Linear``/convolution, so the dense model with the
other channels silenced (their weights, biases and BatchNorm affine parameters
zeroed) computes what the small model computes (in eval mode).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from ..models import output_layer_name, prunable_layers
from ._common import _check_ratio, n_removed
from .structured import STRUCTURED_SCORES, StructuredPruning

__all__ = ["prune_structured_graph"]

_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _torch_pruning():
    try:
        import torch_pruning
    except ImportError as exc:
        raise ImportError(
            "structured pruning with method='graph' needs Torch-Pruning: "
            "pip install 'prunelib[graph]' (or pip install torch-pruning)") from exc
    return torch_pruning


def _rows(m: nn.Module) -> torch.Tensor:
    """The layer's weights with one row per output unit (incoming weights)."""
    w = m.weight.detach()
    if isinstance(m, _CONV_T):  # (in, out / groups, ...): output channels on dim 1
        w = w.transpose(0, 1)
    return w.reshape(w.shape[0], -1).double()


def _group_scores(dg, group, n: int, score: str, gen: torch.Generator) -> torch.Tensor:
    if score == "random":
        return torch.rand(n, generator=gen, dtype=torch.float64)
    s = torch.zeros(n, dtype=torch.float64)
    for item in group:
        m = item.dep.target.module
        if not (dg.is_out_channel_pruning_fn(item.dep.handler)
                and isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))):
            continue
        rows = _rows(m)
        for idx, root in zip(item.idxs, item.root_idxs):
            if root is None or idx >= rows.shape[0]:
                continue
            r = rows[idx]
            s[root] += r.abs().sum() if score == "l1" else r.pow(2).sum().sqrt()
    return s


def prune_structured_graph(model: nn.Module, ratio: float, *, example_inputs,
                           score: str = "l1", layers: str | Iterable[str] = "all",
                           seed: int = 0) -> StructuredPruning:
    """Structured pruning of any architecture via Torch-Pruning's dependency graph.

    ``example_inputs``: a small input batch (or tuple of inputs) to trace the model
    with. ``ratio``, ``score``, ``layers`` and ``seed`` as in
    :func:`prunelib.pruning.structured.prune_structured`; a group is pruned when one
    of its layers is selected. Returns a pruned deep copy (``model`` is not changed;
    the copy is traced in eval mode, so BatchNorm statistics do not move) and
    ``kept``: ``{layer: kept output channels}`` of every pruned layer.

    >>> import torch
    >>> from torchvision.models import resnet18  # doctest: +SKIP
    >>> net = resnet18(weights=None, num_classes=10).eval()  # doctest: +SKIP
    >>> res = prune_structured_graph(net, 0.5, example_inputs=torch.randn(1, 3, 32, 32))
    ... # doctest: +SKIP
    >>> res.model.conv1.out_channels, res.model.fc.out_features  # doctest: +SKIP
    (32, 10)
    """
    ratio = _check_ratio(ratio)
    if score not in STRUCTURED_SCORES:
        raise ValueError(f"unknown score {score!r}; allowed: "
                         f"{', '.join(map(repr, STRUCTURED_SCORES))}")
    if example_inputs is None:
        raise ValueError("method='graph' traces the model: pass example_inputs=, a small "
                         "batch of inputs (e.g. torch.randn(1, 3, 32, 32))")
    tp = _torch_pruning()
    selected = set(prunable_layers(model, layers))
    small = copy.deepcopy(model)
    modes = {m: m.training for m in small.modules()}
    small.eval()
    names = {m: n for n, m in small.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    dense_n = {n: _rows(m).shape[0] for m, n in names.items()
               if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))}
    out_mod = small.get_submodule(output_layer_name(small))
    dg = tp.DependencyGraph().build_dependency(small, example_inputs=example_inputs,
                                               verbose=False)
    roots = []
    for group in dg.get_all_groups(ignored_layers=[out_mod],
                                   root_module_types=(nn.modules.conv._ConvNd, nn.Linear)):
        members = [names.get(it.dep.target.module) for it in group
                   if dg.is_out_channel_pruning_fn(it.dep.handler)]
        if selected.intersection(members):
            root = group[0].dep.target.module
            roots.append((order[names[root]], root, group[0].dep.handler))
    gen = torch.Generator().manual_seed(int(seed))
    removed: dict[str, list[int]] = {}
    for _, root, handler in sorted(roots, key=lambda r: r[0]):
        n = dg.get_pruner_of_module(root).get_out_channels(root)
        full = dg.get_pruning_group(root, handler, list(range(n)))
        n_drop = n_removed(ratio, n)
        if n - n_drop < 1:
            raise ValueError(f"ratio {ratio} would leave layer {names[root]!r} with no units "
                             f"(it has {n})")
        s = _group_scores(dg, full, n, score, gen)
        if n_drop == 0:
            continue
        drop = sorted(torch.sort(s, stable=True).indices[:n_drop].tolist())
        group = dg.get_pruning_group(root, handler, drop)
        for item in group:
            m = item.dep.target.module
            if dg.is_out_channel_pruning_fn(item.dep.handler) and m in names and \
                    names[m] in dense_n:
                removed.setdefault(names[m], []).extend(int(i) for i in item.idxs)
        group.prune()
    for m, mode in modes.items():
        m.training = mode
    kept = {}
    for name in sorted(removed, key=order.get):
        gone = set(removed[name])
        kept[name] = torch.tensor([i for i in range(dense_n[name]) if i not in gone],
                                  dtype=torch.long)
    return StructuredPruning(model=small, kept=kept, method="graph")
