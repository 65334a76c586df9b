"""The trainer: early-stop point, best-weight copies, masks, optimizer, determinism."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelib.training import (
    TrainConfig,
    TrainResult,
    evaluate,
    predict_logits,
    snapshot,
    train,
)


def blobs(n=240, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])[:classes]
    y = torch.randint(0, classes, (n,), generator=g)
    X = centers[y] + 0.9 * torch.randn(n, 2, generator=g)
    return X, y


def mlp(seed=0, hidden=16, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def overshoot_task():
    """Train labels all 1, validation labels 80 % 1: the validation loss is lowest
    when the logit gap reaches log(4), then rises as training pushes the gap on."""
    Xtr = torch.ones(32, 1)
    ytr = torch.ones(32, dtype=torch.long)
    Xva = torch.ones(50, 1)
    yva = torch.cat([torch.ones(40, dtype=torch.long), torch.zeros(10, dtype=torch.long)])
    return (Xtr, ytr), (Xva, yva)


def linear_at(gap=0.0):
    model = nn.Sequential(nn.Linear(1, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([0.0, gap]))
    return model


def params_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.values(), b.values()))


# --- early stopping ----------------------------------------------------------------
def test_best_iteration_is_argmin_of_val_loss_not_the_stop_point():
    tr, va = overshoot_task()
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.0, max_iters=1000, eval_every=5,
                      patience=4)
    res = train(linear_at(0.0), tr, va, cfg)
    losses = [h["val_loss"] for h in res.history]
    iters = [h["iteration"] for h in res.history]
    k = min(range(len(losses)), key=losses.__getitem__)
    assert res.best_iteration == iters[k]
    assert res.best_val_loss == losses[k]
    assert 0 < res.best_iteration < res.stopped_iteration < cfg.max_iters
    # patience ran out `patience` evaluations after the best one
    assert res.stopped_iteration == res.best_iteration + cfg.patience * cfg.eval_every
    assert all(v > res.best_val_loss for v in losses[k + 1:])
    assert iters == list(range(0, res.stopped_iteration + 1, cfg.eval_every))
    # the optimum of the validation loss is the logit gap log 4
    model = linear_at(0.0)
    train(model, tr, va, cfg)
    gap = (model[0].bias[1] - model[0].bias[0] + model[0].weight[1, 0] - model[0].weight[0, 0])
    assert abs(gap.item() - math.log(4)) < 0.3


def test_fixed_budget_keeps_the_last_weights_by_default():
    """patience=None (a fixed budget, e.g. a lottery-ticket round) keeps the last weights
    unless restore_best=True is asked for; early stopping restores the best (issue #16.6)."""
    assert TrainConfig(patience=None).restore_best is False
    assert TrainConfig(patience=3).restore_best is True
    assert TrainConfig(patience=None, restore_best=True).restore_best is True
    tr, va = overshoot_task()
    base = dict(optimizer="sgd", lr=0.05, momentum=0.0, max_iters=400, eval_every=5)
    default, last, best = linear_at(0.0), linear_at(0.0), linear_at(0.0)
    res = train(default, tr, va, TrainConfig(**base, patience=None))
    train(last, tr, va, TrainConfig(**base, patience=None, restore_best=False))
    train(best, tr, va, TrainConfig(**base, patience=None, restore_best=True))
    assert 0 < res.best_iteration < res.stopped_iteration == 400    # the best is not the last
    assert params_equal(default.state_dict(), last.state_dict())
    assert not params_equal(default.state_dict(), best.state_dict())


def test_best_can_be_iteration_zero():
    tr, va = overshoot_task()
    cfg = TrainConfig(optimizer="sgd", lr=0.5, momentum=0.0, max_iters=200, eval_every=5,
                      patience=3)
    model = linear_at(3.0)           # already past the optimum: every step makes it worse
    res = train(model, tr, va, cfg)
    assert res.best_iteration == 0
    assert res.stopped_iteration == 15
    assert torch.allclose(model[0].bias, torch.tensor([0.0, 3.0]))   # initial weights back


def test_restores_a_real_copy_of_the_best_weights():
    tr, va = overshoot_task()
    base = {"optimizer": "sgd", "lr": 0.5, "momentum": 0.0, "max_iters": 1000,
            "eval_every": 5, "patience": 4}
    best_model = linear_at(0.0)
    res = train(best_model, tr, va, TrainConfig(**base))

    # the same run, final weights left in place
    final_model = linear_at(0.0)
    by_reference = final_model.state_dict()          # the pitfall: references, not copies
    res_final = train(final_model, tr, va, TrainConfig(**base, restore_best=False,
                                                       rewind_iteration=0))
    assert res_final.history == res.history
    # a state_dict "saved" before training followed the training to its end ...
    assert params_equal(by_reference, final_model.state_dict())
    assert not torch.equal(by_reference["0.bias"], torch.tensor([0.0, 0.0]))
    # ... whereas a copy (as the trainer keeps) still holds the weights it copied
    assert torch.equal(res_final.rewind_state["0.bias"], torch.tensor([0.0, 0.0]))

    # the weights at the best iteration, by training exactly that long
    at_best = linear_at(0.0)
    train(at_best, tr, va, TrainConfig(**{**base, "max_iters": res.best_iteration,
                                          "patience": None}, restore_best=False))
    assert params_equal(best_model.state_dict(), at_best.state_dict())
    assert not params_equal(best_model.state_dict(), final_model.state_dict())
    loss, _ = evaluate(best_model, *va)
    assert loss == pytest.approx(res.best_val_loss, rel=1e-6)


# --- masks -------------------------------------------------------------------------
def random_masks(model, seed=0, keep=0.5):
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for name, p in model.named_parameters():
        masks[name] = (torch.rand(p.shape, generator=g) < keep).float()
    return masks


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_masks_hold_with_momentum_and_weight_decay(optimizer):
    tr, va = blobs(240, 0), blobs(120, 1)
    model = mlp(0)
    before = snapshot(model)
    masks = random_masks(model, seed=1)
    cfg = TrainConfig(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.01,
                      momentum=0.9, weight_decay=1e-2, batch_size=32, max_iters=80,
                      eval_every=10, patience=None, restore_best=False)
    train(model, tr, va, cfg, masks=masks)
    for name, p in model.named_parameters():
        assert torch.all(p[masks[name] == 0] == 0), name
        kept = masks[name] == 1
        assert not torch.equal(p[kept], before[name][kept]), name   # the rest trained

    # the pitfall: masking once before training does not hold through it
    loose = mlp(0)
    with torch.no_grad():
        for name, p in loose.named_parameters():
            p.mul_(masks[name])
    train(loose, tr, va, cfg)
    w = dict(loose.named_parameters())["2.weight"]
    assert torch.count_nonzero(w[masks["2.weight"] == 0]) > 0


def test_bad_masks_are_rejected():
    tr, va = blobs(60, 0), blobs(30, 1)
    with pytest.raises(ValueError, match="unknown parameter"):
        train(mlp(0), tr, va, TrainConfig(max_iters=2), masks={"9.weight": torch.ones(3, 3)})
    with pytest.raises(ValueError, match="shape"):
        train(mlp(0), tr, va, TrainConfig(max_iters=2), masks={"0.weight": torch.ones(3, 3)})


# --- the optimizer -----------------------------------------------------------------
def test_optimizer_sees_layers_replaced_before_the_call():
    tr, va = blobs(120, 0), blobs(60, 1)
    model = mlp(0)
    stale = torch.optim.SGD(model.parameters(), lr=0.1)       # built before the replacement
    torch.manual_seed(5)
    model[0] = nn.Linear(2, 8)
    model[2] = nn.Linear(8, 16)
    new_ids = {id(p) for layer in (model[0], model[2]) for p in layer.parameters()}
    assert not new_ids & {id(p) for g in stale.param_groups for p in g["params"]}
    before = snapshot(model)
    train(model, tr, va, TrainConfig(optimizer="adam", lr=0.01, max_iters=10, eval_every=5,
                                     patience=None, restore_best=False))
    for name, p in model.state_dict().items():
        assert not torch.equal(p, before[name]), f"{name} was not trained"


# --- determinism, rewind -----------------------------------------------------------
def test_same_seed_same_history_different_seed_differs():
    tr, va = blobs(240, 0), blobs(120, 1)
    cfg = TrainConfig(optimizer="adam", lr=0.01, batch_size=16, max_iters=60, eval_every=10,
                      patience=None, seed=3)
    a, b, c = mlp(0), mlp(0), mlp(0)
    ra = train(a, tr, va, cfg)
    rb = train(b, tr, va, cfg)
    rc = train(c, tr, va, TrainConfig(**{**cfg.__dict__, "seed": 4}))
    assert ra.history == rb.history
    assert ra.best_iteration == rb.best_iteration
    assert params_equal(a.state_dict(), b.state_dict())
    assert ra.history != rc.history
    assert not params_equal(a.state_dict(), c.state_dict())


def test_rewind_state_is_the_state_after_k_iterations():
    tr, va = blobs(240, 0), blobs(120, 1)
    masks = random_masks(mlp(0), seed=2, keep=0.7)
    base = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 32,
            "max_iters": 40, "eval_every": 10, "patience": None}
    model = mlp(0)
    res = train(model, tr, va, TrainConfig(**base, rewind_iteration=7), masks=masks)
    at_k = mlp(0)
    train(at_k, tr, va, TrainConfig(**{**base, "max_iters": 7}, restore_best=False),
          masks=masks)
    assert params_equal(res.rewind_state, at_k.state_dict())
    assert not params_equal(res.rewind_state, model.state_dict())
    with torch.no_grad():                      # a copy: changing the model leaves it alone
        model[0].weight.add_(1.0)
    assert params_equal(res.rewind_state, at_k.state_dict())

    init = mlp(0)
    res0 = train(mlp(0), tr, va, TrainConfig(**base, rewind_iteration=0), masks=masks)
    for name, p in init.named_parameters():
        assert torch.equal(res0.rewind_state[name], p.detach() * masks[name])

    tr1, va1 = overshoot_task()   # stops at 15 < 100: no state after 100 iterations
    res_late = train(linear_at(3.0), tr1, va1, TrainConfig(
        optimizer="sgd", lr=0.5, max_iters=200, eval_every=5, patience=3, rewind_iteration=100))
    assert res_late.rewind_state is None


# --- config ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"optimizer": "rmsprop"}, {"lr": 0}, {"lr": -1e-3}, {"lr": float("nan")},
    {"batch_size": 0}, {"batch_size": 2.5}, {"max_iters": 0}, {"eval_every": 0},
    {"patience": 0}, {"weight_decay": -1.0}, {"momentum": -0.1}, {"momentum": 1.0},
    {"rewind_iteration": -1}, {"seed": 1.5},
])
def test_invalid_config_raises(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_valid_config_defaults():
    cfg = TrainConfig(batch_size=None, patience=None, rewind_iteration=0)
    assert cfg.optimizer == "adam" and cfg.batch_size is None


# --- history, evaluation -----------------------------------------------------------
def test_history_entries_and_train_metrics():
    tr, va = blobs(200, 0), blobs(100, 1)
    model = mlp(0)
    init_loss, init_acc = evaluate(model, *tr)
    cfg = TrainConfig(optimizer="adam", lr=0.01, max_iters=23, eval_every=10, patience=None)
    res = train(model, tr, va, cfg)
    assert isinstance(res, TrainResult)
    assert [h["iteration"] for h in res.history] == [0, 10, 20, 23]
    assert res.stopped_iteration == 23
    for h in res.history:
        assert set(h) == {"iteration", "train_loss", "train_acc", "val_loss", "val_acc"}
        assert all(math.isfinite(v) for v in h.values())
    # full batch: the train metrics at iteration 0 are those of the initial model
    assert res.history[0]["train_loss"] == pytest.approx(init_loss, rel=1e-5)
    assert res.history[0]["train_acc"] == pytest.approx(init_acc)
    assert res.best_val_acc == next(h["val_acc"] for h in res.history
                                    if h["iteration"] == res.best_iteration)


def test_evaluate_and_predict_logits():
    X, y = blobs(300, 3)
    model = mlp(1)
    model.train()
    logits = predict_logits(model, X, batch_size=64)
    assert logits.shape == (300, 3)
    assert model.training                                  # mode restored
    with torch.no_grad():
        assert torch.allclose(logits, model(X), atol=1e-6)
        ref_loss = F.cross_entropy(model(X), y).item()
        ref_acc = (model(X).argmax(1) == y).float().mean().item()
    loss, acc = evaluate(model, X, y, batch_size=64)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert acc == pytest.approx(ref_acc)


def test_conv_model_trains_with_masks_and_channels_last():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 3, 8, 8, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    mask = (torch.rand(4, 3, 3, 3, generator=g) < 0.5).float()

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(36, 4))

    runs = {}
    for cl in (True, False):
        model = net()
        res = train(model, (X, y), (X[:32], y[:32]),
                    TrainConfig(optimizer="sgd", lr=0.05, batch_size=16, max_iters=12,
                                eval_every=4, patience=None, weight_decay=1e-3,
                                channels_last=cl),
                    masks={"0.weight": mask})
        assert torch.all(model[0].weight[mask == 0] == 0)
        assert model[0].weight.is_contiguous()
        runs[cl] = (res, model)
    (a, ma), (b, mb) = runs[True], runs[False]
    assert [h["iteration"] for h in a.history] == [h["iteration"] for h in b.history]
    for ha, hb in zip(a.history, b.history):
        assert ha["val_loss"] == pytest.approx(hb["val_loss"], rel=1e-4)
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)


def test_progress_bar_and_device_auto():
    tr, va = blobs(60, 0), blobs(30, 1)
    res = train(mlp(0), tr, va, TrainConfig(max_iters=6, eval_every=3, patience=None),
                device="auto", progress=True)
    assert res.stopped_iteration == 6
