"""What the book's chapters share: their grid's runs (read, or computed), and the claims.

Each study chapter starts with :func:`chapter_runs`, which honours the chapter's ``compute``
parameter:

* ``"store"`` (default): read the committed results; nothing is trained and no data set is
  loaded (the runs are found by the data identity recorded with them);
* ``"missing"``: train and evaluate what the store lacks, on the best device (a GPU when
  there is one), into that store;
* ``"all"``: recompute the whole grid into a fresh store beside it.

The ``smoke`` profile has no committed results: with ``"store"`` it computes its tiny grid
afresh into a temporary store, as with ``"all"``. Claims are judged
over the whole book at once (:func:`book_verdicts`), so a chapter's verdicts are corrected for
every claim of their family, not only its own.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import claims as C
from .analysis import derived_columns
from .config import RunConfig, SweepConfig
from .profiles import sweep_for
from .store import ResultsStore
from .sweep import bind_data, pick_device, run_sweep, sweep_results

COMPUTE = ("store", "missing", "all")


@dataclass
class ChapterRuns:
    """A chapter's grid (bound to its data), its table, the store it came from and how."""

    sweep: SweepConfig
    df: pd.DataFrame
    store: ResultsStore
    how: str
    seconds: float = 0.0

    @property
    def records(self) -> list[dict]:
        return [r for r in (self.store.load(c) for c in self.sweep.runs()) if r is not None]


def chapter_runs(study: str, profile: str, store: str | Path, compute: str = "store",
                 seeds: int | None = None, ood_sets=None, device: str = "auto") -> ChapterRuns:
    """The runs of ``study``'s grid in ``profile``, read or computed as ``compute`` says.

    Prints one line saying where the runs come from (and, when something was computed, the
    device and the time it took). Raises ``RuntimeError`` with the command to run when the
    paper grid has no run in the store.
    """
    if compute not in COMPUTE:
        raise ValueError(f"compute must be one of {COMPUTE}, not {compute!r}")
    if profile not in ("smoke", "paper"):
        raise ValueError(f"profile must be 'smoke' or 'paper', not {profile!r}")
    sweep = sweep_for(study, profile, seeds=seeds, ood_sets=ood_sets)
    t0 = time.perf_counter()
    if profile == "smoke" and compute == "store":
        compute = "all"  # no smoke results are committed: compute the tiny grid afresh
    if compute == "all":
        where = Path(tempfile.mkdtemp(prefix=f"{study}-{profile}-"))
        if study == "ood":  # the ood study evaluates stored cifar10 networks: train them first
            run_sweep(sweep_for("cifar10", profile, seeds=seeds), where, progress=False,
                      device=device)
        sweep = bind_data(sweep, source="data")
        df = run_sweep(sweep, where, progress=False, device=device)
        how = f"computed afresh into {where} on {pick_device(device)}"
    elif compute == "missing":
        where = Path(store)
        if study == "ood":
            run_sweep(sweep_for("cifar10", profile, seeds=seeds), where, progress=False,
                      device=device)
        sweep = bind_data(sweep, source="data")
        df = run_sweep(sweep, where, progress=False, device=device)
        how = f"missing runs computed into {where} on {pick_device(device)}"
    else:
        where = Path(store)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                sweep = bind_data(sweep, where, source="store")
            except ValueError:
                raise RuntimeError(
                    f"no {study} {profile} runs in {where}: set compute = \"missing\" (or run "
                    f"`prunelib sweep {study} --profile {profile} --store {where}`)") from None
            df = sweep_results(sweep, where)
        how = f"read from {where} (nothing trained)"
    seconds = time.perf_counter() - t0
    note = f"; {seconds:.0f} s" if compute != "store" else ""
    print(f"{study}: {len(df)} of {len(sweep.runs())} runs of the {profile} grid, {how}{note}")
    return ChapterRuns(sweep, df, ResultsStore(where), how, seconds)


def data_provenance(records: list[dict]) -> str:
    """The data the runs were made from, as their records state it (no data set is loaded).

    The lines every description shares are printed once; then each distinct description's
    own lines (per seed: its split and normalisation) with the number of its runs; then the
    data fingerprints."""
    seen: dict[str, int] = {}
    for r in records:
        text = r.get("data", "not recorded")
        seen[text] = seen.get(text, 0) + 1
    ids = sorted({r["config"].get("data_id", "") for r in records} - {""})
    texts = [t.splitlines() for t in seen]
    common = [ln for ln in texts[0] if all(ln in t for t in texts[1:])] if len(texts) > 1 else []
    lines = []
    if common:
        lines += [f"[{len(records)} runs, {len(seen)} descriptions; shared]", *common,
                  "each description's own lines:"]
    for t, n in zip(texts, seen.values()):
        own = [ln for ln in t if ln not in common]
        lines.append(f"[{n} runs] " + " | ".join(own) if common else f"[{n} runs]\n" + "\n".join(t))
    if ids:
        lines.append("data fingerprint(s): " + ", ".join(ids))
    return "\n".join(lines)


def book_tables(store: str | Path, profile: str = "paper", ood_sets=None,
                reuse: dict | None = None) -> dict[str, pd.DataFrame]:
    """Every study's paper table from the store (with the derived columns the claims use);
    ``reuse`` passes tables a chapter already has (e.g. ``{"cifar10": its table}``)."""
    tables = dict(reuse or {})
    for study in ("moons", "cifar10", "ood"):
        if study in tables:
            continue
        sweep = sweep_for(study, profile, ood_sets=ood_sets if study == "ood" else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                sweep = bind_data(sweep, store, source="store")
            except ValueError:
                continue
            df = sweep_results(sweep, store)
        # the ECE estimators only where a claim uses them: the dense network and the ratio
        # nearest 0.8 in the early-stopping regime (chapter 4 derives them for every run)
        p8 = C.nearest(sweep.ratios, 0.8)
        tables[study] = derived_columns(
            df, ResultsStore(store), ood_sets=sweep.base.get("ood_sets", ()),
            estimators=study == "cifar10",
            where={"ratio": [0.0, p8], "regime": ["early_stop"]})
    return tables


def book_verdicts(tables: dict[str, pd.DataFrame], profile: str = "paper",
                  ood_sets=None) -> pd.DataFrame:
    """Every claim of the book judged on ``tables`` (Holm within each family)."""
    ratios = {s: sweep_for(s, profile).ratios for s in ("moons", "cifar10", "ood")}
    sets = ood_sets or sweep_for("ood", profile).base["ood_sets"]
    if "ood" in tables and len(tables["ood"]):
        sets = [s for s in sets if f"ood_mean_confidence_{s}" in tables["ood"]] or sets
    return C.judge(C.book_claims(ratios, sets), tables)


def regime_reading(table: pd.DataFrame) -> str:
    """Chapter 4's reading of the regime claims (``r1``-``r11``, ``c4``, from
    :func:`book_verdicts`), in Markdown: what separates "pruning helps calibration" from
    "pruning acts like early stopping", and which of the two the verdicts support.

    The two readings predict different things. If pruning acts like early stopping on an
    over-trained network, its ECE drop is larger in the fixed regime (r8), a temperature
    removes it (r5 not reproduced), a network of the pruned size trained the same way is as well
    calibrated (r6), and the pruned network lands where early stopping puts the dense one
    (r10, r11). If pruning helps in its own right, the drop appears under early stopping too
    (c4), survives temperature scaling (r5) and beats the small dense network (r6).
    """
    v = table.set_index("id")

    def said(cid: str) -> str:
        r = v.loc[cid]
        return f"{C.effect_text(r)} ({cid}, *{r['verdict']}*)"

    def verdict(cid: str) -> str:
        return v.loc[cid, "verdict"]

    needed = [c for c in ("r1", "r2", "c4", "r5", "r6", "r8", "r10", "r11") if c not in v.index]
    if needed:
        raise ValueError(f"the table lacks the claims {needed}: pass book_verdicts(...)")
    if (v.loc[["r1", "r2", "r8"], "n"] < 2).any():
        return ("The fixed-budget grid has fewer than two seeds paired with the early-stopping "
                "grid in the store yet, so nothing separates the two readings.")
    ratio = v.loc["r2", "ratio"]
    temperature = {
        "reproduced": "pruning changes more than the scale of the confidences.",
        "no meaningful effect": "it is a change of scale that one temperature undoes, the kind "
                                "of change that stopping earlier also makes.",
        "contradicted": "after temperature scaling the pruned network is the worse calibrated one.",
    }.get(verdict("r5"), "the data cannot yet tell whether it is more than a change of scale.")
    capacity = {
        "reproduced": "The pruned network is better calibrated than a network of its size, so "
                      "the procedure, not only the size, matters.",
        "no meaningful effect": "A network of the pruned size trained the same way is as well "
                                "calibrated: the effect belongs to the size, not to pruning.",
        "contradicted": "The network of the pruned size trained from scratch is the better "
                        "calibrated one.",
    }.get(verdict("r6"), "Undecided.")
    lines = [
        f"- **Over-confidence.** The fixed budget changes the dense network's ECE by {said('r1')}.",
        (f"- **The pruning effect in each regime.** Removing {ratio:.0%} of the head's neurons "
         f"changes the ECE by {said('r2')} in the fixed regime and by {said('c4')} with early "
         f"stopping; the difference between the regimes is {said('r8')}."),
        (f"- **Temperature.** After temperature scaling the fixed-regime change is "
         f"{said('r5')}: {temperature}"),
        (f"- **Capacity.** Against the small dense network of the same shape, trained with the "
         f"same budget from a fresh initialisation: {said('r6')}. {capacity}"),
        (f"- **Where it lands.** The pruned over-trained network minus the early-stopped dense "
         f"network: ECE {said('r10')}, NLL {said('r11')}."),
    ]
    n = int(v.loc[["r1", "r2", "r8"], "n"].min())
    lines.append(f"\n**Reading ({n} seeds paired across the regimes):** {regime_conclusion(table)}")
    return "\n".join(lines)


def regime_conclusion(table: pd.DataFrame) -> str:
    """The last sentence of :func:`regime_reading`: which reading the verdicts support, or
    which claims (and about how many seeds) would decide it."""
    v = table.set_index("id")

    def verdict(cid: str) -> str:
        return v.loc[cid, "verdict"]

    if (v.loc[["r1", "r2", "r8"], "n"] < 2).any():
        return "not in the store yet (fewer than two seeds paired across the regimes)."
    like_es = verdict("r8") == "reproduced" and (
        verdict("r5") in ("no meaningful effect", "contradicted") or verdict("r10") == "reproduced")
    helps = all(verdict(c) == "reproduced" for c in ("c4", "r5", "r6"))
    if verdict("r2") in ("no meaningful effect", "contradicted"):
        return ("pruning does not lower the ECE of the over-confident network, so neither reading "
                "is needed.")
    if like_es and helps:
        return ("both: pruning improves calibration in its own right (with early stopping too, "
                "after temperature scaling, against a network of its size), and more so where the "
                "dense network is over-trained.")
    if like_es:
        return ("pruning's calibration gain is what early stopping gives: it appears where the "
                "dense network is over-trained, and "
                + ("a temperature removes it." if verdict("r5") != "reproduced" else
                   "the pruned network lands where early stopping puts the dense one."))
    if helps:
        return ("pruning improves calibration in its own right: the gain appears with early "
                "stopping too, survives temperature scaling and beats a network of the same size.")
    undecided = [c + (f" (≈{int(k)} seeds)" if pd.notna(k := v.loc[c, "seeds_needed"]) and k else "")
                 for c in ("r5", "r6", "r8", "r10") if verdict(c) == "inconclusive"]
    return ("the data do not yet separate the two readings"
            + (f"; undecided: {', '.join(undecided)}." if undecided else "."))


#: the claims whose intervals the conclusion also gives with test-set sampling error
HEADLINE = ("c3", "c4", "cx1", "cx3", "cx4")


def _per_example(metric: str):
    """``(metric_fn(probs, labels), per_example)`` for :func:`prunelib.stats.hierarchical_bootstrap`."""
    import numpy as np

    from . import metrics as M

    if metric == "accuracy":
        return (lambda p, y: (p.argmax(1) == y).astype(float)), True
    if metric in ("nll", "nll_ts"):
        return (lambda p, y: -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))), True
    if metric in ("brier", "brier_ts"):
        return (lambda p, y: ((p - np.eye(p.shape[1])[y]) ** 2).sum(1)), True
    if metric in ("ece", "ece_ts"):
        return (lambda p, y: M.ece(p, y)), False
    raise ValueError(f"no bootstrap for metric {metric!r}")


def bootstrap_intervals(tables: dict[str, pd.DataFrame], store: str | Path, ids=HEADLINE,
                        profile: str = "paper", n_boot: int = 300, seed: int = 0) -> pd.DataFrame:
    """For the claims ``ids`` (two-term contrasts): the mean difference over seeds with a 95%
    interval that carries both seed-to-seed and test-set sampling error
    (:func:`prunelib.stats.hierarchical_bootstrap` over seeds and test examples, paired),
    from the stored float16 test logits (temperature-scaled with each run's fitted
    temperature for ``*_ts`` metrics). Claims not in the store are left out."""

    from . import stats
    from .analysis import _test_probs

    ratios = {s: sweep_for(s, profile).ratios for s in ("moons", "cifar10", "ood")}
    by_id = {c.id: c for c in C.book_claims(ratios, sweep_for("ood", profile).base["ood_sets"])}
    st = ResultsStore(store)
    rows = []
    for cid in ids:
        claim = by_id[cid]
        df = tables.get(claim.chapter)
        if df is None or len(claim.terms) != 2 or df.empty:
            continue
        (ca, wa), (_, wb) = claim.terms
        sa, sb = C._select(df, wa), C._select(df, wb)
        seeds = sorted(set(sa.index) & set(sb.index))
        if len(seeds) < 2:
            continue
        ts = claim.metric.endswith("_ts")
        fn, per = _per_example(claim.metric)
        a, b = ([_test_probs(st, sel.loc[s, "study"], sel.loc[s, "key"],
                             float(sel.loc[s, "temperature"]) if ts else 1.0) for s in seeds]
                for sel in (sa, sb))
        m = stats.hierarchical_bootstrap(fn, a, b, n_boot=n_boot, seed=seed, per_example=per)
        sign = 1.0 if ca > 0 else -1.0
        rows.append({"id": cid, "metric": claim.metric, "seeds": len(seeds),
                     "mean": sign * m.mean, "lower": min(sign * m.lower, sign * m.upper),
                     "upper": max(sign * m.lower, sign * m.upper)})
    return pd.DataFrame(rows, columns=["id", "metric", "seeds", "mean", "lower", "upper"])


def _training_phases(cfgs, prune_kinds) -> int:
    """Training phases needed to compute ``cfgs`` (see :func:`compute_plan`): per seed with any
    run, its dense network once; per seed and prune kind, the longest iterative reset schedule's
    rounds once (the shorter ones are its prefixes); one training per same-mask control and per
    one-shot pruned run."""
    phases = 0
    for seed in sorted({c.seed for c in cfgs}):
        mine = [c for c in cfgs if c.seed == seed]
        phases += 1  # the dense network
        for kind in prune_kinds:
            resets = [c.rounds for c in mine if c.prune == kind and c.treatment == "reset"
                      and c.schedule == "iterative" and c.ratio > 0]
            phases += max(resets, default=0)
            phases += sum(c.prune == kind and c.treatment == "maskreinit" for c in mine)
            phases += sum(c.prune == kind and c.schedule == "oneshot" and c.ratio > 0
                          for c in mine)
    return phases


def compute_plan(sweep: SweepConfig, records: list[dict]) -> pd.DataFrame:
    """The grid's cost, planned from what one training measured and compared with what it took.

    Per part of the grid (one per training regime): seeds, runs, *training phases* (each
    seed's dense network once, each iterative schedule's rounds once — its shorter runs are
    its prefixes — and one training per same-mask control or one-shot run), the median seconds
    of one dense training in the stored records (one median per seed, then over seeds), the
    projected hours (phases x that median), and the runs stored with the training hours they took
    (:func:`prunelib.experiments.training_seconds`). The plan is then set against what the
    stored part took, prorated by training phases, not runs, so a partly computed seed weighs
    what it trained: the phases stored, the hours the plan projects for them, the seconds each
    took on average, the ratio of stored to planned hours, and the hours the whole part takes
    at that ratio.
    """
    import numpy as np

    from .experiments import training_seconds

    rows = []
    for part in (sweep, *sweep.extra):
        regime = part.base.get("regime", "early_stop")
        cfgs = dataclasses.replace(part, extra=()).runs()  # this part's runs, not its extras'
        phases = _training_phases(cfgs, part.prune_kinds)
        mine = [r for r in records if r["config"].get("regime", "early_stop") == regime
                and r["config"].get("study") != "ood"]  # OOD re-evaluations train nothing
        dense_s: dict[int, list[float]] = {}  # per seed: each chain may store its own dense run
        for r in mine:
            if r["config"]["ratio"] == 0:
                dense_s.setdefault(r["config"]["seed"], []).append(r["metrics"]["seconds"])
        per = (float(np.median([np.median(v) for v in dense_s.values()])) if dense_s
               else float("nan"))
        stored = _training_phases([RunConfig.from_dict(r["config"]) for r in mine],
                                  part.prune_kinds)
        hours = training_seconds(mine) / 3600
        planned = stored * per / 3600
        rows.append({"regime": regime, "seeds": len(part.seeds), "runs": len(cfgs),
                     "training phases": phases, "s per training (measured)": per,
                     "projected hours": phases * per / 3600, "runs stored": len(mine),
                     "hours so far": hours, "phases stored": stored,
                     "planned hours for them": planned,
                     "s per stored phase": hours * 3600 / stored if stored else float("nan"),
                     "stored / planned": hours / planned if planned else float("nan")})
        r = rows[-1]  # the whole part at the rate its stored phases ran (the plan if none ran)
        r["hours at completion"] = r["projected hours"] * (
            r["stored / planned"] if stored and planned else 1.0)
    return pd.DataFrame(rows)
