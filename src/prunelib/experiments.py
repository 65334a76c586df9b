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
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from . import data as pdata
from . import metrics as M
from . import pruning as P
from .complexity import count_flops, count_parameters
from .config import RunConfig
from .models import build_model
from .training import TrainConfig, predict_logits, train

# ---------------------------------------------------------------------------
# data (cached per process: every run of a sweep shares its splits)
# ---------------------------------------------------------------------------
_DATA_CACHE: dict = {}


#: data splits kept in memory at once (a CIFAR-10 split set is about 0.7 GB of float32)
DATA_CACHE_SIZE = 2


def load_data(cfg: RunConfig):
    """The :class:`prunelib.data` splits a run uses (the last few cached within the process).

    A run whose ``data_id`` is set must get data with that fingerprint: ``ValueError`` (which
    names both fingerprints) otherwise, so a run is never computed from other data than its
    key says.
    """
    # where the data come from is part of the key: the data root, or the download cache
    where = cfg.data_kwargs.get("root") or str(pdata.data_root() or pdata.cache_dir())
    key = (cfg.dataset, tuple(sorted(cfg.data_kwargs.items())), cfg.data_seed, where)
    if key in _DATA_CACHE:
        _DATA_CACHE[key] = _DATA_CACHE.pop(key)  # most recently used last
    else:
        while len(_DATA_CACHE) >= DATA_CACHE_SIZE:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        kwargs = dict(cfg.data_kwargs)
        limits = {k: kwargs.pop(f"limit_{k}", None) for k in ("train", "val", "test")}
        if cfg.dataset == "moons":
            splits = pdata.make_moons_splits(seed=cfg.data_seed, **kwargs)
        else:
            splits = pdata.load_cifar10(seed=cfg.data_seed, **kwargs)
        for name, n in limits.items():
            if n is not None:  # a seeded random subset (a file's test split is sorted by class)
                x, y = getattr(splits, name)
                g = torch.Generator().manual_seed(cfg.data_seed)
                idx = torch.randperm(len(y), generator=g)[:n].sort().values
                info = splits.info
                info = dataclasses.replace(
                    info, n={**info.n, name: len(idx)},
                    notes=f"{info.notes}; {name}: a seeded random subset of {len(idx)} of {len(y)}")
                splits = dataclasses.replace(splits, info=info,
                                             **{name: pdata.Split(x[idx], y[idx])})
        _DATA_CACHE[key] = splits
    splits = _DATA_CACHE[key]
    if cfg.data_id and splits.info.fingerprint != cfg.data_id:
        raise ValueError(f"the run's data_id is {cfg.data_id!r} but the data found have the "
                         f"fingerprint {splits.info.fingerprint!r} ({splits.info.source}); point "
                         f"{pdata.DATA_ENV} at the data the run was made from, or compute runs for "
                         "these data (prunelib.sweep.bind_data)")
    return splits


_OOD_CACHE: dict = {}

#: OOD scores, each oriented so that higher = more in-distribution
OOD_SCORES = {"msp": M.msp, "neg_entropy": M.neg_entropy, "neg_energy": M.neg_energy,
              "max_logit": M.max_logit}
#: OOD metrics with in-distribution as the positive class
OOD_METRICS = {"auroc": M.auroc, "aupr_in": M.aupr_in, "aupr_out": M.aupr_out,
               "fpr95": M.fpr_at_95_tpr}


def load_ood_sets(cfg: RunConfig, splits) -> dict:
    """The run's OOD sets (cached), normalised with its in-distribution statistics, each
    subsampled (seeded) to at most the size of the in-distribution test split."""
    out = {}
    n_test = len(splits.test.y)
    root = cfg.data_kwargs.get("root")
    for name in cfg.ood_sets:
        key = (name, root or str(pdata.data_root() or pdata.cache_dir()), n_test,
               splits.info.mean, splits.info.std)
        if key not in _OOD_CACHE:
            full = pdata.load_ood(name, root=root, normalize_with=splits.info, seed=cfg.data_seed)
            if len(full) > n_test:
                full = pdata.load_ood(name, root=root, normalize_with=splits.info, n=n_test,
                                      seed=cfg.data_seed)
            _OOD_CACHE[key] = full
        out[name] = _OOD_CACHE[key]
    return out


def ood_evaluation(model, test_logits: torch.Tensor, temperature: float, sets: dict,
                   device: str = "cpu") -> tuple[dict, dict, dict]:
    """OOD metrics (every score x metric x set, before and after temperature scaling),
    each set's float16 maximum softmax probabilities, and each set's provenance.

    Metric names are ``<metric>_<score>[_ts]_<set>``, e.g. ``auroc_msp_mnist``; the first
    set also gets the short names (``auroc_msp``) that reports show.
    """
    metrics, arrays, info = {}, {}, {}
    for i, (name, ood) in enumerate(sets.items()):
        lo = predict_logits(model, ood.x, device=device)
        info[name] = ood.info.describe()
        metrics[f"ood_mean_confidence_{name}"] = float(torch.softmax(lo, -1).max(1).values.mean())
        for tag, (li, lx) in {"": (test_logits, lo),
                              "_ts": (test_logits / temperature, lo / temperature)}.items():
            for score_name, score in OOD_SCORES.items():
                si, so = score(li), score(lx)
                if tag == "" and score_name == "msp":  # the others follow from the weights
                    arrays[f"ood:{name}:msp"] = np.asarray(so, dtype=np.float16)
                for metric_name, metric in OOD_METRICS.items():
                    value = float(metric(id_scores=si, ood_scores=so))
                    metrics[f"{metric_name}_{score_name}{tag}_{name}"] = value
                    if i == 0:
                        metrics[f"{metric_name}_{score_name}{tag}"] = value
    return metrics, arrays, info


def train_config(cfg: RunConfig, seed: int, rewind_iteration: int | None = None) -> TrainConfig:
    """The trainer's settings for one training phase of ``cfg``.

    Regime ``early_stop``: stop when the validation loss has not improved for
    ``train.patience`` evaluations (or at ``train.max_iters``), best weights restored.
    Regime ``fixed``: exactly ``train.max_iters`` iterations, last weights kept.
    """
    t = cfg.train
    fixed = cfg.regime == "fixed"
    return TrainConfig(
        optimizer=t.optimizer, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
        batch_size=t.batch_size, max_iters=t.max_iters, eval_every=t.eval_every,
        patience=None if fixed else t.patience, seed=seed, rewind_iteration=rewind_iteration,
        restore_best=not fixed,
    )


def _input_shape(cfg: RunConfig, splits) -> tuple[int, ...]:
    return tuple(splits.train[0].shape[1:])


# ---------------------------------------------------------------------------
# one member = one run being computed
# ---------------------------------------------------------------------------
@dataclass
class Member:
    cfg: RunConfig
    init: dict                      # initial state dict of the dense model
    rewind: dict | None = None      # state after K iterations (rewind treatments)
    state: dict | None = None       # current trained state
    masks: dict = field(default_factory=dict)
    kept: dict | None = None        # structured: kept unit indices per layer (dense numbering)
    history: list = field(default_factory=list)   # one entry per training phase
    early_stop: list = field(default_factory=list)
    stopped_by: list = field(default_factory=list)  # "patience" or "cap", per training phase
    rounds: list = field(default_factory=list)    # per-round test accuracy / ECE / early stop
    seconds: float = 0.0


def _fit(members: list[Member], cfgs_train: list[TrainConfig], splits, device: str,
         vectorize: bool = True) -> None:
    """Train every member from its current ``state`` with its masks held.

    MLPs are trained together as one batched ensemble (unless ``vectorize`` is
    False); other models one at a time.
    """
    models = []
    for m in members:
        model = build_model(m.cfg.model, **m.cfg.model_kwargs)
        model.load_state_dict(m.state)
        models.append(model)
    t0 = time.perf_counter()
    if vectorize and members and members[0].cfg.model == "mlp":
        from .ensemble import train_ensemble

        results = train_ensemble(models, [m.masks for m in members], splits.train, splits.val,
                                 cfgs_train[0], seeds=[c.seed for c in cfgs_train], device=device)
    else:
        results = [train(model, splits.train, splits.val, tc, masks=m.masks or None, device=device)
                   for model, m, tc in zip(models, members, cfgs_train)]
    per = (time.perf_counter() - t0) / max(len(members), 1)
    for m, model, res in zip(members, models, results):
        m.state = copy.deepcopy(model.state_dict())
        m.history.append(res.history)
        m.early_stop.append(res.best_iteration)
        m.stopped_by.append(res.stopped_by)
        m.seconds += per
        if res.rewind_state is not None:
            m.rewind = res.rewind_state


def _round_ratio(target: float, rounds: int, r: int) -> float:
    """Cumulative fraction removed after round ``r`` of ``rounds`` (constant per-round rate)."""
    if r >= rounds:
        return target
    return 1.0 - (1.0 - target) ** (r / rounds)


def _prune_member(m: Member, r: int, splits) -> None:
    """Round ``r`` of member ``m``: new masks from its current trained state, then treat it."""
    cfg = m.cfg
    ratio = _round_ratio(cfg.ratio, cfg.rounds, r)
    model = build_model(cfg.model, **cfg.model_kwargs)
    model.load_state_dict(m.state)
    random_scores = cfg.treatment == "randommask" or cfg.score == "random"
    seed = cfg.seed * 1000 + r
    # convolutions at their own cumulative ratio when the run gives one (features_ratio)
    feat = None if cfg.features_ratio is None else _round_ratio(cfg.features_ratio, cfg.rounds, r)
    if cfg.prune == "structured":
        score = "random" if random_scores else cfg.score
        m.kept = P.prune_structured_to(model, ratio, kept=m.kept, score=score,
                                       layers=cfg.layers, seed=seed, features_ratio=feat)
        m.masks = P.unit_masks(model, m.kept)
    else:
        # cumulative: after this round `ratio` of each layer's weights are masked (the
        # output layer at cfg.output_ratio, default half the ratio), so the last round
        # lands exactly on the one-shot count
        out_ratio = None if cfg.output_ratio is None else _round_ratio(cfg.output_ratio, cfg.rounds, r)
        fn = P.random_masks if random_scores else P.magnitude_masks
        kwargs = {"seed": seed} if random_scores else {}
        if feat is not None:
            kwargs["features_ratio"] = feat
        m.masks = fn(model, ratio, scope=cfg.scope, output_ratio=out_ratio, layers=cfg.layers,
                     masks=m.masks or None, cumulative=True, **kwargs)
    treatment = "reset" if cfg.treatment == "randommask" else cfg.treatment
    m.state = P.treat(
        treatment, trained=m.state, init=m.init, rewind=m.rewind, masks=m.masks,
        model_fn=lambda: build_model(cfg.model, **cfg.model_kwargs), seed=seed + 7919,
        kept=m.kept if cfg.prune == "structured" else None,
    )


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def _trained_model(m: Member):
    model = build_model(m.cfg.model, **m.cfg.model_kwargs)
    model.load_state_dict(m.state)
    return P.apply_masks(model, m.masks)


def _round_summary(m: Member, r: int, splits, device: str) -> dict:
    """Test accuracy, ECE and early-stop iteration after round ``r`` (0 = dense)."""
    (xt, yt) = splits.test
    pt = torch.softmax(predict_logits(_trained_model(m), xt, device=device), -1)
    return {"round": r, "ratio": _round_ratio(m.cfg.ratio, m.cfg.rounds, r) if r else 0.0,
            "early_stop_iteration": int(m.early_stop[-1]), "test_accuracy": M.accuracy(pt, yt),
            "test_ece": M.ece(pt, yt)}


def evaluate_member(m: Member, splits, device: str = "cpu") -> tuple[dict, dict]:
    """Metrics record and arrays for a finished member."""
    cfg = m.cfg
    model = _trained_model(m)
    (xv, yv), (xt, yt) = splits.val, splits.test
    lv = predict_logits(model, xv, device=device)
    lt = predict_logits(model, xt, device=device)
    T = M.fit_temperature(lv, yv)
    lt_ts = M.apply_temperature(lt, T)
    pt, pt_ts = torch.softmax(lt, -1), torch.softmax(lt_ts, -1)
    n_classes = pt.shape[1]
    metrics = {
        "accuracy": M.accuracy(pt, yt),
        "ece": M.ece(pt, yt),
        "ece_adaptive": M.ece(pt, yt, scheme="equal_mass"),
        "mce": M.mce(pt, yt),
        "classwise_ece": M.classwise_ece(pt, yt),
        "brier": M.brier(pt, yt),
        "nll": M.nll(pt, yt),
        "temperature": float(T),
        "ece_ts": M.ece(pt_ts, yt),
        "brier_ts": M.brier(pt_ts, yt),
        "nll_ts": M.nll(pt_ts, yt),
        "val_accuracy": M.accuracy(torch.softmax(lv, -1), yv),
        "mean_confidence": float(pt.max(1).values.mean()),
        "early_stop_iteration": int(m.early_stop[-1]),
        "train_iterations": int(m.history[-1][-1]["iteration"]),
        "train_iterations_total": int(sum(h[-1]["iteration"] for h in m.history)),
        # the run's own (last) training phase ended at train.max_iters, not by patience; in
        # the early_stop regime such a run was still improving when the budget ran out
        "cap_stopped": int(m.stopped_by[-1] == "cap"),
        "cap_stopped_phases": int(sum(s == "cap" for s in m.stopped_by)),
        "seconds": m.seconds,
    }
    if n_classes == 2:
        metrics["ece_positive_class"] = M.binary_positive_class_ece(pt, yt)
    shape = (1, *_input_shape(cfg, splits))
    if cfg.prune == "structured" and m.kept:
        physical = P.shrink(model, m.kept)
        metrics["parameters"] = int(count_parameters(physical)["total"])
        metrics["flops"] = int(count_flops(physical, shape))
    else:
        metrics["parameters"] = int(count_parameters(model, masks=m.masks)["unmasked"])
        metrics["flops"] = int(count_flops(model, shape, masks=m.masks))
    dense = build_model(cfg.model, **cfg.model_kwargs)
    metrics["parameters_dense"] = int(count_parameters(dense)["total"])
    rb = M.reliability_bins(pt, yt, n_bins=15)
    bins = {"edges": rb.edges, "counts": rb.counts, "mean_confidence": rb.mean_confidence,
            "accuracy": rb.accuracy}
    conf = pt.max(1).values.numpy()
    hist, edges = np.histogram(conf, bins=20, range=(0.0, 1.0))
    record = {
        "metrics": metrics,
        "reliability": {k: [None if np.isnan(x) else float(x) for x in np.asarray(v, float)]
                        for k, v in bins.items()},
        "confidence_hist": {"counts": hist.tolist(), "edges": edges.tolist()},
        "history": m.history,
        "stopped_by": m.stopped_by,
        "rounds": m.rounds,
        "data": splits.info.describe(),
    }
    arrays = {"test_logits": lt.numpy().astype(np.float16), "test_labels": yt.numpy().astype(np.int16)}
    if cfg.ood_sets:
        ood_metrics, ood_arrays, ood_info = ood_evaluation(model, lt, float(T),
                                                           load_ood_sets(cfg, splits), device)
        record["ood_metrics"] = ood_metrics
        record["ood_data"] = ood_info
        arrays.update(ood_arrays)
    # the final (masked) weights in float16, so figures and new metrics (e.g. OOD scores) need
    # no retraining; pruned weights stay exact zeros
    arrays.update({f"state:{k}": v.detach().cpu().numpy().astype(np.float16)
                   for k, v in model.state_dict().items()})
    return record, arrays


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
    _fit(dense, [train_config(d.cfg, d.cfg.seed, rewind_k) for d in dense], splits, device, vectorize)
    by_seed = {d.cfg.seed: d for d in dense}
    for d in dense:
        d.rounds.append(_round_summary(d, 0, splits, device))

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

    leaders, followers = _share_prefixes(members)
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
            _prune_member(m, r, splits)
        spawned = [_mask_reinit(m, c, r) for m in active for c in spawn[id(m)][r]]
        _fit(active + spawned, [train_config(m.cfg, m.cfg.seed * 1000 + r)
                                for m in active + spawned], splits, device, vectorize)
        for m in active:
            m.rounds.append(_round_summary(m, r, splits, device))
            for cfg in followers.get(id(m), {}).get(r, []):
                if id(cfg) not in hidden:
                    yield (cfg, *evaluate_member(dataclasses.replace(m, cfg=cfg), splits, device))
            if m.cfg.rounds == r and id(m.cfg) not in hidden:
                yield (m.cfg, *evaluate_member(m, splits, device))
        for m in spawned:
            m.rounds.append(_round_summary(m, r, splits, device))
            yield (m.cfg, *evaluate_member(m, splits, device))


#: offsets the seed of a same-mask control's fresh initialisation from every other seed use
MASKREINIT_SEED_OFFSET = 104_729


def _mask_reinit(ticket: Member, cfg: RunConfig, r: int) -> Member:
    """Frankle & Carbin's control of ``ticket`` after round ``r``: its masks (structured: its
    kept units, i.e. the small dense network of its shape), a fresh random initialisation,
    trained once from there with the ticket's batch order of that round. Its history, early
    stop and time are its own training's only."""
    model_fn = lambda: build_model(cfg.model, **cfg.model_kwargs)
    state = P.treat("reinit", trained=ticket.state, init=ticket.init, masks=ticket.masks,
                    model_fn=model_fn, seed=cfg.seed * 1000 + r + MASKREINIT_SEED_OFFSET,
                    kept=ticket.kept if cfg.prune == "structured" else None)
    return Member(cfg=cfg, init=ticket.init, state=state, masks=copy.deepcopy(ticket.masks),
                  kept=copy.deepcopy(ticket.kept))


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
        leaders, _ = _share_prefixes([Member(cfg=c, init={}) for c, _ in runs])
        base = dense.get(key, 0.0)
        total += sum(max(seconds[id(m.cfg)] - base, 0.0) for m in leaders)
    return total


def _trajectory(cfg: RunConfig) -> np.ndarray:
    """Cumulative (ratio, output ratio, convolutions' ratio) after each round of a run."""
    out, feat = cfg.output_ratio, cfg.features_ratio
    return np.array([(_round_ratio(cfg.ratio, cfg.rounds, r),
                      -1.0 if out is None else _round_ratio(out, cfg.rounds, r),
                      -1.0 if feat is None else _round_ratio(feat, cfg.rounds, r))
                     for r in range(1, cfg.rounds + 1)])


def _share_prefixes(members: list[Member]) -> tuple[list[Member], dict]:
    """Leaders to compute, and for each leader the runs that are a prefix of it.

    Two runs that differ only in their ratio and number of rounds, and whose
    per-round ratios agree for the shorter one's rounds (the lottery-ticket
    schedule: 20% of what remains per round), compute exactly the same thing up to
    the shorter one's last round (same seeds, same masks, same training), so the
    shorter one is read off the longer one: ``followers[id(leader)][round]``.
    """
    by_sig = defaultdict(list)
    for m in members:
        d = m.cfg.to_dict()
        for k in ("ratio", "rounds", "output_ratio", "features_ratio"):
            d.pop(k, None)
        by_sig[repr(sorted(d.items()))].append(m)
    leaders, followers = [], {}
    for group in by_sig.values():
        heads: list[Member] = []
        for m in sorted(group, key=lambda m: -m.cfg.rounds):
            traj = _trajectory(m.cfg)
            for h in heads:
                ht = _trajectory(h.cfg)
                if np.allclose(ht[: len(traj)], traj, rtol=0, atol=1e-9):
                    followers.setdefault(id(h), {}).setdefault(len(traj), []).append(m.cfg)
                    break
            else:
                heads.append(m)
        leaders += heads
    return leaders, followers
