"""Run identities and the sound-control engine: data fingerprints in the key, per-seed splits,
the training regime, the same-mask control and cap-stopped runs (tiny generated data)."""

import dataclasses

import numpy as np
import pytest
import torch

from prunelib import data as pdata
from prunelib.config import RunConfig, SweepConfig, TrainSpec
from prunelib.experiments import execute, load_data
from prunelib.store import ResultsStore
from prunelib.sweep import bind_data, run_sweep, sweep_results


def grid(techniques=("iterative_reset", "iterative_maskreinit"), kinds=("unstructured",),
         regime="early_stop", seeds=(0, 1), ratios=(0.0, 0.5, 0.75), **train):
    spec = dict(lr=0.05, max_iters=30, eval_every=5, patience=3)
    spec.update(train)
    if regime == "fixed":
        spec["patience"] = None
    base = dict(study="moons", profile="smoke", dataset="moons", model="mlp", regime=regime,
                model_kwargs={"in_features": 2, "hidden": [12, 12], "n_classes": 2},
                data_kwargs={"n_train": 64, "n_val": 32, "n_test": 64, "noise": 0.2},
                train=TrainSpec(**spec))
    return SweepConfig(base=base, techniques=techniques, ratios=ratios, seeds=seeds,
                       prune_kinds=kinds, rate_per_round=0.5, vary_split=True,
                       ratios_by_technique={"iterative_maskreinit": tuple(r for r in ratios if r)})


def _fake_cifar(root, shift=0):
    rng = np.random.default_rng(shift)
    for name, n in (("train", 60), ("test", 20)):
        y = np.arange(n) % 10
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        np.savez(root / f"cifar10_{name}.npz", x=x, y=y.astype(np.int64))


def test_fingerprint_follows_the_content_of_the_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _fake_cifar(a)
    _fake_cifar(b, shift=1)
    fa, fb = pdata.fingerprint("cifar10", root=a), pdata.fingerprint("cifar10", root=b)
    assert fa.startswith("cifar10:") and fa != fb
    assert load_data_info(a).fingerprint == fa
    _fake_cifar(a, shift=1)  # same file names, new content: a new fingerprint
    assert pdata.fingerprint("cifar10", root=a) == fb


def load_data_info(root):
    return pdata.load_cifar10(root=root, val_size=10).info


def test_data_id_is_part_of_the_key_and_checked_on_load(tmp_path):
    sweep = grid(seeds=(0,))
    bound = bind_data(sweep, source="data")
    cfg = bound.runs()[0]
    assert cfg.data_id == pdata.fingerprint("moons")
    other = dataclasses.replace(cfg, data_id="moons:0000000000000000")
    assert other.key() != cfg.key()
    with pytest.raises(ValueError, match="fingerprint"):
        load_data(other)


def test_records_of_other_data_never_answer(tmp_path):
    """A grid computed from one copy of the data is not served for another copy."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _fake_cifar(tmp_path / "a")
    _fake_cifar(tmp_path / "b", shift=1)

    def cifar_grid(root):
        base = dict(study="cifar10", profile="smoke", dataset="cifar10", model="poster_cnn",
                    layers="head", data_kwargs={"root": str(root), "val_size": 10},
                    train=TrainSpec(lr=2e-3, batch_size=16, max_iters=4, eval_every=2, patience=2))
        return SweepConfig(base=base, techniques=("oneshot_reset",), ratios=(0.0,), seeds=(0,))

    store = tmp_path / "store"
    run_sweep(cifar_grid(tmp_path / "a"), store, progress=False)
    b = bind_data(cifar_grid(tmp_path / "b"), source="data")
    assert ResultsStore(store).load(b.runs()[0]) is None
    # reading without the data: the store's own identity for the grid
    a_read = bind_data(cifar_grid(tmp_path / "a"), store, source="store")
    assert a_read.base["data_id"] == pdata.fingerprint("cifar10", root=tmp_path / "a")


def test_seeds_vary_the_split():
    runs = grid().runs()
    assert {c.seed: c.data_seed for c in runs} == {0: 0, 1: 1}
    s0, s1 = load_data(runs[0]), load_data(next(c for c in runs if c.seed == 1))
    assert not torch.equal(s0.train.x, s1.train.x)


def _masks_of(store, record):
    arrays = store.arrays(record)
    return {k: arrays[k] != 0 for k in arrays if k.startswith("state:") and k.endswith("weight")}


@pytest.mark.parametrize("kind", ["unstructured", "structured"])
def test_maskreinit_keeps_the_tickets_mask_with_a_fresh_init(tmp_path, kind):
    sweep = bind_data(grid(kinds=(kind,), seeds=(0,)), source="data")
    run_sweep(sweep, tmp_path, progress=False)
    store = ResultsStore(tmp_path)
    for ratio in (0.5, 0.75):
        ticket, control = (store.load(next(c for c in sweep.runs() if c.technique == t
                                           and c.ratio == ratio))
                           for t in ("iterative_reset", "iterative_maskreinit"))
        mt, mc = _masks_of(store, ticket), _masks_of(store, control)
        for name in mt:  # the control's zeros are the ticket's pruned weights (and no others)
            assert (mc[name] <= mt[name]).all()
            assert mc[name].sum() >= 0.9 * mt[name].sum()
        assert ticket["metrics"]["parameters"] == control["metrics"]["parameters"]
        # trained once, from its own initialisation: one training phase, its own history
        assert len(control["history"]) == 1 and len(ticket["history"]) == 1 + ticket["config"]["rounds"]
        assert control["metrics"]["accuracy"] != ticket["metrics"]["accuracy"] or \
            control["metrics"]["nll"] != ticket["metrics"]["nll"]


def test_maskreinit_alone_computes_its_ticket_without_storing_it(tmp_path):
    sweep = bind_data(grid(techniques=("iterative_maskreinit",), seeds=(0,), ratios=(0.5,)),
                      source="data")
    out = list(execute(sweep.runs()))
    assert [c.technique for c, _, _ in out] == ["iterative_maskreinit"]


def test_fixed_regime_keeps_the_last_weights_and_stops_at_the_cap(tmp_path):
    fixed = bind_data(grid(regime="fixed", seeds=(0,), ratios=(0.0,), max_iters=40), source="data")
    early = bind_data(grid(seeds=(0,), ratios=(0.0,), max_iters=40, patience=2), source="data")
    assert fixed.runs()[0].key() != early.runs()[0].key()
    df = run_sweep(fixed, tmp_path, progress=False)
    rec = ResultsStore(tmp_path).load(fixed.runs()[0])
    assert rec["stopped_by"] == ["cap"] and rec["metrics"]["cap_stopped"] == 1
    assert df["cap_stopped"].isna().all()  # the report: by design, not a censored run
    assert rec["metrics"]["train_iterations"] == 40
    # the stored network is the last one, not the best one: its validation loss is the last
    # evaluation's (float16 weights: close, not equal)
    hist = rec["history"][-1]
    assert hist[-1]["iteration"] == 40
    with pytest.raises(ValueError, match="fixed"):
        RunConfig(**{**fixed.base, "train": TrainSpec(patience=3), "technique": "oneshot_reset",
                     "ratio": 0.0, "seed": 0})


def test_early_stop_regime_records_patience_stops(tmp_path):
    sweep = bind_data(grid(seeds=(0,), ratios=(0.0,), max_iters=2000, patience=2, lr=0.2),
                      source="data")
    run_sweep(sweep, tmp_path, progress=False)
    rec = ResultsStore(tmp_path).load(sweep.runs()[0])
    assert rec["stopped_by"] == ["patience"] and rec["metrics"]["cap_stopped"] == 0


def test_sweep_results_reads_the_grid_without_the_data(tmp_path, monkeypatch):
    sweep = grid(seeds=(0,), ratios=(0.0, 0.5))
    computed = run_sweep(sweep, tmp_path, progress=False)

    def no_data(*a, **k):
        raise pdata.DataNotFoundError("no data here")

    monkeypatch.setattr(pdata, "fingerprint", no_data)
    read = sweep_results(sweep, tmp_path)
    assert sorted(read["key"]) == sorted(computed["key"])
