"""Models of the study and the roles of their layers (output layer by role, not position)."""

import pytest
import torch
from torch import nn

from prunelib.models import (
    MLP,
    Conv2,
    PosterCNN,
    build_model,
    layer_roles,
    output_layer_name,
    prunable_layers,
)


def test_mlp_shapes_and_forward():
    m = MLP(2, (16, 8), 2)
    assert [(l.in_features, l.out_features) for l in m if isinstance(l, nn.Linear)] == [
        (2, 16), (16, 8), (8, 2)]
    assert [type(l) for l in m] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert m(torch.randn(5, 2)).shape == (5, 2)
    assert m.output_layer == "4"
    assert "0.weight" in m.state_dict()          # layers named by Sequential index
    assert MLP().output_layer == "4" and MLP()[0].out_features == 32


def test_mlp_rejects_bad_widths():
    with pytest.raises(ValueError, match="hidden"):
        MLP(2, (0,), 2)


def test_poster_cnn_matches_the_poster():
    m = PosterCNN()
    assert (m[0].in_channels, m[0].out_channels, m[0].kernel_size) == (3, 6, (5, 5))
    assert (m[3].in_channels, m[3].out_channels, m[3].kernel_size) == (6, 16, (5, 5))
    assert isinstance(m[2], nn.MaxPool2d) and isinstance(m[5], nn.MaxPool2d)
    assert [(l.in_features, l.out_features) for l in (m[7], m[9], m[11])] == [
        (400, 120), (120, 84), (84, 10)]
    assert m.output_layer == "11"
    head = m[7:]                                 # slices are plain Sequentials
    assert type(head) is nn.Sequential and head(torch.randn(2, 400)).shape == (2, 10)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_conv2_matches_frankle_carbin():
    m = Conv2()
    assert (m[0].out_channels, m[0].kernel_size, m[2].out_channels) == (64, (3, 3), 64)
    assert [(l.out_features) for l in (m[6], m[8], m[10])] == [256, 256, 10]
    assert m[6].in_features == 64 * 16 * 16
    assert m.output_layer == "10"
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_build_model_by_name():
    assert isinstance(build_model("mlp", in_features=2, hidden=[4], n_classes=2), MLP)
    assert isinstance(build_model("poster_cnn"), PosterCNN)
    assert isinstance(build_model("conv2", n_classes=5), Conv2)
    with pytest.raises(ValueError, match="'mlp'"):
        build_model("resnet")


def test_build_model_is_seeded_by_global_rng():
    torch.manual_seed(3)
    a = build_model("mlp", in_features=2, hidden=[4], n_classes=2)
    torch.manual_seed(3)
    b = build_model("mlp", in_features=2, hidden=[4], n_classes=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                  b.state_dict().values()))


def test_roles_of_library_models():
    assert layer_roles(MLP(2, (4, 4), 2)) == {"0": "head", "2": "head", "4": "output"}
    assert layer_roles(PosterCNN()) == {"0": "features", "3": "features", "7": "head",
                                        "9": "head", "11": "output"}
    assert prunable_layers(PosterCNN(), "head") == ["7", "9"]
    assert prunable_layers(PosterCNN(), "features") == ["0", "3"]
    assert prunable_layers(Conv2(), "all") == ["0", "2", "6", "8"]
    assert prunable_layers(PosterCNN(), ["9", "0"]) == ["0", "9"]  # model order
    assert prunable_layers(PosterCNN(), "3") == ["3"]


def test_output_layer_by_role_on_shallow_plain_sequential():
    # no hidden layer: the only layer is the output layer, nothing is prunable
    one = nn.Sequential(nn.Linear(2, 3))
    assert output_layer_name(one) == "0"
    assert layer_roles(one) == {"0": "output"}
    assert prunable_layers(one) == []
    # one hidden layer: a fixed "skip layer index 1" rule would pick the wrong one
    two = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    assert layer_roles(two) == {"0": "head", "2": "output"}
    assert prunable_layers(two) == ["0"]
    assert prunable_layers(MLP(2, (), 2)) == []


def test_declared_output_layer_wins_over_position():
    m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3))
    assert output_layer_name(m) == "4"
    m.output_layer = "2"
    assert output_layer_name(m) == "2"
    assert layer_roles(m)["2"] == "output"
    m.output_layer = "9"
    with pytest.raises(ValueError, match="output_layer"):
        output_layer_name(m)


def test_prunable_layers_rejects_unknown_and_output_names():
    m = MLP(2, (4, 4), 2)
    with pytest.raises(ValueError, match="'all'"):
        prunable_layers(m, "everything")
    with pytest.raises(ValueError, match=r"\['0', '2'\]"):
        prunable_layers(m, ["7"])
    with pytest.raises(ValueError, match="output layer"):
        prunable_layers(m, ["4"])
