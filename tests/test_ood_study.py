"""Runs with OOD sets: every record carries named OOD metrics and scores (tiny fake CIFAR)."""

import numpy as np
import pytest

from prunelib.cli import main
from prunelib.config import SweepConfig, TrainSpec
from prunelib.store import ResultsStore
from prunelib.sweep import bind_data, run_sweep


def fake_cifar(root, n_train=120, n_test=40):
    rng = np.random.default_rng(0)
    classes = np.array(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                        "ship", "truck"])
    for name, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 10
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        x[..., 0] = (y[:, None, None] * 25).astype(np.uint8)  # a learnable signal
        np.savez(root / f"cifar10_{name}.npz", x=x, y=y.astype(np.int64), classes=classes)


def test_ood_metrics_in_records_and_report(tmp_path, capsys):
    fake_cifar(tmp_path)
    base = dict(study="cifar10", profile="smoke", dataset="cifar10", model="poster_cnn",
                layers="head", data_kwargs={"root": str(tmp_path), "val_size": 20},
                train=TrainSpec(lr=2e-3, batch_size=32, max_iters=6, eval_every=3, patience=2),
                ood_sets=("gaussian",))
    sweep = SweepConfig(base=base, techniques=("oneshot_reset",), ratios=(0.0, 0.5), seeds=(0,),
                        prune_kinds=("unstructured",))
    df = run_sweep(sweep, tmp_path / "store", progress=False)
    for col in ("auroc_msp", "auroc_neg_energy_gaussian", "fpr95_max_logit_ts_gaussian",
                "aupr_in_neg_entropy", "ood_mean_confidence_gaussian"):
        assert df[col].between(0, 1).all(), col
    store = ResultsStore(tmp_path / "store")
    rec = store.load(bind_data(sweep, source="data").runs()[1])
    assert "Gaussian" in rec["ood_data"]["gaussian"] or "gaussian" in rec["ood_data"]["gaussian"]
    arrays = store.arrays(rec)
    assert arrays["ood:gaussian:msp"].shape == (40,)
    assert main(["report", "--store", str(tmp_path / "store"), "--study", "cifar10",
                 "--format", "csv"]) == 0
    assert "auroc_msp" in capsys.readouterr().out.splitlines()[0]


def test_ood_study_reuses_stored_cifar10_networks(tmp_path, monkeypatch):
    """The `ood` study evaluates the `cifar10` study's stored networks: nothing is retrained."""
    import prunelib.experiments as E

    fake_cifar(tmp_path)
    base = dict(study="cifar10", profile="smoke", dataset="cifar10", model="poster_cnn",
                layers="head", data_kwargs={"root": str(tmp_path), "val_size": 20},
                train=TrainSpec(lr=2e-3, batch_size=32, max_iters=6, eval_every=3, patience=2))
    grid = dict(techniques=("oneshot_reset",), ratios=(0.0, 0.5), seeds=(0,),
                prune_kinds=("structured",))
    store = tmp_path / "store"
    trained = run_sweep(SweepConfig(base=base, **grid), store, progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("the ood study retrained a network")

    monkeypatch.setattr(E, "fit", no_training)
    ood_grid = SweepConfig(base={**base, "study": "ood", "ood_sets": ("gaussian",)},
                           **{**grid, "seeds": (0, 1)})
    with pytest.warns(UserWarning, match="2 ood run"):  # seed 1's networks are missing: skipped
        ood = run_sweep(ood_grid, store, progress=False)
    assert set(ood["seed"]) == {0}
    assert list(ood["accuracy"]) == list(trained["accuracy"])
    assert ood["auroc_msp_gaussian"].between(0, 1).all()
    rec = ResultsStore(store).records("ood")[0]
    assert rec["source"]["study"] == "cifar10" and "not retrained" in rec["source"]["how"]
