"""Run a sweep against a results store: compute what is missing, return a tidy table."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
import warnings

import pandas as pd
from tqdm import tqdm

from .config import RunConfig, SweepConfig, canonical_json
from .store import CorruptRecordWarning, ResultsStore

#: columns every report has, in this order
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
              vectorize: bool = True) -> pd.DataFrame:
    """Compute the runs of ``sweep`` missing from ``store`` and return every run's row.

    Finished runs are written one by one, atomically, as they complete, so an
    interrupted sweep resumes where it stopped. ``fresh=True`` recomputes all.
    ``vectorize=False`` trains MLPs one at a time instead of as one batched ensemble.
    Every configuration is validated before any training starts.
    """
    from .experiments import execute

    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    if isinstance(sweep, SweepConfig):
        sweep = bind_data(sweep, source="data")
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
               "seed": c["seed"], "dataset": c["dataset"], "key": rec["key"],
               "regime": c.get("regime", "early_stop"), "data_seed": c.get("data_seed", 0),
               "data_id": c.get("data_id", "")}
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
