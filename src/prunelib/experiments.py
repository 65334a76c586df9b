"""Run configurations: train, prune, treat, retrain, evaluate, store.

One run (a :class:`~prunelib.config.RunConfig`) goes:

1. build the model with ``seed`` and keep a copy of its initial weights;
2. train it densely (early stopping on the validation split, best weights
   restored) — shared by every run of the same seed, data, model and budget;
3. for each of ``rounds`` rounds: prune (structured removal, expressed on the
   dense model as unit masks, or unstructured magnitude masks) to this round's
   cumulative ratio, apply the treatment to the survivors, retrain with the
   masks held;
4. evaluate on validation and test, fit a temperature on validation logits,
   and store metrics, bins, histories and float16 test logits.

Runs that can share work are executed together: the dense phase once per seed,
and for Make Moons every member of a round trained at once as one batched
ensemble (:mod:`prunelib.ensemble`). Structured removal is trained as the
dense network with the removed units' rows, biases and out-edges masked, which
computes exactly what the physically smaller network computes (tested in
``tests/test_pruning.py``); parameter and FLOP counts are taken from the
physically pruned model.

This module groups runs and drives them (:func:`execute`, :func:`compute_group`); one
network's steps live in :mod:`prunelib.member`, what a run reads in :mod:`prunelib.inputs`.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections import defaultdict

import numpy as np
import torch

from .config import RunConfig
from .inputs import OOD_METRICS, OOD_SCORES, load_data, load_ood_sets, ood_evaluation, train_config
from .member import (
    Member,
    evaluate_member,
    fit,
    mask_reinit,
    prune_member,
    round_summary,
    share_prefixes,
)
from .models import build_model
from .training import predict_logits

__all__ = ["OOD_METRICS", "OOD_SCORES", "compute_group", "describe_group", "evaluate_stored",
           "execute", "execution_groups", "group_id", "load_data", "load_model",
           "pooled_predictions", "run_group", "source_config", "training_seconds"]


def load_model(store, record: dict):
    """The trained network of a stored run, in eval mode.

    Its weights were stored in float16 (pruned weights are exact zeros), so its
    outputs differ from the run's own float32 ones by rounding (about 1e-3).
    """
    cfg = RunConfig.from_dict(record["config"])
    arrays = store.arrays(record)
    model = build_model(cfg.model, **cfg.model_kwargs)
    model.load_state_dict({k.split(":", 1)[1]: torch.from_numpy(v.astype(np.float32))
                           for k, v in arrays.items() if k.startswith("state:")})
    return model.eval()


def pooled_predictions(store, cfgs) -> tuple[np.ndarray, np.ndarray]:
    """Test-set softmax probabilities ``[N, C]`` and labels ``[N]`` of the stored runs
    ``cfgs``, concatenated in that order (e.g. one configuration over several seeds, for a
    pooled reliability diagram). Runs not in the store are left out; ``ValueError`` when
    none is there. Probabilities come from the stored float16 test logits."""
    logits, labels = [], []
    for cfg in cfgs:
        record = store.load(cfg)
        if record is None:
            continue
        arrays = store.arrays(record)
        logits.append(arrays["test_logits"].astype(np.float32))
        labels.append(arrays["test_labels"].astype(np.int64))
    if not logits:
        raise ValueError(f"none of the {len(cfgs)} runs is in the store")
    probs = torch.softmax(torch.from_numpy(np.concatenate(logits)), -1).numpy()
    return probs, np.concatenate(labels)


# ---------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------
def _group_key(cfg: RunConfig):
    """Runs that share data, model and training budget can share their dense phase.

    MLP runs of all seeds form one group (one batched ensemble per round); other
    models are grouped per seed, so that a long sweep finishes whole seeds one
    after another and an interrupted one loses at most one seed's work in progress.
    """
    d = cfg.to_dict()
    for k in ("technique", "ratio", "prune", "score", "rounds", "output_ratio", "layers", "scope",
              "features_ratio"):
        d.pop(k, None)
    if cfg.model == "mlp":
        d.pop("seed")
    return repr(sorted(d.items()))


def source_config(cfg: RunConfig) -> RunConfig | None:
    """For a run of the ``ood`` study, the ``cifar10`` run whose trained network it evaluates."""
    if cfg.study != "ood":
        return None
    return dataclasses.replace(cfg, study="cifar10", ood_sets=(), ood_data_id="")


def evaluate_stored(cfg: RunConfig, store, source: dict, device: str = "cpu") -> tuple[dict, dict]:
    """An ``ood`` run from the stored ``cifar10`` run ``source``, without retraining.

    The network is rebuilt from the source's stored (float16) weights; in- and
    out-of-distribution logits both come from that network, and the temperature is
    the one the source fitted on the validation split. The source's own metrics,
    bins and histories are carried over, with its key; its arrays (test logits,
    weights) stay with it.
    """
    splits = load_data(cfg)
    model = load_model(store, source)
    lt = predict_logits(model, splits.test.x, device=device)
    ood_metrics, ood_arrays, ood_info = ood_evaluation(
        model, lt, float(source["metrics"]["temperature"]), load_ood_sets(cfg, splits), device)
    record = {k: source[k] for k in ("metrics", "reliability", "confidence_hist", "history",
                                     "rounds", "data") if k in source}
    record.update(ood_metrics=ood_metrics, ood_data=ood_info,
                  source={"study": source["config"]["study"], "key": source["key"],
                          "how": "re-evaluated from the stored float16 weights; not retrained"})
    # the test logits and weights stay with the source record; here only what is new
    return record, ood_arrays


def execution_groups(cfgs: list[RunConfig], *, from_store: bool = True) -> list[list[RunConfig]]:
    """The units of work of ``cfgs``, in the order :func:`execute` computes them.

    A group is the runs that are computed together and share work: a seed's runs of one
    regime, data, model and budget share the dense phase (MLPs of every seed on the same
    data form one group: one batched ensemble), and
    lottery-schedule runs that are prefixes of a longer one share its rounds; same-mask
    controls ride on their ticket's run. Splitting a group would compute that shared work
    twice, so it is also the unit a distributed sweep gives one worker
    (:mod:`prunelib.executors`). With ``from_store`` (a store is given), runs of the ``ood``
    study, which evaluate stored ``cifar10`` networks without training, come first, in groups
    of their own. :func:`group_id` names a group.
    """
    stored, groups = defaultdict(list), defaultdict(list)
    for c in cfgs:
        if from_store and source_config(c) is not None:
            stored[_group_key(c)].append(c)
        else:
            groups[_group_key(c)].append(c)
    # whole seeds one after another, every regime of a seed together (a stopped sweep has
    # finished seeds of every grid rather than all seeds of one)
    return [*stored.values(), *sorted(groups.values(), key=lambda g: min(c.seed for c in g))]


def group_id(group: list[RunConfig] | RunConfig) -> str:
    """A short name of the execution group of a run (or of a group's first run), the same
    for any subset of the group's runs: 16 hex digits of SHA-256 of its shared settings."""
    import hashlib

    cfg = group if isinstance(group, RunConfig) else group[0]
    return hashlib.sha256(_group_key(cfg).encode()).hexdigest()[:16]


def describe_group(group: list[RunConfig]) -> str:
    """One line naming a group: ``"cifar10 paper seed 0 early_stop (23 runs)"``."""
    c = group[0]
    seeds = sorted({g.seed for g in group})
    seed = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    return f"{c.study} {c.profile} {seed} {c.regime} ({len(group)} runs)"


def run_group(group: list[RunConfig], device: str = "cpu", vectorize: bool = True, store=None):
    """Compute one execution group (:func:`execution_groups`); yields ``(cfg, record,
    arrays)`` as each run finishes, as :func:`execute` does. Returns (as a generator's
    value) the number of ``ood`` runs skipped because their ``cifar10`` network is not in
    ``store``."""
    if store is not None and source_config(group[0]) is not None:
        missing = 0
        for c in group:
            source = store.load(source_config(c))
            if source is not None:
                yield (c, *evaluate_stored(c, store, source, device))
            else:
                missing += 1
        return missing
    yield from _execute_group(group, device, vectorize)
    return 0


def _warn_missing_sources(missing: int, stacklevel: int = 3) -> None:
    if missing:
        warnings.warn(f"{missing} ood run(s) skipped: their cifar10 networks are not in the store "
                      "yet (run `prunelib sweep cifar10` with the same profile first)",
                      stacklevel=stacklevel)


def execute(cfgs: list[RunConfig], device: str = "cpu", vectorize: bool = True, store=None):
    """Compute ``cfgs``; yields ``(cfg, record, arrays)`` as each run finishes.

    ``vectorize=False`` trains MLPs one at a time (for benchmarks). With a
    ``store``, runs of the ``ood`` study never train: each evaluates its stored
    ``cifar10`` network, and is skipped (with a warning) while that is missing.
    The runs are computed group by group (:func:`execution_groups`, :func:`run_group`).
    """
    missing = 0
    for group in execution_groups(cfgs, from_store=store is not None):
        missing += yield from run_group(group, device, vectorize, store)
    _warn_missing_sources(missing)


def compute_group(group: list[RunConfig], store, device: str = "cpu", vectorize: bool = True,
                  machine: str | None = None, on_record=None, warn: bool = True) -> tuple[int, int]:
    """Compute the runs ``group`` of one execution group into ``store``: each record written
    as it finishes, with ``device`` and ``machine`` as :func:`prunelib.sweep.run_sweep` writes
    them. Returns ``(written, skipped)``: ``skipped`` counts ``ood`` runs whose ``cifar10``
    network is not in the store (with a warning unless ``warn`` is False). ``on_record(cfg)``
    is called after each record. The caller chooses the runs (normally those missing from
    the store) and holds the group's claim while it runs (:meth:`prunelib.store.
    ResultsStore.claim`, :func:`group_id`)."""
    if not group:
        return 0, 0
    if machine is None:
        from .sweep import machine_description

        machine = machine_description()
    written = 0
    gen = run_group(group, device, vectorize, store)
    while True:
        try:
            cfg, record, arrays = next(gen)
        except StopIteration as stop:
            skipped = stop.value or 0
            if warn:
                _warn_missing_sources(skipped)
            return written, skipped
        record["device"] = device
        record["machine"] = machine
        store.save(cfg, record, arrays)
        written += 1
        if on_record is not None:
            on_record(cfg)


def _execute_group(cfgs: list[RunConfig], device: str, vectorize: bool):
    splits = load_data(cfgs[0])
    rewinds = {c.rewind_iteration for c in cfgs if c.rewind_iteration is not None}
    if len(rewinds) > 1:
        raise ValueError(f"one batch can rewind to one iteration only, got {sorted(rewinds)}")
    rewind_k = rewinds.pop() if rewinds else None

    # dense phase: once per seed
    seeds = sorted({c.seed for c in cfgs})
    dense = []
    for s in seeds:
        torch.manual_seed(s)
        model = build_model(cfgs[0].model, **cfgs[0].model_kwargs)
        dense.append(Member(cfg=next(c for c in cfgs if c.seed == s),
                            init=copy.deepcopy(model.state_dict()),
                            state=copy.deepcopy(model.state_dict())))
    fit(dense, [train_config(d.cfg, d.cfg.seed, rewind_k) for d in dense], splits, device, vectorize)
    by_seed = {d.cfg.seed: d for d in dense}
    for d in dense:
        d.rounds.append(round_summary(d, 0, splits, device))

    members, dense_eval = [], {}
    for c in cfgs:
        d = by_seed[c.seed]
        m = Member(cfg=c, init=d.init, rewind=d.rewind, state=copy.deepcopy(d.state),
                   history=list(d.history), early_stop=list(d.early_stop),
                   stopped_by=list(d.stopped_by), rounds=list(d.rounds), seconds=d.seconds)
        if c.ratio == 0.0:  # the dense network: the same record for every technique of a seed
            if c.seed not in dense_eval:
                dense_eval[c.seed] = evaluate_member(m, splits, device)
            yield (c, *copy.deepcopy(dense_eval[c.seed]))
        else:
            members.append(m)

    # same-mask controls ride on the reset run whose masks they take; that run is computed
    # even when it is not asked for (then it is not yielded)
    controls = [m for m in members if m.cfg.treatment == "maskreinit"]
    members = [m for m in members if m.cfg.treatment != "maskreinit"]
    wanted = {repr(m.cfg.to_dict()) for m in members}
    hidden: set[int] = set()
    for c in controls:
        ticket = dataclasses.replace(c.cfg, technique=f"{c.cfg.schedule}_reset")
        if repr(ticket.to_dict()) not in wanted:
            wanted.add(repr(ticket.to_dict()))
            d = by_seed[c.cfg.seed]
            members.append(Member(cfg=ticket, init=d.init, rewind=d.rewind,
                                  state=copy.deepcopy(d.state), history=list(d.history),
                                  early_stop=list(d.early_stop), stopped_by=list(d.stopped_by),
                                  rounds=list(d.rounds), seconds=d.seconds))
            hidden.add(id(ticket))

    leaders, followers = share_prefixes(members)
    where = {repr(m.cfg.to_dict()): (m, m.cfg.rounds) for m in leaders}
    for lead in leaders:
        for r, cfgs_r in followers.get(id(lead), {}).items():
            where.update({repr(c.to_dict()): (lead, r) for c in cfgs_r})
    spawn: dict = defaultdict(lambda: defaultdict(list))  # id(leader) -> round -> controls
    for c in controls:
        lead, r = where[repr(dataclasses.replace(c.cfg, technique=f"{c.cfg.schedule}_reset")
                             .to_dict())]
        spawn[id(lead)][r].append(c.cfg)

    max_rounds = max((m.cfg.rounds for m in leaders), default=0)
    for r in range(1, max_rounds + 1):
        active = [m for m in leaders if m.cfg.rounds >= r]
        for m in active:
            prune_member(m, r, splits)
        spawned = [mask_reinit(m, c, r) for m in active for c in spawn[id(m)][r]]
        fit(active + spawned, [train_config(m.cfg, m.cfg.seed * 1000 + r)
                                for m in active + spawned], splits, device, vectorize)
        for m in active:
            m.rounds.append(round_summary(m, r, splits, device))
            for cfg in followers.get(id(m), {}).get(r, []):
                if id(cfg) not in hidden:
                    yield (cfg, *evaluate_member(dataclasses.replace(m, cfg=cfg), splits, device))
            if m.cfg.rounds == r and id(m.cfg) not in hidden:
                yield (m.cfg, *evaluate_member(m, splits, device))
        for m in spawned:
            m.rounds.append(round_summary(m, r, splits, device))
            yield (m.cfg, *evaluate_member(m, splits, device))


def training_seconds(records) -> float:
    """Training time needed to compute ``records`` in one sweep, shared work counted once.

    A record's ``metrics["seconds"]`` is the training time of its network from scratch: its
    seed's dense phase plus its own pruning rounds (members of a batched ensemble get an
    equal share of the ensemble's time). Within an execution group, the runs of a seed share
    the dense phase and lottery-schedule runs that are prefixes of a longer run share its
    rounds (:func:`execute`), so summing ``seconds`` over records counts those many times.
    This counts each once: per group and seed, the dense phase (from its ratio-0 record),
    plus each remaining run's time beyond it, except for runs that are a prefix of another
    stored run. A seed without a stored ratio-0 record has its dense phase counted in each
    of its runs. A same-mask control (``maskreinit``) counts its own training only. OOD
    re-evaluations (no training) count 0.
    """
    dense: dict[tuple, float] = {}
    pruned: dict[tuple, list[tuple[RunConfig, float]]] = defaultdict(list)
    total_controls: list[float] = []
    for rec in records:
        if rec is None or rec["config"].get("study") == "ood":
            continue
        cfg = RunConfig.from_dict(rec["config"])
        key = (_group_key(cfg), cfg.seed)
        if cfg.treatment == "maskreinit":  # its own training only; its mask's run is counted
            total_controls.append(float(rec["metrics"]["seconds"]))
        elif cfg.ratio == 0.0:
            dense[key] = float(rec["metrics"]["seconds"])
        else:
            pruned[key].append((cfg, float(rec["metrics"]["seconds"])))
    total = sum(dense.values()) + sum(total_controls)
    for key, runs in pruned.items():
        seconds = {id(c): t for c, t in runs}
        leaders, _ = share_prefixes([Member(cfg=c, init={}) for c, _ in runs])
        base = dense.get(key, 0.0)
        total += sum(max(seconds[id(m.cfg)] - base, 0.0) for m in leaders)
    return total
