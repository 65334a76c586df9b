"""Treatments: what a pruned network is retrained from.

:func:`treat` turns a pruning into the state dict to retrain: ``finetune``,
``reset`` (lottery ticket), ``rewind`` and ``reinit`` (the control). The
``random_mask`` control (remove at random, then reset) is not a treatment of its
own: the caller draws the masks with :func:`prunelib.pruning.unstructured.random_masks`
(or :func:`prunelib.pruning.structured.prune_structured_to` with ``score="random"``)
and applies ``"reset"``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from ._common import _check_mask
from .chain import _check_kept, _layer_index
from .structured import shrink

__all__ = ["TREATMENTS", "treat"]

TREATMENTS = ("finetune", "reset", "rewind", "reinit")


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
    The ``random_mask`` control is the caller's: :func:`prunelib.pruning.unstructured.random_masks`
    then ``"reset"``. Masks must have their parameter's shape and hold only 0 and 1.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> from prunelib.pruning import magnitude_masks
    >>> _ = torch.manual_seed(0)
    >>> net = MLP(2, (8,), 2)
    >>> init = {k: v.clone() for k, v in net.state_dict().items()}
    >>> masks = magnitude_masks(net, 0.5)
    >>> state = treat("reset", trained=net.state_dict(), init=init, masks=masks)
    >>> bool((state["0.weight"] == 0).sum() == 8)
    True
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
        out[k] = out[k] * _check_mask(k, m, out[k])
    return out
