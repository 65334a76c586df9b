"""Sweeps end to end on tiny Make Moons: resume, kill -9, determinism, CLI report."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prunelib.cli import main
from prunelib.config import SweepConfig, TrainSpec
from prunelib.store import ResultsStore
from prunelib.sweep import bind_data, run_sweep


def tiny_sweep(seeds=(0, 1), techniques=("oneshot_reset", "oneshot_reinit", "iterative_reset"),
               kinds=("structured", "unstructured")):
    base = dict(study="moons", profile="smoke", dataset="moons", model="mlp",
                model_kwargs={"in_features": 2, "hidden": [8, 8], "n_classes": 2},
                data_kwargs={"n_train": 64, "n_val": 32, "n_test": 64, "noise": 0.2},
                train=TrainSpec(lr=0.05, max_iters=20, eval_every=5, patience=2))
    return SweepConfig(base=base, techniques=techniques, ratios=(0.0, 0.5), seeds=seeds,
                       prune_kinds=kinds, rounds=2)


def test_sweep_table_and_resume(tmp_path):
    sweep = tiny_sweep()
    df = run_sweep(sweep, tmp_path, progress=False)
    assert len(df) == len(sweep.runs())
    assert {"study", "profile", "model", "technique", "ratio", "seed", "accuracy", "ece",
            "early_stop_iteration"} <= set(df.columns)
    assert df["accuracy"].between(0, 1).all() and df["ece"].between(0, 1).all()
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.json")}
    df2 = run_sweep(sweep, tmp_path, progress=False)  # resume: nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.json")} == mtimes
    pd.testing.assert_frame_equal(df, df2)


def test_same_seed_same_metrics(tmp_path):
    sweep = tiny_sweep(seeds=(3,), techniques=("oneshot_reset",), kinds=("unstructured",))
    a = run_sweep(sweep, tmp_path / "a", progress=False)
    b = run_sweep(sweep, tmp_path / "b", progress=False)
    cols = ["accuracy", "ece", "nll", "brier", "early_stop_iteration"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_ratio_zero_is_the_dense_model_for_every_technique(tmp_path):
    df = run_sweep(tiny_sweep(seeds=(0,)), tmp_path, progress=False)
    dense = df[df.ratio == 0.0]
    assert dense["accuracy"].nunique() == 1 and dense["ece"].nunique() == 1
    pruned = df[df.ratio == 0.5]
    assert (pruned["parameters"] < dense["parameters"].iloc[0]).all()


def test_fresh_recomputes(tmp_path):
    sweep = tiny_sweep(seeds=(0,), techniques=("oneshot_reset",), kinds=("structured",))
    run_sweep(sweep, tmp_path, progress=False)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.json")}
    time.sleep(0.01)
    run_sweep(sweep, tmp_path, progress=False, fresh=True)
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.json")}
    assert all(after[p] != before[p] for p in before)


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_sweep import tiny_sweep
from prunelib.sweep import run_sweep
run_sweep(tiny_sweep(seeds=(0, 1, 2)), {store!r}, progress=False, vectorize=False)
"""


def test_sigkill_midway_then_resume(tmp_path):
    store = tmp_path / "store"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), store=str(store))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(store.rglob("*.json"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.read_bytes() for p in store.rglob("*.json")}
    assert finished, "the sweep wrote no record before it was killed"
    total = len(tiny_sweep(seeds=(0, 1, 2)).runs())
    assert len(finished) < total, "the sweep finished before the kill; the test proves nothing"
    for p in finished:  # whatever was written is a complete, valid record
        json.loads(p.read_text())
    # one model at a time, so that a run's numbers cannot depend on which other runs share
    # its batched ensemble: the resumed sweep must equal a clean one exactly
    df = run_sweep(tiny_sweep(seeds=(0, 1, 2)), store, progress=False, vectorize=False)
    assert len(df) == total and df["accuracy"].notna().all()
    for p, blob in finished.items():  # finished runs kept, byte for byte
        assert p.read_bytes() == blob
    assert not list(store.rglob("*.tmp"))
    # the resumed store equals a sweep computed in one go
    clean = run_sweep(tiny_sweep(seeds=(0, 1, 2)), tmp_path / "clean", progress=False,
                      vectorize=False)
    key = ["prune", "technique", "ratio", "seed"]
    cols = key + ["accuracy", "ece", "nll", "early_stop_iteration"]
    a = df.sort_values(key).reset_index(drop=True)[cols]
    b = clean.sort_values(key).reset_index(drop=True)[cols]
    pd.testing.assert_frame_equal(a, b)


def test_cli_sweep_and_report(tmp_path, capsys):
    assert main(["sweep", "moons", "--profile", "smoke", "--store", str(tmp_path), "--seeds", "1",
                 "--no-progress", "--device", "auto"]) == 0
    capsys.readouterr()
    assert main(["report", "--store", str(tmp_path), "--study", "moons", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split(",")
    assert header[:13] == ["study", "profile", "regime", "model", "prune", "technique", "ratio",
                           "seed", "data_seed", "accuracy", "ece", "early_stop_iteration",
                           "cap_stopped"]
    assert len(out.splitlines()) - 1 == len(ResultsStore(tmp_path).records("moons"))


def test_cli_rejects_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "imagenet", "--store", str(tmp_path)])
    assert main(["sweep", "moons", "--seeds", "0", "--store", str(tmp_path)]) == 2
    assert "seeds" in capsys.readouterr().err
    assert main(["sweep", "ood", "--ood-sets", "svhn", "--store", str(tmp_path)]) == 2
    assert "unknown OOD set 'svhn'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_stored_weights_reproduce_the_stored_predictions(tmp_path):
    from prunelib.experiments import load_data, load_model
    from prunelib.training import predict_logits

    sweep = bind_data(tiny_sweep(seeds=(0,), techniques=("oneshot_reset",), kinds=("structured",)),
                      source="data")
    run_sweep(sweep, tmp_path, progress=False)
    store = ResultsStore(tmp_path)
    for cfg in sweep.runs():
        rec = store.load(cfg)
        model = load_model(store, rec)
        logits = predict_logits(model, load_data(cfg).test.x)
        stored = store.arrays(rec)["test_logits"]
        assert abs(logits.numpy() - stored.astype("float32")).max() < 1e-2  # float16 storage


def test_training_seconds_counts_shared_work_once():
    """Dense phase once per seed; a lottery run that is a prefix of a longer one adds nothing."""
    from prunelib.experiments import training_seconds
    from prunelib.profiles import sweep_for

    sweep = sweep_for("cifar10", "smoke", seeds=2)
    dense, per_round = 10.0, 5.0
    records = []
    for c in sweep.runs():
        # a same-mask control's time is its own training; every other run's is from scratch
        own = c.treatment == "maskreinit"
        seconds = per_round if own else dense + per_round * (c.rounds if c.ratio > 0 else 0)
        records.append({"config": c.to_dict(), "metrics": {"seconds": seconds}})
    expected = 0.0
    for part in (sweep, *sweep.extra):
        for seed in part.seeds:
            expected += dense
            for prune in part.prune_kinds:
                runs = [c for c in part.runs() if c.seed == seed and c.prune == prune
                        and c.ratio > 0 and c.regime == part.base.get("regime", "early_stop")]
                # one trajectory of the ticket (its longest run), one training per control
                expected += per_round * max(c.rounds for c in runs if c.treatment == "reset")
                expected += per_round * sum(c.treatment == "maskreinit" for c in runs)
    assert training_seconds(records) == pytest.approx(expected)
    naive = sum(r["metrics"]["seconds"] for r in records)
    assert training_seconds(records) < naive
    # without its dense record, a seed's dense phase is counted in each of its runs
    no_dense = [r for r in records if r["config"]["ratio"] > 0 or r["config"]["seed"] != 0]
    assert training_seconds(no_dense) > training_seconds(records) - dense


def test_sweep_results_reads_only_the_grid(tmp_path):
    """Two grids in one store: each reads back its own runs, and nothing is computed."""
    from prunelib.sweep import load_results, sweep_results

    a = tiny_sweep(seeds=(0,), techniques=("oneshot_reset",), kinds=("structured",))
    b = tiny_sweep(seeds=(0, 1), techniques=("oneshot_reset",), kinds=("structured",))
    b.base["data_kwargs"] = {**b.base["data_kwargs"], "noise": 0.3}
    assert sweep_results(a, tmp_path).empty
    assert not any(tmp_path.rglob("*.json"))
    run_sweep(a, tmp_path, progress=False)
    run_sweep(b, tmp_path, progress=False)
    assert len(load_results(tmp_path)) == len(a.runs()) + len(b.runs())
    got = sweep_results(a, tmp_path)
    assert sorted(got["key"]) == sorted(r.key() for r in bind_data(a, source="data").runs())
    assert len(sweep_results(b, tmp_path)) == len(b.runs())


def test_pooled_predictions_concatenates_stored_runs(tmp_path):
    """Softmax of each stored run's test logits, in the order given; missing runs left out."""
    from prunelib.experiments import pooled_predictions

    sweep = bind_data(tiny_sweep(seeds=(0, 1), techniques=("oneshot_reset",),
                                 kinds=("structured",)), source="data")
    run_sweep(sweep, tmp_path, progress=False)
    store = ResultsStore(tmp_path)
    runs = [c for c in sweep.runs() if c.ratio == 0.5]
    probs, labels = pooled_predictions(store, runs)
    arrays = [store.arrays(store.load(c)) for c in runs]
    n = len(arrays[0]["test_labels"])
    assert probs.shape == (2 * n, 2) and labels.shape == (2 * n,)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    second = np.exp(arrays[1]["test_logits"].astype(np.float64))
    np.testing.assert_allclose(probs[n:], second / second.sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_array_equal(labels[:n], arrays[0]["test_labels"])
    missing = dataclasses.replace(runs[0], seed=7)
    assert len(pooled_predictions(store, [missing, runs[0]])[1]) == n
    with pytest.raises(ValueError, match="none of the 1 runs"):
        pooled_predictions(store, [missing])
