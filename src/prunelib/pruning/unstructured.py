"""Unstructured pruning: masks on individual weights, and what they reached.

:func:`magnitude_masks` and :func:`random_masks` mask individual weights (never
biases) of the selected layers (``Linear``, every ``Conv*d``/``ConvTranspose*d``,
``Embedding``). Three scopes:

* ``"layer"`` -- each layer on its own at ``ratio``;
* ``"global"`` -- one pool over the *hidden* layers at ``ratio``; the output layer is
  its own group at ``output_ratio`` (default: half the rate, as in the
  lottery-ticket papers). This is the study's default and not a single global
  threshold over the whole network;
* ``"pooled"`` -- one pool over every selected layer, the output layer included, as
  ``torch.nn.utils.prune.global_unstructured`` does (``output_ratio`` must be None).

The ``ratio`` counts among the weights still unmasked; the number masked per layer
(or per pool) is exactly ``round(ratio * n_unmasked)``; ties go to the lower flat
index (layers in model order for a pool). A model whose weights are elsewhere
(e.g. an ``LSTM``) raises unless ``layers`` names what to mask, so nothing is
silently left out of a pool. Layers that already carry a
``torch.nn.utils.prune`` mask keep it: its zeros count as masked.

Masks are ``{parameter name: 0/1 tensor}`` (the trainer's format).
:func:`apply_masks` multiplies them into the weights once (the state dict stays
plain); :func:`prunelib.pruning.masks.attach_masks` makes them persist in any
training loop. :func:`sparsity_report` (or ``return_report=True``) says what
sparsity was reached, per layer and overall.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models import PARAM_LAYERS, layer_roles, output_layer_name, prunable_layers
from ._common import _EPS, _check_mask, _check_masks, _check_ratio, _is_torch_pruned, _target

__all__ = [
    "SCOPES",
    "SparsityReport",
    "apply_masks",
    "magnitude_masks",
    "mask_sparsity",
    "random_masks",
    "sparsity_report",
]

SCOPES = ("layer", "global", "pooled")


def _unlisted_weights(model: nn.Module) -> list[str]:
    """Weights (2-D or more) held by modules that are not maskable layer types."""
    out = []
    for mname, m in model.named_modules():
        if isinstance(m, (*PARAM_LAYERS, parametrize.ParametrizationList)):
            continue
        for pname, p in m._parameters.items():
            if p is not None and p.dim() >= 2:
                out.append(f"{mname}.{pname} ({type(m).__name__})" if mname else pname)
    return out


def _mask_targets(model: nn.Module, layers) -> list[str]:
    """Layers whose weights unstructured pruning may mask: the selected hidden layers,
    plus the output layer for ``"all"``/``"head"`` or when named."""
    out_name = output_layer_name(model)
    if isinstance(layers, str):
        if layers == out_name:
            return [out_name]
        if layers in ("all", "head", "features"):
            unlisted = _unlisted_weights(model)
            if unlisted:
                kinds = ", ".join(t.__name__ for t in PARAM_LAYERS)
                raise ValueError(f"layers={layers!r} would leave out weights that prunelib "
                                 f"does not mask: {', '.join(unlisted)}; maskable layers are "
                                 f"{kinds}. Pass layers=[names] to choose the layers to mask.")
        hidden = prunable_layers(model, layers)
        return hidden + ([out_name] if layers in ("all", "head") else [])
    names = list(layers)
    hidden = prunable_layers(model, [n for n in names if n != out_name])
    return hidden + ([out_name] if out_name in names else [])


def _n_mask(ratio: float, n: int) -> int:
    return math.floor(ratio * n + 0.5 + _EPS)


def _unstructured(model: nn.Module, ratio: float, scorer, scope: str, output_ratio,
                  layers, masks: dict | None, cumulative: bool,
                  features_ratio: float | None = None) -> dict:
    ratio = _check_ratio(ratio)
    if features_ratio is not None:
        features_ratio = _check_ratio(features_ratio, "features_ratio")
        if scope == "pooled":
            raise ValueError("scope='pooled' pools every layer at `ratio`; features_ratio must "
                             "be None (use scope='layer' or 'global' for per-role rates)")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; allowed: {', '.join(map(repr, SCOPES))}")
    if scope == "pooled" and output_ratio is not None:
        raise ValueError("scope='pooled' pools the output layer with the others at `ratio`; "
                         "output_ratio must be None (use scope='global' for a separate rate)")
    output_ratio = ratio / 2 if output_ratio is None else _check_ratio(output_ratio,
                                                                       "output_ratio")
    new = OrderedDict()
    for k, v in (masks or {}).items():
        t = _target(model, k)
        new[k] = _check_mask(k, v, t.param).clone()
        if t.torch_mask is not None:
            new[k] = new[k] * t.torch_mask.to(new[k])
    targets = _mask_targets(model, layers)
    out_name = output_layer_name(model)
    roles = layer_roles(model)
    features = {n for n in targets if roles.get(n) == "features"} if features_ratio is not None \
        else set()
    if scope == "pooled":
        groups = [list(targets)]
    else:
        hidden = [n for n in targets if n != out_name]
        if scope == "layer":
            groups = [[n] for n in hidden]
        else:  # one pool of the hidden layers; the convolutions their own with features_ratio
            groups = [[n for n in hidden if n in features],
                      [n for n in hidden if n not in features]]
        if out_name in targets:
            groups.append([out_name])
    for group in groups:
        if not group:
            continue
        if group == [out_name] and scope != "pooled":
            r = output_ratio
        else:
            r = features_ratio if group[0] in features else ratio
        keys = [f"{n}.weight" for n in group]
        found = {k: _target(model, k) for k in keys}
        params = {k: found[k].tensor for k in keys}
        for k in keys:
            if k not in new and found[k].torch_mask is not None:
                new[k] = found[k].torch_mask.detach().clone().to(params[k])
        cur = [new.get(k, torch.ones_like(params[k])).reshape(-1).detach() for k in keys]
        alive = torch.cat(cur) != 0
        scores = torch.cat([scorer(k, params[k]).reshape(-1).double().cpu() for k in keys])
        n_total, n_alive = alive.numel(), int(alive.sum())
        if cumulative:
            k_mask = max(0, _n_mask(r, n_total) - (n_total - n_alive))
        else:
            k_mask = _n_mask(r, n_alive)
        idx_alive = torch.nonzero(alive.cpu()).reshape(-1)
        order = torch.sort(scores[idx_alive], stable=True).indices
        drop = idx_alive[order[:k_mask]]
        flat = torch.cat([c.cpu() for c in cur]).clone()
        flat = (flat != 0).to(torch.float32)
        flat[drop] = 0
        start = 0
        for k in keys:
            p = params[k]
            new[k] = flat[start:start + p.numel()].reshape(p.shape).to(p)
            start += p.numel()
    return dict(new)


def magnitude_masks(model: nn.Module, ratio: float, *, scope: str = "layer",
                    output_ratio: float | None = None, layers: str | Iterable[str] = "all",
                    masks: dict | None = None, cumulative: bool = False,
                    return_report: bool = False, features_ratio: float | None = None):
    """Mask the smallest-magnitude weights (never biases) of the selected layers.

    ``ratio`` is the fraction of each layer's still-unmasked weights to mask (``scope=
    "layer"``), of the unmasked weights pooled over the hidden layers (``"global"``,
    the output layer its own group at ``output_ratio``, None: ``ratio / 2``) or pooled
    over every selected layer, the output layer included (``"pooled"``, as
    ``torch.nn.utils.prune.global_unstructured``). ``layers`` as in
    :func:`prunelib.models.prunable_layers`; ``"all"``/``"head"`` (or naming it)
    include the output layer. ``masks`` (previous rounds) stay masked; the result
    holds them plus the new weight masks. ``cumulative=True`` reads the ratios as the
    fraction of *all* of a group's weights masked after the call, so an iterative
    schedule ends at exactly the one-shot count. ``return_report=True`` returns
    ``(masks, SparsityReport)``. ``features_ratio`` (None: ``ratio``) is the ratio of the
    hidden convolutions (role ``"features"``; with ``"global"`` they form their own pool),
    e.g. Frankle & Carbin's Conv-2: convolutions 10%, fully connected 20%, output 10%.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> net = MLP(2, (30, 20), 3)
    >>> masks, report = magnitude_masks(net, 0.8, scope="pooled", return_report=True)
    >>> round(report.overall, 3)
    0.8
    >>> masks, report = magnitude_masks(net, 0.8, scope="global", return_report=True)
    >>> round(report.overall, 3), report.fraction("4.weight")
    (0.767, 0.4)
    """
    out = _unstructured(model, ratio, lambda k, p: p.detach().abs(), scope, output_ratio,
                        layers, masks, cumulative, features_ratio)
    return (out, sparsity_report(out)) if return_report else out


def random_masks(model: nn.Module, ratio: float, *, scope: str = "layer",
                 output_ratio: float | None = None, layers: str | Iterable[str] = "all",
                 masks: dict | None = None, seed: int = 0, cumulative: bool = False,
                 return_report: bool = False, features_ratio: float | None = None):
    """Like :func:`magnitude_masks` with seeded uniform random scores (the mask control).

    >>> from prunelib.models import MLP
    >>> masks = random_masks(MLP(2, (10,), 2), 0.5, seed=1)
    >>> int((masks["0.weight"] == 0).sum()), int((masks["2.weight"] == 0).sum())
    (10, 5)
    """
    gen = torch.Generator().manual_seed(int(seed))
    out = _unstructured(model, ratio,
                        lambda k, p: torch.rand(p.shape, generator=gen, dtype=torch.float64),
                        scope, output_ratio, layers, masks, cumulative, features_ratio)
    return (out, sparsity_report(out)) if return_report else out


def apply_masks(model: nn.Module, masks: dict | None) -> nn.Module:
    """Multiply ``model``'s parameters by ``masks`` in place, once; returns ``model``.

    The state dict stays plain (no extra keys); a later optimiser step can revive
    the zeros, so to keep them through training use
    :func:`prunelib.pruning.masks.attach_masks` (or prunelib's trainer, which
    re-applies masks after every step). Every mask must have exactly its parameter's
    shape and hold only 0 and 1 (``ValueError`` otherwise, before anything changes).
    On a layer that already carries a ``torch.nn.utils.prune`` mask the mask is
    multiplied into that one too, so it persists as that mask does.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> net = MLP(2, (3,), 2)
    >>> net = apply_masks(net, {"0.bias": torch.tensor([1., 0., 1.])})
    >>> net[0].bias[1].item() == 0
    True
    """
    if not masks:
        return model
    pairs = _check_masks(model, masks)
    with torch.no_grad():
        for t, m in pairs:
            t.param.mul_(m)
            if t.torch_mask is not None:
                t.torch_mask.mul_(m.to(t.torch_mask))
                setattr(t.module, t.name, t.param * t.torch_mask)
    return model


def mask_sparsity(masks: dict) -> dict:
    """``{parameter name: fraction masked}`` (0 = dense).

    >>> import torch
    >>> mask_sparsity({"0.weight": torch.tensor([[1., 0.], [0., 0.]])})
    {'0.weight': 0.75}
    """
    return {k: 1.0 - float(torch.as_tensor(m).count_nonzero()) / max(torch.as_tensor(m).numel(), 1)
            for k, m in masks.items()}


@dataclass(frozen=True)
class SparsityReport:
    """Sparsity reached: ``layers`` maps a tensor's name to ``(masked, total)`` counts.

    ``overall`` is the masked fraction of all the tensors listed, ``fraction(name)``
    one tensor's; ``str(report)`` is a small table.
    """

    layers: dict

    @property
    def masked(self) -> int:
        return sum(m for m, _ in self.layers.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.layers.values())

    @property
    def overall(self) -> float:
        return self.masked / self.total if self.total else 0.0

    def fraction(self, name: str) -> float:
        masked, total = self.layers[name]
        return masked / total if total else 0.0

    def __str__(self) -> str:
        width = max([len(k) for k in self.layers] + [7])
        rows = [f"{k:<{width}}  {m:>9,} / {t:>9,}  {self.fraction(k):7.2%}"
                for k, (m, t) in self.layers.items()]
        rows.append(f"{'overall':<{width}}  {self.masked:>9,} / {self.total:>9,}  "
                    f"{self.overall:7.2%}")
        return "\n".join(rows)


def sparsity_report(masks_or_model) -> SparsityReport:
    """What sparsity a set of masks (or a model) reached, per tensor and overall.

    Given ``{name: 0/1 mask}``: the zeros of each mask. Given a model: the exact zeros
    of the weights of its maskable layers (``Linear``, convolutions, ``Embedding``;
    with masks attached, the masked weights), i.e. what the network computes with.

    >>> import torch
    >>> report = sparsity_report({"0.weight": torch.tensor([[1., 0.], [0., 0.]]),
    ...                           "2.weight": torch.ones(2, 2)})
    >>> report.overall, report.fraction("0.weight")
    (0.375, 0.75)
    >>> print(report)
    0.weight          3 /         4   75.00%
    2.weight          0 /         4    0.00%
    overall           3 /         8   37.50%
    """
    if isinstance(masks_or_model, nn.Module):
        layers = {}
        for name, m in masks_or_model.named_modules():
            if isinstance(m, PARAM_LAYERS):
                w = (m.weight_orig * m.weight_mask) if _is_torch_pruned(m, "weight") else m.weight
                layers[f"{name}.weight"] = (int((w == 0).sum()), w.numel())
        return SparsityReport(layers)
    return SparsityReport({k: (int((torch.as_tensor(m) == 0).sum()), torch.as_tensor(m).numel())
                           for k, m in masks_or_model.items()})
