"""Run configurations: validation and hashing."""

import dataclasses

import pytest

from prunelib.config import RunConfig, SweepConfig, TrainSpec, config_hash, parse_technique
from prunelib.profiles import sweep_for


def _cfg(**kw):
    base = dict(study="moons", profile="smoke", dataset="moons", model="mlp",
                technique="oneshot_reset", ratio=0.5, seed=0)
    base.update(kw)
    return RunConfig(**base)


def test_hash_ignores_field_order():
    d = _cfg().to_dict()
    shuffled = dict(reversed(list(d.items())))
    shuffled["train"] = dict(reversed(list(d["train"].items())))
    assert config_hash(d) == config_hash(shuffled) == config_hash(_cfg())


@pytest.mark.parametrize("change", [
    {"ratio": 0.6}, {"seed": 1}, {"technique": "oneshot_reinit"}, {"prune": "unstructured", "score": "magnitude"},
    {"profile": "paper"}, {"model_kwargs": {"hidden": [8]}}, {"data_kwargs": {"noise": 0.1}},
    {"train": TrainSpec(lr=0.5)}, {"ood_sets": ("mnist",)}, {"layers": "head"},
])
def test_any_field_changes_the_hash(change):
    assert config_hash(_cfg(**change)) != config_hash(_cfg())


def test_every_field_is_hashed():
    """The hashed dict holds every dataclass field, so none is left out of the hash; a field
    added later (features_ratio) is left out only at its default, so older keys stand."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    assert names - {"features_ratio"} == set(_cfg().to_dict())
    assert names == set(_cfg(features_ratio=0.1).to_dict())
    assert _cfg(features_ratio=0.1).key() != _cfg().key()


@pytest.mark.parametrize("kw, match", [
    ({"technique": "oneshot_magic"}, "unknown technique"),
    ({"ratio": 1.0}, "ratio must be in"),
    ({"ratio": -0.1}, "ratio must be in"),
    ({"study": "imagenet"}, "unknown study"),
    ({"profile": "huge"}, "unknown profile"),
    ({"score": "magnitude"}, "score"),
    ({"technique": "oneshot_reset", "rounds": 3}, "rounds=1"),
    ({"ood_sets": ("svhn",)}, "unknown ood set"),
    ({"ood_sets": ("mnist", "mnist")}, "duplicates"),
])
def test_bad_configuration_is_a_clear_error(kw, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**kw)


def test_parse_technique():
    assert parse_technique("iterative_rewind50") == ("iterative", "rewind", 50)
    assert parse_technique("oneshot_finetune") == ("oneshot", "finetune", None)


def test_sweep_grid_and_profiles():
    sweep = sweep_for("moons", "paper")
    runs = sweep.runs()
    assert len(runs) == len(sweep.techniques) * len(sweep.ratios) * len(sweep.seeds) * len(sweep.prune_kinds)
    assert len({r.key() for r in runs}) == len(runs)
    assert len(sweep.seeds) >= 10 and len(sweep.ratios) >= 10
    assert sweep_for("moons", "smoke", seeds=3).seeds == (0, 1, 2)
    with pytest.raises(ValueError, match="unknown study"):
        sweep_for("mnist", "smoke")
    with pytest.raises(ValueError, match="unknown profile"):
        sweep_for("moons", "big")


def test_sweep_validates_before_training():
    bad = SweepConfig(base=dict(study="moons", profile="smoke", dataset="moons", model="mlp"),
                      techniques=("oneshot_reset", "bogus_thing"), ratios=(0.5,), seeds=(0,))
    with pytest.raises(ValueError, match="unknown technique"):
        bad.runs()


def test_ood_sets_override(monkeypatch, tmp_path):
    """The ood profile's sets are the offline trio; others are chosen by name or 'auto'."""
    from prunelib import data as D

    default = sweep_for("ood", "paper")
    assert default.base["ood_sets"] == ("tinyimagenet", "mnist", "gaussian")
    online = sweep_for("ood", "paper", ood_sets="cifar100, gaussian")
    assert online.base["ood_sets"] == ("cifar100", "gaussian")
    assert sweep_for("ood", "smoke", ood_sets=["MNIST"]).base["ood_sets"] == ("mnist",)
    # each choice of sets is its own set of records
    assert {r.key() for r in online.runs()}.isdisjoint(r.key() for r in default.runs())
    # 'auto': what can be had now; offline with no data folder, Gaussian noise only
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    monkeypatch.setattr(D, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(D, "_torchvision_download", lambda *a: (_ for _ in ()).throw(
        D.DataNotFoundError("offline")))
    assert sweep_for("ood", "paper", ood_sets="auto").base["ood_sets"] == ("gaussian",)
    with pytest.raises(ValueError, match="unknown OOD set 'svhn'"):
        sweep_for("ood", "paper", ood_sets="svhn")
    with pytest.raises(ValueError, match="empty"):
        sweep_for("ood", "paper", ood_sets=" , ")
    with pytest.raises(ValueError, match="'ood' study only"):
        sweep_for("cifar10", "paper", ood_sets="mnist")
