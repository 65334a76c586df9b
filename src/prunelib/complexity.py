"""Measured size and cost of a (pruned) model: parameters, FLOPs, latency.

* :func:`count_parameters` -- total parameters, those not masked, and the effective
  ones (not masked and not exactly zero).
* :func:`count_flops` -- multiply-accumulates (MACs) of every ``Linear`` and
  ``Conv2d`` for one forward pass of a tensor of ``input_shape``. A masked weight
  costs nothing (the idealised sparse count); biases, activations, pooling and
  normalisation are not counted. For a physically pruned model (no masks) this is
  the dense count of the small shapes.
* :func:`measure_latency` -- median wall-clock seconds of a forward pass
  (``time.perf_counter``), after warm-up.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

__all__ = ["count_flops", "count_parameters", "measure_latency"]


def _mask_for(masks: dict | None, name: str, p: torch.Tensor) -> torch.Tensor | None:
    if not masks or name not in masks:
        return None
    m = torch.as_tensor(masks[name])
    if tuple(m.shape) != tuple(p.shape):
        raise ValueError(f"mask {name!r} has shape {tuple(m.shape)}, parameter {tuple(p.shape)}")
    return m.to(p.device)


def count_parameters(model: nn.Module, masks: dict | None = None) -> dict:
    """``{"total", "unmasked", "effective"}`` parameter counts (ints).

    ``total``: every parameter entry; ``unmasked``: entries whose mask (``{parameter
    name: 0/1}``) is non-zero; ``effective``: unmasked entries whose value is non-zero.
    """
    params = dict(model.named_parameters())
    for k in masks or {}:
        if k not in params:
            raise ValueError(f"mask for unknown parameter {k!r}")
    total = unmasked = effective = 0
    for name, p in params.items():
        m = _mask_for(masks, name, p)
        alive = torch.ones_like(p, dtype=torch.bool) if m is None else m != 0
        total += p.numel()
        unmasked += int(alive.sum())
        effective += int((alive & (p.detach() != 0)).sum())
    return {"total": total, "unmasked": unmasked, "effective": effective}


def count_flops(model: nn.Module, input_shape: tuple[int, ...], masks: dict | None = None) -> int:
    """Multiply-accumulates of ``Linear``/``Conv2d`` for one forward of ``input_shape``.

    ``input_shape`` includes the batch dimension (e.g. ``(1, 3, 32, 32)``); the count
    is for the whole batch. A Linear costs ``rows * nonzero-mask weights`` (rows = the
    batch and any leading dimensions), a Conv2d ``N * H_out * W_out * nonzero-mask
    weights``; without masks that is ``in * out`` and ``C_in/groups * k_h * k_w *
    C_out`` per position.
    """
    names = {m: n for n, m in model.named_modules()}
    total = 0
    first = next(model.parameters(), None)

    def hook(mod, inp, out):
        nonlocal total
        m = _mask_for(masks, f"{names[mod]}.weight", mod.weight)
        nw = mod.weight.numel() if m is None else int((m != 0).sum())
        if isinstance(mod, nn.Linear):
            positions = out.numel() // mod.out_features
        else:  # Conv2d: N * H_out * W_out
            positions = out.numel() // mod.out_channels
        total += positions * nw

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv2d))]
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(tuple(input_shape), dtype=first.dtype if first is not None else None,
                        device=first.device if first is not None else None)
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)


def measure_latency(model: nn.Module, x: torch.Tensor, repeats: int = 50,
                    warmup: int = 10) -> float:
    """Median seconds of ``model(x)`` over ``repeats`` timed runs after ``warmup`` runs.

    Eval mode and ``torch.inference_mode``; CUDA is synchronised around each run.
    The model's train/eval mode is restored.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    cuda = x.is_cuda
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(x)
                if cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return statistics.median(times)
