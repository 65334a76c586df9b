"""Smoke tests of the figures (Agg backend) and the over/under-confidence labelling."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from prunelib import metrics as M
from prunelib import plots


@pytest.fixture(autouse=True)
def _agg_backend():
    plt.switch_backend("Agg")  # headless; plots.py itself never picks a backend
    yield
    plt.close("all")


def _legend_texts(ax):
    leg = ax.get_legend()
    return [] if leg is None else [t.get_text() for t in leg.get_texts()]


def _containers(ax, label):
    return [c for c in ax.containers if c.get_label() == label]


def _overconfident(n=2_000, seed=0):
    """Predicted with confidence ~U(0.6, 1) but right only 50% of the time."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.6, 1.0, n)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = (rng.random(n) < 0.5).astype(int)
    return probs, labels


def test_reliability_diagram_marks_bars_below_diagonal_as_over_confident():
    # pitfall: accuracy < confidence (bar below the diagonal) is OVER-confidence
    probs, labels = _overconfident()
    ax, ax_hist = plots.reliability_diagram(probs, labels, n_bins=10, title="over")
    assert isinstance(ax.figure, plt.Figure) and ax_hist.figure is ax.figure
    texts = _legend_texts(ax)
    assert plots.OVER_LABEL in texts and plots.UNDER_LABEL not in texts
    assert "over-confident (accuracy < confidence)" in plots.OVER_LABEL
    (gap,) = _containers(ax, plots.OVER_LABEL)
    rb = M.reliability_bins(probs, labels, 10)
    nz = rb.counts > 0
    bottoms = [p.get_y() for p in gap.patches]
    tops = [p.get_y() + p.get_height() for p in gap.patches]
    assert np.allclose(bottoms, rb.accuracy[nz]) and np.allclose(tops, rb.mean_confidence[nz])
    assert all(b < t for b, t in zip(bottoms, tops, strict=True))  # accuracy below confidence
    heights = [p.get_height() for p in ax_hist.patches]
    assert sum(heights) == pytest.approx(1.0)
    assert ax.get_title() == "over"


def test_reliability_diagram_under_confident_and_given_ax():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 0.7, 1_000)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.zeros(1_000, dtype=int)  # always right: accuracy 1 > confidence
    fig, ax0 = plt.subplots()
    ax, ax_hist = plots.reliability_diagram(probs, labels, n_bins=15, ax=ax0)
    assert ax is ax0 and ax_hist.figure is fig
    texts = _legend_texts(ax)
    assert plots.UNDER_LABEL in texts and plots.OVER_LABEL not in texts
    fig.canvas.draw()


def test_reliability_diagram_from_logits_and_equal_mass():
    z = np.random.default_rng(2).normal(size=(300, 5)) * 3
    y = np.random.default_rng(3).integers(0, 5, 300)
    ax, _ = plots.reliability_diagram(z, y, from_logits=True, scheme="equal_mass")
    ax.figure.canvas.draw()


def test_confidence_histograms():
    rng = np.random.default_rng(0)
    ax = plots.confidence_histograms(
        rng.beta(8, 1, 500), {"CIFAR-100": rng.beta(3, 2, 400), "SVHN": rng.beta(2, 2, 300)},
        title="Pruning ratio 0.5",
    )
    texts = _legend_texts(ax)
    assert len(texts) == 3 and texts[0].startswith("In-distribution")
    assert any(t.startswith("CIFAR-100") for t in texts)
    assert ax.get_xlim() == (0.0, 1.0)
    # energy-style scores outside [0, 1] use the pooled range
    ax2 = plots.confidence_histograms(rng.normal(10, 1, 50), {"ood": rng.normal(5, 1, 50)},
                                      xlabel="Negative energy")
    assert ax2.get_xlim()[1] > 1.0
    with pytest.raises(ValueError, match="non-finite"):
        plots.confidence_histograms([0.5, np.nan], {"ood": [0.1]})


def test_line_with_band_uses_mean_over_seeds_and_interval():
    rows = []
    for tech, offset in (("reset", 0.0), ("finetune", 0.1)):
        for ratio in (0.0, 0.5, 0.9):
            for seed in range(3):
                rows.append({"technique": tech, "ratio": ratio, "seed": seed,
                             "ece": offset + ratio / 10 + 0.01 * seed})
    df = pd.DataFrame(rows)
    _, ax0 = plt.subplots()
    ax = plots.line_with_band(df, "ratio", "ece", "technique", ax0)
    assert ax is ax0
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"reset", "finetune"}
    got = lines["reset"].get_ydata()
    want = [M.mean_ci(df[(df.technique == "reset") & (df.ratio == r)].ece).mean
            for r in (0.0, 0.5, 0.9)]
    assert np.allclose(got, want)
    assert np.allclose(got, [0.01, 0.06, 0.10])  # (0 + 0.01 + 0.02) / 3 = 0.01, ...
    assert len(ax.collections) == 2  # one band per line
    band = ax.collections[0].get_paths()[0].vertices
    _, lo, hi = M.mean_ci(df[(df.technique == "finetune") & (df.ratio == 0.0)].ece)  # sorted first
    assert lo < hi
    assert np.any(np.isclose(band[:, 1], lo)) and np.any(np.isclose(band[:, 1], hi))


def test_line_with_band_single_seed_and_no_hue():
    df = pd.DataFrame({"ratio": [0.1, 0.2, 0.3], "acc": [0.9, 0.8, 0.7]})
    ax = plots.line_with_band(df, "ratio", "acc")
    assert np.allclose(ax.get_lines()[0].get_ydata(), [0.9, 0.8, 0.7])
    with pytest.raises(ValueError, match="column 'nope'"):
        plots.line_with_band(df, "ratio", "nope")
