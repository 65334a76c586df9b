"""Structured removal, unstructured masks, iterative schedules and the treatments.

Structured pruning (the poster's algorithm)
-------------------------------------------
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

Structured pruning supports models whose leaf modules run in registration
order: ``nn.Sequential`` (nested too) of ``Linear``, ``Conv2d`` (``groups=1``),
``BatchNorm1d/2d``, element-wise activations, dropout, pooling and ``Flatten``,
which includes the library's models.

Unstructured pruning
--------------------
:func:`magnitude_masks` and :func:`random_masks` mask individual weights (never
biases), layer-wise or globally over the hidden layers, with the output layer at
its own rate (default: half the rate, as in the lottery-ticket papers). The
``ratio`` counts among the weights still unmasked; the number masked per layer
(or per pool) is exactly ``round(ratio * n_unmasked)``; ties go to the lower
flat index (layers in model order for the global pool). Masks are
``{parameter name: 0/1 tensor}`` (the trainer's format); :func:`apply_masks`
applies them.

Schedules
---------
:func:`iterative_keep_fractions` and :func:`iterative_round_ratios` give the
constant per-round rate of an iterative schedule for masks;
:func:`structured_round_ratios` the cumulative ratios to pass to
:func:`prune_structured_to` so that the last round keeps exactly the one-shot
count ``n - floor(target * n)`` (intermediate rounds round down);
:func:`structured_keep_counts` lists the resulting counts.

Treatments
----------
:func:`treat` turns a pruning into the state dict to retrain: ``finetune``,
``reset`` (lottery ticket), ``rewind`` and ``reinit`` (the control). The
``random_mask`` control (remove at random, then reset) is not a treatment of its
own: the caller draws the masks with :func:`random_masks` (or
:func:`prune_structured_to` with ``score="random"``) and applies ``"reset"``.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .models import layer_roles, output_layer_name, prunable_layers

__all__ = [
    "STRUCTURED_SCORES",
    "TREATMENTS",
    "StructuredPruning",
    "apply_masks",
    "iterative_keep_fractions",
    "iterative_round_ratios",
    "magnitude_masks",
    "mask_sparsity",
    "n_removed",
    "prune_structured",
    "prune_structured_to",
    "random_masks",
    "shrink",
    "structured_keep_counts",
    "structured_round_ratios",
    "surviving_units",
    "treat",
    "unit_masks",
]

STRUCTURED_SCORES = ("l1", "l2", "random")
TREATMENTS = ("finetune", "reset", "rewind", "reinit")
SCOPES = ("layer", "global")

# modules that may sit between a pruned layer and the next parametrised layer
_PASSTHROUGH = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
    nn.Softplus, nn.Mish, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_EPS = 1e-9


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------
def _check_ratio(ratio, name: str = "ratio") -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (
        0.0 <= float(ratio) < 1.0
    ):
        raise ValueError(f"{name} must be a number in [0, 1) (the fraction removed), got {ratio!r}")
    return float(ratio)


def n_removed(ratio: float, n: int) -> int:
    """Units removed from a layer of ``n`` units: ``floor(ratio * n)`` (the poster's count).

    A tolerance of 1e-9 absorbs floating-point error (``0.29 * 100`` removes 29).
    """
    return math.floor(_check_ratio(ratio) * n + _EPS)


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


def _links(model: nn.Module) -> dict[str, _Link]:
    """``{layer: _Link}`` for every Linear/Conv2d that has a layer after it."""
    links: dict[str, _Link] = {}
    cur: _Link | None = None
    cur_mod: nn.Module | None = None
    flattened = False
    sequential = isinstance(model, nn.Sequential)
    for name, m in _leaves(model):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
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


def _n_units(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


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


# ---------------------------------------------------------------------------
# structured pruning
# ---------------------------------------------------------------------------
@dataclass
class StructuredPruning:
    """Result of :func:`prune_structured`: the small model and, per pruned layer, the
    sorted indices (dense numbering) of the units it kept."""

    model: nn.Module
    kept: dict


def _scores(w: torch.Tensor, score: str, gen: torch.Generator) -> torch.Tensor:
    if score == "random":
        return torch.rand(w.shape[0], generator=gen, dtype=torch.float64)
    flat = w.detach().reshape(w.shape[0], -1).double()
    return flat.abs().sum(1) if score == "l1" else flat.pow(2).sum(1).sqrt()


def prune_structured_to(model: nn.Module, ratio: float, *, kept: dict | None = None,
                        score: str = "l1", layers: str | Iterable[str] = "all",
                        seed: int = 0) -> dict:
    """Kept unit indices after pruning ``model``'s selected layers to ``ratio``.

    ``model`` is the dense network (its weights as they are now). ``kept`` is a
    previous round's result (dense numbering): units already removed stay removed and
    their weights are ignored. Each selected layer of ``n`` units ends with
    ``n - floor(ratio * n)`` units (or fewer, if a previous round kept fewer).
    Returns ``{layer name: sorted LongTensor of kept units}`` for every layer pruned
    now or before; the model is not changed.
    """
    ratio = _check_ratio(ratio)
    if score not in STRUCTURED_SCORES:
        raise ValueError(f"unknown score {score!r}; allowed: "
                         f"{', '.join(map(repr, STRUCTURED_SCORES))}")
    names = prunable_layers(model, layers)
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
                     layers: str | Iterable[str] = "all", seed: int = 0) -> StructuredPruning:
    """Remove ``floor(ratio * n)`` lowest-score units of each selected hidden layer.

    ``layers``: ``"all"``, ``"head"`` (hidden Linear), ``"features"`` (hidden Conv2d)
    or a list of hidden-layer names. ``score``: ``"l1"``, ``"l2"`` or ``"random"``
    (seeded by ``seed``). Returns a new, physically smaller model (``model`` is not
    changed) and the kept indices. ``ValueError`` for a ratio outside [0, 1), one that
    would leave a layer empty, an unknown score or unknown layer names.
    """
    kept = prune_structured_to(model, ratio, score=score, layers=layers, seed=seed)
    return StructuredPruning(model=shrink(model, kept), kept=kept)


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
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        rows = kept.get(name)
        cols = _input_cols(name, kept, producers)
        if rows is None and cols is None:
            continue
        bns = links[name].bns if rows is not None else []
        out.append((name, m, rows, cols, bns))
    return out


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
    """
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
    """
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


# ---------------------------------------------------------------------------
# unstructured masks
# ---------------------------------------------------------------------------
def _mask_targets(model: nn.Module, layers) -> list[str]:
    """Layers whose weights unstructured pruning may mask: the selected hidden layers,
    plus the output layer for ``"all"``/``"head"`` or when named."""
    out_name = output_layer_name(model)
    if isinstance(layers, str):
        if layers == out_name:
            return [out_name]
        hidden = prunable_layers(model, layers)
        return hidden + ([out_name] if layers in ("all", "head") else [])
    names = list(layers)
    hidden = prunable_layers(model, [n for n in names if n != out_name])
    return hidden + ([out_name] if out_name in names else [])


def _n_mask(ratio: float, n: int) -> int:
    return math.floor(ratio * n + 0.5 + _EPS)


def _unstructured(model: nn.Module, ratio: float, scorer, scope: str, output_ratio,
                  layers, masks: dict | None, cumulative: bool) -> dict:
    ratio = _check_ratio(ratio)
    output_ratio = ratio / 2 if output_ratio is None else _check_ratio(output_ratio,
                                                                       "output_ratio")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; allowed: {', '.join(map(repr, SCOPES))}")
    params = dict(model.named_parameters())
    new = OrderedDict()
    for k, v in (masks or {}).items():
        if k not in params:
            raise ValueError(f"mask for unknown parameter {k!r}")
        new[k] = torch.as_tensor(v).detach().clone().to(params[k])
    targets = _mask_targets(model, layers)
    out_name = output_layer_name(model)
    groups = [[n] for n in targets if n != out_name] if scope == "layer" else \
        [[n for n in targets if n != out_name]]
    if out_name in targets:
        groups.append([out_name])
    for group in groups:
        if not group:
            continue
        r = output_ratio if group == [out_name] else ratio
        keys = [f"{n}.weight" for n in group]
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
                    masks: dict | None = None, cumulative: bool = False) -> dict:
    """Mask the smallest-magnitude weights (never biases) of the selected layers.

    ``ratio`` is the fraction of each layer's still-unmasked weights to mask (``scope=
    "layer"``) or of the unmasked weights pooled over the hidden layers (``"global"``);
    the output layer is always its own group at ``output_ratio`` (None: ``ratio / 2``).
    ``layers`` as in :func:`prunelib.models.prunable_layers`; ``"all"``/``"head"`` (or
    naming it) include the output layer. ``masks`` (previous rounds) stay masked; the
    result holds them plus the new weight masks. ``cumulative=True`` reads the ratios
    as the fraction of *all* of a group's weights masked after the call, so an
    iterative schedule ends at exactly the one-shot count.
    """
    return _unstructured(model, ratio, lambda k, p: p.detach().abs(), scope, output_ratio,
                         layers, masks, cumulative)


def random_masks(model: nn.Module, ratio: float, *, scope: str = "layer",
                 output_ratio: float | None = None, layers: str | Iterable[str] = "all",
                 masks: dict | None = None, seed: int = 0, cumulative: bool = False) -> dict:
    """Like :func:`magnitude_masks` with seeded uniform random scores (the mask control)."""
    gen = torch.Generator().manual_seed(int(seed))
    return _unstructured(model, ratio,
                         lambda k, p: torch.rand(p.shape, generator=gen, dtype=torch.float64),
                         scope, output_ratio, layers, masks, cumulative)


def apply_masks(model: nn.Module, masks: dict | None) -> nn.Module:
    """Multiply ``model``'s parameters by ``masks`` in place; returns ``model``."""
    if not masks:
        return model
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, m in masks.items():
            if k not in params:
                raise ValueError(f"mask for unknown parameter {k!r}; parameters: {sorted(params)}")
            params[k].mul_(torch.as_tensor(m).to(params[k]))
    return model


def mask_sparsity(masks: dict) -> dict:
    """``{parameter name: fraction masked}`` (0 = dense)."""
    return {k: 1.0 - float(torch.as_tensor(m).count_nonzero()) / max(torch.as_tensor(m).numel(), 1)
            for k, m in masks.items()}


# ---------------------------------------------------------------------------
# iterative schedules
# ---------------------------------------------------------------------------
def _check_rounds(rounds) -> int:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    return rounds


def iterative_keep_fractions(target: float, rounds: int) -> list[float]:
    """Fraction of weights kept after each of ``rounds`` rounds at a constant rate.

    ``(1 - target) ** (r / rounds)`` for ``r = 1..rounds``; the last is exactly
    ``1 - target``. The per-round rate (fraction of the survivors removed each round)
    is ``1 - (1 - target) ** (1 / rounds)``.
    """
    target, rounds = _check_ratio(target, "target"), _check_rounds(rounds)
    return [(1.0 - target) ** (r / rounds) if r < rounds else 1.0 - target
            for r in range(1, rounds + 1)]


def iterative_round_ratios(target: float, rounds: int) -> list[float]:
    """Ratio of the still-unmasked weights to mask in each round (for ``magnitude_masks``).

    Round ``r`` masks ``1 - keep[r] / keep[r-1]`` of the survivors, so the product of
    the per-round keep fractions is exactly ``1 - target`` (up to integer counts: use
    ``cumulative=True`` with ``1 - iterative_keep_fractions(...)[r]`` for exact counts).
    """
    keep = [1.0] + iterative_keep_fractions(target, rounds)
    return [1.0 - keep[r] / keep[r - 1] for r in range(1, len(keep))]


def structured_round_ratios(target: float, rounds: int) -> list[float]:
    """Cumulative removal ratios ``1 - (1 - target) ** (r / rounds)`` for
    :func:`prune_structured_to`; the last is exactly ``target``, so after the last round
    each layer keeps exactly the one-shot count ``n - floor(target * n)``."""
    return [1.0 - k if r < rounds else _check_ratio(target, "target")
            for r, k in enumerate(iterative_keep_fractions(target, rounds), 1)]


def structured_keep_counts(n: int, target: float, rounds: int) -> list[int]:
    """Units kept by a layer of ``n`` after each round of :func:`structured_round_ratios`."""
    return [n - n_removed(r, n) for r in structured_round_ratios(target, rounds)]


# ---------------------------------------------------------------------------
# treatments
# ---------------------------------------------------------------------------
def _normalise_treatment(treatment: str) -> str:
    t = str(treatment)
    if t.startswith("rewind"):
        return "rewind"
    if t in ("random_mask", "randommask"):
        raise ValueError("'random_mask' is not a treatment of treat(): draw the masks with "
                         "random_masks() (or prune_structured_to(score='random')) and use 'reset'")
    if t not in TREATMENTS:
        raise ValueError(f"unknown treatment {treatment!r}; allowed: "
                         f"{', '.join(map(repr, TREATMENTS))} ('rewind<K>' also accepted)")
    return t


def _fresh_state(model_fn, seed: int, kept: dict | None) -> OrderedDict:
    """A fresh default PyTorch initialisation drawn after ``torch.manual_seed(seed)``.

    With ``kept``, the physically small network is initialised (fan-in of the small
    shape, layers in model order: exactly what building the small network directly
    after ``torch.manual_seed(seed)`` gives) and scattered into the dense positions;
    removed positions hold zero (BatchNorm running statistics their defaults).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        dense = model_fn()
        if not kept:
            return OrderedDict((k, v.detach().clone()) for k, v in dense.state_dict().items())
        kept = _check_kept(dense, kept)
        small = shrink(dense, kept)
        torch.manual_seed(int(seed))
        for m in small.modules():
            if hasattr(m, "reset_parameters") and m is not small:
                m.reset_parameters()
    state = OrderedDict((k, v.detach().clone()) for k, v in dense.state_dict().items())
    small_state = small.state_dict()
    index = {name: (rows, cols, bns) for name, _, rows, cols, bns in _layer_index(dense, kept)}
    for name, (rows, cols, bns) in index.items():
        for suffix in ("weight", "bias"):
            key = f"{name}.{suffix}"
            if key in state:
                r = rows if rows is not None else torch.arange(state[key].shape[0])
                state[key].zero_()
                if suffix == "weight":
                    c = cols if cols is not None else torch.arange(state[key].shape[1])
                    state[key][r[:, None], c] = small_state[key]
                else:
                    state[key][r] = small_state[key]
        for bn in bns:
            for k in [k for k in state if k.startswith(bn + ".")]:
                if state[k].dim() == 1:
                    if k.endswith(("weight", "bias")):
                        state[k].zero_()
                    state[k][rows] = small_state[k]
                else:
                    state[k] = small_state[k].clone()
    changed = {f"{n}.{s}" for n in index for s in ("weight", "bias")}
    changed |= {k for _, (_, _, bns) in index.items() for bn in bns for k in state
                if k.startswith(bn + ".")}
    for k in state:
        if k not in changed:
            state[k] = small_state[k].clone()
    return state


def treat(treatment: str, *, trained: dict, init: dict, rewind: dict | None = None,
          masks: dict | None, model_fn=None, seed: int = 0, kept: dict | None = None) -> dict:
    """The masked state dict to retrain after a prune, for ``treatment``:

    * ``"finetune"`` -- the trained values;
    * ``"reset"`` -- the values at initialisation (``init``: the lottery ticket);
    * ``"rewind"`` (or ``"rewind<K>"``) -- the values after K iterations (``rewind``);
    * ``"reinit"`` -- a fresh random initialisation (``model_fn()`` after
      ``torch.manual_seed(seed)``; the global RNG is left untouched). With ``kept`` (a
      structured pruning) it is the default init of the physically small network, so
      fan-ins are the small ones, scattered into the dense positions.

    Every parameter and buffer of the state -- the output layer's included -- comes
    from the chosen source; then ``masks`` (``{parameter name: 0/1}``) are applied.
    The ``random_mask`` control is the caller's: :func:`random_masks` then ``"reset"``.
    """
    t = _normalise_treatment(treatment)
    if t == "finetune":
        src = trained
    elif t == "reset":
        src = init
    elif t == "rewind":
        if rewind is None:
            raise ValueError("treatment 'rewind' needs the rewind state (rewind=...)")
        src = rewind
    else:
        if model_fn is None:
            raise ValueError("treatment 'reinit' needs model_fn (builds the dense model)")
        src = _fresh_state(model_fn, seed, kept)
    if set(src) != set(trained):
        raise ValueError(f"the {t} state's keys differ from the trained state's: "
                         f"{sorted(set(src) ^ set(trained))}")
    out = OrderedDict((k, src[k].detach().clone().to(trained[k].device)) for k in trained)
    for k, m in (masks or {}).items():
        if k not in out:
            raise ValueError(f"mask for unknown parameter {k!r}")
        out[k] = out[k] * torch.as_tensor(m).to(out[k])
    return out
