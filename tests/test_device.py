"""A requested device reaches every trainer (single networks and the batched ensemble), and the
record states the device used."""

import pytest

import prunelib.ensemble as ens
from prunelib import member
from prunelib.config import SweepConfig, TrainSpec
from prunelib.store import ResultsStore
from prunelib.sweep import bind_data, run_sweep


def _moons():
    base = dict(study="moons", profile="smoke", dataset="moons", model="mlp",
                model_kwargs={"in_features": 2, "hidden": [8, 8], "n_classes": 2},
                data_kwargs={"n_train": 64, "n_val": 32, "n_test": 64, "noise": 0.2},
                train=TrainSpec(lr=0.05, max_iters=10, eval_every=5, patience=2))
    return SweepConfig(base=base, techniques=("iterative_reset", "iterative_maskreinit"),
                       ratios=(0.0, 0.5), seeds=(0,), rounds=1)


@pytest.mark.parametrize("vectorize", [True, False])
def test_device_reaches_every_trainer(tmp_path, monkeypatch, vectorize):
    seen = []
    real_train, real_ens = member.train, ens.train_ensemble

    def spy_train(*a, device="cpu", **k):
        seen.append(("train", str(device)))
        return real_train(*a, device=device, **k)

    def spy_ens(*a, device="cpu", **k):
        seen.append(("ensemble", str(device)))
        return real_ens(*a, device=device, **k)

    monkeypatch.setattr(member, "train", spy_train)
    monkeypatch.setattr(ens, "train_ensemble", spy_ens)
    sweep = bind_data(_moons(), source="data")
    run_sweep(sweep, tmp_path, device="cpu:0", progress=False, vectorize=vectorize)
    assert seen and {d for _, d in seen} == {"cpu:0"}
    assert {kind for kind, _ in seen} == ({"ensemble"} if vectorize else {"train"})
    for cfg in sweep.runs():
        assert ResultsStore(tmp_path).load(cfg)["device"] == "cpu:0"
