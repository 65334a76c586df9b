"""The poster's claims, each tested on a results table: one row per claim with a verdict.

Every claim is a paired difference over seeds (:func:`prunelib.analysis.paired_difference`)
with a 95% t interval and a verdict (:func:`prunelib.analysis.verdict`). A claim whose
runs are not in the store yet is reported as such, with verdict "inconclusive". The
chapters show their own study's table; the conclusion page stacks all of them.
"""

from __future__ import annotations

import pandas as pd

from .analysis import paired_difference, verdict

#: "matches the dense accuracy" allows at most this loss (0.5 points) at the 95% level
ACCURACY_MARGIN = 0.005

COLUMNS = ["study", "id", "claim", "poster", "measured", "difference", "mean [95% CI]", "seeds",
           "verdict"]


def _row(df, study, key, claim, poster, measured, a, b, metric, predicts, margin=0.0):
    try:
        d = paired_difference(df, metric, a, b)
    except (ValueError, KeyError):
        return {"study": study, "id": key, "claim": claim, "poster": poster,
                "measured": measured, "difference": None,
                "mean [95% CI]": "not in the store yet", "seeds": 0, "verdict": "inconclusive"}
    return {"study": study, "id": key, "claim": claim, "poster": poster, "measured": measured,
            "difference": d, "mean [95% CI]": f"{d.mean:+.4f} [{d.lower:+.4f}, {d.upper:+.4f}]",
            "seeds": d.n, "verdict": verdict(d, predicts, margin)}


def _nearest(ratios, target: float) -> float:
    return min((r for r in ratios if r > 0), key=lambda r: abs(r - target))


def moons_claims(df: pd.DataFrame, ratios) -> pd.DataFrame:
    """Claims (a)-(d) of the Make Moons study (chapter 3), for each kind of pruning."""
    rows = []
    high = _nearest(ratios, 0.8)
    for kind in sorted(df["prune"].unique()):
        dense = {"prune": kind, "technique": "oneshot_reset", "ratio": 0.0}

        def at(technique, ratio, kind=kind):
            return {"prune": kind, "technique": technique, "ratio": ratio}

        s = f"moons, {kind}"
        rows.append(_row(df, s, "a", "one-shot pruning (reset) at Pm = 0.5 matches the dense accuracy",
                         "Figure 4: winning ticket at Pm = 0.5", "accuracy, pruned - dense",
                         at("oneshot_reset", 0.5), dense, "accuracy", "not_lower", ACCURACY_MARGIN))
        worst = None
        for r in ratios:
            if 0 < r <= high:
                try:
                    d = paired_difference(df, "accuracy", at("iterative_reset", r), dense)
                except ValueError:
                    continue
                if worst is None or d.mean < worst[1].mean:
                    worst = (r, d)
        r_b = worst[0] if worst else high
        rows.append(_row(df, s, "b", f"iterative pruning (reset) keeps the dense accuracy up to "
                         f"Pm = {high:g} (worst ratio: {r_b:g})", "Figure 4",
                         "accuracy, pruned - dense", at("iterative_reset", r_b), dense, "accuracy",
                         "not_lower", ACCURACY_MARGIN))
        for key, tech in (("c", "iterative_reset"), ("c'", "oneshot_finetune")):
            rows.append(_row(df, s, key, f"pruning lowers ECE ({tech}, Pm = {high:g})",
                             "Figure 6 (left)", "ECE, pruned - dense", at(tech, high), dense, "ece",
                             "lower"))
        rows.append(_row(df, s, "d1", f"... and still after temperature scaling (Pm = {high:g})",
                         "not tested by the poster", "ECE after TS, pruned - dense",
                         at("iterative_reset", high), dense, "ece_ts", "lower"))
        rows.append(_row(df, s, "d2", f"... and beyond the capacity control (Pm = {high:g})",
                         "not tested by the poster", "ECE, reset - reinit",
                         at("oneshot_reset", high), at("oneshot_reinit", high), "ece", "lower"))
    return pd.DataFrame(rows, columns=COLUMNS)


def cifar10_claims(df: pd.DataFrame, ratios) -> pd.DataFrame:
    """Claims (a)-(c) of the CIFAR-10 study (chapter 4)."""
    U, S = "unstructured", "structured"
    p6, p8, top = _nearest(ratios, 0.6), _nearest(ratios, 0.8), max(ratios)
    dense = {"prune": U, "technique": "iterative_reset", "ratio": 0.0}
    sdense = {"prune": S, "technique": "oneshot_reset", "ratio": 0.0}

    def at(kind, tech, r):
        return {"prune": kind, "technique": tech, "ratio": r}

    s = "cifar10"
    rows = [
        _row(df, s, "a", f"iterative reset finds a winning ticket at Pm = {p6:.2f}: accuracy",
             "Figure 5: ticket at Pm = 0.6", "accuracy, ticket - dense",
             at(U, "iterative_reset", p6), dense, "accuracy", "not_lower", ACCURACY_MARGIN),
        _row(df, s, "a'", f"... which early-stops sooner (Pm = {p6:.2f})", "Figure 5",
             "early-stop iteration, ticket - dense", at(U, "iterative_reset", p6), dense,
             "early_stop_iteration", "lower"),
        _row(df, s, "a''", f"... and beats its random re-init (Pm = {p6:.2f})", "not tested by the poster",
             "accuracy, reset - reinit", at(U, "iterative_reset", p6), at(U, "iterative_reinit", p6),
             "accuracy", "higher"),
        _row(df, s, "a'''", f"the ticket beats its random re-init at the most pruned ratio "
             f"(Pm = {top:.2f})", "not tested by the poster", "accuracy, reset - reinit",
             at(U, "iterative_reset", top), at(U, "iterative_reinit", top), "accuracy", "higher"),
        _row(df, s, "b", f"the {p8:.0%}-pruned model loses accuracy", "about 2 points",
             "accuracy, pruned - dense", at(U, "iterative_reset", p8), dense, "accuracy", "lower"),
        _row(df, s, "b'", f"... while its ECE improves (Pm = {p8:.2f})", "Figure 6 (right)",
             "ECE, pruned - dense", at(U, "iterative_reset", p8), dense, "ece", "lower"),
        _row(df, s, "c1", f"the lower ECE survives temperature scaling (Pm = {p8:.2f})",
             "not tested by the poster", "ECE after TS, pruned - dense",
             at(U, "iterative_reset", p8), dense, "ece_ts", "lower"),
        _row(df, s, "c2", f"... and the random re-init control (Pm = {p8:.2f})",
             "not tested by the poster", "ECE, reset - reinit", at(U, "iterative_reset", p8),
             at(U, "iterative_reinit", p8), "ece", "lower"),
        _row(df, s, "c3", f"structured removal lowers ECE (one-shot, Pm = {p8:.2f})", "conclusion",
             "ECE, pruned - dense", at(S, "oneshot_reset", p8), sdense, "ece", "lower"),
        _row(df, s, "c4", f"... beyond the capacity control (Pm = {p8:.2f})", "not tested by the poster",
             "ECE, reset - small dense net", at(S, "oneshot_reset", p8), at(S, "oneshot_reinit", p8),
             "ece", "lower"),
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def ood_claims(df: pd.DataFrame, ratios, ood_sets) -> pd.DataFrame:
    """Claims (d)-(e) of the OOD study (chapter 5), per OOD set."""
    near = _nearest(ratios, 0.8)
    rows = []
    for kind, tech in (("unstructured", "iterative_reset"), ("structured", "oneshot_reset")):
        dense = {"prune": kind, "technique": tech, "ratio": 0.0}
        pruned = {"prune": kind, "technique": tech, "ratio": near}
        for name in ood_sets:
            s = f"ood, {name}, {kind}"
            rows.append(_row(df, s, "d", f"pruned networks are less confident on OOD inputs "
                             f"(Pm = {near:.2f})", "Figure 7", "mean OOD confidence, pruned - dense",
                             pruned, dense, f"ood_mean_confidence_{name}", "lower"))
            rows.append(_row(df, s, "e", f"pruning improves OOD detection (AUROC of MSP, "
                             f"Pm = {near:.2f})", "conclusion: robustness", "AUROC, pruned - dense",
                             pruned, dense, f"auroc_msp_{name}", "higher"))
            rows.append(_row(df, s, "e'", "... also after temperature scaling",
                             "not tested by the poster", "AUROC after TS, pruned - dense",
                             pruned, dense, f"auroc_msp_ts_{name}", "higher"))
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict_summary(claims: pd.DataFrame) -> str:
    """Markdown bullets, one per study group: its claims sorted by verdict, with intervals."""
    lines = []
    for study, g in claims.groupby("study", sort=False):
        parts = []
        for v in ("reproduced", "refuted", "inconclusive"):
            sel = g[g["verdict"] == v]
            if len(sel):
                parts.append(f"*{v}*: " + "; ".join(
                    f"({r['id']}) {r['claim']}: {r['mean [95% CI]']}" for _, r in sel.iterrows()))
        lines.append(f"- **{study}** — " + " — ".join(parts))
    return "\n".join(lines)
