"""OOD scores (higher = more in-distribution) and detection metrics (ID = positive class)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import logsumexp
from sklearn.metrics import average_precision_score, roc_auc_score

from prunelib import metrics as M

PROPS = settings(max_examples=50, deadline=None)


# --------------------------------------------------------------------------- #
# scores
# --------------------------------------------------------------------------- #
def test_score_values_by_hand():
    z = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, -1.0]])
    assert M.msp(z)[0] == pytest.approx(1 / 3)
    assert M.neg_entropy(z)[0] == pytest.approx(-math.log(3))
    assert M.neg_energy(z) == pytest.approx(logsumexp(z, axis=1))
    assert M.neg_energy(z, temperature=2.0) == pytest.approx(2.0 * logsumexp(z / 2.0, axis=1))
    assert M.max_logit(z).tolist() == [0.0, 5.0]
    zt = torch.tensor(z)
    assert M.neg_energy(zt) == pytest.approx(torch.logsumexp(zt, 1).numpy())


@pytest.mark.parametrize("score", [M.msp, M.neg_entropy, M.neg_energy, M.max_logit])
def test_scores_higher_for_confident_logits(score):
    confident = np.array([[8.0, 0.0, 0.0, 0.0]])
    uncertain = np.array([[1.0, 1.0, 1.0, 1.0]])
    assert score(confident)[0] > score(uncertain)[0]


# --------------------------------------------------------------------------- #
# detection metrics
# --------------------------------------------------------------------------- #
def test_auroc_separated_and_reversed():
    id_s, ood_s = np.array([0.9, 0.8, 0.95]), np.array([0.1, 0.3])
    assert M.auroc(id_scores=id_s, ood_scores=ood_s) == 1.0
    assert M.auroc(id_scores=ood_s, ood_scores=id_s) == 0.0
    assert M.aupr_in(id_scores=id_s, ood_scores=ood_s) == 1.0 and M.aupr_out(id_scores=id_s, ood_scores=ood_s) == 1.0
    assert M.fpr_at_95_tpr(id_scores=id_s, ood_scores=ood_s) == 0.0


def test_auroc_identical_distributions_is_about_half():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=5_000), rng.normal(size=5_000)
    assert M.auroc(id_scores=a, ood_scores=b) == pytest.approx(0.5, abs=0.03)
    assert M.auroc(id_scores=a, ood_scores=a) == 0.5  # all ties


def test_fpr95_hand_case():
    id_s = np.arange(1, 21, dtype=float)  # 20 ID scores 1..20
    ood_s = np.array([0.0, 1.5, 2.0, 3.0, 10.0])
    # keeping 95% of ID (19 of 20) needs threshold 2; OOD at or above 2: {2, 3, 10} -> 3/5
    assert M.fpr_at_95_tpr(id_scores=id_s, ood_scores=ood_s) == pytest.approx(0.6)
    assert M.fpr_at_tpr(id_scores=id_s, ood_scores=ood_s, tpr=1.0) == pytest.approx(0.8)  # threshold 1


def test_aupr_conventions_match_sklearn():
    rng = np.random.default_rng(1)
    id_s, ood_s = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 200)
    y = np.r_[np.ones(300), np.zeros(200)]
    s = np.r_[id_s, ood_s]
    assert M.auroc(id_scores=id_s, ood_scores=ood_s) == roc_auc_score(y, s)
    assert M.aupr_in(id_scores=id_s, ood_scores=ood_s) == average_precision_score(y, s)
    assert M.aupr_out(id_scores=id_s, ood_scores=ood_s) == average_precision_score(1 - y, -s)
    # AUPR-out is AUPR-in with the roles of the sets swapped and scores negated
    assert M.aupr_out(id_scores=id_s, ood_scores=ood_s) == pytest.approx(M.aupr_in(id_scores=-ood_s, ood_scores=-id_s))


def test_no_hidden_sigmoid_on_energy_scores():
    # pitfall: energy scores > 1 must not be squashed (a sigmoid would saturate them to 1.0)
    rng = np.random.default_rng(2)
    id_e = rng.uniform(150, 200, 100)
    ood_e = np.r_[rng.uniform(100, 160, 99), 170.0]
    assert 1 / (1 + np.exp(-100.0)) == 1.0  # what a sigmoid would turn every score into
    lo, hi = min(id_e.min(), ood_e.min()), max(id_e.max(), ood_e.max())
    scaled = ((id_e - lo) / (hi - lo), (ood_e - lo) / (hi - lo))  # rank-equivalent, in [0, 1]
    value = M.auroc(id_scores=id_e, ood_scores=ood_e)
    assert 0.9 < value < 1.0
    assert value == M.auroc(id_scores=scaled[0], ood_scores=scaled[1])
    assert M.fpr_at_95_tpr(id_scores=id_e, ood_scores=ood_e) == M.fpr_at_95_tpr(id_scores=scaled[0], ood_scores=scaled[1])
    # real energies from logits, far above 1
    logits_id = rng.normal(size=(200, 10)) * 3 + np.eye(10)[rng.integers(0, 10, 200)] * 8
    logits_ood = rng.normal(size=(200, 10)) * 3
    e_id, e_ood = M.neg_energy(logits_id), M.neg_energy(logits_ood)
    assert e_id.max() > 1
    assert M.auroc(id_scores=e_id, ood_scores=e_ood) == M.auroc(
        id_scores=np.exp(e_id / 50), ood_scores=np.exp(e_ood / 50))


@st.composite
def two_score_sets(draw):
    elems = st.integers(-20, 20).map(float)  # integers: plenty of ties
    a = draw(hnp.arrays(np.float64, draw(st.integers(1, 40)), elements=elems))
    b = draw(hnp.arrays(np.float64, draw(st.integers(1, 40)), elements=elems))
    return a, b


@PROPS
@given(two_score_sets(), st.sampled_from([0.5, 0.8, 0.95, 1.0]))
def test_fpr_at_tpr_matches_brute_force(sets, level):
    id_s, ood_s = sets
    # largest threshold t with mean(id >= t) >= level; FPR = mean(ood >= t)
    t = max(c for c in np.unique(id_s) if np.mean(id_s >= c) >= level)
    assert M.fpr_at_tpr(id_scores=id_s, ood_scores=ood_s, tpr=level) == pytest.approx(np.mean(ood_s >= t))
    assert 0.0 <= M.auroc(id_scores=id_s, ood_scores=ood_s) <= 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="ood_scores is empty"):
        M.auroc(id_scores=[0.1, 0.2], ood_scores=[])
    with pytest.raises(ValueError, match="non-finite"):
        M.fpr_at_95_tpr(id_scores=[0.1, np.inf], ood_scores=[0.2])
    with pytest.raises(ValueError, match="1-D"):
        M.aupr_in(id_scores=np.ones((2, 2)), ood_scores=[0.2])
    with pytest.raises(ValueError, match="tpr"):
        M.fpr_at_tpr(id_scores=[0.1], ood_scores=[0.2], tpr=1.5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        M.msp(np.ones((3, 1)))
    with pytest.raises(ValueError, match="non-finite"):
        M.neg_energy(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="temperature"):
        M.neg_energy(np.ones((2, 2)), temperature=0)
