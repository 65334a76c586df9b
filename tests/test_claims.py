"""Claims tables: verdicts from paired differences; missing runs say so."""

import numpy as np
import pandas as pd
import pytest

from prunelib.claims import cifar10_claims, moons_claims, ood_claims


def frame(effect_ece=-0.02, seeds=8):
    """Every technique of a (kind, ratio, seed) shares its noise, so techniques differ by
    exactly nothing and pruned vs dense by ``effect_ece`` in ECE plus noise."""
    rng = np.random.default_rng(0)
    rows = []
    for kind in ("structured", "unstructured"):
        for ratio in (0.0, 0.5, 0.8):
            for seed in range(seeds):
                acc = 0.9 + 0.001 * rng.standard_normal()
                ece = 0.05 + 0.001 * rng.standard_normal()
                ece_ts = 0.02 + 0.01 * rng.standard_normal()
                for tech in ("oneshot_reset", "oneshot_finetune", "oneshot_reinit", "iterative_reset"):
                    rows.append({"prune": kind, "technique": tech, "ratio": ratio, "seed": seed,
                                 "accuracy": acc, "ece": ece + (effect_ece if ratio > 0 else 0),
                                 "ece_ts": ece_ts})
    return pd.DataFrame(rows)


def test_moons_claims_verdicts():
    claims = moons_claims(frame(), (0.0, 0.5, 0.8)).set_index(["study", "id"])
    assert claims.loc[("moons, structured", "a"), "verdict"] == "reproduced"  # no accuracy loss
    assert claims.loc[("moons, structured", "c"), "verdict"] == "reproduced"  # ECE lower
    assert claims.loc[("moons, structured", "d1"), "verdict"] == "inconclusive"  # noise after TS
    assert claims.loc[("moons, structured", "d2"), "verdict"] == "inconclusive"  # reset ~ reinit
    raised = moons_claims(frame(effect_ece=+0.02), (0.0, 0.5, 0.8)).set_index(["study", "id"])
    assert raised.loc[("moons, unstructured", "c"), "verdict"] == "refuted"


def test_missing_runs_are_reported_not_invented():
    claims = cifar10_claims(frame(), (0.0, 0.5, 0.8))  # no iterative_reinit, no early stop column
    missing = claims[claims["mean [95% CI]"] == "not in the store yet"]
    assert len(missing) >= 2 and (missing["verdict"] == "inconclusive").all()
    assert (missing["seeds"] == 0).all()
    ood = ood_claims(frame(), (0.0, 0.8), ("mnist",))
    assert (ood["verdict"] == "inconclusive").all() and len(ood) == 6


def test_verdict_summary_names_every_claim():
    from prunelib.claims import verdict_summary

    claims = moons_claims(frame(), (0.0, 0.5, 0.8))
    text = verdict_summary(claims)
    assert text.count("- **moons,") == 2
    assert all(f"({i})" in text for i in claims["id"])


def test_cifar10_ticket_vs_reinit_at_the_most_pruned_ratio():
    """(a''') compares reset with re-init at the largest ratio: here re-init is 3 points worse."""
    df = frame()
    extra = df[(df.prune == "unstructured") & (df.technique == "iterative_reset")].copy()
    extra["technique"] = "iterative_reinit"
    extra.loc[extra.ratio == 0.8, "accuracy"] -= 0.03
    claims = cifar10_claims(pd.concat([df, extra]), (0.0, 0.5, 0.8)).set_index("id")
    row = claims.loc["a'''"]
    assert "Pm = 0.80" in row["claim"] and row["verdict"] == "reproduced"
    assert row["difference"].mean == pytest.approx(0.03)
    # at Pm = 0.5 the two are identical: no difference, no verdict
    assert claims.loc["a''", "difference"].mean == pytest.approx(0.0)
    assert claims.loc["a''", "verdict"] == "inconclusive"
