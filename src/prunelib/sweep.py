"""Run a sweep against a results store: compute what is missing, return a tidy table."""

from __future__ import annotations

import os
import platform
import time
import warnings

import pandas as pd
from tqdm import tqdm

from .config import RunConfig, SweepConfig
from .store import CorruptRecordWarning, ResultsStore

#: columns every report has, in this order
REPORT_COLUMNS = ["study", "profile", "model", "prune", "technique", "ratio", "seed", "accuracy",
                  "ece", "early_stop_iteration"]


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


def run_sweep(sweep: SweepConfig | list[RunConfig], store: ResultsStore | str, *,
              fresh: bool = False, device: str = "cpu", progress: bool = True,
              vectorize: bool = True) -> pd.DataFrame:
    """Compute the runs of ``sweep`` missing from ``store`` and return every run's row.

    Finished runs are written one by one, atomically, as they complete, so an
    interrupted sweep resumes where it stopped. ``fresh=True`` recomputes all.
    ``vectorize=False`` trains MLPs one at a time instead of as one batched ensemble.
    Every configuration is validated before any training starts.
    """
    from .experiments import execute

    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    runs = sweep.runs() if isinstance(sweep, SweepConfig) else list(sweep)
    store.remove_stale_temporaries()
    todo = runs if fresh else [r for r in runs if store.load(r) is None]
    t0 = time.perf_counter()
    machine = machine_description()
    with tqdm(total=len(runs), initial=len(runs) - len(todo), unit="run", disable=not progress,
              desc=runs[0].study if runs else "sweep") as bar:
        for cfg, record, arrays in execute(todo, device=pick_device(device), vectorize=vectorize,
                                              store=store):
            record["device"] = pick_device(device)
            record["machine"] = machine
            store.save(cfg, record, arrays)
            bar.update(1)
    if progress:
        print(f"{len(runs)} runs: {len(todo)} computed, {len(runs) - len(todo)} from the store "
              f"({store.root}), {time.perf_counter() - t0:.1f} s")
    return results_frame([store.load(r) for r in runs])


def results_frame(records) -> pd.DataFrame:
    """One row per record: configuration columns, then every scalar metric."""
    rows = []
    for rec in records:
        if rec is None:
            continue
        c = rec["config"]
        row = {"study": c["study"], "profile": c["profile"], "model": c["model"],
               "prune": c["prune"], "technique": c["technique"], "ratio": c["ratio"],
               "seed": c["seed"], "dataset": c["dataset"], "key": rec["key"]}
        row.update({k: v for k, v in rec["metrics"].items() if isinstance(v, (int, float))})
        row.update(rec.get("ood_metrics", {}))
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    first = [c for c in REPORT_COLUMNS if c in df]
    return df[first + [c for c in df.columns if c not in first]]


def sweep_results(sweep: SweepConfig | list[RunConfig], store: ResultsStore | str) -> pd.DataFrame:
    """The table of the runs of ``sweep`` that are in ``store``; read only, nothing is computed.

    Unlike :func:`load_results`, records of other configurations in the same store (another
    profile's seeds, other OOD sets) are left out, so each run appears at most once.
    """
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
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
