"""Structured removal, unstructured masks, schedules and treatments.

One test per pruning pitfall: the pruned model is what is evaluated, the output
layer is skipped by role, removal takes the bias too (contrast: ``ln_structured``),
the conv->fc flatten boundary, floor counts, scores after the previous layer's
pruning, masks exact and held, and treatments that touch every layer including the
output layer. Issue #16 (models of one's own) is in ``tests/test_own_models.py``.
"""

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunelib import pruning as P
from prunelib.models import MLP, Conv2, PosterCNN, build_model
from prunelib.training import TrainConfig, train


def _seeded(fn, seed=0):
    torch.manual_seed(seed)
    return fn()


def _mlp(seed=0, hidden=(10, 7, 3)):
    return _seeded(lambda: MLP(2, hidden, 2), seed)


def _plain(seed=0):
    return _seeded(lambda: nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(),
                                         nn.Linear(9, 2)), seed)


def _masked_copy(model, masks):
    return P.apply_masks(copy.deepcopy(model), masks)


def _bn_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
        nn.Linear(6 * 2 * 2, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(10, 3))
    for m in net.modules():  # non-trivial statistics and affine parameters
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return net.eval()


# ---------------------------------------------------------------------------
# structured: counts, roles, equivalence
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.29, 0.5, 0.7, 0.9, 0.95])
def test_floor_counts_per_layer(ratio):
    m = _mlp()
    res = P.prune_structured(m, ratio)
    for name, n in (("0", 10), ("2", 7), ("4", 3)):
        want = n - math.floor(round(ratio * n, 9))
        assert len(res.kept[name]) == want
        assert getattr(res.model, name).out_features == want
    assert res.model[2].in_features == res.model[0].out_features
    assert res.model[6].in_features == res.model[4].out_features
    assert res.model[6].out_features == 2


def test_floor_absorbs_float_error():
    assert P.n_removed(0.29, 100) == 29        # 0.29 * 100 = 28.999999999999996
    assert P.n_removed(0.5, 7) == 3
    assert P.n_removed(0.0, 5) == 0


def test_output_layer_never_pruned_on_shallow_nets():
    x = torch.randn(6, 2)
    one = _seeded(lambda: nn.Sequential(nn.Linear(2, 3)))
    res = P.prune_structured(one, 0.9)
    assert res.kept == {}
    assert res.model[0].out_features == 3
    assert torch.allclose(res.model(x), one(x))
    two = _seeded(lambda: nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)))
    res = P.prune_structured(two, 0.5)
    assert res.model[0].out_features == 4 and res.model[2].out_features == 2
    assert P.prune_structured(MLP(2, (5,), 2), 0.8).model[2].out_features == 2


def test_pruned_model_outputs_differ_from_unpruned_and_original_untouched():
    m = _mlp(hidden=(32, 32))
    before = copy.deepcopy(m.state_dict())
    x = torch.randn(32, 2)
    res = P.prune_structured(m, 0.5)
    assert res.model is not m
    assert not torch.allclose(res.model(x), m(x))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("make, shape", [
    (lambda: _mlp(1), (16, 2)),
    (lambda: _plain(1), (16, 2)),
    (lambda: _seeded(PosterCNN, 1), (4, 3, 32, 32)),
    (lambda: _seeded(Conv2, 1), (2, 3, 32, 32)),
    (lambda: _bn_net(1), (4, 3, 10, 10)),
])
@pytest.mark.parametrize("score", ["l1", "l2", "random"])
def test_pruned_equals_dense_with_unit_masks(make, shape, score):
    m = make().eval()
    x = torch.randn(shape)
    res = P.prune_structured(m, 0.6, score=score, seed=4)
    masked = _masked_copy(m, P.unit_masks(m, res.kept))
    assert torch.allclose(res.model.eval()(x), masked(x), atol=1e-5)


def test_removal_equals_silencing_weights_and_bias():
    """The pruned net computes what the dense net computes with the removed units'
    incoming weights AND biases zeroed (no change to the next layer needed)."""
    m = _plain(2)
    with torch.no_grad():
        m[0].bias.fill_(0.5)          # positive biases: relu(bias) > 0 if left alive
        m[2].bias.fill_(0.5)
    x = torch.randn(64, 2)
    res = P.prune_structured(m, 0.5)
    silenced = copy.deepcopy(m)
    with torch.no_grad():
        for name in ("0", "2"):
            layer = silenced.get_submodule(name)
            gone = [i for i in range(layer.out_features) if i not in set(res.kept[name].tolist())]
            layer.weight[gone] = 0
            layer.bias[gone] = 0
    assert torch.allclose(res.model(x), silenced(x), atol=1e-6)


def test_ln_structured_zeroing_leaves_relu_bias_alive():
    """Contrast: torch's ln_structured zeroes rows only; relu(bias) still flows on."""
    m = _plain(2)
    with torch.no_grad():
        m[0].bias.fill_(0.5)
        m[2].bias.fill_(0.5)
    x = torch.randn(64, 2)
    res = P.prune_structured(m, 0.5, layers=["0"])
    zeroed = copy.deepcopy(m)
    torch_prune.ln_structured(zeroed[0], "weight", amount=6, n=1, dim=0)
    gone = (zeroed[0].weight == 0).all(1)
    assert gone.sum() == 6
    assert set(torch.nonzero(~gone).reshape(-1).tolist()) == set(res.kept["0"].tolist())
    hidden = torch.relu(zeroed[0](x))
    assert (hidden[:, gone] == 0.5).all()            # the "pruned" units still emit relu(b)
    assert not torch.allclose(zeroed(x), res.model(x), atol=1e-4)


def test_conv_fc_flatten_boundary_poster_cnn():
    m = _seeded(PosterCNN, 3).eval()
    x = torch.randn(4, 3, 32, 32)
    res = P.prune_structured(m, 0.5, layers=["3"])
    kept = res.kept["3"]
    assert len(kept) == 8 and res.model[3].out_channels == 8
    assert res.model[7].in_features == 8 * 25
    cols = (kept[:, None] * 25 + torch.arange(25)).reshape(-1)     # 25 = 5 * 5 per channel
    assert torch.equal(res.model[7].weight, m[7].weight[:, cols])
    assert torch.equal(res.model[9].weight, m[9].weight)
    assert torch.allclose(res.model(x), _masked_copy(m, P.unit_masks(m, res.kept))(x), atol=1e-5)
    masks = P.unit_masks(m, res.kept)
    assert masks["7.weight"].sum() == 120 * 8 * 25
    assert set(masks) == {"3.weight", "3.bias", "7.weight"}


def test_batchnorm_after_conv_is_pruned_with_it():
    net = _bn_net(5)
    res = P.prune_structured(net, 0.5)
    assert res.model[1].num_features == res.model[0].out_channels == 4
    assert torch.equal(res.model[1].running_mean, net[1].running_mean[res.kept["0"]])
    assert res.model[9].num_features == 5
    masks = P.unit_masks(net, res.kept)
    assert {"1.weight", "1.bias", "5.weight", "5.bias", "9.weight", "9.bias"} <= set(masks)


def test_layers_head_leaves_convs_alone():
    m = _seeded(PosterCNN)
    res = P.prune_structured(m, 0.5, layers="head")
    assert set(res.kept) == {"7", "9"}
    assert torch.equal(res.model[0].weight, m[0].weight)
    assert (res.model[7].in_features, res.model[7].out_features) == (400, 60)
    assert res.model[9].out_features == 42 and res.model[11].in_features == 42


def test_scores_computed_after_previous_layer_is_pruned():
    m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[0.01, 0.01], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]))
        # unit 0 of layer 2 is big only on the input from unit 0 of layer 0 (pruned first)
        m[2].weight.copy_(torch.tensor([[9.0, 0.1, 0.1, 0.1],
                                        [0.5, 0.5, 0.5, 0.5],
                                        [0.4, 0.4, 0.4, 0.4],
                                        [0.3, 0.3, 0.3, 0.3]]))
    res = P.prune_structured(m, 0.25)
    assert res.kept["0"].tolist() == [1, 2, 3]
    assert res.kept["2"].tolist() == [1, 2, 3]     # unit 0 is weakest on what remains
    alone = P.prune_structured(m, 0.25, layers=["2"])
    assert alone.kept["2"].tolist() == [0, 1, 2]   # on the full weights unit 3 is weakest


def test_l1_and_l2_scores_differ():
    m = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]]))
    assert P.prune_structured(m, 0.5, score="l1").kept["0"].tolist() == [0]
    assert P.prune_structured(m, 0.5, score="l2").kept["0"].tolist() == [1]


def test_ties_go_to_the_lower_index():
    m = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        m[0].weight.fill_(1.0)
    assert P.prune_structured(m, 0.5).kept["0"].tolist() == [3, 4, 5]


def test_random_score_is_seeded_and_ignores_weights():
    a, b = MLP(2, (100,), 2), MLP(2, (100,), 2)
    ka = P.prune_structured(a, 0.5, score="random", seed=1).kept["0"]
    kb = P.prune_structured(b, 0.5, score="random", seed=1).kept["0"]
    kc = P.prune_structured(a, 0.5, score="random", seed=2).kept["0"]
    assert torch.equal(ka, kb) and not torch.equal(ka, kc)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, "0.5", True])
def test_bad_ratio_raises(ratio):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        P.prune_structured(_mlp(), ratio)


def test_ratio_leaving_no_units_unknown_score_and_layers_raise():
    with pytest.raises(ValueError, match="no units"):
        P.prune_structured(_mlp(), 1 - 1e-12)
    with pytest.raises(ValueError, match="'l1'.*'l2'.*'random'"):
        P.prune_structured(_mlp(), 0.5, score="l3")
    with pytest.raises(ValueError, match="hidden layers"):
        P.prune_structured(_mlp(), 0.5, layers=["9"])
    with pytest.raises(ValueError, match="output layer"):
        P.prune_structured(_mlp(), 0.5, layers=["6"])
    with pytest.raises(ValueError, match="'head'"):
        P.prune_structured(_mlp(), 0.5, layers="hidden")


def test_unit_masks_silence_rows_bias_and_next_columns():
    m = _mlp()
    res = P.prune_structured(m, 0.5)
    masks = P.unit_masks(m, res.kept)
    k1 = res.kept["0"]
    gone = torch.ones(10, dtype=torch.bool)
    gone[k1] = False
    assert (masks["0.weight"][gone] == 0).all() and (masks["0.weight"][~gone] == 1).all()
    assert (masks["0.bias"][gone] == 0).all() and (masks["0.bias"][~gone] == 1).all()
    assert (masks["2.weight"][:, gone] == 0).all()
    assert "6.bias" not in masks and masks["6.weight"].shape == (2, 3)
    # physically small model == dense weights gathered at the kept positions
    assert torch.equal(res.model[2].weight, m[2].weight[res.kept["2"]][:, k1])


def test_shrink_of_kept_reproduces_prune_structured():
    m = _seeded(PosterCNN, 2)
    res = P.prune_structured(m, 0.4)
    small = P.shrink(m, res.kept)
    assert all(torch.equal(a, b) for a, b in zip(small.state_dict().values(),
                                                  res.model.state_dict().values()))


# ---------------------------------------------------------------------------
# iterative structured removal
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("target, rounds", [(0.8, 3), (0.5, 4), (0.95, 2), (0.29, 5)])
def test_iterative_removal_ends_at_the_one_shot_counts(target, rounds):
    m = _mlp(hidden=(100, 37, 8))
    ratios = P.structured_round_ratios(target, rounds)
    assert ratios[-1] == target
    kept = None
    for r in ratios:
        new = P.prune_structured_to(m, r, kept=kept)
        if kept is not None:
            for k in kept:   # removed units never come back
                assert set(new[k].tolist()) <= set(kept[k].tolist())
        kept = new
        apply = P.unit_masks(m, kept)
        m = _masked_copy(m, apply)
    one_shot = P.prune_structured(_mlp(hidden=(100, 37, 8)), target).kept
    for name, n in (("0", 100), ("2", 37), ("4", 8)):
        assert len(kept[name]) == len(one_shot[name]) == n - P.n_removed(target, n)
        assert [n - P.n_removed(r, n) for r in ratios] == P.structured_keep_counts(n, target,
                                                                                    rounds)
    counts = P.structured_keep_counts(100, target, rounds)
    assert counts == sorted(counts, reverse=True)
    keep = (1 - target) ** (1 / rounds)
    assert abs(counts[0] - 100 * keep) <= 1      # intermediate rounds: by rounding


@pytest.mark.parametrize("make, layers", [(PosterCNN, "head"), (PosterCNN, "all"),
                                           (lambda: _mlp(hidden=(10, 8)), "all")])
def test_surviving_units_recovers_kept_from_a_masked_model(make, layers):
    """A stored structured run is a dense-shaped model with zeros: its units are found again,
    and shrinking by them gives the same outputs as the masked model."""
    torch.manual_seed(0)
    m = make()
    assert P.surviving_units(m) == {}  # nothing removed
    kept = P.prune_structured_to(m, 0.5, layers=layers)
    masked = _masked_copy(m, P.unit_masks(m, kept))
    found = P.surviving_units(masked)
    assert found.keys() == kept.keys()
    assert all(torch.equal(found[k], kept[k]) for k in kept)
    x = torch.randn(4, 3, 32, 32) if make is PosterCNN else torch.randn(4, 2)
    small = P.shrink(masked, found)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in m.parameters())
    assert torch.allclose(small(x), masked(x), atol=1e-5)


def test_iterative_removal_ignores_weights_of_removed_units():
    m = _mlp(hidden=(10, 10, 10))
    kept = P.prune_structured_to(m, 0.5)
    with torch.no_grad():       # a treatment may leave anything in the removed rows
        gone = [i for i in range(10) if i not in set(kept["0"].tolist())]
        m[0].weight[gone] = 100.0
    again = P.prune_structured_to(m, 0.7, kept=kept)
    assert set(again["0"].tolist()) <= set(kept["0"].tolist())
    assert len(again["0"]) == 3


# ---------------------------------------------------------------------------
# unstructured masks
# ---------------------------------------------------------------------------
def _count_masked(m):
    return int((m == 0).sum())


@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.8])
def test_magnitude_masks_layerwise_exact_counts_output_at_half_rate(ratio):
    m = _seeded(lambda: MLP(2, (30, 20), 3))
    masks = P.magnitude_masks(m, ratio)
    assert set(masks) == {"0.weight", "2.weight", "4.weight"}   # weights only
    for name, r in (("0", ratio), ("2", ratio), ("4", ratio / 2)):
        w, mk = getattr(m, name).weight, masks[f"{name}.weight"]
        assert _count_masked(mk) == math.floor(r * w.numel() + 0.5)
        assert w[mk == 0].abs().max() <= w[mk == 1].abs().min()
    other = P.magnitude_masks(m, ratio, output_ratio=0.0)
    assert _count_masked(other["4.weight"]) == 0


def test_magnitude_masks_global_share_one_threshold():
    m = _seeded(lambda: MLP(2, (30, 20), 3))
    with torch.no_grad():
        m[2].weight.mul_(10)      # bigger layer-2 weights: global masks mostly layer 0
    masks = P.magnitude_masks(m, 0.5, scope="global", output_ratio=0.3)
    pool_w = torch.cat([m[0].weight.reshape(-1), m[2].weight.reshape(-1)])
    pool_m = torch.cat([masks["0.weight"].reshape(-1), masks["2.weight"].reshape(-1)])
    assert _count_masked(pool_m) == round(0.5 * pool_w.numel())
    assert pool_w[pool_m == 0].abs().max() <= pool_w[pool_m == 1].abs().min()
    assert _count_masked(masks["0.weight"]) / 60 > _count_masked(masks["2.weight"]) / 600
    assert _count_masked(masks["4.weight"]) == round(0.3 * 60)


def test_ratio_counts_among_unmasked_and_old_masks_stay():
    m = _seeded(lambda: MLP(2, (40,), 2))
    first = P.magnitude_masks(m, 0.5)
    with torch.no_grad():      # large values at masked positions must not revive them
        m[0].weight[first["0.weight"] == 0] = 50.0
    second = P.magnitude_masks(m, 0.5, masks=first)
    assert _count_masked(second["0.weight"]) == 40 + 20
    assert (second["0.weight"][first["0.weight"] == 0] == 0).all()


def test_masks_cumulative_iterative_equals_one_shot_exactly():
    m = _seeded(lambda: MLP(2, (33, 17), 3))
    target, rounds = 0.8, 3
    fracs = P.iterative_keep_fractions(target, rounds)
    assert fracs[-1] == 1 - target
    ratios = P.iterative_round_ratios(target, rounds)
    assert all(r == pytest.approx(ratios[0]) for r in ratios)         # constant rate
    assert math.prod(1 - r for r in ratios) == pytest.approx(1 - target, rel=1e-12)
    masks, masks_c = None, None
    for r, f in zip(ratios, fracs):
        masks = P.magnitude_masks(m, r, masks=masks)
        masks_c = P.magnitude_masks(m, 1 - f, masks=masks_c, cumulative=True)
    one = P.magnitude_masks(m, target)
    for k in one:
        assert _count_masked(masks_c[k]) == _count_masked(one[k])
        if k == "4.weight":     # per-round half rate compounds differently from target / 2
            continue
        n = one[k].numel()
        assert abs(_count_masked(masks[k]) - _count_masked(one[k])) <= 1 + 0.01 * n


def test_ties_in_magnitude_are_broken_by_index():
    m = MLP(2, (4,), 2)
    with torch.no_grad():
        m[0].weight.fill_(0.3)
    masks = P.magnitude_masks(m, 0.5)
    assert masks["0.weight"].reshape(-1).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert torch.equal(masks["0.weight"], P.magnitude_masks(m, 0.5)["0.weight"])


def test_random_masks_seeded_exact_counts():
    m = _seeded(lambda: MLP(2, (50, 50), 2))
    a = P.random_masks(m, 0.6, seed=3)
    b = P.random_masks(m, 0.6, seed=3)
    c = P.random_masks(m, 0.6, seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["2.weight"], c["2.weight"])
    assert _count_masked(a["2.weight"]) == 1500 and _count_masked(a["4.weight"]) == 30
    g = P.random_masks(m, 0.6, seed=3, scope="global")
    assert _count_masked(g["0.weight"]) + _count_masked(g["2.weight"]) == 1560


def test_mask_layers_selection_and_errors():
    m = _seeded(PosterCNN)
    head = P.magnitude_masks(m, 0.5, layers="head")
    assert set(head) == {"7.weight", "9.weight", "11.weight"}
    feats = P.magnitude_masks(m, 0.5, layers="features")
    assert set(feats) == {"0.weight", "3.weight"}
    assert set(P.magnitude_masks(m, 0.5, layers=["7", "11"])) == {"7.weight", "11.weight"}
    with pytest.raises(ValueError, match="layer"):
        P.magnitude_masks(m, 0.5, layers=["5"])
    with pytest.raises(ValueError, match="scope"):
        P.magnitude_masks(m, 0.5, scope="net")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        P.magnitude_masks(m, 0.5, output_ratio=1.2)


def test_apply_masks_exact_zeros():
    m = _seeded(lambda: MLP(2, (20,), 2))
    masks = P.magnitude_masks(m, 0.7)
    before = m[0].weight.detach().clone()
    P.apply_masks(m, masks)
    assert (m[0].weight[masks["0.weight"] == 0] == 0).all()
    keep = masks["0.weight"] == 1
    assert torch.equal(m[0].weight[keep], before[keep])
    with pytest.raises(ValueError, match="unknown parameter"):
        P.apply_masks(m, {"nope.weight": torch.ones(1)})


def test_masks_hold_through_training_with_momentum_and_weight_decay():
    torch.manual_seed(0)
    m = MLP(2, (16, 16), 2)
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    masks = P.magnitude_masks(m, 0.8)
    cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-2, max_iters=20,
                      eval_every=5, patience=None)
    train(m, (x, y), (x, y), cfg, masks=masks)
    for k, mk in masks.items():
        assert (dict(m.named_parameters())[k][mk == 0] == 0).all()


def test_optimizer_after_structured_prune_trains_every_new_layer():
    torch.manual_seed(0)
    res = P.prune_structured(MLP(2, (16, 16), 2), 0.5)
    before = copy.deepcopy(res.model.state_dict())
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    train(res.model, (x, y), (x, y), TrainConfig(lr=0.05, max_iters=5, eval_every=5,
                                                 patience=None, restore_best=False))
    for k, v in res.model.state_dict().items():
        assert not torch.equal(v, before[k]), k


# ---------------------------------------------------------------------------
# treatments
# ---------------------------------------------------------------------------
def _states(seed=0):
    torch.manual_seed(seed)
    model = MLP(2, (12, 8), 3)
    init = copy.deepcopy(model.state_dict())
    with torch.no_grad():        # stand-ins for "trained" and "after K iterations"
        rewind = {k: v + 0.1 * torch.randn_like(v) for k, v in init.items()}
        trained = {k: v + 0.5 * torch.randn_like(v) for k, v in init.items()}
    model.load_state_dict(trained)
    return model, init, rewind, trained


def _fn():
    return MLP(2, (12, 8), 3)


@pytest.mark.parametrize("kind", ["unstructured", "structured"])
def test_every_treatment_touches_every_layer_including_output(kind):
    model, init, rewind, trained = _states()
    if kind == "unstructured":
        masks, kept = P.magnitude_masks(model, 0.5), None
    else:
        kept = P.prune_structured_to(model, 0.5)
        masks = P.unit_masks(model, kept)
    out = {t: P.treat(t, trained=trained, init=init, rewind=rewind, masks=masks, model_fn=_fn,
                      seed=11, kept=kept)
           for t in ("finetune", "reset", "rewind", "reinit")}
    sources = {"finetune": trained, "reset": init, "rewind": rewind}
    for key in trained:
        mk = masks.get(key, torch.ones_like(trained[key]))
        for t, src in sources.items():
            assert torch.equal(out[t][key], src[key] * mk), (t, key)
        alive = mk != 0
        # the four treatments differ on every layer, output weights and biases included
        vals = [out[t][key][alive] for t in out]
        for i in range(4):
            for j in range(i + 1, 4):
                assert not torch.allclose(vals[i], vals[j]), (key, i, j)
        assert (out["reinit"][key][~alive] == 0).all()
    assert {"4.weight", "4.bias"} <= set(trained)


def test_reinit_is_seeded_and_leaves_global_rng_alone():
    _, init, _, trained = _states()
    state = torch.get_rng_state()
    a = P.treat("reinit", trained=trained, init=init, masks={}, model_fn=_fn, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = P.treat("reinit", trained=trained, init=init, masks={}, model_fn=_fn, seed=5)
    c = P.treat("reinit", trained=trained, init=init, masks={}, model_fn=_fn, seed=6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["4.weight"], c["4.weight"])
    torch.manual_seed(5)
    fresh = _fn().state_dict()
    assert all(torch.equal(a[k], fresh[k]) for k in a)


def test_reinit_of_structured_pruning_uses_the_small_fan_in():
    torch.manual_seed(0)
    dense = MLP(2, (40, 30), 2)
    kept = {"0": torch.arange(0, 40, 4), "2": torch.arange(0, 30, 5)}   # 10 and 6 units
    masks = P.unit_masks(dense, kept)
    st = P.treat("reinit", trained=dense.state_dict(), init=dense.state_dict(), masks=masks,
                 model_fn=lambda: MLP(2, (40, 30), 2), seed=9, kept=kept)
    torch.manual_seed(9)
    small = MLP(2, (10, 6), 2)      # the same-shape small net trained from scratch
    got = copy.deepcopy(dense)
    got.load_state_dict(st)
    shrunk = P.shrink(got, kept)
    for k, v in small.state_dict().items():
        assert torch.equal(shrunk.state_dict()[k], v), k
    w2 = st["2.weight"][kept["2"]][:, kept["0"]]
    assert w2.abs().max() > 1 / math.sqrt(40)        # a dense fan-in of 40 could not reach
    assert w2.abs().max() <= 1 / math.sqrt(10)
    assert st["4.weight"][:, kept["2"]].abs().max() > 1 / math.sqrt(30)
    assert (st["2.weight"][masks["2.weight"] == 0] == 0).all()


def test_reinit_structured_with_batchnorm_and_conv():
    net = _bn_net(0)
    kept = P.prune_structured_to(net, 0.5)
    masks = P.unit_masks(net, kept)
    st = P.treat("reinit", trained=net.state_dict(), init=net.state_dict(), masks=masks,
                 model_fn=lambda: _bn_net(0), seed=1, kept=kept)
    fresh = _bn_net(0)
    fresh.load_state_dict(st)
    small = P.shrink(fresh, kept).eval()
    x = torch.randn(4, 3, 10, 10)
    assert torch.allclose(small(x), fresh.eval()(x), atol=1e-5)
    assert small[0].weight.abs().max() <= 1 / math.sqrt(27) + 1e-6


def test_random_mask_control_is_random_masks_then_reset():
    model, init, _, trained = _states()
    masks = P.random_masks(model, 0.5, seed=2)
    st = P.treat("reset", trained=trained, init=init, masks=masks)
    assert all(torch.equal(st[k], init[k] * masks.get(k, 1)) for k in init)
    with pytest.raises(ValueError, match="random_masks"):
        P.treat("random_mask", trained=trained, init=init, masks=masks)


def test_treatment_errors():
    _, init, _, trained = _states()
    with pytest.raises(ValueError, match="'finetune'"):
        P.treat("retrain", trained=trained, init=init, masks={})
    with pytest.raises(ValueError, match="rewind"):
        P.treat("rewind", trained=trained, init=init, masks={})
    with pytest.raises(ValueError, match="model_fn"):
        P.treat("reinit", trained=trained, init=init, masks={})
    assert torch.equal(P.treat("rewind50", trained=trained, init=init, rewind=init,
                               masks={})["4.bias"], init["4.bias"])


def test_build_model_fn_works_with_treat():
    torch.manual_seed(0)
    model = build_model("poster_cnn")
    st = P.treat("reinit", trained=model.state_dict(), init=model.state_dict(),
                 masks=P.magnitude_masks(model, 0.5, layers="head"),
                 model_fn=lambda: build_model("poster_cnn"), seed=3)
    assert (st["11.weight"] == 0).sum() == round(0.25 * 840)
