"""The chapters' study figures, drawn from a results table or stored models.

Small wrappers over :mod:`prunelib.plots` so that a chapter's figure is one call:
every curve is a mean over seeds with a 95% t band (:func:`prunelib.plots.line_with_band`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .plots import line_with_band

LABELS = {
    "accuracy": "test accuracy",
    "ece": "ECE (top-label, 15 bins)",
    "ece_ts": "ECE after temperature scaling",
    "brier": "Brier score",
    "nll": "NLL (nats)",
    "early_stop_iteration": "early-stop iteration",
    "mce": "MCE",
    "temperature": "fitted temperature T",
    "ece_positive_class": "positive-class ECE",
    "ece_debiased": "debiased ECE (Kumar et al.)",
    "smooth_ece": "smooth ECE (Błasiok & Nakkiran)",
    "mean_confidence": "mean confidence",
    "ood_mean_confidence": "mean OOD confidence (MSP)",
    "ood_confidence_gap": "test - OOD mean confidence",
    "auroc_msp": "AUROC (MSP)",
    "auroc_msp_ts": "AUROC (MSP, after TS)",
    "auroc_neg_energy": "AUROC (negative energy)",
}

#: verdict colours of the forest plot and tables
VERDICT_COLOURS = {"reproduced": "#1b9e77", "contradicted": "#d95f02",
                   "no meaningful effect": "#7570b3", "inconclusive": "#999999"}


def metric_grid(df: pd.DataFrame, metrics: list[str], *, rows: str = "prune",
                hue: str = "technique", x: str = "ratio", height: float = 3.2,
                sharey: str | bool = "col", floor: pd.DataFrame | None = None) -> plt.Figure:
    """One panel per (value of ``rows``, metric): mean over seeds vs ``x``, per ``hue``.

    ``floor`` (:func:`prunelib.analysis.noise_floor`) draws, on the ``ece`` and ``ece_ts``
    panels, the ECE a perfectly calibrated predictor with the same confidences would show
    (dotted line, grey band: 5-95% of the draws), so a reader sees which differences stand
    above the estimator's noise."""
    row_values = sorted(df[rows].unique())
    # one colour per hue value in every panel, also where a panel lacks some values
    hues = sorted(df[hue].unique())
    colour = {h: plt.cm.tab10(k % 10) for k, h in enumerate(hues)}
    fig, axes = plt.subplots(len(row_values), len(metrics), squeeze=False, sharey=sharey,
                             figsize=(4.2 * len(metrics), height * len(row_values)))
    for i, rv in enumerate(row_values):
        sub = df[df[rows] == rv]
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            ax.set_prop_cycle(color=[colour[h] for h in sorted(sub[hue].unique())])
            line_with_band(sub, x, metric, hue=hue, ax=ax)
            if floor is not None and f"{metric}_floor" in floor:
                _floor_band(ax, floor[floor[rows] == rv] if rows in floor else floor, x, metric,
                            hue, colour)
            ax.set_title(f"{rv}: {LABELS.get(metric, metric)}", fontsize=10)
            ax.set_xlabel("pruning ratio" if x == "ratio" else x)
            ax.set_ylabel(LABELS.get(metric, metric))
            if (i, j) != (0, len(metrics) - 1) and ax.get_legend() is not None:
                ax.get_legend().remove()
    if axes[0, -1].get_legend() is not None:
        axes[0, -1].get_legend().remove()
    handles = [plt.Line2D([], [], color=colour[h], marker="o") for h in hues]
    fig.legend(handles, [str(h) for h in hues], loc="upper center", ncol=min(len(hues), 7),
               bbox_to_anchor=(0.5, 1.02), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _floor_band(ax, floor: pd.DataFrame, x: str, metric: str, hue: str, colour: dict) -> None:
    for h, g in floor.groupby(hue, sort=True):
        g = g.sort_values(x)
        c = colour.get(h, "grey")
        ax.plot(g[x], g[f"{metric}_floor"], ls=":", color=c, lw=1)
        ax.fill_between(g[x], g[f"{metric}_floor_lower"], g[f"{metric}_floor_upper"],
                        color="grey", alpha=0.12, linewidth=0)


def forest_plot(table: pd.DataFrame, *, title: str = "", width: float = 9.0) -> plt.Figure:
    """Every claim of ``table`` (:func:`prunelib.claims.judge`) as a point with its interval.

    The x axis is the effect in units of the metric's practical margin (so claims on accuracy,
    ECE, NLL or iterations share one axis): the grey band is the margin (±1), the thick line
    the multiplicity-adjusted interval, the thin one the plain 95% interval, the colour the
    verdict. Rows are grouped by chapter; claims not in the store yet are listed without a
    point.
    """
    t = table.reset_index(drop=True)
    n = len(t)
    fig, ax = plt.subplots(figsize=(width, 0.32 * n + 1.2))
    ax.axvspan(-1, 1, color="grey", alpha=0.15, linewidth=0)
    ax.axvline(0, color="black", lw=0.8)
    labels = []
    for i, r in t.iterrows():
        y = n - 1 - i
        scale = r["margin"] if r["margin"] else 1.0
        c = VERDICT_COLOURS.get(r["verdict"], "black")
        if r["n"] > 0 and np.isfinite(r["mean"]):
            if np.isfinite(r["lower"]):
                ax.plot([r["lower"] / scale, r["upper"] / scale], [y, y], color=c, lw=3,
                        solid_capstyle="butt")
            if np.isfinite(r["lower95"]):
                ax.plot([r["lower95"] / scale, r["upper95"] / scale], [y, y], color=c, lw=1)
            ax.plot(r["mean"] / scale, y, "o", color=c, ms=5)
        text = r["claim"]
        if text.startswith("..."):  # a follow-up claim: name its comparison instead
            text = f"{r['comparison']} @ {r['ratio']:.2f}"
        text = text if len(text) <= 70 else text[:67] + "..."
        labels.append(f"({r['id']}) {text} [{r['metric']}]")
    ax.set_yticks(range(n - 1, -1, -1), labels, fontsize=7.5)
    prev = None
    for i, r in t.iterrows():  # chapter separators
        if prev is not None and r["chapter"] != prev:
            ax.axhline(n - 1 - i + 0.5, color="grey", lw=0.6, ls="--")
        prev = r["chapter"]
    lim = np.nanmax(np.abs(np.r_[t["lower"] / t["margin"], t["upper"] / t["margin"], 3.0]))
    ax.set_xlim(-min(lim, 40) * 1.05, min(lim, 40) * 1.05)
    ax.set_xlabel("effect / practical margin  (grey: within the margin; thick: Holm-level "
                  "interval; thin: 95% interval)", fontsize=8)
    handles = [plt.Line2D([], [], color=c, marker="o", lw=3) for c in VERDICT_COLOURS.values()]
    ax.legend(handles, list(VERDICT_COLOURS), loc="lower right", fontsize=7.5, frameon=True)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def confidence_maps(models: dict[str, torch.nn.Module], points: tuple, *, resolution: int = 200,
                    margin: float = 1.0, ncols: int | None = None) -> plt.Figure:
    """Top-label confidence of two-input classifiers over the input plane.

    ``models`` maps a panel title to a 2-input model; ``points`` = ``(X, y)`` are
    drawn on top (e.g. the test split). Colour = max softmax probability (0.5 =
    no idea, 1 = certain); the black line is the decision boundary. Far from the
    data no label is known, so an honest model's confidence should drop there.
    """
    X, y = (np.asarray(t) for t in points)
    lo, hi = X.min(0) - margin, X.max(0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    n = len(models)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.3 * nrows), squeeze=False)
    for ax, (title, model) in zip(axes.ravel(), models.items()):
        with torch.no_grad():
            p = torch.softmax(model.eval()(grid), -1).numpy()
        conf = p.max(1).reshape(gx.shape)
        cs = ax.contourf(gx, gy, conf, levels=np.linspace(0.5, 1.0, 11), cmap="viridis")
        ax.contour(gx, gy, p[:, 1].reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.2)
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=4, alpha=0.35, linewidths=0)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.colorbar(cs, ax=axes.ravel().tolist(), shrink=0.8, label="confidence (max softmax)")
    return fig


def rounds_frame(records: list[dict]) -> pd.DataFrame:
    """Per-round rows (round, ratio after it, early-stop iteration, test accuracy and ECE)
    of iterative runs, with each record's technique, prune kind and seed."""
    rows = []
    for rec in records:
        c = rec["config"]
        for r in rec.get("rounds", []):
            rows.append({"prune": c["prune"], "technique": c["technique"], "seed": c["seed"],
                         "target_ratio": c["ratio"], **r})
    return pd.DataFrame(rows)


def far_points(X: torch.Tensor, n: int = 2000, radii: tuple[float, float] = (3.0, 4.0),
               seed: int = 0) -> torch.Tensor:
    """``n`` seeded 2-D points on a ring far from the data: at ``radii`` times the data's
    largest standard deviation around its mean, uniform in angle."""
    g = torch.Generator().manual_seed(seed)
    center, spread = X.mean(0), X.std(0).max()
    angles = torch.rand(n, generator=g) * 2 * np.pi
    r = spread * (radii[0] + (radii[1] - radii[0]) * torch.rand(n, generator=g))
    return center + torch.stack([r * torch.cos(angles), r * torch.sin(angles)], 1)
