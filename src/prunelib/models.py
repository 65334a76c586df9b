"""The networks of the study, and which of their layers are prunable, by role.

Every library model is an :class:`torch.nn.Sequential` subclass (its layers run in
order and are named by their index, ``"0"``, ``"1"``, ...; parameters ``"0.weight"``)
and declares its output layer in the attribute ``output_layer``:

* :class:`MLP` -- fully connected, configurable hidden widths (Make Moons:
  ``MLP(2, (32, 32), 2)``);
* :class:`PosterCNN` -- the poster's CIFAR-10 CNN: conv 3->6 5x5, max-pool,
  conv 6->16 5x5, max-pool, fc 400->120->84->10;
* :class:`Conv2` -- Frankle & Carbin's Conv-2: two 3x3 conv-64 (padding 1),
  max-pool, fc 256-256-10.

:func:`layer_roles` names the role of every parametrised layer (:data:`PARAM_LAYERS`:
``Linear``, any convolution, ``Embedding``) of any model, the library's or yours:
``"features"`` (a hidden convolution or embedding), ``"head"`` (a hidden linear
layer) or ``"output"``. The output layer is found by role -- the declared
``output_layer`` attribute, else the last parametrised layer -- never by a
fixed index, so a shallow network never has its output layer pruned. Set
``model.output_layer = "<name>"`` on your own model when its last parametrised
layer is not the output.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from torch import nn

__all__ = [
    "LAYER_GROUPS",
    "MLP",
    "MODEL_NAMES",
    "PARAM_LAYERS",
    "Conv2",
    "PosterCNN",
    "build_model",
    "layer_roles",
    "output_layer_name",
    "prunable_layers",
]

MODEL_NAMES = ("mlp", "poster_cnn", "conv2")
LAYER_GROUPS = ("all", "head", "features")
#: Layer types with a role (and whose ``weight`` masks may prune): ``Linear``, every
#: convolution (``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``) and embeddings.
PARAM_LAYERS = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding, nn.EmbeddingBag)


class _Net(nn.Sequential):
    """``nn.Sequential`` whose slices are plain ``nn.Sequential`` (the subclasses'
    constructors take sizes, not modules)."""

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


class MLP(_Net):
    """``Linear, ReLU, ..., Linear, ReLU, Linear``: a ReLU MLP with hidden widths ``hidden``.

    Layers are indexed as in any ``nn.Sequential``: hidden ``Linear`` layers at
    ``"0", "2", ...``, the output layer at ``str(2 * len(hidden))``. Inputs are
    ``(batch, in_features)`` (flatten images first).

    >>> import torch
    >>> net = MLP(2, (32, 32), 2)
    >>> net.output_layer, net(torch.zeros(5, 2)).shape
    ('4', torch.Size([5, 2]))
    """

    def __init__(self, in_features: int = 2, hidden: Sequence[int] = (32, 32),
                 n_classes: int = 2):
        hidden = [int(h) for h in hidden]
        if int(in_features) < 1 or int(n_classes) < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"in_features, n_classes and every hidden width must be >= 1, got "
                             f"in_features={in_features}, hidden={hidden}, n_classes={n_classes}")
        layers: list[nn.Module] = []
        prev = int(in_features)
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, int(n_classes)))
        super().__init__(*layers)
        self.output_layer = str(len(layers) - 1)


class PosterCNN(_Net):
    """The poster's CIFAR-10 CNN (LeNet-like) for 32x32 inputs.

    ``0`` conv 3->6 5x5, ``1`` ReLU, ``2`` max-pool 2, ``3`` conv 6->16 5x5, ``4`` ReLU,
    ``5`` max-pool 2, ``6`` flatten (16*5*5 = 400), ``7`` fc 400->120, ``8`` ReLU,
    ``9`` fc 120->84, ``10`` ReLU, ``11`` output fc 84->n_classes.

    >>> import torch
    >>> PosterCNN()(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 10])
    """

    def __init__(self, n_classes: int = 10, in_channels: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, n_classes),
        )
        self.output_layer = "11"


class Conv2(_Net):
    """Frankle & Carbin's Conv-2 for ``image_size`` square inputs (CIFAR-10: 32).

    ``0`` conv in->64 3x3 (padding 1), ``1`` ReLU, ``2`` conv 64->64 3x3 (padding 1),
    ``3`` ReLU, ``4`` max-pool 2, ``5`` flatten (64*16*16), ``6`` fc ->256, ``7`` ReLU,
    ``8`` fc 256->256, ``9`` ReLU, ``10`` output fc 256->n_classes.

    >>> import torch
    >>> Conv2(image_size=8)(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 10])
    """

    def __init__(self, n_classes: int = 10, in_channels: int = 3, image_size: int = 32):
        side = int(image_size) // 2
        super().__init__(
            nn.Conv2d(in_channels, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * side * side, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, n_classes),
        )
        self.output_layer = "10"


def build_model(name: str, **kwargs) -> nn.Module:
    """A fresh model by name: ``"mlp"`` (:class:`MLP`), ``"poster_cnn"``, ``"conv2"``.

    ``kwargs`` go to the constructor (e.g. ``in_features``, ``hidden``, ``n_classes``).
    Initialisation is PyTorch's default and draws from the global RNG
    (``torch.manual_seed`` before the call makes it reproducible).

    >>> build_model("mlp", hidden=(8,))
    MLP(
      (0): Linear(in_features=2, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=2, bias=True)
    )
    """
    classes = {"mlp": MLP, "poster_cnn": PosterCNN, "conv2": Conv2}
    if name not in classes:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(map(repr, MODEL_NAMES))}")
    return classes[name](**kwargs)


def _param_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every parametrised layer (:data:`PARAM_LAYERS`) in order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PARAM_LAYERS)]


def output_layer_name(model: nn.Module) -> str:
    """The output layer by role: the declared ``model.output_layer``, else the last
    parametrised layer (:data:`PARAM_LAYERS`) in registration order.

    >>> from torch import nn
    >>> output_layer_name(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)))
    '2'
    """
    layers = _param_layers(model)
    if not layers:
        raise ValueError("model has no parametrised layer (Linear, convolution or embedding)")
    declared = getattr(model, "output_layer", None)
    if declared is not None:
        names = [n for n, _ in layers]
        if declared not in names:
            raise ValueError(f"model.output_layer {declared!r} is not one of its layers {names}")
        return declared
    return layers[-1][0]


def layer_roles(model: nn.Module) -> OrderedDict:
    """``{layer name: role}`` for every parametrised layer (:data:`PARAM_LAYERS`) in order.

    Roles: ``"output"`` (found by :func:`output_layer_name`), ``"features"`` (other
    convolutions and embeddings), ``"head"`` (other ``Linear``).

    >>> dict(layer_roles(PosterCNN()))
    {'0': 'features', '3': 'features', '7': 'head', '9': 'head', '11': 'output'}
    """
    out_name = output_layer_name(model)
    roles = OrderedDict()
    for name, m in _param_layers(model):
        if name == out_name:
            roles[name] = "output"
        else:
            roles[name] = "head" if isinstance(m, nn.Linear) else "features"
    return roles


def prunable_layers(model: nn.Module, layers: str | Iterable[str] = "all") -> list[str]:
    """Names of the hidden layers selected by ``layers``, in model order.

    ``layers`` is ``"all"`` (every hidden layer), ``"head"`` (hidden ``Linear``),
    ``"features"`` (hidden convolutions and embeddings) or an iterable of hidden-layer
    names. The output layer is never a prunable hidden layer; naming it (or an
    unknown name) raises ``ValueError`` listing the allowed names.

    >>> prunable_layers(PosterCNN(), "head")
    ['7', '9']
    """
    roles = layer_roles(model)
    hidden = [n for n, r in roles.items() if r != "output"]
    if isinstance(layers, str):
        if layers == "all":
            return hidden
        if layers in ("head", "features"):
            return [n for n in hidden if roles[n] == layers]
        if layers in roles:
            layers = [layers]
        else:
            raise ValueError(f"unknown layers {layers!r}; allowed: "
                             f"{', '.join(map(repr, LAYER_GROUPS))} or a list of hidden layer "
                             f"names from {hidden}")
    names = list(layers)
    for n in names:
        if n not in roles:
            raise ValueError(f"unknown layer name {n!r}; hidden layers: {hidden}")
        if roles[n] == "output":
            raise ValueError(f"layer {n!r} is the output layer, which is never a prunable hidden "
                             f"layer; hidden layers: {hidden}")
    wanted = set(names)
    return [n for n in hidden if n in wanted]
