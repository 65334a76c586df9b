"""Tests of prunelib.stats (and the calibration estimators it re-exports)."""

from __future__ import annotations

import dataclasses
import doctest
import math

import numpy as np
import pytest
from scipy import stats as st

from prunelib import calibration_estimators as ce
from prunelib import metrics, stats
from prunelib.stats import (
    ALPHA,
    MARGINS,
    VERDICTS,
    debiased_ece,
    ece_noise_floor,
    hierarchical_bootstrap,
    holm,
    judge,
    judge_family,
    margin_for,
    paired_t,
    smooth_ece,
    tost_p,
)


def _acc(p, y):
    return float(np.mean(p.argmax(1) == y))


def _synthetic(rng, n, shift=0.0, n_classes=10, low=0.3):
    """Top-label confidence ~ U(low, 1); correct with probability ``confidence - shift``."""
    conf = rng.uniform(low, 1.0, n)
    hit = rng.random(n) < conf - shift
    y = rng.integers(0, n_classes, n)
    p = np.repeat(((1 - conf) / (n_classes - 1))[:, None], n_classes, axis=1)
    p[np.arange(n), np.where(hit, y, (y + 1) % n_classes)] = conf
    return p, y


# --------------------------------------------------------------------------- margins
def test_margins_values_and_reasons():
    want = {"accuracy": 0.01, "ece": 0.005, "ece_ts": 0.005, "ece_debiased": 0.005,
            "smooth_ece": 0.005, "brier": 0.005, "brier_ts": 0.005, "nll": 0.02,
            "nll_ts": 0.02, "auroc": 0.01, "early_stop_iteration": 700,
            "ood_confidence_gap": 0.01, "mean_confidence": 0.01}
    assert {k: v.value for k, v in MARGINS.items()} == want
    assert all(len(v.why) > 20 for v in MARGINS.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        MARGINS["ece"].value = 1.0
    assert ALPHA == 0.05
    assert VERDICTS == ("reproduced", "contradicted", "no meaningful effect", "inconclusive")


def test_margin_for_prefix_rules():
    assert margin_for("nll_ts") == 0.02
    assert margin_for("auroc_msp_ts_svhn") == 0.01
    assert margin_for("accuracy_ts") == 0.01
    assert margin_for("early_stop_iteration") == 700
    with pytest.raises(ValueError, match="known metrics.*accuracy"):
        margin_for("f1")
    with pytest.raises(ValueError, match="known metrics"):
        margin_for("f1_ts")


# --------------------------------------------------------------------------- paired t
@pytest.mark.parametrize("n", [2, 3, 7, 20])
def test_paired_t_matches_scipy(n):
    d = np.random.default_rng(n).normal(0.003, 0.01, n)
    r, ref = paired_t(d), st.ttest_1samp(d, 0.0)
    assert r.n == n and r.df == n - 1
    assert r.t == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p == pytest.approx(ref.pvalue, rel=1e-10)
    for level in (0.9, 0.95, 0.99):
        ci = ref.confidence_interval(level)
        assert r.ci(level) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_paired_t_degenerate_cases():
    one = paired_t([0.02])
    assert one.mean == 0.02 and one.n == 1 and math.isnan(one.p)
    assert all(math.isnan(x) for x in one.ci())
    flat = paired_t([0.01, 0.01, 0.01])
    assert flat.sd == 0 and flat.p == 0.0 and flat.ci(0.99) == (0.01, 0.01)
    zero = paired_t([0.0, 0.0])
    assert zero.p == 1.0 and zero.ci() == (0.0, 0.0)
    for bad in ([], [[0.1, 0.2]], [0.1, float("nan")]):
        with pytest.raises(ValueError, match="diffs"):
            paired_t(bad)
    with pytest.raises(ValueError, match="level"):
        paired_t([0.1, 0.2]).ci(95)


# --------------------------------------------------------------------------- TOST
def test_tost_hand_worked():
    # mean 0.002, sd 0.001*sqrt(2), se 0.001, df 1; t_upper = (0.002 - 0.005)/0.001 = -3,
    # t_lower = 7; with 1 df t is Cauchy: p = P(T <= -3) = 1/2 - atan(3)/pi
    assert tost_p([0.001, 0.003], 0.005) == pytest.approx(0.5 - math.atan(3) / math.pi)
    assert tost_p([0.001, 0.003], 0.005) == pytest.approx(0.10241638, abs=1e-8)


def test_tost_matches_statsmodels():
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(1)
    for n in (3, 5, 12):
        d = rng.normal(0.001, 0.004, n)
        ref = ttost_paired(d, np.zeros(n), -0.005, 0.005)[0]
        assert tost_p(d, 0.005) == pytest.approx(float(ref), rel=1e-9)


def test_tost_equivalence_iff_interval_inside_margin():
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(300):
        n = int(rng.integers(2, 12))
        d = rng.normal(rng.uniform(-0.01, 0.01), rng.uniform(0.001, 0.01), n)
        lo, hi = paired_t(d).ci(1 - 2 * ALPHA)
        inside = -0.005 < lo and hi < 0.005
        assert (tost_p(d, 0.005) < ALPHA) == inside
        seen.add(inside)
    assert seen == {True, False}


def test_tost_degenerate_and_bad_margin():
    assert math.isnan(tost_p([0.001], 0.005))
    assert tost_p([0.001, 0.001], 0.005) == 0.0
    assert tost_p([0.01, 0.01], 0.005) == 1.0
    with pytest.raises(ValueError, match="margin"):
        tost_p([0.1, 0.2], 0.0)


# --------------------------------------------------------------------------- Holm
def test_holm_hand_worked():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> cummax
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    for m in (1, 2, 5, 17):
        p = rng.uniform(0, 0.2, m) ** 2
        p[: m // 3] = p[0]  # ties
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)


def test_holm_nan_not_counted_and_validation():
    out = holm([0.01, np.nan, 0.04, 0.9])
    np.testing.assert_allclose(out, [0.03, np.nan, 0.08, 0.9])
    assert np.all(holm([0.5, 0.6, 0.7]) <= 1) and holm([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])


# --------------------------------------------------------------------------- verdicts
def _noise(n, mean, sd, seed):
    """n values with exactly the given mean and sample sd."""
    z = np.random.default_rng(seed).normal(size=n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def test_family_with_every_verdict():
    rows = [
        dict(diffs=_noise(10, 0.03, 0.005, 0), predicts="higher", metric="accuracy"),
        dict(diffs=_noise(10, -0.03, 0.005, 1), predicts="higher", metric="accuracy"),
        dict(diffs=_noise(10, 0.0002, 0.001, 2), predicts="lower", metric="ece"),
        dict(diffs=_noise(3, 0.01, 0.03, 3), predicts="higher", metric="accuracy"),
        dict(diffs=_noise(10, 0.001, 0.002, 4), predicts="same", metric="accuracy"),
        dict(diffs=_noise(10, -0.05, 0.01, 5), predicts="same", metric="accuracy"),
        dict(diffs=_noise(10, -0.021, 0.004, 6), predicts="lower", metric="accuracy",
             expected=-0.02),
        dict(diffs=_noise(10, -0.004, 0.001, 7), predicts="lower", metric="accuracy",
             expected=-0.02, id="ignored"),
        dict(diffs=[0.5], predicts="higher", metric="nll"),
    ]
    got = judge_family(rows)
    assert [j.verdict for j in got] == [
        "reproduced", "contradicted", "no meaningful effect", "inconclusive",
        "reproduced", "contradicted", "reproduced", "contradicted", "inconclusive"]
    m = 8  # the single-seed row is not counted
    for row, j in zip(rows, got):
        assert j.level == pytest.approx(1 - ALPHA / m)
        assert j.margin == margin_for(row["metric"])
        if j.n >= 2:
            assert (j.lower, j.upper) == pytest.approx(paired_t(row["diffs"]).ci(1 - ALPHA / m))
            assert (j.lower95, j.upper95) == pytest.approx(paired_t(row["diffs"]).ci(0.95))
            assert j.p_adjusted >= j.p and j.p_equiv_adjusted >= j.p_equiv
        # a Bonferroni interval that excludes 0 always comes with a Holm-significant p
        if j.lower > 0 or j.upper < 0:
            assert j.p_adjusted < ALPHA
    assert got[-1].n == 1 and math.isnan(got[-1].p) and got[-1].seeds_needed is None
    assert all(j.seeds_needed is None for j in got if j.verdict != "inconclusive")
    assert got[3].seeds_needed > 3


def test_holm_removes_a_raw_significant_claim():
    # four claims with raw p ~ 0.02, 0.03, 0.2, 0.5; Holm: 0.08, 0.09, ...
    rows = [dict(diffs=_noise(6, mu, 0.01, s), predicts="higher", metric="accuracy")
            for s, mu in enumerate((0.0125, 0.0115, 0.0057, 0.0029))]
    got = judge_family(rows)
    assert got[0].p < ALPHA and got[1].p < ALPHA
    assert all(j.p_adjusted >= ALPHA for j in got)
    assert got[0].verdict == "inconclusive"
    # alone (m = 1) the same claim is reproduced
    assert judge_family(rows[:1])[0].verdict == "reproduced"


def test_seeds_needed_formula():
    d = _noise(4, 0.01, 0.02, 0)
    j = judge(d, predicts="higher", metric="accuracy", p_adjusted=0.5, p_equiv_adjusted=0.5, m=2)
    z = st.norm.ppf
    diff_n = ((z(1 - 0.05 / 4) + z(0.8)) * 0.02 / 0.01) ** 2  # 38.0; |mean| = margin: no TOST
    assert j.verdict == "inconclusive" and j.seeds_needed == math.ceil(diff_n) == 39
    d = _noise(4, 0.002, 0.004, 0)
    j = judge(d, predicts="same", metric="accuracy", p_adjusted=0.5, p_equiv_adjusted=0.5, m=1)
    equiv_n = ((z(1 - 0.05) + z(0.9)) * 0.004 / (0.01 - 0.002)) ** 2  # 2.1 -> at least n + 1
    diff_n = ((z(1 - 0.025) + z(0.8)) * 0.004 / 0.002) ** 2  # 31.4
    assert equiv_n < diff_n and j.seeds_needed == 5


def test_judge_rejects_bad_input():
    d = [0.01, 0.02]
    kw = dict(metric="accuracy", p_adjusted=0.01, p_equiv_adjusted=0.5, m=1)
    with pytest.raises(ValueError, match="predicts"):
        judge(d, predicts="not_lower", **kw)
    with pytest.raises(ValueError, match="side"):
        judge(d, predicts="lower", expected=0.02, **kw)
    with pytest.raises(ValueError, match="expected=None"):
        judge(d, predicts="same", expected=0.0, **kw)
    with pytest.raises(ValueError, match="m "):
        judge(d, predicts="higher", **{**kw, "m": 0})
    with pytest.raises(ValueError, match="p_adjusted"):
        judge(d, predicts="higher", **{**kw, "p_adjusted": 2.0})
    with pytest.raises(ValueError, match="lacks"):
        judge_family([dict(diffs=d, metric="ece")])


# --------------------------------------------------------------------------- bootstrap
def test_hierarchical_bootstrap_one_seed_is_an_example_bootstrap():
    rng = np.random.default_rng(4)
    pa, y = _synthetic(rng, 600)
    pb, _ = _synthetic(rng, 600)
    pb = pb[:, np.r_[1:10, 0]]  # other predictions, same examples and labels
    got = hierarchical_bootstrap(_acc, [(pa, y)], [(pb, y)], n_boot=2000, seed=1)
    per = (pa.argmax(1) == y).astype(float) - (pb.argmax(1) == y)
    ref = st.bootstrap((per,), np.mean, n_resamples=2000, method="percentile",
                       rng=np.random.default_rng(2)).confidence_interval
    assert got.mean == pytest.approx(per.mean())
    sd = per.std() / math.sqrt(per.size)  # bootstrap sd of the mean
    assert got.lower == pytest.approx(ref.low, abs=0.25 * sd)
    assert got.upper == pytest.approx(ref.high, abs=0.25 * sd)


def test_hierarchical_bootstrap_wider_than_seed_only():
    rng = np.random.default_rng(5)
    a = [_synthetic(rng, 150) for _ in range(5)]
    got = hierarchical_bootstrap(_acc, a, n_boot=1000, seed=0)
    vals = np.array([_acc(p, y) for p, y in a])
    boots = vals[rng.integers(0, 5, (1000, 5))].mean(1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    assert got.mean == pytest.approx(vals.mean())
    assert got.upper - got.lower > 1.3 * (hi - lo)


def test_hierarchical_bootstrap_per_example_path_is_the_same():
    rng = np.random.default_rng(6)
    a = [_synthetic(rng, 300) for _ in range(4)]
    b = [(_synthetic(rng, 300)[0], y) for _, y in a]
    slow = hierarchical_bootstrap(_acc, a, b, n_boot=200, seed=3)
    fast = hierarchical_bootstrap(lambda p, y: p.argmax(1) == y, a, b, n_boot=200, seed=3,
                                  per_example=True)
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert hierarchical_bootstrap(_acc, a, b, n_boot=200, seed=3) == slow  # seeded
    with pytest.raises(ValueError, match="one value per example"):
        hierarchical_bootstrap(_acc, a, b, n_boot=5, per_example=True)


def test_hierarchical_bootstrap_validation():
    rng = np.random.default_rng(7)
    p, y = _synthetic(rng, 50)
    with pytest.raises(ValueError, match="labels differ"):
        hierarchical_bootstrap(_acc, [(p, y)], [(p, (y + 1) % 10)])
    with pytest.raises(ValueError, match="seeds"):
        hierarchical_bootstrap(_acc, [(p, y)], [(p, y), (p, y)])
    with pytest.raises(ValueError, match="same N"):
        hierarchical_bootstrap(_acc, [(p, y[:-1])])
    with pytest.raises(ValueError, match="n_boot"):
        hierarchical_bootstrap(_acc, [(p, y)], n_boot=0)


# --------------------------------------------------------------------------- ECE floor
def test_binned_ece_matches_metrics_ece():
    edges = np.linspace(0, 1, 16)
    conf = np.concatenate([edges[8:], [0.5, 1.0, 0.77, 0.999]])
    hit = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=float)
    probs = np.stack([conf, 1 - conf], axis=1)  # class 0 is the top label
    labels = np.where(hit == 1, 0, 1)
    assert ce._binned_ece(conf, hit, 15) == pytest.approx(metrics.ece(probs, labels), abs=1e-12)


def test_ece_noise_floor_closed_form():
    n, p, draws = 50, 0.7, 4000
    k = np.arange(n + 1)
    pmf = st.binom.pmf(k, n, p)
    exact = float(np.sum(pmf * np.abs(k / n - p)))
    sd = math.sqrt(float(np.sum(pmf * (k / n - p) ** 2)) - exact**2)
    f = ece_noise_floor(np.full(n, p), n_draws=draws, seed=0)
    assert f.mean == pytest.approx(exact, abs=4 * sd / math.sqrt(draws))
    assert f.lower < f.mean < f.upper
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ece_noise_floor([0.5, 1.2])


# --------------------------------------------------------------------------- debiased ECE
def test_debiased_ece_calibrated_small_n():
    rng = np.random.default_rng(8)
    deb, plain = [], []
    for _ in range(20):
        p, y = _synthetic(rng, 500)
        rb = metrics.reliability_bins(p, y, 15, scheme="equal_mass")
        nz = rb.counts > 0
        plain.append(math.sqrt(np.sum(rb.proportion[nz] * rb.gap[nz] ** 2)))
        deb.append(debiased_ece(p, y))
    deb, plain = np.array(deb), np.array(plain)
    assert np.all(deb < plain)
    assert np.median(deb) < 0.02 and plain.min() > 0.04
    assert deb.mean() < 0.35 * plain.mean()


def test_debiased_ece_constant_overconfidence():
    p, y = _synthetic(np.random.default_rng(9), 20_000, shift=0.1)
    assert debiased_ece(p, y) == pytest.approx(0.1, abs=0.01)


# --------------------------------------------------------------------------- smooth ECE
def test_smooth_ece_known_answers():
    import relplot

    p, y = _synthetic(np.random.default_rng(10), 10_000)
    conf, hit = p.max(1), (p.argmax(1) == y).astype(float)
    value = smooth_ece(p, y)
    assert value == relplot.smECE(conf, hit)
    assert value < 0.025  # the bandwidth floor: smECE(sigma) = sigma, ~0.015 at n = 10,000
    over = smooth_ece(*_synthetic(np.random.default_rng(11), 20_000, shift=0.1))
    assert over == pytest.approx(0.1, abs=0.01)


def test_smooth_ece_bootstrap():
    p, y = _synthetic(np.random.default_rng(12), 2000, shift=0.05)
    v, lo, hi = smooth_ece(p, y, bootstrap=50, seed=1)
    assert v == smooth_ece(p, y) and lo < v < hi and hi - lo < 0.06
    assert smooth_ece(p, y, bootstrap=50, seed=1) == (v, lo, hi)
    with pytest.raises(ValueError, match="bootstrap"):
        smooth_ece(p, y, bootstrap=-1)
    with pytest.raises(ValueError, match="softmax"):
        smooth_ece(p * 2, y)
    with pytest.raises(ValueError, match="labels"):
        smooth_ece(p, y + 10)


# --------------------------------------------------------------------------- doctests
@pytest.mark.parametrize("module", [stats, ce])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
