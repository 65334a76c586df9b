"""Many MLPs of one shape as one batched model: the tensors :mod:`prunelib.ensemble` trains.

:class:`StackedMLP` stacks the weights of E same-shaped ``Linear``/``ReLU``/``Tanh`` networks
into ``[E, out, in]`` tensors and runs all members' forward passes in one batched matmul per
layer; :func:`parse_mlp` reads a network into that form (or says why it cannot),
:func:`stack_masks` stacks the members' masks, and :func:`auto_chunk` sizes the chunks of
members that train fastest on a CPU.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["CHUNK_BYTES", "StackedMLP", "auto_chunk", "parse_mlp", "shape_signature",
           "stack_masks"]

# activation module -> (function, in-place function); Identity is skipped
_ACTIVATIONS = {nn.ReLU: (torch.relu, torch.relu_), nn.Tanh: (torch.tanh, torch.tanh_),
                nn.Identity: None}


def parse_mlp(model: nn.Module) -> list[tuple]:
    """The model as a list of ops: ("linear", name, in, out, has_bias) or ("act", fn).

    Accepts ``nn.Sequential`` (nested or wrapped) of ``Linear``, ``ReLU``, ``Tanh``,
    ``Identity`` and ``Flatten``; anything else raises ``TypeError``.
    """
    ops: list[tuple] = []
    covered = set()
    for name, m in model.named_modules():
        if any(True for _ in m.children()):
            continue
        if isinstance(m, nn.Linear):
            ops.append(("linear", name, m.in_features, m.out_features, m.bias is not None))
            covered.add(f"{name}.weight" if name else "weight")
            if m.bias is not None:
                covered.add(f"{name}.bias" if name else "bias")
        elif isinstance(m, nn.Flatten):
            continue
        elif type(m) in _ACTIVATIONS:
            if _ACTIVATIONS[type(m)] is not None:
                ops.append(("act", *_ACTIVATIONS[type(m)]))
        else:
            raise TypeError(f"train_ensemble handles Linear/ReLU/Tanh networks; got "
                            f"{type(m).__name__} at {name!r}")
    extra = [n for n, _ in model.named_parameters() if n not in covered]
    if extra:
        raise TypeError(f"train_ensemble: parameters outside Linear layers: {extra}")
    if not ops or ops[0][0] != "linear":
        raise TypeError("train_ensemble needs a network that starts with a Linear layer")
    return ops


def shape_signature(ops) -> tuple:
    """What must agree for networks to stack: each op's kind, and the linear layers' sizes."""
    return tuple((o[0], *o[2:]) if o[0] == "linear" else (o[0], o[1].__name__) for o in ops)


def _pname(layer_name: str, kind: str) -> str:
    return f"{layer_name}.{kind}" if layer_name else kind


class StackedMLP:
    """E same-shaped MLPs as stacked tensors ``W[l]: [E, out, in]``, ``b[l]: [E, out]``."""

    def __init__(self, models: list[nn.Module], device: torch.device | str = "cpu"):
        if not models:
            raise ValueError("no models given")
        self.ops = parse_mlp(models[0])
        sig = shape_signature(self.ops)
        for m in models[1:]:
            if shape_signature(parse_mlp(m)) != sig:
                raise ValueError("StackedMLP: models differ in layer shapes")
        self.E = len(models)
        self.device = torch.device(device)
        dtype = next(models[0].parameters()).dtype
        self.params: list[nn.Parameter] = []
        self.names: list[list[str]] = []   # per stacked param: member-local names
        self.layers: list[tuple] = []       # (W, b or None) per linear op
        for op in self.ops:
            if op[0] != "linear":
                continue
            lname = op[1]
            mods = [dict(m.named_modules())[lname] for m in models]
            W = nn.Parameter(torch.stack([mm.weight.detach() for mm in mods])
                             .to(self.device, dtype).contiguous())
            self.params.append(W)
            self.names.append(_pname(lname, "weight"))
            b = None
            if op[4]:
                b = nn.Parameter(torch.stack([mm.bias.detach() for mm in mods])
                                 .to(self.device, dtype).contiguous())
                self.params.append(b)
                self.names.append(_pname(lname, "bias"))
            self.layers.append((W, b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[N, in]`` (shared by all members) or ``[E, N, in]``; returns ``[E, N, C]``."""
        if x.dim() not in (2, 3):
            raise ValueError(f"StackedMLP input must be [N, in] or [E, N, in], got {tuple(x.shape)}")
        h = x
        li = 0
        fresh = False   # h is a linear layer's output: an activation may overwrite it
        for op in self.ops:
            if op[0] == "linear":
                fresh = True
                W, b = self.layers[li]
                li += 1
                if h.dim() == 2:
                    h = torch.matmul(h, W.transpose(1, 2))       # [E, N, out]
                    if b is not None:
                        h = h + b.unsqueeze(1)
                elif b is not None:
                    h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
                else:
                    h = torch.bmm(h, W.transpose(1, 2))
            else:
                h = op[2](h) if fresh else op[1](h)
                fresh = False
        return h

    __call__ = forward

    def member_state(self, e: int, tensors: list[torch.Tensor] | None = None) -> OrderedDict:
        """Member ``e``'s state dict (copies) from ``tensors`` (default: current params)."""
        tensors = self.params if tensors is None else tensors
        return OrderedDict((n, t[e].detach().clone()) for n, t in zip(self.names, tensors))

    @torch.no_grad()
    def write_back(self, models: list[nn.Module], tensors: list[torch.Tensor] | None = None):
        """Copy member ``e`` of ``tensors`` (default: current params) into ``models[e]``."""
        tensors = self.params if tensors is None else tensors
        for e, model in enumerate(models):
            params = dict(model.named_parameters())
            for n, t in zip(self.names, tensors):
                params[n].copy_(t[e])

    @torch.no_grad()
    def select(self, keep: torch.Tensor) -> list[tuple[nn.Parameter, nn.Parameter]]:
        """Keep only members ``keep`` (indices); returns [(old param, new param)]."""
        pairs = []
        new_params = []
        for p in self.params:
            q = nn.Parameter(p.detach().index_select(0, keep).contiguous())
            pairs.append((p, q))
            new_params.append(q)
        self.params = new_params
        it = iter(new_params)
        self.layers = [(next(it), next(it) if b is not None else None) for _, b in self.layers]
        self.E = int(keep.numel())
        return pairs


def stack_masks(stack: StackedMLP, models, masks_list) -> list[tuple[int, torch.Tensor]]:
    """[(index into stack.params, stacked 0/1 mask)] for params any member masks."""
    if masks_list is None:
        return []
    if len(masks_list) != len(models):
        raise ValueError(f"masks_list has {len(masks_list)} entries for {len(models)} models")
    out = []
    names = set(stack.names)
    for e, masks in enumerate(masks_list):
        for k in (masks or {}):
            if k not in names:
                raise ValueError(f"member {e}: mask for unknown parameter {k!r}; "
                                 f"parameters: {sorted(names)}")
    for i, (n, p) in enumerate(zip(stack.names, stack.params)):
        if not any(masks and n in masks for masks in masks_list):
            continue
        m = torch.ones_like(p, requires_grad=False)
        for e, masks in enumerate(masks_list):
            if masks and n in masks:
                me = torch.as_tensor(masks[n])
                if tuple(me.shape) != tuple(p.shape[1:]):
                    raise ValueError(f"member {e}: mask {n!r} has shape {tuple(me.shape)}, "
                                     f"parameter has {tuple(p.shape[1:])}")
                m[e].copy_(me)
        out.append((i, m))
    return out


#: Activation bytes per chunk of members that the automatic chunking aims at: on CPU,
#: members train fastest in chunks whose activations stay in cache (measured on 2
#: cores: 64-64 MLPs on 1000 points full batch train ~20 % faster 10-20 at a time
#: than 40 at a time).
CHUNK_BYTES = 8 * 2**20


def auto_chunk(model: nn.Module, rows: int, device: torch.device | str = "cpu") -> int | None:
    """Members per chunk for ``rows`` samples per step (None: no limit).

    On CPU, the largest chunk whose activations (``rows`` x the sum of the layer
    widths, per member) fit in :data:`CHUNK_BYTES`; elsewhere no limit.
    """
    if torch.device(device).type != "cpu":
        return None
    widths = sum(op[3] for op in parse_mlp(model) if op[0] == "linear")
    itemsize = next(model.parameters()).element_size()
    return max(1, CHUNK_BYTES // max(1, rows * widths * itemsize))
