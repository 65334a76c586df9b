"""Figures for the uncertainty chapters (matplotlib; no backend is forced here).

* :func:`reliability_diagram` -- accuracy per confidence bin against the
  diagonal, the gap shaded and labelled by direction, a confidence histogram
  beneath.  **Over-confidence** is accuracy *below* confidence (bar under the
  diagonal); under-confidence is accuracy above it.
* :func:`confidence_histograms` -- the in-distribution confidence distribution
  overlaid with one per OOD set (the poster's Figure 7).
* :func:`line_with_band` -- mean over seeds with a 95% interval band
  (:func:`prunelib.metrics.mean_ci`), e.g. a metric against the pruning ratio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from prunelib import metrics

__all__ = [
    "OVER_LABEL",
    "UNDER_LABEL",
    "confidence_histograms",
    "line_with_band",
    "reliability_diagram",
]

#: Legend label of the gap bars where accuracy < confidence (below the diagonal).
OVER_LABEL = "Gap: over-confident (accuracy < confidence)"
#: Legend label of the gap bars where accuracy > confidence (above the diagonal).
UNDER_LABEL = "Gap: under-confident (accuracy > confidence)"


def reliability_diagram(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    ax: Axes | None = None,
    title: str | None = None,
    *,
    scheme: str = "equal_width",
    from_logits: bool = False,
) -> tuple[Axes, Axes]:
    """Reliability diagram of the **top-label** confidence with a histogram beneath.

    Bins as :func:`prunelib.metrics.reliability_bins` (``(lo, hi]``, confidence 0
    in the first bin, 1.0 in the last).  Blue bars: accuracy per non-empty bin.
    The gap between accuracy and the bin's mean confidence is shaded: red,
    labelled :data:`OVER_LABEL`, where accuracy < confidence (bar below the
    diagonal = over-confident); green, labelled :data:`UNDER_LABEL`, where
    accuracy > confidence.  The ECE and MCE are printed in the corner.  Beneath,
    the fraction of samples per bin, with the mean confidence and the accuracy
    marked.

    ``ax`` (optional) receives the diagram; the histogram axes is appended below
    it.  Returns ``(ax_reliability, ax_histogram)``; the figure is
    ``ax_reliability.figure``.
    """
    rb = metrics.reliability_bins(probs, labels, n_bins, scheme, from_logits=from_logits)
    nz = rb.counts > 0
    conf_all = float(np.sum(rb.proportion[nz] * rb.mean_confidence[nz]))
    acc_all = float(np.sum(rb.proportion[nz] * rb.accuracy[nz]))
    created = ax is None

    if ax is None:
        fig, (ax, ax_hist) = plt.subplots(
            2, 1, figsize=(4.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
    else:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        ax_hist = make_axes_locatable(ax).append_axes("bottom", size="33%", pad=0.1, sharex=ax)
        ax.tick_params(labelbottom=False)
        fig = ax.figure

    left = rb.edges[:-1]
    width = np.diff(rb.edges)
    acc = rb.accuracy
    conf = rb.mean_confidence

    ax.bar(left[nz], acc[nz], width=width[nz], align="edge", color="#4C72B0",
           edgecolor="black", linewidth=0.6, label="Accuracy")
    over = nz & (acc < conf)
    under = nz & (acc > conf)
    if over.any():
        ax.bar(left[over], (conf - acc)[over], bottom=acc[over], width=width[over],
               align="edge", color="#C44E52", alpha=0.45, edgecolor="#C44E52",
               hatch="//", linewidth=0.6, label=OVER_LABEL)
    if under.any():
        ax.bar(left[under], (acc - conf)[under], bottom=conf[under], width=width[under],
               align="edge", color="#55A868", alpha=0.45, edgecolor="#55A868",
               hatch="\\\\", linewidth=0.6, label=UNDER_LABEL)
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="Perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Accuracy")
    ax.text(0.04, 0.96, f"ECE = {rb.ece:.3f}\nMCE = {rb.mce:.3f}", transform=ax.transAxes,
            va="top", ha="left", fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    ax.legend(loc="lower right", fontsize=7)
    if title:
        ax.set_title(title)

    ax_hist.bar(left, rb.proportion, width=width, align="edge", color="gray",
                edgecolor="black", linewidth=0.6)
    ax_hist.axvline(conf_all, color="#C44E52", ls="--", lw=1.2,
                    label="Mean confidence")
    ax_hist.axvline(acc_all, color="#4C72B0", ls="-", lw=1.2, label="Accuracy")
    ax_hist.set_xlim(0, 1)
    ax_hist.set_xlabel("Confidence (max softmax probability)")
    ax_hist.set_ylabel("Fraction")
    ax_hist.legend(loc="upper left", fontsize=7)
    if created:
        fig.tight_layout()
    return ax, ax_hist


def confidence_histograms(
    id_conf: Any,
    ood_conf: Mapping[str, Any],
    ax: Axes | None = None,
    *,
    bins: int = 20,
    id_label: str = "In-distribution",
    title: str | None = None,
    xlabel: str = "Confidence (max softmax probability)",
    density: bool = True,
) -> Axes:
    """Overlaid confidence histograms: in-distribution vs each OOD set (poster Figure 7).

    ``id_conf`` is a 1-D array of confidences (or any score, higher = more ID) of
    the in-distribution test set; ``ood_conf`` maps a name (e.g. ``"CIFAR-100"``)
    to the same score on that OOD set.  All histograms share ``bins`` equal-width
    bins over [0, 1] when every score lies there, else over the pooled range.
    ``density=True`` normalises each histogram to unit area so sets of different
    sizes compare.  The legend carries each set's size and mean.  Returns the axes.
    """
    if not isinstance(ood_conf, Mapping):
        raise TypeError("ood_conf must be a mapping {name: scores}")
    ident = metrics._as_float(id_conf, "id_conf", 1)
    oods = {str(k): metrics._as_float(v, f"ood_conf[{k!r}]", 1) for k, v in ood_conf.items()}
    pooled = np.concatenate([ident, *oods.values()])
    lo, hi = float(pooled.min()), float(pooled.max())
    rng = (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else (lo, hi if hi > lo else lo + 1.0)
    edges = np.linspace(rng[0], rng[1], int(bins) + 1)

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(ident, bins=edges, density=density, alpha=0.55, color="#4C72B0",
            edgecolor="black", linewidth=0.4,
            label=f"{id_label} (n={len(ident)}, mean={ident.mean():.3f})")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, v) in enumerate(oods.items()):
        c = colors[(i + 1) % len(colors)]
        ax.hist(v, bins=edges, density=density, alpha=0.45, color=c, histtype="stepfilled",
                edgecolor=c, linewidth=1.0, label=f"{name} (n={len(v)}, mean={v.mean():.3f})")
    ax.set_xlim(*rng)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Density" if density else "Count")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def line_with_band(
    df: Any,
    x: str,
    y: str,
    hue: str | None = None,
    ax: Axes | None = None,
    *,
    confidence: float = 0.95,
    method: str = "t",
    marker: str = "o",
) -> Axes:
    """Mean of ``y`` over seeds against ``x``, one line per ``hue``, with an interval band.

    Each row of the DataFrame ``df`` is one seed's value; rows sharing
    ``(hue, x)`` are averaged (sum / k) and the band is the ``confidence``
    interval of :func:`prunelib.metrics.mean_ci` (Student-t by default, or
    ``method="bootstrap"``).  Points with a single seed get no band.  ``x`` is
    sorted ascending (e.g. the pruning ratio).  Returns the axes.
    """
    for col in (x, y) + ((hue,) if hue is not None else ()):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in DataFrame (columns: {list(df.columns)})")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    groups = [(None, df)] if hue is None else list(df.groupby(hue, sort=True))
    for key, g in groups:
        xs, means, lows, highs = [], [], [], []
        for xv, gx in sorted(g.groupby(x), key=lambda t: t[0]):
            m, lo, hi = metrics.mean_ci(gx[y].to_numpy(dtype=float), confidence, method)
            xs.append(xv)
            means.append(m)
            lows.append(lo)
            highs.append(hi)
        label = None if hue is None else f"{key}"
        (line,) = ax.plot(xs, means, marker=marker, label=label)
        ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if hue is not None:
        ax.legend(title=hue, fontsize=8)
    return ax
