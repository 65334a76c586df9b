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
