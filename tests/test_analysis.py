"""Summaries over seeds: OOD metric tables and interval formatting."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prunelib.analysis import format_interval, ood_summary
from prunelib.experiments import OOD_METRICS, OOD_SCORES


def ood_frame(seeds=4):
    rng = np.random.default_rng(0)
    rows = []
    for ratio in (0.0, 0.8):
        for seed in range(seeds):
            row = {"prune": "unstructured", "technique": "iterative_reset", "ratio": ratio,
                   "seed": seed}
            for o in ("mnist", "gaussian"):
                for s in OOD_SCORES:
                    for t in ("", "_ts"):
                        for m in OOD_METRICS:
                            row[f"{m}_{s}{t}_{o}"] = rng.uniform()
            rows.append(row)
    return pd.DataFrame(rows)


def test_ood_summary_is_the_t_interval_of_each_column():
    df = ood_frame()
    out = ood_summary(df, ["mnist", "gaussian"])
    # 2 ratios x 2 sets x 4 scores x before/after temperature scaling
    assert len(out) == 2 * 2 * len(OOD_SCORES) * 2
    row = out[(out.ratio == 0.8) & (out["ood set"] == "mnist") & (out.score == "neg_energy")
              & out["temperature scaled"]].iloc[0]
    values = df[df.ratio == 0.8]["aupr_out_neg_energy_ts_mnist"].to_numpy()
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    assert row["aupr_out"] == pytest.approx(values.mean())
    assert row["aupr_out_upper"] - row["aupr_out"] == pytest.approx(half)
    assert row["n"] == len(values)


def test_ood_summary_names_missing_columns():
    with pytest.raises(ValueError, match="missing"):
        ood_summary(ood_frame(), ["cifar100"])


def test_format_interval():
    assert format_interval(0.91234, 0.905, 0.919) == "0.912 ± 0.007"
    assert format_interval(0.5, float("nan"), float("nan")) == "0.500"
