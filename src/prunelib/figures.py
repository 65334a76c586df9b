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
}


def metric_grid(df: pd.DataFrame, metrics: list[str], *, rows: str = "prune",
                hue: str = "technique", x: str = "ratio", height: float = 3.2,
                sharey: str | bool = "col") -> plt.Figure:
    """One panel per (value of ``rows``, metric): mean over seeds vs ``x``, per ``hue``."""
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
