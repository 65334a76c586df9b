"""From a results table to numbers: means with intervals, paired differences, derived columns.

Every chapter's numbers go through these few functions, so "mean" and "interval" mean the
same thing everywhere:

* :func:`summarise` -- mean and 95% t interval over seeds per group;
* :func:`paired_difference` -- per seed, a technique at a ratio minus the same
  seed's reference (by default the dense network, ratio 0), then mean and 95% t
  interval of those differences. Pairing by seed removes the variation between
  initialisations that both share;
* :func:`derived_columns` and :func:`noise_floor` -- what the chapters compute from the
  stored predictions without retraining.

Verdicts are not made here: one rule for the whole book lives in :mod:`prunelib.stats`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------
# columns derived from the stored predictions (no retraining)
# ---------------------------------------------------------------------------------------------
def _test_probs(store, study: str, key: str, temperature: float = 1.0):
    arrays = store.arrays({"config": {"study": study}, "key": key})
    logits = arrays["test_logits"].astype(np.float64) / temperature
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), arrays["test_labels"].astype(np.int64)


def derived_columns(df: pd.DataFrame, store=None, ood_sets=(), estimators: bool = True,
                    where: dict | None = None) -> pd.DataFrame:
    """``df`` with the columns the chapters and claims derive from the stored runs.

    * ``ece_debiased`` and ``smooth_ece`` (:func:`prunelib.stats.debiased_ece`,
      :func:`prunelib.stats.smooth_ece`) from each run's stored float16 test logits, when
      ``estimators`` and a ``store`` are given; ``where`` (column filters, values may be
      lists) limits them to some rows (NaN elsewhere), since each needs its run's arrays;
    * per OOD set, ``ood_confidence_gap_<set>``: the mean test confidence minus the mean
      confidence on that set (in-distribution minus OOD; larger = better separated).

    The smooth ECE takes a fraction of a second per run, so values are kept in a cache file
    (``<cache_dir()>/derived/<study>.json``, :func:`prunelib.data.cache_dir`) keyed by the
    run's key and the SHA-256 of its arrays file: a recomputed run is derived afresh.
    """
    out = df.copy()
    for name in ood_sets:
        col = f"ood_mean_confidence_{name}"
        if col in out and "mean_confidence" in out:
            out[f"ood_confidence_gap_{name}"] = out["mean_confidence"] - out[col]
    if estimators and store is not None and len(out) and "key" in out:
        mask = np.ones(len(out), dtype=bool)
        for k, v in (where or {}).items():
            mask &= out[k].isin(v if isinstance(v, (list, tuple, set)) else [v]).to_numpy()
        mask &= (out["study"] != "ood").to_numpy()  # the ood study's arrays: OOD scores only
        deb, smooth = np.full(len(out), np.nan), np.full(len(out), np.nan)
        for study in out.loc[mask, "study"].unique():
            cache = _DerivedCache(study)
            for i in np.flatnonzero(mask & (out["study"] == study).to_numpy()):
                deb[i], smooth[i] = cache.get(store, study, out.iloc[i]["key"])
            cache.save()
        out["ece_debiased"], out["smooth_ece"] = deb, smooth
    return out


class _DerivedCache:
    """Debiased and smooth ECE per run, kept on disk between pages of a book build."""

    def __init__(self, study: str):
        from .data import cache_dir

        self.path = cache_dir() / "derived" / f"{study}.json"
        try:
            self.values = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.values = {}
        self.changed = False

    def get(self, store, study: str, key: str) -> tuple[float, float]:
        from . import stats

        npz = Path(store.root) / study / f"{key}.npz"
        digest = hashlib.sha256(npz.read_bytes()).hexdigest()
        hit = self.values.get(key)
        if hit is None or hit.get("arrays_sha256") != digest:
            p, y = _test_probs(store, study, key)
            hit = {"arrays_sha256": digest, "ece_debiased": stats.debiased_ece(p, y),
                   "smooth_ece": stats.smooth_ece(p, y)}
            self.values[key] = hit
            self.changed = True
        return hit["ece_debiased"], hit["smooth_ece"]

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.values))
            os.replace(tmp, self.path)
        except OSError:  # a read-only cache folder: derive again next time
            pass


def noise_floor(df: pd.DataFrame, store, by=("prune", "technique", "ratio"),
                max_seeds: int = 3, n_draws: int = 100, seed: int = 0) -> pd.DataFrame:
    """The ECE a perfectly calibrated predictor with each group's confidences would show.

    For each group of ``by`` (and ``regime`` when the table has it), up to ``max_seeds`` of its
    runs' stored test predictions give :func:`prunelib.stats.ece_noise_floor` (labels drawn
    from the confidences, ``n_draws`` times, seeded), before (``ece``) and after temperature
    scaling (``ece_ts``, the run's fitted temperature); the result is averaged over those runs:
    columns ``<metric>_floor``, ``<metric>_floor_lower``, ``<metric>_floor_upper`` (the 5% and
    95% quantiles of the draws). An ECE inside this band is within the estimator's noise.
    """
    from . import stats

    by = list(by) + (["regime"] if "regime" in df and "regime" not in by else [])
    rows = []
    for key, g in df.groupby(by, sort=True):
        acc: dict[str, list] = {}
        for _, r in g.sort_values("seed").head(max_seeds).iterrows():
            for metric, T in (("ece", 1.0), ("ece_ts", float(r.get("temperature", 1.0)))):
                p, _ = _test_probs(store, r["study"], r["key"], T)
                f = stats.ece_noise_floor(p.max(1), n_draws=n_draws, seed=seed)
                acc.setdefault(metric, []).append((f.mean, f.lower, f.upper))
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for metric, vals in acc.items():
            m = np.mean(vals, axis=0)
            row.update({f"{metric}_floor": m[0], f"{metric}_floor_lower": m[1],
                        f"{metric}_floor_upper": m[2]})
        rows.append(row)
    return pd.DataFrame(rows)


def cap_stopped(records: list[dict], last: int = 5) -> pd.DataFrame:
    """The runs whose own training ended at the iteration cap rather than by patience, with how
    much their validation loss still fell over the last ``last`` evaluations (positive: still
    improving) and their early-stop iteration. Runs of the ``fixed`` regime stop at the cap by
    design and are left out."""
    rows = []
    for r in records:
        c = r["config"]
        if c.get("regime", "early_stop") == "fixed" or not r["metrics"].get("cap_stopped"):
            continue
        h = r["history"][-1]
        k = min(last, len(h) - 1)
        rows.append({"prune": c["prune"], "technique": c["technique"], "ratio": c["ratio"],
                     "seed": c["seed"], "iterations": h[-1]["iteration"],
                     "early_stop_iteration": r["metrics"]["early_stop_iteration"],
                     f"val loss fall, last {k} evals": h[-1 - k]["val_loss"] - h[-1]["val_loss"]})
    return pd.DataFrame(rows)


def cap_stopped_reading(cut: pd.DataFrame, claims=(), regime: str = "early_stop") -> str:
    """One paragraph on the runs of :func:`cap_stopped`: how many were still improving at the
    cap (validation loss lower at the end than ``last`` evaluations before) and how many had
    plateaued (stopped before patience ran out, with no lower loss over those evaluations), and
    whether any of them enters a claim. ``claims``: :class:`prunelib.claims.Claim` objects whose
    terms select runs by prune kind, technique, ratio and regime.

    >>> cap_stopped_reading(pd.DataFrame())
    'No run stopped at the iteration cap.'
    """
    if cut.empty:
        return "No run stopped at the iteration cap."
    fall = next(c for c in cut.columns if c.startswith("val loss fall"))
    k = fall.rsplit("last ", 1)[1]
    still = int((cut[fall] > 0).sum())
    by = f", by at most {cut[fall].max():.2g}" if still else ""
    one = len(cut) == 1
    text = (f"{len(cut)} run{'' if one else 's'} stopped at the iteration cap: {still} still "
            f"improving (validation loss lower at the cap than {k} before{by}) and "
            f"{len(cut) - still} on a plateau (no lower validation loss over those evaluations, "
            "stopped before patience ran out).")
    used: dict[str, list[str]] = {}
    for claim in claims:
        for _, where in claim.terms:
            for _, run in cut.iterrows():
                if (where.get("prune") == run["prune"] and where.get("technique") == run["technique"]
                        and np.isclose(where.get("ratio", np.nan), run["ratio"])
                        and where.get("regime", "early_stop") == regime):
                    used.setdefault(claim.id, []).append(f"seed {run['seed']}")
    if not used:
        return text + (" It enters no claim, only the curves." if one else
                       " None of them enters a claim; they enter only the curves.")
    ids = ", ".join(f"{cid} ({', '.join(sorted(set(s)))})" for cid, s in used.items())
    return text + f" They enter the claims {ids}."
