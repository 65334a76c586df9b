"""Study figures: one colour per technique in every panel, also where a panel lacks some."""

import pandas as pd
from matplotlib.colors import to_rgba

from prunelib.figures import metric_grid


def test_metric_grid_colours_are_consistent_across_rows():
    rows = []
    for kind, techs in (("structured", ("a_tech", "c_tech")), ("unstructured", ("b_tech", "c_tech"))):
        for tech in techs:
            for ratio in (0.0, 0.5):
                for seed in range(3):
                    rows.append({"prune": kind, "technique": tech, "ratio": ratio, "seed": seed,
                                 "accuracy": 0.9 - ratio * 0.1 + 0.01 * seed})
    fig = metric_grid(pd.DataFrame(rows), ["accuracy"])
    legend = {t.get_text(): to_rgba(h.get_color())
              for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert set(legend) == {"a_tech", "b_tech", "c_tech"}
    for ax, techs in zip(fig.axes, (("a_tech", "c_tech"), ("b_tech", "c_tech"))):
        lines = [ln for ln in ax.get_lines() if ln.get_label() in techs]
        assert {ln.get_label(): to_rgba(ln.get_color()) for ln in lines} == \
            {t: legend[t] for t in techs}


def test_far_points_lie_on_the_ring():
    import torch

    from prunelib.figures import far_points

    X = torch.randn(500, 2) * torch.tensor([1.0, 0.5]) + torch.tensor([2.0, -1.0])
    pts = far_points(X, n=300, radii=(3.0, 4.0), seed=1)
    d = (pts - X.mean(0)).norm(dim=1) / X.std(0).max()
    assert pts.shape == (300, 2) and d.min() >= 3.0 - 1e-5 and d.max() <= 4.0 + 1e-5
    assert torch.equal(pts, far_points(X, n=300, seed=1))
