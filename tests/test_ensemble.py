"""A batched ensemble trains each member as `train` would train it alone."""

import pytest
import torch
from torch import nn

from prunelib.ensemble import StackedMLP, predict_logits_ensemble, train_ensemble
from prunelib.training import TrainConfig, predict_logits, train


def moons_like(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * torch.pi
    y = torch.randint(0, 2, (n,), generator=g)
    X = torch.stack([torch.cos(t) + y, torch.sin(t) * (1 - 2 * y) + 0.5 * y], 1)
    return X + 0.25 * torch.randn(n, 2, generator=g), y


TRAIN, VAL = moons_like(240, 0), moons_like(120, 1)


def mlp(seed, hidden=(16, 16), dtype=torch.float32):
    torch.manual_seed(seed)
    layers, d = [], 2
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, 2)).to(dtype)


def member_masks(model, seed, keep=0.6):
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.rand(p.shape, generator=g) < keep).to(p.dtype)
            for n, p in model.named_parameters() if n.endswith("weight")}


def assert_same_run(ens, single, m_ens, m_single, atol=1e-5):
    assert ens.best_iteration == single.best_iteration
    assert ens.stopped_iteration == single.stopped_iteration
    assert [h["iteration"] for h in ens.history] == [h["iteration"] for h in single.history]
    for he, hs in zip(ens.history, single.history):
        for k in ("train_loss", "val_loss"):
            assert he[k] == pytest.approx(hs[k], rel=1e-4, abs=1e-6), k
        for k in ("train_acc", "val_acc"):
            assert he[k] == pytest.approx(hs[k], abs=1e-9), k
    assert ens.best_val_loss == pytest.approx(single.best_val_loss, rel=1e-5)
    for (n, pe), (_, ps) in zip(m_ens.state_dict().items(), m_single.state_dict().items()):
        assert torch.allclose(pe, ps, atol=atol), n


@pytest.mark.parametrize("batch_size", [None, 32])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_ensemble_equals_training_each_member_alone(batch_size, optimizer):
    cfg = TrainConfig(optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.1,
                      momentum=0.9, weight_decay=1e-3, batch_size=batch_size, max_iters=120,
                      eval_every=10, patience=3, rewind_iteration=5)
    seeds = [11, 12, 13]
    masks = [None, member_masks(mlp(1), 1), member_masks(mlp(2), 2, keep=0.4)]
    ens_models = [mlp(s) for s in range(3)]
    results = train_ensemble(ens_models, masks, TRAIN, VAL, cfg, seeds=seeds)
    assert len(results) == 3
    for e in range(3):
        alone = mlp(e)
        r = train(alone, TRAIN, VAL, TrainConfig(**{**cfg.__dict__, "seed": seeds[e]}),
                  masks=masks[e])
        assert_same_run(results[e], r, ens_models[e], alone)
        for k, v in r.rewind_state.items():
            assert torch.allclose(results[e].rewind_state[k], v, atol=1e-6)
        if masks[e]:
            params = dict(ens_models[e].named_parameters())
            for n, m in masks[e].items():
                assert torch.all(params[n][m == 0] == 0), n
                assert torch.all(results[e].rewind_state[n][m == 0] == 0), n


def test_float64_members_match_to_rounding():
    cfg = TrainConfig(optimizer="adam", lr=0.02, batch_size=16, max_iters=150, eval_every=10,
                      patience=4)
    models = [mlp(s, dtype=torch.float64) for s in range(3)]
    results = train_ensemble(models, None, TRAIN, VAL, cfg, seeds=[0, 1, 2])
    for e in range(3):
        alone = mlp(e, dtype=torch.float64)
        r = train(alone, TRAIN, VAL, TrainConfig(**{**cfg.__dict__, "seed": e}))
        assert_same_run(results[e], r, models[e], alone, atol=1e-10)


def overshoot_task():
    Xtr, ytr = torch.ones(32, 1), torch.ones(32, dtype=torch.long)
    Xva = torch.ones(50, 1)
    yva = torch.cat([torch.ones(40, dtype=torch.long), torch.zeros(10, dtype=torch.long)])
    return (Xtr, ytr), (Xva, yva)


def linear_at(gap):
    model = nn.Sequential(nn.Linear(1, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([0.0, gap]))
    return model


@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_is_per_member(restore_best):
    tr, va = overshoot_task()
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.5, max_iters=400, eval_every=5,
                      patience=3, restore_best=restore_best, rewind_iteration=20)
    gaps = [3.0, 0.0, -3.0, 1.0]     # past the optimum, before it, far before it, near it
    models = [linear_at(g) for g in gaps]
    results = train_ensemble(models, None, tr, va, cfg)
    stops = [r.stopped_iteration for r in results]
    assert results[0].best_iteration == 0 and stops[0] == 15
    assert len(set(stops)) == len(stops)               # every member stopped on its own
    for g, model, res in zip(gaps, models, results):
        alone = linear_at(g)
        r = train(alone, tr, va, cfg)
        assert_same_run(res, r, model, alone)
        assert len(res.history) == res.stopped_iteration // cfg.eval_every + 1
        # member 0 stopped (and left the stack) before iteration 20: no rewind state
        assert (res.rewind_state is None) == (r.rewind_state is None)
        if r.rewind_state is not None:
            for k, v in r.rewind_state.items():
                assert torch.allclose(res.rewind_state[k], v, atol=1e-6)
    assert results[0].rewind_state is None and results[1].rewind_state is not None


def test_masks_hold_in_the_ensemble_with_sgd_momentum_and_weight_decay():
    cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-2, batch_size=32,
                      max_iters=60, eval_every=20, patience=None, restore_best=False)
    models = [mlp(s) for s in range(4)]
    masks = [member_masks(m, s, keep=0.3 + 0.2 * s) for s, m in enumerate(models)]
    before = [{n: p.detach().clone() for n, p in m.named_parameters()} for m in models]
    train_ensemble(models, masks, TRAIN, VAL, cfg, seeds=[0, 1, 2, 3])
    for m, mk, b in zip(models, masks, before):
        for n, p in m.named_parameters():
            if n in mk:
                assert torch.all(p[mk[n] == 0] == 0), n
                assert not torch.equal(p[mk[n] == 1], b[n][mk[n] == 1]), n


def test_members_of_different_shapes_are_grouped():
    cfg = TrainConfig(optimizer="adam", lr=0.01, batch_size=32, max_iters=40, eval_every=10,
                      patience=None)
    shapes = [(16, 16), (8, 16), (16, 16), (8, 16)]
    models = [mlp(s, hidden=h) for s, h in enumerate(shapes)]
    results = train_ensemble(models, [None] * 4, TRAIN, VAL, cfg, seeds=[5, 6, 7, 8])
    for e, h in enumerate(shapes):
        alone = mlp(e, hidden=h)
        r = train(alone, TRAIN, VAL, TrainConfig(**{**cfg.__dict__, "seed": 5 + e}))
        assert_same_run(results[e], r, models[e], alone)


def test_predict_logits_ensemble_matches_each_model():
    models = [mlp(0), mlp(1), mlp(2, hidden=(8,))]
    X = VAL[0]
    out = predict_logits_ensemble(models, X, batch_size=50)
    assert out.shape == (3, X.shape[0], 2)
    for e, m in enumerate(models):
        assert torch.allclose(out[e], predict_logits(m, X), atol=1e-5)


def test_rejects_models_it_cannot_stack():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(TypeError):
        train_ensemble([conv], None, TRAIN, VAL, TrainConfig(max_iters=1))

    class Skip(nn.Module):                  # a forward that is not its layer sequence
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = nn.Linear(2, 2)

        def forward(self, x):
            return self.b(x) + self.a(x)

    with pytest.raises(TypeError):
        train_ensemble([Skip()], None, TRAIN, VAL, TrainConfig(max_iters=1))
    with pytest.raises(ValueError):
        train_ensemble([mlp(0), mlp(1)], None, TRAIN, VAL, TrainConfig(max_iters=1), seeds=[1])
    with pytest.raises(ValueError, match="unknown parameter"):
        train_ensemble([mlp(0)], [{"7.weight": torch.ones(2, 2)}], TRAIN, VAL,
                       TrainConfig(max_iters=1))


def test_stacked_forward():
    models = [mlp(s) for s in range(3)]
    st = StackedMLP(models)
    X = VAL[0][:10]
    out = st(X)
    out3 = st(X.unsqueeze(0).expand(3, -1, -1))
    for e, m in enumerate(models):
        assert torch.allclose(out[e], m(X), atol=1e-6)
        assert torch.allclose(out3[e], m(X), atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 2, "auto"])
def test_chunking_changes_nothing_but_speed(chunk):
    cfg = TrainConfig(optimizer="adam", lr=0.01, batch_size=32, max_iters=40, eval_every=10,
                      patience=2)
    whole = [mlp(s) for s in range(5)]
    parts = [mlp(s) for s in range(5)]
    ra = train_ensemble(whole, None, TRAIN, VAL, cfg, seeds=list(range(5)), chunk=None)
    rb = train_ensemble(parts, None, TRAIN, VAL, cfg, seeds=list(range(5)), chunk=chunk)
    for a, b, ma, mb in zip(ra, rb, whole, parts):
        assert_same_run(a, b, ma, mb, atol=1e-6)
    with pytest.raises(ValueError):
        train_ensemble(whole, None, TRAIN, VAL, cfg, chunk=0)
