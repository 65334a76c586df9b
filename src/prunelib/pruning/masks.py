"""Masks that persist in any training loop.

:func:`prunelib.pruning.unstructured.apply_masks` multiplies masks in once: a plain
optimiser step afterwards revives the pruned weights. :func:`attach_masks` attaches
them instead as ``torch.nn.utils.prune`` reparametrisations
(``torch.nn.utils.prune.custom_from_mask``): the layer keeps ``<name>_orig`` (the
trained parameter) and a ``<name>_mask`` buffer, and recomputes
``<name> = <name>_orig * <name>_mask`` before every forward pass, so the masked
weights the network computes with stay exactly zero under any optimiser, momentum
or weight decay. A layer that already carries a ``torch.nn.utils.prune`` mask keeps
it: the masks multiply.

While masks are attached, the state dict holds ``<name>_orig``/``<name>_mask``
instead of ``<name>``. Two ways back to a plain model:

* :func:`make_permanent` -- bake the masks into the weights (zeros stay) and remove
  the reparametrisation (``torch.nn.utils.prune.remove``);
* :func:`remove_masks` -- drop the masks and restore the unmasked trained values.

:func:`attached_masks` reads back the masks a model carries.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune as torch_prune

from ._common import _check_masks

__all__ = ["attach_masks", "attached_masks", "make_permanent", "remove_masks"]


def attach_masks(model: nn.Module, masks: dict) -> nn.Module:
    """Attach ``{parameter name: 0/1 mask}`` as persistent masks; returns ``model``.

    Every mask must have exactly its parameter's shape and hold only 0 and 1
    (``ValueError`` before anything changes). Works on any module, on masks from
    :func:`prunelib.pruning.unstructured.magnitude_masks`, ``random_masks`` or
    :func:`prunelib.pruning.structured.unit_masks`, and on models that already carry
    ``torch.nn.utils.prune`` masks (the masks multiply). Undo with
    :func:`make_permanent` or :func:`remove_masks`.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> from prunelib.pruning import magnitude_masks
    >>> _ = torch.manual_seed(0)
    >>> net = MLP(2, (16,), 2)
    >>> net = attach_masks(net, magnitude_masks(net, 0.5))
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     net(torch.randn(8, 2)).sum().backward()
    ...     opt.step()
    >>> _ = net(torch.zeros(1, 2))  # the forward pass recomputes weight = weight_orig * mask
    >>> int((net[0].weight == 0).sum())
    16
    >>> sorted(make_permanent(net).state_dict())
    ['0.bias', '0.weight', '2.bias', '2.weight']
    """
    pairs = _check_masks(model, masks)
    for t, m in pairs:
        torch_prune.custom_from_mask(t.module, t.name, m)
    return model


def _pruned(model: nn.Module):
    """[(module name, module, tensor name, hook id)] of every ``torch.nn.utils.prune``
    reparametrisation in ``model``."""
    out = []
    for mname, module in model.named_modules():
        for hid, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, torch_prune.BasePruningMethod):
                out.append((mname, module, hook._tensor_name, hid))
    return out


def attached_masks(model: nn.Module) -> dict:
    """``{parameter name: mask}`` of the masks ``model`` carries (copies), from
    :func:`attach_masks` or ``torch.nn.utils.prune``.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> net = attach_masks(MLP(2, (2,), 2), {"0.bias": torch.tensor([0., 1.])})
    >>> attached_masks(net)
    {'0.bias': tensor([0., 1.])}
    """
    return {f"{mname}.{name}" if mname else name: module._buffers[name + "_mask"].detach().clone()
            for mname, module, name, _ in _pruned(model)}


def make_permanent(model: nn.Module) -> nn.Module:
    """Bake every attached mask into its weights and remove the reparametrisations.

    Afterwards the state dict is plain again (``<name>`` instead of
    ``<name>_orig``/``<name>_mask``) and the masked weights are exact zeros; returns
    ``model``. Also applies to masks attached by ``torch.nn.utils.prune``.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> net = attach_masks(MLP(2, (2,), 2), {"0.bias": torch.tensor([0., 1.])})
    >>> make_permanent(net)[0].bias[0].item() == 0, "0.bias_orig" in net.state_dict()
    (True, False)
    """
    for _, module, name, _ in _pruned(model):
        torch_prune.remove(module, name)
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Drop every attached mask, restoring the unmasked values of ``<name>_orig``.

    The opposite of :func:`make_permanent`: the weights become the trained
    parameters without their masks (masked entries hold whatever the optimiser left
    there); returns ``model`` with a plain state dict.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> net = MLP(2, (2,), 2)
    >>> with torch.no_grad():
    ...     net[0].bias.fill_(0.5)
    Parameter containing:
    tensor([0.5000, 0.5000], requires_grad=True)
    >>> net = attach_masks(net, {"0.bias": torch.tensor([0., 1.])})
    >>> remove_masks(net)[0].bias.tolist()
    [0.5, 0.5]
    """
    for _, module, name, hid in _pruned(model):
        orig = module._parameters.pop(name + "_orig")
        del module._buffers[name + "_mask"]
        del module._forward_pre_hooks[hid]
        if hasattr(module, name):
            delattr(module, name)
        module.register_parameter(name, orig)
    return model
