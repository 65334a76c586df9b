"""Smoke tests for prunelib.netdraw (Agg backend, plain masks / unit dicts)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from torch import nn

from prunelib.netdraw import draw_network, draw_pruning_comparison, network_layout

matplotlib.use("Agg")  # headless; switching after importing pyplot is fine

N_DENSE = 4 * 6 + 6 * 6 + 6 * 2  # 72 connections in a 4-6-6-2 MLP


@pytest.fixture
def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _collection(ax: Axes, gid: str) -> LineCollection | None:
    found = [c for c in ax.collections if c.get_gid() == gid]
    assert len(found) <= 1
    return found[0] if found else None


def _random_masks(net: nn.Module, keep: float = 0.5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        name: (torch.rand(p.shape, generator=g) < keep).float()
        for name, p in net.named_parameters()
        if name.endswith("weight")
    }


def test_dense_network_draws_every_connection(net):
    ax = draw_network(net, title="dense")
    assert isinstance(ax, Axes)
    assert len(_collection(ax, "edges").get_segments()) == N_DENSE
    assert len(_collection(ax, "pruned_edges").get_segments()) == 0
    assert ax.get_title() == "dense"
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["input\n4", "hidden 1\n6", "hidden 2\n6", "output\n2"]


def test_unstructured_masks_edge_count_equals_nonzero_entries(net):
    masks = _random_masks(net)
    nonzero = int(sum(int(m.count_nonzero()) for m in masks.values()))
    assert 0 < nonzero < N_DENSE
    fig, ax = plt.subplots()
    out = draw_network(net, ax=ax, masks=masks)
    assert out is ax
    assert len(_collection(ax, "edges").get_segments()) == nonzero
    assert len(_collection(ax, "pruned_edges").get_segments()) == N_DENSE - nonzero
    hidden = draw_network(net, masks=masks, pruned_style="hidden")
    assert len(_collection(hidden, "edges").get_segments()) == nonzero
    assert _collection(hidden, "pruned_edges") is None
    fig.canvas.draw()  # renders without error


def test_masks_by_layer_name_or_list(net):
    masks = _random_masks(net, seed=3)
    by_module = {k.removesuffix(".weight"): v for k, v in masks.items()}
    as_list = list(masks.values())
    a = network_layout(net, masks=masks)
    b = network_layout(net, masks=by_module)
    c = network_layout(net, masks=as_list)
    assert np.array_equal(a.edges, b.edges) and np.array_equal(a.edges, c.edges)
    # surviving edges are exactly the mask's nonzero entries, weights included
    layer0 = a.edges[a.edges[:, 0] == 0]
    want = torch.nonzero(masks["0.weight"]).numpy()[:, ::-1]  # (to, from) -> (from, to)
    assert sorted(map(tuple, layer0[:, 1:])) == sorted(map(tuple, want))
    w = net[0].weight.detach().numpy()
    assert np.allclose(a.weights[a.edges[:, 0] == 0], w[layer0[:, 2], layer0[:, 1]])
    with pytest.raises(ValueError, match="shape"):
        network_layout(net, masks={"0.weight": torch.ones(2, 2)})


def test_structured_removed_units_lose_all_edges(net):
    removed = {"0": [1, 4], "2": [0]}  # two units of hidden 1, one of hidden 2
    lay = network_layout(net, removed_units=removed)
    assert lay.removed[1] == {1, 4} and lay.removed[2] == {0}
    # 4-6-6-2 with hidden widths 4 and 5 left: 4*4 + 4*5 + 5*2
    assert lay.n_edges == 4 * 4 + 4 * 5 + 5 * 2
    assert lay.n_pruned_edges == N_DENSE - lay.n_edges
    for k, j, i in lay.edges:
        assert j not in lay.removed[k] and i not in lay.removed[k + 1]
    ax = draw_network(net, removed_units=removed, pruned_style="hidden")
    assert len(_collection(ax, "edges").get_segments()) == lay.n_edges
    crossed = [c for c in ax.collections if str(c.get_gid()).startswith("removed_units_")]
    assert sum(len(c.get_offsets()) for c in crossed) == 3
    assert "hidden 1\n4/6" in [t.get_text() for t in ax.texts]


def test_kept_units_equivalent_to_removed_units(net):
    kept = {"0": torch.tensor([0, 2, 3, 5]), 2: [1, 2, 3, 4, 5]}  # by name and by node layer
    a = network_layout(net, kept_units=kept)
    b = network_layout(net, removed_units={1: [1, 4], "2": [0]})
    assert a.removed == b.removed and np.array_equal(a.edges, b.edges)


def test_structured_and_unstructured_combined(net):
    masks = _random_masks(net, keep=0.7, seed=1)
    removed = {"0": [2]}
    lay = network_layout(net, masks=masks, removed_units=removed)
    m0 = masks["0.weight"].clone()
    m0[2, :] = 0
    m1 = masks["2.weight"].clone()
    m1[:, 2] = 0
    want = int(m0.count_nonzero() + m1.count_nonzero() + masks["4.weight"].count_nonzero())
    assert lay.n_edges == want


def test_invalid_inputs(net):
    with pytest.raises(ValueError, match="unknown layer"):
        network_layout(net, removed_units={"fc9": [0]})
    with pytest.raises(ValueError, match="0..5"):
        network_layout(net, removed_units={"0": [6]})
    with pytest.raises(ValueError, match="output"):
        network_layout(net, removed_units={"4": [0]})
    with pytest.raises(ValueError, match="nn.Linear"):
        network_layout(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="consecutive"):
        network_layout(nn.Sequential(nn.Linear(4, 6), nn.Linear(5, 2)))
    with pytest.raises(ValueError, match="pruned_style"):
        draw_network(net, pruned_style="dotted")


def test_named_mlp_like_model_and_comparison_panels():
    torch.manual_seed(1)
    model = nn.Sequential()
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc1", nn.Linear(4, 6))
    model.add_module("act1", nn.ReLU())
    model.add_module("fc2", nn.Linear(6, 6))
    model.add_module("act2", nn.ReLU())
    model.add_module("out", nn.Linear(6, 2))
    masks = {
        "fc1.weight": torch.ones(6, 4),
        "fc2.weight": torch.eye(6),
        "out.weight": torch.ones(2, 6),
    }
    axes = draw_pruning_comparison(model, masks=masks, kept_units={"fc1": [0, 1, 2], "fc2": [5]})
    assert len(axes) == 3 and all(isinstance(a, Axes) for a in axes)
    assert len(_collection(axes[0], "edges").get_segments()) == N_DENSE
    assert len(_collection(axes[1], "edges").get_segments()) == 24 + 6 + 12
    assert len(_collection(axes[2], "edges").get_segments()) == 4 * 3 + 3 * 1 + 1 * 2
    assert [a.get_title() for a in axes] == [
        "dense",
        "unstructured: weights removed",
        "structured: neurons removed",
    ]
    axes[0].figure.canvas.draw()
