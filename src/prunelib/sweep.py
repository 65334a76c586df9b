"""Run a sweep against a results store: compute what is missing, return a tidy table."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
import warnings

import pandas as pd
from tqdm import tqdm

from .config import RunConfig, SweepConfig, canonical_json
from .store import CorruptRecordWarning, ResultsStore

#: columns every report has, in this order. ``cap_stopped``: 1 when an early-stopping run ended
#: at the iteration cap rather than by patience (the goal is none), 0 when patience stopped it,
#: empty for a ``fixed``-regime run (it always runs its whole budget; its record says "cap")
REPORT_COLUMNS = ["study", "profile", "regime", "model", "prune", "technique", "ratio", "seed",
                  "data_seed", "accuracy", "ece", "early_stop_iteration", "cap_stopped"]


def machine_description() -> str:
    """One line naming the machine a run was computed on (stored with every record)."""
    import torch

    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads")


def pick_device(device: str = "auto") -> str:
    """``auto`` picks CUDA, then Apple MPS, then CPU; anything else is returned as is."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _id_free(cfg: RunConfig | dict) -> str:
    """A run's canonical configuration without its data identity."""
    d = (cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(dict(cfg))).to_dict()
    d.pop("data_id", None)
    d.pop("ood_data_id", None)
    return canonical_json(d)


def _bind(sweep: SweepConfig, data_id: str, ood_data_id: str) -> SweepConfig:
    base = {**sweep.base, "data_id": data_id}
    if sweep.base.get("ood_sets"):
        base["ood_data_id"] = ood_data_id
    return dataclasses.replace(sweep, base=base,
                               extra=tuple(_bind(p, data_id, ood_data_id) for p in sweep.extra))


def data_ids_now(sweep: SweepConfig) -> tuple[str, str]:
    """``(data_id, ood_data_id)`` of the data the sweep would read now (see
    :func:`prunelib.data.fingerprint`); :class:`prunelib.data.DataNotFoundError` without them."""
    from . import data as pdata

    root = sweep.base.get("data_kwargs", {}).get("root")
    data_id = pdata.fingerprint(sweep.base["dataset"], root=root)
    ood = ",".join(pdata.fingerprint(n, root=root) for n in sweep.base.get("ood_sets", ()))
    return data_id, ood


def bind_data(sweep: SweepConfig, store: ResultsStore | str | None = None, *,
              source: str = "auto") -> SweepConfig:
    """``sweep`` with its runs' ``data_id`` (and ``ood_data_id``) filled in.

    A run's key includes the fingerprint of its data, so the grid must be bound to data
    before its runs can be looked up or computed:

    * ``source="data"``: the fingerprint of the data found now (``$PRUNELIB_DATA`` or the
      torchvision download); for computing;
    * ``source="store"``: the data identity of the grid's records in ``store`` (for reading
      committed results without the data sets). When the store holds the grid under several
      identities, the one with the most records is taken, with a warning;
    * ``"auto"`` (default): the store's identity when it holds any of the grid's runs, else
      the data's.

    A sweep already bound (its ``base`` has a non-empty ``data_id``) is returned as it is.
    """
    if sweep.base.get("data_id"):
        return sweep
    if source not in ("auto", "data", "store"):
        raise ValueError(f"source must be 'auto', 'data' or 'store', got {source!r}")
    if source in ("auto", "store") and store is not None:
        store = store if isinstance(store, ResultsStore) else ResultsStore(store)
        wanted = {_id_free(r) for r in sweep.runs()}
        study = sweep.base["study"]
        counts: dict[tuple[str, str], int] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptRecordWarning)
            for rec in store.records(study, verify_arrays=False):
                if _id_free(rec["config"]) in wanted:
                    ids = (rec["config"].get("data_id", ""), rec["config"].get("ood_data_id", ""))
                    counts[ids] = counts.get(ids, 0) + 1
        if counts:
            best = max(sorted(counts), key=counts.get)
            if len(counts) > 1:
                warnings.warn(f"{store.root} holds this {study} grid for {len(counts)} data sets "
                              f"({counts}); reading the one with the most records: {best}",
                              stacklevel=2)
            return _bind(sweep, *best)
        if source == "store":
            raise ValueError(f"{store.root} holds none of this {study} grid's runs; compute them "
                             "(prunelib sweep) or bind to the data found now (source='data')")
    return _bind(sweep, *data_ids_now(sweep))


def run_sweep(sweep: SweepConfig | list[RunConfig], store: ResultsStore | str, *,
              fresh: bool = False, device: str = "cpu", progress: bool = True,
              vectorize: bool = True, summary: bool | None = None, executor: str = "serial",
              workers: int | None = None, slurm=None, claim_ttl_s: float | None = None,
              claim_heartbeat_s: float | None = None) -> pd.DataFrame:
    """Compute the runs of ``sweep`` missing from ``store`` and return every run's row.

    Finished runs are written one by one, atomically, as they complete, so an
    interrupted sweep resumes where it stopped. ``fresh=True`` recomputes all.
    ``vectorize=False`` trains MLPs one at a time instead of as one batched ensemble.

    The runs are computed in execution groups (:func:`prunelib.experiments.
    execution_groups`: a seed's runs sharing the dense phase), each under a claim in the
    store (:meth:`prunelib.store.ResultsStore.claim`), so that sweeps sharing a store never
    compute a group twice at once: a group another live worker holds is skipped and
    reported (a warning naming the holder), and no claim is left behind. ``executor``:

    * ``"serial"`` (default): in this process, group after group;
    * ``"local"``: ``workers`` worker processes on this machine (default: one per CPU core,
      at most one per group);
    * ``"slurm"``: one Slurm array task per group through ``submitit``, with ``slurm`` a
      :class:`prunelib.executors.SlurmOptions` (partition, time, CPUs, GPUs...).

    The distributed executors wait for their workers with a progress bar over groups; the
    groups that failed (with the log holding the traceback) are in the returned table's
    ``attrs["sweep"]["failed"]``. ``claim_ttl_s`` and ``claim_heartbeat_s`` set the claims'
    time to live and heartbeat (defaults :data:`prunelib.store.CLAIM_TTL_S`, :data:`prunelib.
    store.CLAIM_HEARTBEAT_S`).

    Every input is checked before any training starts (:mod:`prunelib.preflight`: the
    configurations, the device, the data's files and arrays, and, when there is something
    to compute, that the store is writable); a bad one raises
    :class:`~prunelib.preflight.PreflightError` (a ``ValueError``) saying how to fix it. With
    ``executor="slurm"`` the device is resolved on the compute nodes, not checked here.

    ``summary`` (default: ``progress``) prints one line at the end: runs computed, read
    from the store, and not computed. What happened is also in the returned table's
    ``attrs["sweep"]``: ``{"runs", "asked", "computed", "from_store", "not_computed",
    "held", "failed"}`` (``asked``: the runs that were missing, or all with ``fresh``;
    ``not_computed``: those of them that could not be, e.g. ``ood`` runs whose ``cifar10``
    network is not stored, or runs of groups that other workers held (``held``) or that
    failed (``failed``: one entry per group, with its error and log)).

    Runs of MLPs trained as one batched ensemble are reproducible to float rounding (about
    1e-7), not bit for bit, across different batches: a resumed sweep batches only the
    missing runs, and PyTorch's fused Adam rounds a member's update differently at different
    positions of the stacked weights. See
    ``tests/test_faults.py::test_7_resume_matches_an_uninterrupted_sweep``.
    """
    from .executors import EXECUTORS
    from .experiments import execution_groups
    from .preflight import PreflightError, check_data, check_device, check_store

    if executor not in EXECUTORS:
        raise PreflightError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise PreflightError(f"workers must be >= 1, got {workers}")
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    if executor != "slurm":
        device = check_device(device)
    check_store(store.root, write=False)
    check_data(sweep)
    if isinstance(sweep, SweepConfig):
        sweep = bind_data(sweep, source="data")
    runs = sweep.runs() if isinstance(sweep, SweepConfig) else list(sweep)
    store.remove_stale_temporaries()
    todo = runs if fresh else [r for r in runs if store.load(r) is None]
    if todo:
        check_store(store.root, write=True, study=todo[0].study)
    t0 = time.perf_counter()
    groups = execution_groups(todo, from_store=True)
    if executor == "serial":
        computed, held, failed = _serial(groups, store, device, vectorize, fresh, progress,
                                         len(runs), len(todo), claim_ttl_s, claim_heartbeat_s)
    else:
        computed, held, failed = _distributed(groups, store, executor, workers, slurm, device,
                                              vectorize, fresh, progress, claim_ttl_s,
                                              claim_heartbeat_s)
    outcome = {"runs": len(runs), "asked": len(todo), "computed": computed,
               "from_store": len(runs) - len(todo), "not_computed": len(todo) - computed,
               "held": held, "failed": failed}
    if progress if summary is None else summary:
        print(summary_line(outcome, store.root, time.perf_counter() - t0))
    df = results_frame([store.load(r) for r in runs])
    df.attrs["sweep"] = outcome
    return df


def _serial(groups, store, device, vectorize, fresh, progress, n_runs, n_todo, ttl_s,
            heartbeat_s):
    """Compute ``groups`` here, each under its claim; ``(computed, held runs, [])``."""
    from .executors import holder_text
    from .experiments import _warn_missing_sources, compute_group, describe_group, group_id

    machine = machine_description()
    dev = pick_device(device)
    computed = held = skipped = 0
    with tqdm(total=n_runs, initial=n_runs - n_todo, unit="run", disable=not progress,
              desc=groups[0][0].study if groups else "sweep") as bar:
        for group in groups:
            gid = group_id(group)
            claim = store.claim(gid, what=describe_group(group), ttl_s=ttl_s,
                                heartbeat_s=heartbeat_s)
            if claim is None:
                held += len(group)
                warnings.warn(f"{describe_group(group)} not computed here: "
                              f"{holder_text(store.claim_holder(gid) or {})} (group {gid} in "
                              f"{store.root}); run the sweep again when it is done",
                              stacklevel=3)
                continue
            with claim:
                if not fresh:  # another worker may have finished some just before this claim
                    left = [c for c in group if store.load(c) is None]
                    bar.update(len(group) - len(left))
                    group = left
                written, missing = compute_group(group, store, dev, vectorize, machine,
                                                 on_record=lambda cfg: bar.update(1), warn=False)
            computed += written
            skipped += missing
    _warn_missing_sources(skipped, stacklevel=4)
    return computed, held, []


def _distributed(groups, store, executor, workers, slurm, device, vectorize, fresh, progress,
                 ttl_s, heartbeat_s):
    """Compute ``groups`` with worker processes or Slurm jobs; ``(computed, held runs,
    failures)``. Groups held by live workers of other sweeps are not handed out."""
    from .executors import format_failures, holder_text, run_distributed
    from .experiments import describe_group, group_id

    free, held = [], 0
    for group in groups:
        holder = store.claim_holder(group_id(group))
        if holder is None:
            free.append(group)
            continue
        held += len(group)
        warnings.warn(f"{describe_group(group)} not handed out: {holder_text(holder)} (group "
                      f"{group_id(group)} in {store.root}); run the sweep again when it is done",
                      stacklevel=4)
    if not free:
        return 0, held, []
    # what was stored before (with fresh: nothing counts, every record is rewritten)
    before = {} if fresh else {id(c): store.load(c) is not None for g in free for c in g}
    started = time.time()
    report = run_distributed(free, store, executor=executor, workers=workers, slurm=slurm,
                             device=device, vectorize=vectorize, fresh=fresh, progress=progress,
                             ttl_s=ttl_s, heartbeat_s=heartbeat_s)
    held += sum(len(g) for g in free if group_id(g) in {h["group"] for h in report["held"]})
    computed = 0
    for g in free:
        for c in g:
            if store.load(c) is None:
                continue
            if fresh:
                try:  # rewritten by this sweep (its mtime is the file system's clock)
                    computed += store.paths(c)[0].stat().st_mtime >= started - 5
                except OSError:
                    pass
            elif not before.get(id(c)):
                computed += 1
    for line in format_failures(report):
        print(f"prunelib: {line}", file=sys.stderr)
    return computed, held, report["failed"]


def summary_line(outcome: dict, root, seconds: float) -> str:
    """The line a sweep ends with: ``"15 runs: 3 computed, 12 from the store (results), 1.2 s"``."""
    missing = (f", {outcome['not_computed']} not computed" if outcome["not_computed"] else "")
    if outcome.get("held"):
        missing += f" ({outcome['held']} held by other workers)"
    if outcome.get("failed"):
        missing += f" ({len(outcome['failed'])} group(s) failed)"
    return (f"{outcome['runs']} runs: {outcome['computed']} computed, {outcome['from_store']} "
            f"from the store ({root}){missing}, {seconds:.1f} s")


def results_frame(records) -> pd.DataFrame:
    """One row per record: configuration columns, then every scalar metric.

    A record without the fields a row needs (its configuration's study, profile, model,
    technique, ratio, seed...; its metrics) is skipped and named in a
    :class:`~prunelib.store.CorruptRecordWarning`, so one malformed record cannot take down
    a whole table."""
    rows = []
    for rec in records:
        if rec is None:
            continue
        try:
            row = _row(rec)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
            name = rec.get("key", "?") if isinstance(rec, dict) else "?"
            try:
                name = f"{rec['config']['study']}/{name}"
            except (KeyError, TypeError, IndexError):
                pass
            warnings.warn(f"skipped malformed record {name}: {e.__class__.__name__} {e}",
                          CorruptRecordWarning, stacklevel=2)
            continue
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    first = [c for c in REPORT_COLUMNS if c in df]
    return df[first + [c for c in df.columns if c not in first]]


def _row(rec: dict) -> dict:
    c = rec["config"]
    row = {"study": c["study"], "profile": c["profile"], "model": c["model"],
           "prune": c["prune"], "technique": c["technique"], "ratio": c["ratio"],
           "seed": c["seed"], "dataset": c["dataset"], "key": rec["key"],
           "regime": c.get("regime", "early_stop"), "data_seed": c.get("data_seed", 0),
           "data_id": c.get("data_id", "")}
    for k in ("study", "profile", "model", "prune", "technique", "regime", "dataset", "key"):
        if not isinstance(row[k], str):
            raise TypeError(f"{k} is {type(row[k]).__name__}, not a string")
    for k in ("ratio", "seed", "data_seed"):
        if isinstance(row[k], bool) or not isinstance(row[k], (int, float)):
            raise TypeError(f"{k} is {type(row[k]).__name__}, not a number")
    metrics = rec["metrics"]
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics is {type(metrics).__name__}, not a mapping")
    for k in ("accuracy", "ece"):
        if not isinstance(metrics.get(k), (int, float)):
            raise KeyError(f"metrics has no number {k!r}")
    row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    if row["regime"] == "fixed" and "cap_stopped" in row:
        # a fixed-budget run ends at its budget by design: "stopped at the cap" is no news
        row["cap_stopped"] = float("nan")
    ood = rec.get("ood_metrics", {})
    if not isinstance(ood, dict):
        raise TypeError(f"ood_metrics is {type(ood).__name__}, not a mapping")
    row.update({k: v for k, v in ood.items() if isinstance(v, (int, float))})
    return row


#: the groups of :func:`aggregate_results`: one row per study, profile, training regime,
#: prune kind, technique and ratio
AGGREGATE_BY = ("study", "profile", "regime", "prune", "technique", "ratio")


def aggregate_results(df: pd.DataFrame, metrics=("accuracy", "ece"),
                      by=AGGREGATE_BY) -> pd.DataFrame:
    """Mean and 95% t interval over seeds of each metric per group, one row per group.

    Through :func:`prunelib.analysis.summarise` (the aggregation every chapter uses): for
    each metric the columns ``<metric>``, ``<metric>_lower`` and ``<metric>_upper``, and
    ``n``, the runs of the group. Metrics not in ``df`` are left out; a run without a value
    of a metric (NaN) does not count for that metric. With one seed the interval is NaN.
    """
    from .analysis import summarise

    by = [b for b in by if b in df]
    if df.empty or not by:
        return pd.DataFrame(columns=[*by, "n"])
    out = df.groupby(by, sort=True).size().rename("n").reset_index()
    for m in metrics:
        if m not in df:
            continue
        have = df.dropna(subset=[m])
        if have.empty:
            continue
        s = summarise(have, m, by=tuple(by)).drop(columns="n")
        s = s.rename(columns={"mean": m, "lower": f"{m}_lower", "upper": f"{m}_upper"})
        out = out.merge(s, on=by, how="left")
    return out[[*by, *[c for c in out.columns if c not in by and c != "n"], "n"]]


def sweep_results(sweep: SweepConfig | list[RunConfig], store: ResultsStore | str) -> pd.DataFrame:
    """The table of the runs of ``sweep`` that are in ``store``; read only, nothing is computed.

    Unlike :func:`load_results`, records of other configurations in the same store (another
    profile's seeds, other OOD sets, other data) are left out, so each run appears at most
    once. An unbound ``sweep`` is bound to the data of its records (:func:`bind_data`).
    """
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    if isinstance(sweep, SweepConfig):
        sweep = bind_data(sweep, store)
    runs = sweep.runs() if isinstance(sweep, SweepConfig) else list(sweep)
    with warnings.catch_warnings():
        warnings.simplefilter("always", CorruptRecordWarning)
        return results_frame([store.load(r) for r in runs])


def load_results(store: ResultsStore | str, study: str | None = None,
                 profile: str | None = None) -> pd.DataFrame:
    """The table of every valid record in ``store`` (optionally one study / profile)."""
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    with warnings.catch_warnings():
        warnings.simplefilter("always", CorruptRecordWarning)
        df = results_frame(store.records(study))
    if profile is not None and not df.empty:
        df = df[df["profile"] == profile].reset_index(drop=True)
    return df
