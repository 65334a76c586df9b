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
