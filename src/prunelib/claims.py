"""The poster's claims and this book's extensions, as data, judged by one rule.

Every claim names what it compares (a per-seed contrast of stored runs), at which pruning
ratio, and the control matched to it; the verdict comes from :func:`prunelib.stats.judge_family`
(the rule, the margins and the multiplicity correction live there, in one place).

Two families, each Holm-corrected over all its claims in the book:

* ``poster`` -- what the poster claims, tested on the poster's own algorithm: structured
  removal of whole neurons of the network's fully-connected part, layer by layer, iterated
  with the survivors reset to their initial values (the lottery-ticket schedule, 20% of the
  remaining units per round on CIFAR-10), in the early-stopping regime;
* ``extension`` -- what the poster did not test: the same claims on unstructured masks (the
  lottery ticket of Frankle & Carbin), temperature scaling, matched controls (the same mask or
  shape re-initialised at random), proper scoring rules, other ECE estimators, OOD detection
  rather than raw confidence, and the fixed-budget training regime.

A claim's contrast is a list of ``(coefficient, selection)`` terms summed per seed: ``[(1, a),
(-1, b)]`` is "a minus b, paired by seed"; the regime interaction has four terms. Seeds present
in every term are used; a claim whose runs are not in the table yet has ``n = 0`` and is
reported as inconclusive, outside the multiplicity count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats

S, U = "structured", "unstructured"
ES, FIXED = "early_stop", "fixed"
RESET, CONTROL = "iterative_reset", "iterative_maskreinit"

COLUMNS = ["chapter", "family", "id", "claim", "source", "comparison", "ratio", "control",
           "metric", "n", "mean", "lower", "upper", "lower95", "upper95", "p", "p_adjusted",
           "p_equiv", "p_equiv_adjusted", "margin", "expected", "verdict", "seeds_needed"]


@dataclass(frozen=True)
class Claim:
    """One claim: its contrast of stored runs, the direction it predicts and where it is from.

    ``predicts``: ``"higher"``/``"lower"`` (the contrast is above/below zero) or ``"same"``
    (the contrast is within the metric's practical margin). ``expected``: a claimed size in
    the metric's units (e.g. -0.02 for "loses about 2 points"), or None.
    """

    id: str
    chapter: str
    family: str
    statement: str
    source: str
    metric: str
    predicts: str
    terms: tuple
    comparison: str
    ratio: float | None
    control: str = "-"
    expected: float | None = None


def at(prune: str, technique: str, ratio: float, regime: str = ES) -> dict:
    """A selection of runs: one prune kind, technique, ratio and regime (one run per seed)."""
    return {"prune": prune, "technique": technique, "ratio": float(ratio), "regime": regime}


def dense(prune: str = S, regime: str = ES) -> dict:
    """The dense network of a seed (ratio 0 of the reset schedule)."""
    return at(prune, RESET, 0.0, regime)


def minus(a: dict, b: dict) -> tuple:
    return ((1.0, a), (-1.0, b))


def nearest(ratios, target: float) -> float:
    """The grid's pruning ratio closest to ``target`` (ratio 0 excluded)."""
    return min((r for r in ratios if r > 0), key=lambda r: abs(r - target))


def _select(df: pd.DataFrame, where: dict) -> pd.Series:
    sel = df
    for k, v in where.items():
        if k not in sel:
            if k == "regime" and v == ES:  # tables of studies without a regime column
                continue
            return pd.Series(dtype=float)
        sel = sel[np.isclose(sel[k].astype(float), v)] if isinstance(v, float) else sel[sel[k] == v]
    if sel["seed"].duplicated().any():
        raise ValueError(f"selection {where} has several rows per seed")
    return sel.set_index("seed")


def contrast(df: pd.DataFrame, metric: str, terms) -> np.ndarray:
    """Per-seed values of ``sum(coef * metric(selection))`` over the seeds in every term."""
    if df.empty or metric not in df:
        return np.array([])
    parts = [(coef, _select(df, where)) for coef, where in terms]
    seeds = None
    for _, sel in parts:
        seeds = set(sel.index) if seeds is None else seeds & set(sel.index)
    if not seeds:
        return np.array([])
    seeds = sorted(seeds)
    return sum(coef * sel.loc[seeds, metric].to_numpy(float) for coef, sel in parts)


# ---------------------------------------------------------------------------------------------
# the claims of each chapter
# ---------------------------------------------------------------------------------------------
def moons_claims(ratios) -> list[Claim]:
    """Chapter 3 (Make Moons): the poster's Figures 4 and 6 (left)."""
    p8 = nearest(ratios, 0.8)
    p5 = nearest(ratios, 0.5)
    out = []
    for kind, family, tag in ((S, "poster", ""), (U, "extension", "u")):
        d = dense(kind)
        label = "structured removal" if kind == S else "unstructured masks"
        ctrl = f"same {'shape' if kind == S else 'mask'}, fresh init (row m{tag}x2)"
        out += [
            Claim(f"m{tag}1", "moons", family,
                  f"one-shot pruning ({label}, reset) at Pm = {p5:g} keeps the dense accuracy",
                  "Figure 4", "accuracy", "same", minus(at(kind, "oneshot_reset", p5), d),
                  "one-shot pruned - dense", p5),
            Claim(f"m{tag}2", "moons", family,
                  f"iterative pruning ({label}, reset) keeps the dense accuracy at Pm = {p8:g}",
                  "Figure 4", "accuracy", "same", minus(at(kind, RESET, p8), d),
                  "iterative pruned - dense", p8),
            Claim(f"m{tag}3", "moons", family,
                  f"iterative pruning ({label}) lowers ECE at Pm = {p8:g}", "Figure 6 (left)",
                  "ece", "lower", minus(at(kind, RESET, p8), d), "pruned - dense", p8, ctrl),
            Claim(f"m{tag}x1", "moons", "extension",
                  f"... and still after temperature scaling ({label})", "not tested by the poster",
                  "ece_ts", "lower", minus(at(kind, RESET, p8), d), "pruned - dense, after TS", p8),
            Claim(f"m{tag}x2", "moons", "extension",
                  f"... and against its matched control ({label})", "not tested by the poster",
                  "ece", "lower", minus(at(kind, RESET, p8), at(kind, CONTROL, p8)),
                  "pruned - same-mask re-init", p8, ctrl),
        ]
        if kind == S:
            out += [Claim(f"mx{k}", "moons", "extension",
                          f"iterative structured pruning lowers the {name} at Pm = {p8:g}",
                          "proper scoring rule", metric, "lower", minus(at(S, RESET, p8), d),
                          "pruned - dense", p8, ctrl)
                    for k, (metric, name) in enumerate((("nll", "NLL"), ("brier", "Brier score")),
                                                       start=3)]
    return out


def cifar10_claims(ratios) -> list[Claim]:
    """Chapter 4 (CIFAR-10): the poster's Figures 5 and 6 (right) on structured removal of the
    CNN's head, then the lottery ticket on masks and the controls as extensions."""
    p6, p8, top = nearest(ratios, 0.6), nearest(ratios, 0.8), max(ratios)
    d = dense(S)
    cap = f"small dense network of the same shape (row cx2 at {p8:.2f})"
    out = [
        Claim("c1", "cifar10", "poster", f"iterative pruning finds a ticket at Pm = {p6:.2f} that "
              "tests better than the dense network", "Figure 5", "accuracy", "higher",
              minus(at(S, RESET, p6), d), "pruned - dense", p6,
              f"small dense network of the same shape at {p6:.2f}"),
        Claim("c2", "cifar10", "poster", f"... and early-stops sooner (Pm = {p6:.2f})", "Figure 5",
              "early_stop_iteration", "lower", minus(at(S, RESET, p6), d), "pruned - dense", p6),
        Claim("c3", "cifar10", "poster", f"the network pruned at Pm = {p8:.2f} loses about 2 "
              "points of accuracy", "text beside Figure 5", "accuracy", "lower",
              minus(at(S, RESET, p8), d), "pruned - dense", p8, expected=-0.02),
        Claim("c4", "cifar10", "poster", f"pruning lowers ECE (Pm = {p8:.2f})", "Figure 6 (right)",
              "ece", "lower", minus(at(S, RESET, p8), d), "pruned - dense", p8, cap),
        Claim("cx1", "cifar10", "extension", f"... and still after temperature scaling "
              f"(Pm = {p8:.2f})", "not tested by the poster", "ece_ts", "lower",
              minus(at(S, RESET, p8), d), "pruned - dense, after TS", p8),
        Claim("cx2", "cifar10", "extension", "... and against the small dense network of the same "
              "shape trained from scratch", "not tested by the poster", "ece", "lower",
              minus(at(S, RESET, p8), at(S, CONTROL, p8)), "pruned - small dense", p8, cap),
    ]
    for k, (metric, name) in enumerate((("nll", "NLL"), ("brier", "Brier score"),
                                        ("ece_debiased", "debiased ECE"),
                                        ("smooth_ece", "smooth ECE")), start=3):
        out.append(Claim(f"cx{k}", "cifar10", "extension", f"pruning lowers the {name} "
                         f"(Pm = {p8:.2f})", "proper score / ECE estimator", metric, "lower",
                         minus(at(S, RESET, p8), d), "pruned - dense", p8, cap))
    du = dense(U)
    same = "same mask, fresh init"
    out += [
        Claim("cu1", "cifar10", "extension", f"the lottery ticket (masks) at Pm = {p6:.2f} tests "
              "better than the dense network", "Frankle & Carbin", "accuracy", "higher",
              minus(at(U, RESET, p6), du), "ticket - dense", p6, same),
        Claim("cu2", "cifar10", "extension", f"... and early-stops sooner (Pm = {p6:.2f})",
              "Frankle & Carbin", "early_stop_iteration", "lower", minus(at(U, RESET, p6), du),
              "ticket - dense", p6),
        Claim("cu3", "cifar10", "extension", f"the ticket beats its same-mask re-initialisation "
              f"(Pm = {p6:.2f})", "Frankle & Carbin", "accuracy", "higher",
              minus(at(U, RESET, p6), at(U, CONTROL, p6)), "ticket - same-mask re-init", p6, same),
        Claim("cu4", "cifar10", "extension", f"... also at the most pruned ratio (Pm = {top:.2f})",
              "Frankle & Carbin", "accuracy", "higher",
              minus(at(U, RESET, top), at(U, CONTROL, top)), "ticket - same-mask re-init", top,
              same),
        Claim("cu5", "cifar10", "extension", f"masks lower ECE (Pm = {p8:.2f})",
              "not tested by the poster", "ece", "lower", minus(at(U, RESET, p8), du),
              "ticket - dense", p8, same),
        Claim("cu6", "cifar10", "extension", "... against the same-mask re-initialisation",
              "not tested by the poster", "ece", "lower",
              minus(at(U, RESET, p8), at(U, CONTROL, p8)), "ticket - same-mask re-init", p8, same),
    ]
    return out


def regime_claims(ratios) -> list[Claim]:
    """Chapter 4's regime section: does pruning help calibration only when the dense network is
    over-confident (fixed budget, last weights kept)?"""
    p8 = nearest(ratios, 0.8)
    dF, dE = dense(S, FIXED), dense(S, ES)
    pF, pE = at(S, RESET, p8, FIXED), at(S, RESET, p8, ES)
    out = [Claim("r1", "cifar10", "extension", "a fixed budget (last weights kept) makes the dense "
                 "network over-confident", "Guo et al. 2017", "ece", "higher", minus(dF, dE),
                 "dense: fixed - early stop", 0.0)]
    for k, metric in enumerate(("ece", "nll", "brier"), start=2):
        out.append(Claim(f"r{k}", "cifar10", "extension", f"in the fixed regime pruning lowers "
                         f"the {metric.upper() if metric != 'brier' else 'Brier score'} "
                         f"(Pm = {p8:.2f})", "extension", metric, "lower", minus(pF, dF),
                         "pruned - dense (fixed)", p8, "small dense network (row r6)"))
    out += [
        Claim("r5", "cifar10", "extension", "... and still after temperature scaling", "extension",
              "ece_ts", "lower", minus(pF, dF), "pruned - dense (fixed), after TS", p8),
        Claim("r6", "cifar10", "extension", "... and against the small dense network of the same "
              "shape", "extension", "ece", "lower", minus(pF, at(S, CONTROL, p8, FIXED)),
              "pruned - small dense (fixed)", p8),
        Claim("r7", "cifar10", "extension", "... and, for masks, against the same-mask "
              "re-initialisation", "extension", "ece", "lower",
              minus(at(U, RESET, p8, FIXED), at(U, CONTROL, p8, FIXED)),
              "ticket - same-mask re-init (fixed)", p8),
        Claim("r8", "cifar10", "extension", "the pruning effect on ECE is larger (more negative) in "
              "the fixed regime than with early stopping", "interaction", "ece", "lower",
              ((1.0, pF), (-1.0, dF), (-1.0, pE), (1.0, dE)),
              "(pruned - dense) fixed - (pruned - dense) early stop", p8),
        Claim("r9", "cifar10", "extension", "... and on the NLL", "interaction", "nll", "lower",
              ((1.0, pF), (-1.0, dF), (-1.0, pE), (1.0, dE)),
              "(pruned - dense) fixed - (pruned - dense) early stop", p8),
        # what "pruning acts like early stopping" predicts: the pruned over-trained network
        # lands where early stopping puts the dense one
        Claim("r10", "cifar10", "extension", "pruning the over-trained network gives the ECE of the "
              "early-stopped dense network", "extension", "ece", "same", minus(pF, dE),
              "pruned (fixed) - dense (early stop)", p8),
        Claim("r11", "cifar10", "extension", "... and its NLL", "extension", "nll", "same",
              minus(pF, dE), "pruned (fixed) - dense (early stop)", p8),
    ]
    return out


def ood_claims(ratios, ood_sets) -> list[Claim]:
    """Chapter 5 (OOD): the poster's Figure 7 and its robustness conclusion, per OOD set, on
    structured removal; the confidence gap and AUROC after temperature scaling as extensions."""
    p8 = nearest(ratios, 0.8)
    d, p = dense(S), at(S, RESET, p8)
    out = []
    for name in ood_sets:
        out += [
            Claim(f"o1:{name}", "ood", "poster", f"pruned networks are less confident on {name} "
                  f"(Pm = {p8:.2f})", "Figure 7", f"ood_mean_confidence_{name}", "lower",
                  minus(p, d), "pruned - dense", p8),
            Claim(f"o2:{name}", "ood", "poster", f"pruning improves detecting {name} (AUROC of "
                  "the maximum softmax probability)", "conclusion: robustness",
                  f"auroc_msp_{name}", "higher", minus(p, d), "pruned - dense", p8),
            Claim(f"ox1:{name}", "ood", "extension", f"pruning widens the gap between test and "
                  f"{name} confidence", "not tested by the poster", f"ood_confidence_gap_{name}",
                  "higher", minus(p, d), "pruned - dense", p8),
            Claim(f"ox2:{name}", "ood", "extension", "... AUROC after temperature scaling",
                  "not tested by the poster", f"auroc_msp_ts_{name}", "higher", minus(p, d),
                  "pruned - dense", p8),
        ]
    return out


# ---------------------------------------------------------------------------------------------
# judging
# ---------------------------------------------------------------------------------------------
def margin_key(metric: str) -> str:
    """The name under which :data:`prunelib.stats.MARGINS` holds ``metric``'s margin (the
    per-OOD-set columns share their measure's margin)."""
    for prefix, key in (("ood_mean_confidence_", "mean_confidence"),
                        ("ood_confidence_gap_", "ood_confidence_gap")):
        if metric.startswith(prefix):
            return key
    return metric


def judge(claims: list[Claim], tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim (:data:`COLUMNS`), verdicts Holm-corrected within each family.

    ``tables`` maps a chapter (``"moons"``, ``"cifar10"``, ``"ood"``) to its results table
    (:func:`prunelib.sweep.sweep_results`, with the derived columns of
    :func:`prunelib.analysis.derived_columns` where a claim needs them). Claims of chapters
    without a table count as not in the store.
    """
    diffs = [contrast(tables.get(c.chapter, pd.DataFrame()), c.metric, c.terms) for c in claims]
    rows = [None] * len(claims)
    for family in dict.fromkeys(c.family for c in claims):
        members = [i for i, c in enumerate(claims) if c.family == family]
        idx = [i for i in members if len(diffs[i])]
        judged = stats.judge_family([{"diffs": diffs[i], "predicts": claims[i].predicts,
                                      "metric": margin_key(claims[i].metric),
                                      "expected": claims[i].expected} for i in idx])
        for i in members:  # not in the store yet: no number, and outside the correction
            if not len(diffs[i]):
                c = claims[i]
                rows[i] = {**dict.fromkeys(COLUMNS, np.nan), "chapter": c.chapter,
                           "family": family, "id": c.id, "claim": c.statement, "source": c.source,
                           "comparison": c.comparison, "ratio": c.ratio, "control": c.control,
                           "metric": c.metric, "n": 0, "margin": stats.margin_for(margin_key(c.metric)),
                           "expected": c.expected, "verdict": "inconclusive",
                           "seeds_needed": None}
        for i, j in zip(idx, judged):
            c = claims[i]
            rows[i] = {"chapter": c.chapter, "family": family, "id": c.id, "claim": c.statement,
                       "source": c.source, "comparison": c.comparison, "ratio": c.ratio,
                       "control": c.control, "metric": c.metric, "n": j.n, "mean": j.mean,
                       "lower": j.lower, "upper": j.upper, "lower95": j.lower95,
                       "upper95": j.upper95, "p": j.p, "p_adjusted": j.p_adjusted,
                       "p_equiv": j.p_equiv, "p_equiv_adjusted": j.p_equiv_adjusted,
                       "margin": j.margin, "expected": c.expected, "verdict": j.verdict,
                       "seeds_needed": j.seeds_needed}
    return pd.DataFrame(rows, columns=COLUMNS)


def book_claims(ratios: dict, ood_sets) -> list[Claim]:
    """Every claim of the book: ``ratios`` maps a chapter to its grid's ratios."""
    return (moons_claims(ratios["moons"]) + cifar10_claims(ratios["cifar10"])
            + regime_claims(ratios["cifar10"]) + ood_claims(ratios["ood"], ood_sets))


def units(metric: str) -> tuple[float, str, int]:
    """How a difference of ``metric`` is written: ``(factor, unit, decimals)``. Fractions
    (accuracy, ECE and its estimators, confidences, AUROC) in percentage points; the NLL in
    nats, the Brier score as it is, the early-stop iteration in iterations."""
    if metric.startswith(("nll",)):
        return 1.0, " nats", 3
    if metric.startswith("brier"):
        return 1.0, "", 4
    if metric == "early_stop_iteration":
        return 1.0, " iterations", 0
    return 100.0, " points", 2


def effect_text(r, interval: str = "corrected") -> str:
    """``"-2.31 points [-3.02, -1.55]"``: a judged claim's mean and its interval (``"corrected"``:
    the multiplicity-corrected one; ``"95"``: the plain 95% t interval), in its metric's units."""
    f, unit, d = units(r["metric"])
    lo, hi = (r["lower"], r["upper"]) if interval == "corrected" else (r["lower95"], r["upper95"])
    if r["n"] == 0:
        return "not in the store yet"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{f * r['mean']:+.{d}f}{unit}"
    return f"{f * r['mean']:+.{d}f}{unit} [{f * lo:+.{d}f}, {f * hi:+.{d}f}]"


def compact(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table as a reader takes it in: id, claim, comparison at ratio, control, effect
    with its corrected interval (in the metric's units, :func:`units`), raw and adjusted p,
    margin and verdict."""
    rows = []
    for _, r in table.iterrows():
        f, unit, d = units(r["metric"])
        effect = effect_text(r)
        ratio = "" if r["ratio"] is None or not np.isfinite(r["ratio"]) else f" @ {r['ratio']:.2f}"
        rows.append({"id": r["id"], "claim": r["claim"], "comparison": f"{r['comparison']}{ratio}",
                     "control": r["control"], "metric": r["metric"], "effect [adj. CI]": effect,
                     "p": _p(r["p"]), "p (Holm)": _p(r["p_adjusted"]),
                     "margin": f"±{f * r['margin']:.{max(d - 1, 0)}f}{unit}",
                     "seeds": int(r["n"]),
                     "verdict": r["verdict"] + (f" (≈{r['seeds_needed']} seeds)"
                                                if r["verdict"] == "inconclusive"
                                                and r["seeds_needed"] else "")})
    return pd.DataFrame(rows)


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def verdict_summary(table: pd.DataFrame) -> str:
    """Markdown bullets, one per chapter and family: its claims grouped by verdict."""
    lines = []
    for (chapter, family), g in table.groupby(["chapter", "family"], sort=False):
        parts = []
        for v in stats.VERDICTS:
            sel = g[g["verdict"] == v]
            if len(sel):
                parts.append(f"*{v}*: " + "; ".join(f"({r['id']}) {r['claim']}"
                                                    for _, r in sel.iterrows()))
        lines.append(f"- **{chapter}, {family}** — " + " — ".join(parts))
    return "\n".join(lines)
