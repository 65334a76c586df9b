"""Claims as data: per-seed contrasts, the families and their verdicts (synthetic tables)."""

import numpy as np
import pandas as pd
import pytest

from prunelib import claims as C
from prunelib.figures import forest_plot

RATIOS = (0.0, 0.36, 0.59, 0.79)


def runs_of_a_seed():
    """(prune kind, technique, ratio) of one seed's runs: the dense network once per kind."""
    for kind in ("structured", "unstructured"):
        for tech in ("iterative_reset", "iterative_maskreinit"):
            yield from ((kind, tech, r) for r in RATIOS if r > 0 or tech == "iterative_reset")


def frame(ece_effect=-0.02, acc_effect=-0.02, seeds=10, fixed_ece_effect=None, noise=0.002):
    """A CIFAR-like table: every (kind, technique, ratio, regime) of a seed shares its noise;
    pruned networks differ from the dense one by the given effects, controls by nothing."""
    rng = np.random.default_rng(0)
    rows = []
    for regime in ("early_stop", "fixed"):
        eff = ece_effect if regime == "early_stop" or fixed_ece_effect is None else fixed_ece_effect
        for seed in range(seeds):
            base = {m: v + noise * rng.standard_normal() for m, v in
                    (("accuracy", 0.63), ("ece", 0.05), ("ece_ts", 0.015), ("nll", 1.05),
                     ("brier", 0.5), ("early_stop_iteration", 5000.0))}
            for kind, tech, ratio in runs_of_a_seed():
                r = dict(base)
                if ratio > 0:
                    r["ece"] += eff + noise * 0.1 * rng.standard_normal()
                    r["accuracy"] += acc_effect + noise * 0.1 * rng.standard_normal()
                rows.append({"prune": kind, "technique": tech, "ratio": ratio,
                             "seed": seed, "regime": regime, **r})
    return pd.DataFrame(rows)


def test_contrast_pairs_by_seed_and_keeps_common_seeds():
    df = frame(seeds=4)
    df = df[~((df.seed == 3) & (df.ratio == 0.79))]
    d = C.contrast(df, "ece", C.minus(C.at("structured", C.RESET, 0.79), C.dense()))
    assert len(d) == 3
    assert d.mean() == pytest.approx(-0.02, abs=1e-3)
    with pytest.raises(ValueError, match="several rows per seed"):
        C.contrast(pd.concat([df, df]), "ece", C.minus(C.dense(), C.dense()))


def test_interaction_has_four_terms():
    df = frame(fixed_ece_effect=-0.05)
    claim = next(c for c in C.regime_claims(RATIOS) if c.id == "r8")
    d = C.contrast(df, "ece", claim.terms)
    assert d.mean() == pytest.approx(-0.03, abs=1e-3)


def test_cifar10_verdicts():
    table = C.judge(C.cifar10_claims(RATIOS), {"cifar10": frame()}).set_index("id")
    assert table.loc["c4", "verdict"] == "reproduced"            # ECE lower, clearly
    assert table.loc["c3", "verdict"] == "reproduced"            # about 2 points lost
    assert table.loc["cx2", "verdict"] == "no meaningful effect"  # control identical
    assert table.loc["cx5", "n"] == 0                            # no debiased ECE column
    assert table.loc["cx5", "verdict"] == "inconclusive"
    small = C.judge(C.cifar10_claims(RATIOS), {"cifar10": frame(acc_effect=-0.002)})
    assert small.set_index("id").loc["c3", "verdict"] in ("contradicted", "no meaningful effect")


def test_holm_within_each_family_only():
    claims = C.cifar10_claims(RATIOS) + C.regime_claims(RATIOS)
    table = C.judge(claims, {"cifar10": frame()})
    poster = table[table.family == "poster"]
    assert set(poster.id) == {"c1", "c2", "c3", "c4"}
    assert (table.p.isna() | (table.p_adjusted >= table.p - 1e-15)).all()
    # adding extension claims does not change the poster family's adjusted p
    alone = C.judge(C.cifar10_claims(RATIOS)[:4], {"cifar10": frame()})
    np.testing.assert_allclose(alone.p_adjusted.to_numpy(float), poster.p_adjusted.to_numpy(float))


def test_book_claims_name_comparison_ratio_and_control():
    ratios = {"moons": (0.0, 0.5, 0.8), "cifar10": RATIOS, "ood": RATIOS}
    claims = C.book_claims(ratios, ("mnist",))
    assert len({c.id for c in claims}) == len(claims)
    for c in claims:
        assert c.comparison and c.ratio is not None and c.predicts in ("higher", "lower", "same")
        assert c.family in ("poster", "extension")
    poster = [c for c in claims if c.family == "poster"]
    # the poster's claims are tested on the poster's algorithm: structured removal
    for c in poster:
        assert all(w["prune"] == "structured" for _, w in c.terms), c.id


def test_compact_table_and_summary_and_forest_plot():
    table = C.judge(C.cifar10_claims(RATIOS), {"cifar10": frame()})
    small = C.compact(table)
    assert {"effect [adj. CI]", "p", "p (Holm)", "margin", "verdict"} <= set(small.columns)
    assert small.set_index("id").loc["cx5", "effect [adj. CI]"] == "not in the store yet"
    text = C.verdict_summary(table)
    assert all(f"({i})" in text for i in table.id)
    fig = forest_plot(table)
    assert len(fig.axes[0].get_yticklabels()) == len(table)


def regime_frame(*, fixed_dense_ece, effect, ts_effect, control_effect, seeds=8, noise=0.002):
    """Both regimes on paired seeds. ``effect[regime]``: the pruned network's ECE (and NLL)
    change; ``ts_effect``: its change after temperature scaling; ``control_effect``: the
    matched controls' ECE change."""
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(seeds):
        for regime in ("early_stop", "fixed"):
            ece0 = fixed_dense_ece if regime == "fixed" else 0.05
            base = {"accuracy": 0.62, "ece": ece0, "ece_ts": 0.015, "nll": 1.1 + 2 * (ece0 - 0.05),
                    "brier": 0.5, "early_stop_iteration": 5000.0}
            base = {m: x + noise * rng.standard_normal() for m, x in base.items()}
            for kind, tech, ratio in runs_of_a_seed():
                r = dict(base)
                if ratio > 0:
                    e = effect[regime] if tech == "iterative_reset" else control_effect
                    r["ece"] += e + noise * 0.2 * rng.standard_normal()
                    r["nll"] += 2 * e + noise * 0.2 * rng.standard_normal()
                    r["ece_ts"] += (ts_effect if tech == "iterative_reset" else 0.0) \
                        + noise * 0.2 * rng.standard_normal()
                rows.append({"prune": kind, "technique": tech, "ratio": ratio,
                             "seed": seed, "regime": regime, **r})
    return pd.DataFrame(rows)


def _reading(df):
    from prunelib.readings import regime_reading

    claims = C.cifar10_claims(RATIOS) + C.regime_claims(RATIOS)
    return regime_reading(C.judge(claims, {"cifar10": df}))


def test_regime_reading_tells_early_stopping_from_a_gain_of_its_own():
    like_early_stopping = regime_frame(fixed_dense_ece=0.14, effect={"fixed": -0.09,
                                       "early_stop": 0.0}, ts_effect=0.0, control_effect=-0.09)
    text = _reading(like_early_stopping)
    assert "what early stopping gives" in text and "a temperature removes it" in text
    assert "(r8, *reproduced*)" in text and "(r10, *reproduced*)" in text
    assert "the effect belongs to the size" in text  # r6: the small dense network does as well

    own = regime_frame(fixed_dense_ece=0.05, effect={"fixed": -0.02, "early_stop": -0.02},
                       ts_effect=-0.01, control_effect=0.0)
    text = _reading(own)
    assert "in its own right" in text and "what early stopping gives" not in text
    assert "(r8, *no meaningful effect*)" in text

    nothing = regime_frame(fixed_dense_ece=0.14, effect={"fixed": 0.0, "early_stop": 0.0},
                           ts_effect=0.0, control_effect=0.0)
    assert "neither reading is needed" in _reading(nothing)


def test_regime_reading_waits_for_paired_seeds():
    one = regime_frame(fixed_dense_ece=0.14, effect={"fixed": -0.09, "early_stop": 0.0},
                       ts_effect=0.0, control_effect=0.0, seeds=1)
    assert "fewer than two seeds" in _reading(one)
    from prunelib.readings import regime_reading

    with pytest.raises(ValueError, match="lacks the claims"):
        regime_reading(C.judge(C.cifar10_claims(RATIOS), {"cifar10": one}))


def test_cap_stopped_reading_counts_and_names_the_claims_they_enter():
    from prunelib.analysis import cap_stopped_reading

    col = "val loss fall, last 5 evals"
    cut = pd.DataFrame([
        {"prune": "structured", "technique": "iterative_maskreinit", "ratio": 0.79, "seed": 3,
         col: 0.01},
        {"prune": "structured", "technique": "iterative_reset", "ratio": 0.36, "seed": 1,
         col: -0.002}])
    text = cap_stopped_reading(cut, C.cifar10_claims(RATIOS))
    assert text.startswith("2 runs stopped at the iteration cap: 1 still improving")
    assert "by at most 0.01" in text and "1 on a plateau" in text
    assert "They enter the claims cx2 (seed 3)" in text  # pruned - small dense network
    alone = cap_stopped_reading(cut.iloc[1:], C.cifar10_claims(RATIOS))
    assert "0 still improving" in alone and "It enters no claim" in alone


def _checks_table(c4, *checks):
    return pd.DataFrame({"id": ["c4", "cx1", "cx2", "cx3", "cx4"], "verdict": [c4, *checks]})


ALL_HELD = ("it survives after temperature scaling (cx1), against the small dense network (cx2), "
            "on the NLL (cx3), on the Brier score (cx4).")
MIXED = ("it survives after temperature scaling (cx1); it is absent against the small dense "
         "network (cx2), on the Brier score (cx4); the data cannot yet tell whether it holds on "
         "the NLL (cx3).")
ALL_OPEN = "the data cannot yet tell whether it holds after temperature scaling (cx1)"


@pytest.mark.parametrize("checks, has, lacks", [
    (["reproduced"] * 4, [ALL_HELD, "pruning improves calibration, not only the ECE estimate"],
     ["absent", "cannot yet tell", "no evidence"]),
    (["reproduced", "no meaningful effect", "inconclusive", "contradicted"], [MIXED],
     ["On this evidence", "no evidence"]),
    (["no meaningful effect", "contradicted", "no meaningful effect", "no meaningful effect"],
     ["it is absent after temperature scaling (cx1)",
      "pruning does not improve calibration: one temperature undoes the drop"],
     ["survives", "cannot yet tell"]),
    (["inconclusive"] * 4, [ALL_OPEN, "a lower ECE alone is no evidence"],
     ["survives", "absent", "On this evidence"]),
])
def test_calibration_checks_reading_names_each_check_by_its_verdict(checks, has, lacks):
    from prunelib.readings import calibration_checks_reading

    text = calibration_checks_reading(_checks_table("reproduced", *checks))
    assert text.startswith("So the lower ECE of a pruned network is real as measured (c4); ")
    assert all(h in text for h in has), text
    assert not any(x in text for x in lacks), text


@pytest.mark.parametrize("c4, expect", [
    ("contradicted", "Our data contradict the poster's central claim"),
    ("no meaningful effect", "does not lower ECE here (c4, *no meaningful effect*)"),
    ("inconclusive", "cannot be decided with the seeds in the store (c4, *inconclusive*)"),
])
def test_calibration_checks_reading_without_a_reproduced_c4_reads_no_checks(c4, expect):
    from prunelib.readings import calibration_checks_reading

    text = calibration_checks_reading(_checks_table(c4, *["reproduced"] * 4))
    assert expect in text and "survives" not in text


def test_calibration_checks_reading_needs_the_checks():
    from prunelib.readings import calibration_checks_reading

    with pytest.raises(ValueError, match=r"lacks the claims \['cx3', 'cx4'\]"):
        calibration_checks_reading(_checks_table("reproduced", *["reproduced"] * 4).iloc[:3])
