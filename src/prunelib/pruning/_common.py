"""Checks shared by the pruning modules: ratios, counts, and the validation and
location of ``{parameter name: 0/1 mask}`` dictionaries."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

_EPS = 1e-9


def _check_ratio(ratio, name: str = "ratio") -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (
        0.0 <= float(ratio) < 1.0
    ):
        raise ValueError(f"{name} must be a number in [0, 1) (the fraction removed), got {ratio!r}")
    return float(ratio)


def _check_rounds(rounds) -> int:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    return rounds


def n_removed(ratio: float, n: int) -> int:
    """Units removed from a layer of ``n`` units: ``floor(ratio * n)`` (the poster's count).

    A tolerance of 1e-9 absorbs floating-point error (``0.29 * 100`` removes 29).

    >>> n_removed(0.29, 100), n_removed(0.5, 7)
    (29, 3)
    """
    return math.floor(_check_ratio(ratio) * n + _EPS)


# ---------------------------------------------------------------------------
# where a mask goes
# ---------------------------------------------------------------------------
@dataclass
class _Target:
    """Where the mask named ``key`` (``"<module>.<tensor>"``) acts.

    ``kind``: ``"param"`` (a plain parameter), ``"torch_prune"`` (the tensor is
    ``<name>_orig * <name>_mask`` of :mod:`torch.nn.utils.prune`).
    """

    key: str
    module: nn.Module
    name: str
    kind: str

    @property
    def tensor(self) -> torch.Tensor:
        """The effective tensor (what the forward pass uses)."""
        if self.kind == "torch_prune":
            return self.module._parameters[self.name + "_orig"] * self.module._buffers[
                self.name + "_mask"]
        return self.module._parameters[self.name]

    @property
    def param(self) -> nn.Parameter:
        """The trained parameter behind the tensor."""
        return self.module._parameters[self.name + ("_orig" if self.kind == "torch_prune" else "")]

    @property
    def torch_mask(self) -> torch.Tensor | None:
        return self.module._buffers[self.name + "_mask"] if self.kind == "torch_prune" else None


def _is_torch_pruned(module: nn.Module, name: str) -> bool:
    return (name + "_orig") in module._parameters and (name + "_mask") in module._buffers and any(
        isinstance(h, torch_prune.BasePruningMethod) and h._tensor_name == name
        for h in module._forward_pre_hooks.values())


def _target(model: nn.Module, key: str) -> _Target:
    """Locate the tensor a mask named ``key`` acts on; ``ValueError`` when there is none."""
    mod_name, _, name = key.rpartition(".")
    try:
        module = model.get_submodule(mod_name) if mod_name else model
    except AttributeError:
        module = None
    if module is not None:
        if name in module._parameters and module._parameters[name] is not None:
            return _Target(key, module, name, "param")
        if _is_torch_pruned(module, name):
            return _Target(key, module, name, "torch_prune")
        if parametrize.is_parametrized(module, name):
            raise ValueError(
                f"{key!r} is computed by a torch.nn.utils.parametrize parametrisation, which a "
                "mask cannot be multiplied into; remove it first "
                "(torch.nn.utils.parametrize.remove_parametrizations)")
    names = sorted(_mask_keys(model))
    raise ValueError(f"mask for unknown parameter {key!r}; parameters: {names}")


def _mask_keys(model: nn.Module) -> list[str]:
    """Names masks may use: parameters, with torch-pruned ``<x>_orig`` shown as ``<x>``."""
    out = []
    for mname, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue
        for pname in module._parameters:
            if module._parameters[pname] is None:
                continue
            base = pname[:-5] if pname.endswith("_orig") and _is_torch_pruned(
                module, pname[:-5]) else pname
            out.append(f"{mname}.{base}" if mname else base)
    return out


def _check_mask(key: str, mask, like: torch.Tensor) -> torch.Tensor:
    """``mask`` as a tensor like ``like``; ``ValueError`` unless it has exactly ``like``'s
    shape (no broadcasting) and holds only 0 and 1."""
    m = torch.as_tensor(mask)
    if tuple(m.shape) != tuple(like.shape):
        raise ValueError(f"mask {key!r} has shape {tuple(m.shape)}, the parameter has shape "
                         f"{tuple(like.shape)}; a mask must have exactly the parameter's shape "
                         "(no broadcasting)")
    if m.dtype != torch.bool and (m.is_complex() or not ((m == 0) | (m == 1)).all()):
        bad = m[~((m == 0) | (m == 1))].reshape(-1)[:3].tolist() if not m.is_complex() else []
        raise ValueError(f"mask {key!r} must hold only 0 and 1 (found {bad}); masks are "
                         "binary, 0 = pruned")
    return m.detach().to(like)


def _check_masks(model: nn.Module, masks: dict | None) -> list[tuple[_Target, torch.Tensor]]:
    """[(target, validated mask like the effective tensor)] for every entry of ``masks``."""
    out = []
    for key, m in (masks or {}).items():
        t = _target(model, key)
        out.append((t, _check_mask(key, m, t.param)))
    return out
