"""Calibration metrics, temperature scaling and per-seed intervals (prunelib.metrics)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from prunelib import metrics as M

PROPS = settings(max_examples=50, deadline=None)


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _calibrated(n, n_classes, seed):
    """Probabilities with labels drawn from them: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(n_classes, 0.5), size=n)
    u = rng.random(n)[:, None]
    y = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), n_classes - 1)
    return p, y


# --------------------------------------------------------------------------- #
# hand-computed cases
# --------------------------------------------------------------------------- #
def test_confidence_one_lands_in_last_bin():
    # pitfall "dropping a bin": conf == 1.0 must not be lost (range(len(bins) - 1) bug)
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    rb = M.reliability_bins(probs, [0, 0], n_bins=15)
    assert rb.counts.sum() == 2 and rb.counts[-1] == 2
    assert M.ece(probs, [0, 0], n_bins=15) == pytest.approx(0.5)  # acc 0.5, conf 1.0
    assert M.mce(probs, [0, 0], n_bins=15) == pytest.approx(0.5)


def test_confidence_zero_lands_in_first_bin():
    # only the positive-class / class-wise confidences can be exactly 0
    p_pos = np.array([0.0, 0.0, 1.0])
    labels = np.array([0, 1, 1])
    # first bin: conf 0, fraction positive 0.5 (weight 2/3); last bin: conf 1, fraction 1
    assert M.binary_positive_class_ece(p_pos, labels, n_bins=10) == pytest.approx(1 / 3)
    per = M.classwise_ece(np.stack([1 - p_pos, p_pos], 1), labels, n_bins=10, per_class=True)
    assert per[1] == pytest.approx(1 / 3)


def test_all_samples_in_one_bin():
    probs = np.tile([0.7, 0.3], (10, 1))
    calibrated = np.array([0] * 7 + [1] * 3)
    assert M.ece(probs, calibrated) == pytest.approx(0.0, abs=1e-12)
    all_right = np.zeros(10, dtype=int)
    assert M.ece(probs, all_right) == pytest.approx(0.3)
    assert M.mce(probs, all_right) == pytest.approx(0.3)
    rb = M.reliability_bins(probs, all_right, n_bins=15)
    assert (rb.counts > 0).sum() == 1


def test_empty_bins_contribute_nothing():
    probs = np.array([[0.65, 0.35], [0.05, 0.95]])
    labels = np.array([0, 0])  # first right (conf .65), second wrong (conf .95)
    rb = M.reliability_bins(probs, labels, n_bins=10)
    assert rb.counts.tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 1]
    assert np.isnan(rb.accuracy[0]) and np.isnan(rb.mean_confidence[0])
    assert M.ece(probs, labels, n_bins=10) == pytest.approx(0.5 * 0.35 + 0.5 * 0.95)
    assert M.mce(probs, labels, n_bins=10) == pytest.approx(0.95)


def test_bins_are_left_open_right_closed():
    # conf exactly 0.5 belongs to (0.25, 0.5], not to (0.5, 0.75]
    probs = np.array([[0.5, 0.5], [0.25, 0.75]])
    rb = M.reliability_bins(probs, [0, 1], n_bins=4)
    assert rb.counts.tolist() == [0, 1, 1, 0]


def test_ece_uses_top_label_not_class_zero():
    # pitfall: ECE bins max softmax, not p[:, 0]
    probs = np.array([[0.1, 0.2, 0.7]] * 4)
    labels = np.array([2, 2, 2, 1])  # top-label accuracy 0.75, confidence 0.7
    rb = M.reliability_bins(probs, labels)
    nz = rb.counts > 0
    assert rb.mean_confidence[nz] == pytest.approx([0.7])
    assert M.ece(probs, labels) == pytest.approx(0.05)
    class0_version = abs(np.mean(labels == 0) - 0.1)  # what the bug would report
    assert M.ece(probs, labels) != pytest.approx(class0_version)


def test_binary_positive_class_and_top_label_ece_differ():
    # pitfall: on two classes the two ECEs are different quantities
    p_pos = np.array([0.25, 0.75])
    labels = np.array([1, 1])
    # top-label: both have confidence 0.75 (same bin), one right -> |0.5 - 0.75|
    assert M.binary_top_label_ece(p_pos, labels, n_bins=10) == pytest.approx(0.25)
    # positive class: bins at 0.25 (all positive) and 0.75 (all positive)
    assert M.binary_positive_class_ece(p_pos, labels, n_bins=10) == pytest.approx(0.5)
    two_col = np.stack([1 - p_pos, p_pos], axis=1)
    assert M.binary_top_label_ece(two_col, labels, n_bins=10) == M.ece(two_col, labels, n_bins=10)
    summary = M.calibration_summary(two_col, labels, from_logits=False, n_bins=10)
    assert summary["ece"] == pytest.approx(0.25)
    assert summary["positive_class_ece"] == pytest.approx(0.5)


def test_equal_mass_bins():
    probs = np.array([[0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.1, 0.9]])
    labels = np.array([1, 1, 1, 1])
    assert M.reliability_bins(probs, labels, 2, "equal_mass").counts.tolist() == [2, 2]
    assert M.reliability_bins(probs, labels, 2, "equal_width").counts.tolist() == [0, 4]
    # bins {.6,.7} and {.8,.9}, all correct -> mean gap = 1 - 0.75
    assert M.ece(probs, labels, 2, "equal_mass") == pytest.approx(0.25)


def test_brier_sums_over_classes_and_nll():
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    labels = np.array([0, 0, 0])
    assert M.brier(probs, labels) == pytest.approx((0.0 + 0.5 + 2.0) / 3)
    p = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert M.nll(p, [0, 1]) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2)
    z = np.random.default_rng(0).normal(size=(50, 4))
    y = np.random.default_rng(1).integers(0, 4, 50)
    ref = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(y)).item()
    assert M.nll(z, y, from_logits=True) == pytest.approx(ref, rel=1e-12)
    assert M.nll(_softmax(z), y) == pytest.approx(ref, rel=1e-9)
    assert M.brier(z, y, from_logits=True) == pytest.approx(M.brier(_softmax(z), y))


def test_accuracy_and_torch_inputs():
    z = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]])
    y = torch.tensor([0, 1, 1])
    assert M.accuracy(z, y) == pytest.approx(2 / 3)
    p = torch.softmax(z, 1)
    assert M.ece(p, y) == pytest.approx(M.ece(p.numpy(), y.numpy()), abs=1e-12)
    assert M.ece(p.to(torch.bfloat16), y) == pytest.approx(M.ece(p, y), abs=0.02)
    assert M.ece(z, y, from_logits=True) == pytest.approx(M.ece(p, y), abs=1e-6)


def test_calibration_summary_keys():
    p, y = _calibrated(200, 3, 0)
    s = M.calibration_summary(np.log(p + 1e-30), y, from_logits=True)
    assert {"accuracy", "ece", "adaptive_ece", "mce", "classwise_ece", "brier", "nll"} <= set(s)
    assert s["ece"] == pytest.approx(M.ece(p, y), abs=1e-9)
    assert "positive_class_ece" not in s


# --------------------------------------------------------------------------- #
# agreement with torchmetrics
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", range(6))
def test_matches_torchmetrics_l1_and_max(seed):
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 11))
    n = int(rng.integers(20, 2000))
    n_bins = int(rng.integers(1, 25))
    z = torch.tensor(rng.normal(scale=3.0, size=(n, n_classes)), dtype=torch.float32)
    p = torch.softmax(z, dim=1)  # float32 probabilities: torchmetrics works in float32
    y = torch.tensor(rng.integers(0, n_classes, n))
    for norm, ours in (("l1", M.ece), ("max", M.mce)):
        ref = multiclass_calibration_error(p, y, n_classes, n_bins=n_bins, norm=norm).item()
        assert ours(p, y, n_bins=n_bins) == pytest.approx(ref, abs=1e-6), norm


def test_documented_differences_from_torchmetrics():
    """torchmetrics bins [lo, hi) and gives conf == 1.0 an extra (n_bins+1)-th bin.

    We use (lo, hi] with 1.0 in the last regular bin, as the spec asks.  The two only
    disagree when a confidence sits exactly on an edge, shown here.
    """
    from torchmetrics.functional.classification import multiclass_calibration_error as tm

    # (a) conf 1.0 (wrong) and conf 0.95 (right): we merge them, torchmetrics does not
    p = torch.tensor([[1.0, 0.0], [0.05, 0.95]])
    y = torch.tensor([1, 1])
    ours = M.ece(p, y, n_bins=10)
    assert ours == pytest.approx(abs(0.5 - 0.975), abs=1e-6)  # 0.475
    assert tm(p, y, 2, n_bins=10).item() == pytest.approx(0.5 * 1.0 + 0.5 * 0.05, abs=1e-6)
    # (b) conf exactly on an inner edge: 0.5 is in (0.25, 0.5] for us, [0.5, 0.75) for them
    p = torch.tensor([[0.5, 0.5], [0.4, 0.6]])
    y = torch.tensor([1, 1])  # first predicts class 0 (tie) -> wrong; second right
    assert M.ece(p, y, n_bins=4) == pytest.approx(0.5 * 0.5 + 0.5 * 0.4, abs=1e-6)
    assert tm(p, y, 2, n_bins=4).item() == pytest.approx(abs(0.5 - 0.55), abs=1e-6)


def test_ece_falls_toward_zero_for_calibrated_data():
    values = [M.ece(*_calibrated(n, 5, seed=1)) for n in (500, 5_000, 100_000)]
    assert values[0] > values[2]
    assert values[2] < 0.01
    assert M.ece(*_calibrated(100_000, 5, 2), scheme="equal_mass") < 0.01


# --------------------------------------------------------------------------- #
# property tests
# --------------------------------------------------------------------------- #
@st.composite
def prob_label(draw):
    n = draw(st.integers(1, 40))
    c = draw(st.integers(2, 5))
    z = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-40, 40)))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    perm = draw(st.permutations(range(n)))
    n_bins = draw(st.integers(1, 20))
    return _softmax(z), y, np.asarray(perm, dtype=int), n_bins


@PROPS
@given(prob_label(), st.sampled_from(["equal_width", "equal_mass"]))
def test_ece_mce_properties(case, scheme):
    p, y, perm, n_bins = case
    e = M.ece(p, y, n_bins, scheme)
    m = M.mce(p, y, n_bins, scheme)
    assert 0.0 <= e <= 1.0 and 0.0 <= m <= 1.0
    assert e <= m + 1e-12
    assert M.ece(p[perm], y[perm], n_bins, scheme) == pytest.approx(e, abs=1e-12)
    assert M.mce(p[perm], y[perm], n_bins, scheme) == pytest.approx(m, abs=1e-12)
    assert M.reliability_bins(p, y, n_bins, scheme).counts.sum() == len(y)  # nothing dropped
    assert 0.0 <= M.classwise_ece(p, y, n_bins, scheme) <= 1.0


# --------------------------------------------------------------------------- #
# temperature scaling
# --------------------------------------------------------------------------- #
def _tempered(n, n_classes, temperature, seed):
    """Logits whose calibrated version is logits / temperature."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(n, n_classes))
    p = _softmax(z)
    u = rng.random(n)[:, None]
    y = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), n_classes - 1)
    return z * temperature, y


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_temperature_recovers_known_temperature(true_t):
    z, y = _tempered(20_000, 10, true_t, seed=3)
    t = M.fit_temperature(z, y)
    assert t == pytest.approx(true_t, rel=0.05)
    assert M.fit_temperature(torch.tensor(z, dtype=torch.float32), torch.tensor(y)) == (
        pytest.approx(t, rel=1e-3)
    )


def test_fit_temperature_on_validation_then_apply_to_test():
    # pitfall: temperature is fitted on a validation split and reported on test
    doc = M.fit_temperature.__doc__.lower()
    assert "validation" in doc and "test" in doc
    z, y = _tempered(8_000, 10, 3.0, seed=4)
    val, test = slice(0, 4_000), slice(4_000, None)
    t = M.fit_temperature(z[val], y[val])
    scaled = M.apply_temperature(z[test], t)
    assert M.nll(scaled, y[test], from_logits=True) < M.nll(z[test], y[test], from_logits=True)
    assert M.ece(scaled, y[test], from_logits=True) < M.ece(z[test], y[test], from_logits=True)


def test_apply_temperature_types_and_validation():
    zt = torch.randn(5, 3)
    out = M.apply_temperature(zt, 2.0)
    assert isinstance(out, torch.Tensor) and torch.allclose(out, zt / 2.0)
    assert np.allclose(M.apply_temperature(zt.numpy(), 2.0), zt.numpy() / 2.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            M.apply_temperature(zt, bad)


def test_fit_temperature_warns_on_bound():
    z = np.array([[10.0, -10.0], [-10.0, 10.0]] * 10)  # separable: NLL falls as T -> 0
    y = np.array([0, 1] * 10)
    with pytest.warns(RuntimeWarning, match="bound"):
        t = M.fit_temperature(z, y)
    assert t > 0


# --------------------------------------------------------------------------- #
# per-seed intervals
# --------------------------------------------------------------------------- #
def test_mean_ci_averages_over_k_seeds_dividing_by_k():
    # pitfall: averaging curves over k seeds divides by k
    curves = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])  # 3 seeds x 2 ratios
    res = M.mean_ci(curves)
    assert np.allclose(res.mean, [3.0, 5.0])
    assert np.allclose(res.mean, curves.sum(axis=0) / 3)


def test_mean_ci_t_interval_matches_scipy():
    v = [1.0, 2.0, 3.0, 4.0]
    mean, lo, hi = M.mean_ci(v)
    ref = stats.t.interval(0.95, df=3, loc=2.5, scale=stats.sem(v))
    assert mean == 2.5 and (lo, hi) == pytest.approx(ref, rel=1e-12)
    _, lo90, hi90 = M.mean_ci(v, confidence=0.90)
    assert lo < lo90 < hi90 < hi


def test_mean_ci_bootstrap_is_seeded():
    v = np.random.default_rng(0).normal(size=8)
    a = M.mean_ci(v, method="bootstrap", seed=1)
    b = M.mean_ci(v, method="bootstrap", seed=1)
    assert a == b
    assert a.lower < a.mean < a.upper
    assert M.mean_ci(torch.tensor(v), method="bootstrap", seed=1) == a


def test_mean_ci_single_seed_has_no_interval():
    mean, lo, hi = M.mean_ci([0.7])
    assert mean == 0.7 and math.isnan(lo) and math.isnan(hi)


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #
GOOD_P = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
GOOD_Y = np.array([1, 0, 1])
FUNCS = [M.ece, M.mce, M.classwise_ece, M.brier, M.nll, M.reliability_bins]


@pytest.mark.parametrize("fn", FUNCS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        (GOOD_P, np.array([1, 0]), "shape mismatch"),
        (GOOD_P, np.array([1, 0, 2]), r"labels must lie in \[0, 1\]"),
        (GOOD_P, np.array([1, 0, -1]), "labels must lie in"),
        (GOOD_P, np.array([1.0, 0.5, 0.0]), "integer"),
        (np.array([[0.2, 0.7], [0.6, 0.4], [0.5, 0.5]]), GOOD_Y, "sum to 1"),
        (np.array([[1.5, -0.5], [0.6, 0.4], [0.5, 0.5]]), GOOD_Y, r"probabilities in \[0, 1\]"),
        (np.array([[np.nan, 0.5], [0.6, 0.4], [0.5, 0.5]]), GOOD_Y, "non-finite"),
        (np.array([0.2, 0.6, 0.5]), GOOD_Y, "2-D"),
        (np.ones((3, 1)), GOOD_Y, "at least 2 classes"),
        (np.empty((0, 2)), np.empty(0, dtype=int), "empty"),
    ],
)
def test_bad_input_raises_value_error(fn, probs, labels, match):
    with pytest.raises(ValueError, match=match):
        fn(probs, labels)


@pytest.mark.parametrize("fn", [M.ece, M.mce, M.classwise_ece, M.reliability_bins])
def test_bad_n_bins_and_scheme(fn):
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
        fn(GOOD_P, GOOD_Y, n_bins=0)
    with pytest.raises(TypeError, match="n_bins"):
        fn(GOOD_P, GOOD_Y, n_bins=2.5)
    with pytest.raises(ValueError, match="scheme"):
        fn(GOOD_P, GOOD_Y, scheme="quantile")


def test_bad_input_other_functions():
    with pytest.raises(ValueError, match="shape mismatch"):
        M.fit_temperature(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="labels must lie in"):
        M.binary_positive_class_ece([0.2, 0.7], [0, 2])
    with pytest.raises(ValueError, match=r"\(n,\) or \(n, 2\)"):
        M.binary_top_label_ece(np.full((2, 3), 1 / 3), [0, 1])
    with pytest.raises(ValueError, match="from_logits=True"):
        M.binary_positive_class_ece([1.3, -0.2], [0, 1])
    with pytest.raises(ValueError, match="non-finite"):
        M.mean_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="confidence"):
        M.mean_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="method"):
        M.mean_ci([1.0, 2.0], method="normal")
