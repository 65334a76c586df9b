"""From a results table to statements: means with intervals, paired differences, verdicts.

Every chapter's numbers go through these few functions, so "mean", "interval" and
"verdict" mean the same thing everywhere:

* :func:`summarise` -- mean and 95% t interval over seeds per group;
* :func:`paired_difference` -- per seed, a technique at a ratio minus the same
  seed's reference (by default the dense network, ratio 0), then mean and 95% t
  interval of those differences. Pairing by seed removes the variation between
  initialisations that both share;
* :func:`verdict` -- ``"reproduced"``, ``"refuted"`` or ``"inconclusive"`` from an
  interval and the direction the claim predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import mean_ci


def summarise(df: pd.DataFrame, metric: str, by=("prune", "technique", "ratio")) -> pd.DataFrame:
    """Mean, 95% t interval (``lower``, ``upper``) and ``n`` seeds of ``metric`` per group."""
    if metric not in df:
        raise ValueError(f"no column {metric!r}; columns are {sorted(df.columns)}")
    rows = []
    for key, g in df.groupby(list(by), sort=True):
        ci = mean_ci(g[metric].to_numpy(float))
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "mean": ci.mean, "lower": ci.lower, "upper": ci.upper, "n": len(g)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Difference:
    """Mean paired difference (``a - b``) over ``n`` seeds with its 95% t interval."""

    mean: float
    lower: float
    upper: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.lower:+.4f}, {self.upper:+.4f}] (n={self.n})"


def _select(df: pd.DataFrame, **where) -> pd.DataFrame:
    sel = df
    for k, v in where.items():
        sel = sel[np.isclose(sel[k], v)] if isinstance(v, float) else sel[sel[k] == v]
    return sel


def paired_difference(df: pd.DataFrame, metric: str, a: dict, b: dict) -> Difference:
    """``metric`` of selection ``a`` minus selection ``b``, paired by seed.

    ``a`` and ``b`` are column filters, e.g. ``a={"prune": "structured", "technique":
    "oneshot_reset", "ratio": 0.5}``. Seeds present in only one selection are dropped;
    ``ValueError`` if no seed is in both or a seed appears twice in one selection.
    """
    sa, sb = _select(df, **a), _select(df, **b)
    for name, s in (("a", sa), ("b", sb)):
        if s["seed"].duplicated().any():
            raise ValueError(f"selection {name} has several rows per seed: {a if name == 'a' else b}")
    m = pd.merge(sa[["seed", metric]], sb[["seed", metric]], on="seed", suffixes=("_a", "_b"))
    if m.empty:
        raise ValueError(f"no seed in both selections {a} and {b}")
    ci = mean_ci((m[f"{metric}_a"] - m[f"{metric}_b"]).to_numpy(float))
    return Difference(ci.mean, ci.lower, ci.upper, len(m))


def verdict(diff: Difference, predicts: str, margin: float = 0.0) -> str:
    """Judge a claim that predicts the difference is ``"higher"``, ``"lower"`` or ``"not_lower"``.

    * ``"higher"`` / ``"lower"``: reproduced when the whole interval is above /
      below zero, refuted when the whole interval is on the other side of zero,
      inconclusive otherwise;
    * ``"not_lower"`` (e.g. "matches the dense accuracy"): reproduced when the
      interval's lower end is above ``-margin`` (at most ``margin`` worse, at the
      95% level), refuted when its upper end is below ``-margin``.

    With a single seed there is no interval, and the verdict is inconclusive.
    """
    if not np.isfinite(diff.lower) or not np.isfinite(diff.upper):
        return "inconclusive"
    if predicts == "higher":
        return "reproduced" if diff.lower > 0 else "refuted" if diff.upper < 0 else "inconclusive"
    if predicts == "lower":
        return "reproduced" if diff.upper < 0 else "refuted" if diff.lower > 0 else "inconclusive"
    if predicts == "not_lower":
        return ("reproduced" if diff.lower > -margin
                else "refuted" if diff.upper < -margin else "inconclusive")
    raise ValueError(f"predicts must be 'higher', 'lower' or 'not_lower', got {predicts!r}")


def ood_summary(df: pd.DataFrame, ood_sets, by=("prune", "technique", "ratio")) -> pd.DataFrame:
    """Every OOD metric of every score, before and after temperature scaling, over seeds.

    Long form: one row per group of ``by`` x OOD set x score x ``temperature scaled``
    (False/True), with ``n`` seeds and, for each metric (AUROC, AUPR-in, AUPR-out, FPR at 95%
    TPR; in-distribution is the positive class, every score is oriented so that higher means
    more in-distribution), its mean and 95% t interval in columns ``<metric>``,
    ``<metric>_lower`` and ``<metric>_upper``. Reads the columns
    ``<metric>_<score>[_ts]_<set>`` that OOD runs store.
    """
    from .experiments import OOD_METRICS, OOD_SCORES

    need = [f"{m}_{s}{t}_{o}" for o in ood_sets for s in OOD_SCORES for t in ("", "_ts")
            for m in OOD_METRICS]
    missing = [c for c in need if c not in df]
    if missing:
        raise ValueError(f"{len(missing)} OOD metric column(s) missing, e.g. {missing[:3]}")
    rows = []
    for key, g in df.groupby(list(by), sort=True):
        group = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for o in ood_sets:
            for s in OOD_SCORES:
                for t in ("", "_ts"):
                    row = {**group, "ood set": o, "score": s, "temperature scaled": bool(t),
                           "n": len(g)}
                    for m in OOD_METRICS:
                        ci = mean_ci(g[f"{m}_{s}{t}_{o}"].to_numpy(float))
                        row.update({m: ci.mean, f"{m}_lower": ci.lower, f"{m}_upper": ci.upper})
                    rows.append(row)
    return pd.DataFrame(rows)


def format_interval(mean: float, lower: float, upper: float, digits: int = 3) -> str:
    """``"0.912 ± 0.007"`` (a symmetric interval's half-width), or ``"0.912"`` without one."""
    if not (np.isfinite(lower) and np.isfinite(upper)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(upper - lower) / 2:.{digits}f}"
