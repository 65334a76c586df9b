"""Columns derived from stored predictions: values, the on-disk cache, the noise floor."""

import numpy as np
import pytest

from prunelib import stats
from prunelib.analysis import _test_probs, derived_columns, noise_floor
from prunelib.config import SweepConfig, TrainSpec
from prunelib.store import ResultsStore
from prunelib.sweep import run_sweep


def moons_store(tmp_path, monkeypatch, techniques=("oneshot_reset",), ratios=(0.0, 0.5),
                seeds=(0, 1), n_test=200, rounds=1):
    """A tiny Make Moons store (one sample and split per seed) and its table."""
    monkeypatch.setenv("PRUNELIB_CACHE", str(tmp_path / "cache"))
    base = dict(study="moons", profile="smoke", dataset="moons", model="mlp",
                model_kwargs={"in_features": 2, "hidden": [8, 8], "n_classes": 2},
                data_kwargs={"n_train": 64, "n_val": 32, "n_test": n_test, "noise": 0.2},
                train=TrainSpec(lr=0.05, max_iters=20, eval_every=5, patience=2))
    sweep = SweepConfig(base=base, techniques=techniques, ratios=ratios, seeds=seeds,
                        rounds=rounds, vary_split=True)
    return run_sweep(sweep, tmp_path / "store", progress=False), ResultsStore(tmp_path / "store")


@pytest.fixture
def table(tmp_path, monkeypatch):
    df, store = moons_store(tmp_path, monkeypatch)
    return df, store, tmp_path / "cache"


def test_estimators_are_the_stats_functions_on_the_stored_predictions(table):
    df, store, _ = table
    out = derived_columns(df, store)
    for _, row in out.iterrows():
        p, y = _test_probs(store, "moons", row["key"])
        assert row["ece_debiased"] == pytest.approx(stats.debiased_ece(p, y))
        assert row["smooth_ece"] == pytest.approx(stats.smooth_ece(p, y))


def test_cache_is_used_and_follows_the_arrays(table, monkeypatch):
    df, store, cache = table
    first = derived_columns(df, store)
    assert (cache / "derived" / "moons.json").is_file()

    def boom(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(stats, "smooth_ece", boom)
    again = derived_columns(df, store)
    np.testing.assert_array_equal(first["smooth_ece"], again["smooth_ece"])
    # a run whose arrays changed is derived afresh
    key = df["key"].iloc[0]
    npz = store.root / "moons" / f"{key}.npz"
    npz.write_bytes(npz.read_bytes() + b"\0")
    with pytest.raises(AssertionError, match="recomputed"):
        derived_columns(df, store)


def test_where_limits_the_rows_and_ood_gap(table):
    df, store, _ = table
    out = derived_columns(df, store, where={"ratio": [0.5]})
    assert out.loc[out.ratio == 0.5, "smooth_ece"].notna().all()
    assert out.loc[out.ratio == 0.0, "smooth_ece"].isna().all()
    gap = derived_columns(df.assign(ood_mean_confidence_mnist=0.6), ood_sets=("mnist",),
                          estimators=False)
    np.testing.assert_allclose(gap["ood_confidence_gap_mnist"], df["mean_confidence"] - 0.6)


def test_noise_floor_band_brackets_its_mean(table):
    df, store, _ = table
    floor = noise_floor(df, store, max_seeds=2, n_draws=50)
    assert len(floor) == df.groupby(["prune", "technique", "ratio"]).ngroups
    assert (floor["ece_floor_lower"] <= floor["ece_floor"]).all()
    assert (floor["ece_floor"] <= floor["ece_floor_upper"]).all()
    assert (floor["ece_ts_floor"] > 0).all()


def test_bootstrap_interval_of_a_claim_carries_the_test_set_error(tmp_path, monkeypatch):
    from prunelib.book import bootstrap_intervals
    from prunelib.claims import contrast, moons_claims

    df, _ = moons_store(tmp_path, monkeypatch, techniques=("iterative_reset",),
                        ratios=(0.0, 0.8), seeds=(0, 1, 2), n_test=100, rounds=2)
    boot = bootstrap_intervals({"moons": df}, tmp_path / "store", ids=("m3", "mx3"),
                               profile="smoke", n_boot=200).set_index("id")
    claim = next(c for c in moons_claims((0.0, 0.5, 0.8)) if c.id == "m3")
    d = contrast(df, "ece", claim.terms)
    assert boot.loc["m3", "mean"] == pytest.approx(d.mean(), abs=1e-3)  # float16 logits
    assert boot.loc["m3", "lower"] <= boot.loc["m3", "mean"] <= boot.loc["m3", "upper"]
    assert boot.loc["mx3", "metric"] == "nll" and boot.loc["m3", "seeds"] == 3


def test_measurement_notes_compute_the_floor_and_the_machines(table):
    import pandas as pd

    from prunelib.protocol import measurement_notes

    df, store, _ = table
    records = store.records("moons")
    text = measurement_notes(df, store.root, records)
    dense = df[df.ratio == 0].drop_duplicates("seed")
    f = noise_floor(dense, store, by=("ratio",), max_seeds=3).iloc[0]
    assert f"reads {f['ece_floor']:.3f}" in text and f"({dense.seed.nunique()} seeds)" in text
    # the dense network listed under two techniques is still one network per seed
    twice = pd.concat([df, df[df.ratio == 0].assign(technique="other", key=lambda d: d.key + "x")])
    assert f"({dense.seed.nunique()} seeds)" in measurement_notes(twice, store.root, records)
    assert f"The {len(records)} stored CIFAR-10 runs were computed on cpu" in text
    assert f"({len(records)} runs)" in text
    missing = measurement_notes(df[df.ratio > 0], store.root, [])
    assert "not in the store yet" in missing and "computed on" not in missing


def test_training_protocol_is_read_from_the_configuration():
    from prunelib.profiles import sweep_for
    from prunelib.protocol import training_protocol

    sweep = sweep_for("cifar10", "smoke")
    t, f = sweep.base["train"], sweep.extra[0].base["train"]
    rec = {"data": "CIFAR-10 (train 640, val 64, test 128)\nsource: a fixture"}
    text = training_protocol(sweep, [rec])
    assert f"evaluated every {t.eval_every:,} iterations" in text
    assert f"after {t.patience} evaluations" in text and f"cap of {t.max_iters:,}" in text
    assert "of CIFAR-10 (train 640, val 64, test 128)" in text
    assert f"runs {f.max_iters:,} iterations — {f.max_iters * f.batch_size / 640:.0f} epochs" in text
    assert "epochs" not in training_protocol(sweep, [])


def test_fixed_grid_cuts_name_what_the_fixed_grid_leaves_out():
    import dataclasses

    import pandas as pd

    from prunelib.profiles import sweep_for
    from prunelib.protocol import fixed_grid_cuts

    plan = pd.DataFrame([
        {"regime": "early_stop", "training phases": 40, "s per training (measured)": 50.0,
         "projected hours": 6.0},
        {"regime": "fixed", "training phases": 12, "s per training (measured)": 70.0,
         "projected hours": 2.0}])
    sweep = sweep_for("cifar10", "smoke")
    assert fixed_grid_cuts(sweep, plan) == "The fixed-budget grid is as large as the main one."
    fixed = dataclasses.replace(sweep.extra[0], ratios=sweep.extra[0].ratios[:2],
                                ratios_by_technique={"iterative_maskreinit": ()})
    main = dataclasses.replace(sweep, seeds=(0, 1, 2), extra=(fixed,))
    text = fixed_grid_cuts(main, plan)
    assert "1 of the main grid's 3 seeds" in text
    assert f"stop at {fixed.ratios[1]:.2f} removed instead of {max(sweep.ratios):.2f}" in text
    assert "no same-mask controls" in text
    assert "measured 70 s" in text and "against 50 s" in text and "planned at 2.0 hours" in text
    assert "no fixed-budget part" in fixed_grid_cuts(dataclasses.replace(sweep, extra=()), plan)


def test_compute_plan_counts_each_regime_of_the_grid_once():
    import numpy as np

    from prunelib.book import compute_plan
    from prunelib.profiles import sweep_for

    sweep = sweep_for("cifar10", "paper")
    fixed = sweep.extra[0]
    runs = sweep.runs()
    cfg = next(c for c in runs if c.regime == "early_stop" and c.ratio == 0)
    dense = {"config": cfg.to_dict(), "metrics": {"seconds": 80.0}}
    # the same seed's other chain stored its own dense run (80 s and 100 s: 90 s for seed 0);
    # seed 1 took 150 s. One median per seed, then over seeds: 120 s, not the records' 100 s
    d0u, d1 = (next(c for c in runs if c.regime == "early_stop" and c.ratio == 0
                    and c.seed == s and c.prune == p) for s, p in ((0, "unstructured"),
                                                                   (1, cfg.prune)))
    assert cfg.seed == 0 and cfg.prune != "unstructured"
    three = [dense, {"config": d0u.to_dict(), "metrics": {"seconds": 100.0}},
             {"config": d1.to_dict(), "metrics": {"seconds": 150.0}}]
    assert compute_plan(sweep, three).set_index("regime").loc[
        "early_stop", "s per training (measured)"] == pytest.approx(120.0)
    plan = compute_plan(sweep, [dense]).set_index("regime")
    # a part's row holds its own runs: the main grid's row does not also count the extras'
    for regime in ("early_stop", "fixed"):
        assert plan.loc[regime, "runs"] == sum(c.regime == regime for c in runs)
    assert plan["runs"].sum() == len(runs)
    es = [c for c in runs if c.regime == "early_stop"]
    kinds = sweep.prune_kinds
    rounds = {k: max(c.rounds for c in es if c.prune == k and c.treatment == "reset") for k in kinds}
    controls = sum(c.treatment == "maskreinit" for c in es)
    oneshot = sum(c.schedule == "oneshot" and c.ratio > 0 for c in es)
    phases = len(sweep.seeds) * (1 + sum(rounds.values())) + controls + oneshot
    assert plan.loc["early_stop", "training phases"] == phases
    assert plan.loc["early_stop", "projected hours"] == phases * 80.0 / 3600
    assert plan.loc["early_stop", "runs stored"] == 1
    assert np.isnan(plan.loc["fixed", "s per training (measured)"])
    assert plan.loc["fixed", "training phases"] > len(fixed.seeds)


def test_compute_plan_sets_the_stored_part_against_its_planned_phases():
    from prunelib.book import compute_plan
    from prunelib.profiles import sweep_for

    sweep = sweep_for("cifar10", "paper")
    es = [c for c in sweep.runs() if c.regime == "early_stop" and c.seed == 0]
    dense = next(c for c in es if c.ratio == 0)
    chain = sorted((c for c in es if c.prune == "structured" and c.treatment == "reset"
                    and c.schedule == "iterative" and c.ratio > 0 and c.rounds <= 3),
                   key=lambda c: c.rounds)
    control = next(c for c in es if c.prune == "structured" and c.treatment == "maskreinit")
    # dense 80 s; round k ends at 80 + 100 k s (its seconds include the dense phase); control 100 s
    records = [{"config": dense.to_dict(), "metrics": {"seconds": 80.0}},
               *({"config": c.to_dict(), "metrics": {"seconds": 80.0 + 100 * c.rounds}}
                 for c in chain),
               {"config": control.to_dict(), "metrics": {"seconds": 100.0}},
               {"config": {**dense.to_dict(), "study": "ood"}, "metrics": {"seconds": 0.0}}]
    assert [c.rounds for c in chain] == [1, 2, 3]
    row = compute_plan(sweep, records).set_index("regime").loc["early_stop"]
    assert row["phases stored"] == 1 + 3 + 1  # dense, the chain's rounds once, the control
    assert row["hours so far"] * 3600 == pytest.approx(80 + 300 + 100)
    assert row["planned hours for them"] * 3600 == pytest.approx(5 * 80)
    assert row["s per stored phase"] == pytest.approx(480 / 5)
    assert row["stored / planned"] == pytest.approx(1.2)
    assert row["hours at completion"] == pytest.approx(1.2 * row["projected hours"])
    # a part with nothing stored has nothing to compare, and nothing measured to project from
    fixed = compute_plan(sweep, records).set_index("regime").loc["fixed"]
    assert fixed["phases stored"] == 0 and np.isnan(fixed["stored / planned"])
    assert np.isnan(fixed["hours at completion"]) and np.isnan(fixed["projected hours"])


def test_compute_budget_says_when_the_grid_overruns_its_budget():
    import pandas as pd

    from prunelib.protocol import compute_budget

    def plan(projected, so_far, stored, phases, at_end):
        return pd.DataFrame([{"projected hours": p, "hours so far": h, "phases stored": s,
                              "training phases": n, "hours at completion": e}
                             for p, h, s, n, e in zip(projected, so_far, stored, phases, at_end)])

    within = compute_budget(plan([6.0, 3.0], [6.5, 3.0], [100, 50], [100, 50], [6.5, 3.0]))
    assert "about 10 CPU-hours" in within and "planned at 9.0 hours" in within
    assert "9.5 hours of training are stored (the whole grid)." in within
    assert "the budget" not in within
    over = compute_budget(plan([10.0, 4.0], [9.0, 4.0], [60, 50], [100, 50], [15.0, 4.0]))
    assert "at the rate the stored phases ran the whole grid takes 19.0 hours" in over
    assert "1.9x the budget" in over and "the plan itself was 1.4x it" in over
    runs_over = compute_budget(plan([8.0], [6.0], [50], [100], [12.0]), budget_hours=10.0)
    assert "1.2x the budget." in runs_over and "plan itself" not in runs_over
    unmeasured = compute_budget(plan([8.0, float("nan")], [6.0, 0.0], [50, 0], [100, 40],
                                     [12.0, float("nan")]))
    assert "cannot be projected until every regime has a stored dense network" in unmeasured


def test_data_provenance_prints_shared_lines_once_and_each_split_s_own():
    from prunelib.book import data_provenance

    def rec(seed, n):
        text = (f"CIFAR-10 (train 45,000)\nnormalised with mean ({seed}.1)\nnotes: seeded with {seed}"
                "\ncaveat: JPEG")
        return [{"data": text, "config": {"data_id": "cifar10:abc"}}] * n

    text = data_provenance(rec(0, 3) + rec(1, 2))
    assert text.count("CIFAR-10 (train 45,000)") == 1 and text.count("caveat: JPEG") == 1
    assert "[5 runs, 2 descriptions; shared]" in text
    assert "[3 runs] normalised with mean (0.1) | notes: seeded with 0" in text
    assert "[2 runs] normalised with mean (1.1) | notes: seeded with 1" in text
    assert text.endswith("data fingerprint(s): cifar10:abc")
    one = data_provenance(rec(0, 2))
    assert one.startswith("[2 runs]\nCIFAR-10 (train 45,000)\n") and "shared" not in one
