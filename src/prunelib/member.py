"""One network through its schedule: train, prune, treat, retrain, evaluate.

A :class:`Member` is one run being computed: its initial weights, current state, masks (and,
structured, its kept units), and the history of its training phases. :func:`fit` trains
members (MLPs together as one batched ensemble), :func:`prune_member` takes one round of the
schedule, :func:`mask_reinit` makes the same-mask control of a ticket, and
:func:`evaluate_member` computes a finished member's record and arrays. :func:`share_prefixes`
finds the runs whose schedule is a prefix of another's, so they are read off it rather than
computed twice. :mod:`prunelib.experiments` drives these over groups of runs.
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from . import metrics as M
from . import pruning as P
from .complexity import count_flops, count_parameters
from .config import RunConfig
from .inputs import load_ood_sets, ood_evaluation
from .models import build_model
from .training import TrainConfig, predict_logits, train


def _input_shape(cfg: RunConfig, splits) -> tuple[int, ...]:
    return tuple(splits.train[0].shape[1:])


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


def fit(members: list[Member], cfgs_train: list[TrainConfig], splits, device: str,
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


def round_ratio(target: float, rounds: int, r: int) -> float:
    """Cumulative fraction removed after round ``r`` of ``rounds`` (constant per-round rate)."""
    if r >= rounds:
        return target
    return 1.0 - (1.0 - target) ** (r / rounds)


def prune_member(m: Member, r: int, splits) -> None:
    """Round ``r`` of member ``m``: new masks from its current trained state, then treat it."""
    cfg = m.cfg
    ratio = round_ratio(cfg.ratio, cfg.rounds, r)
    model = build_model(cfg.model, **cfg.model_kwargs)
    model.load_state_dict(m.state)
    random_scores = cfg.treatment == "randommask" or cfg.score == "random"
    seed = cfg.seed * 1000 + r
    # convolutions at their own cumulative ratio when the run gives one (features_ratio)
    feat = None if cfg.features_ratio is None else round_ratio(cfg.features_ratio, cfg.rounds, r)
    if cfg.prune == "structured":
        score = "random" if random_scores else cfg.score
        m.kept = P.prune_structured_to(model, ratio, kept=m.kept, score=score,
                                       layers=cfg.layers, seed=seed, features_ratio=feat)
        m.masks = P.unit_masks(model, m.kept)
    else:
        # cumulative: after this round `ratio` of each layer's weights are masked (the
        # output layer at cfg.output_ratio, default half the ratio), so the last round
        # lands exactly on the one-shot count
        out_ratio = None if cfg.output_ratio is None else round_ratio(cfg.output_ratio, cfg.rounds, r)
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


def round_summary(m: Member, r: int, splits, device: str) -> dict:
    """Test accuracy, ECE and early-stop iteration after round ``r`` (0 = dense)."""
    (xt, yt) = splits.test
    pt = torch.softmax(predict_logits(_trained_model(m), xt, device=device), -1)
    return {"round": r, "ratio": round_ratio(m.cfg.ratio, m.cfg.rounds, r) if r else 0.0,
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


#: offsets the seed of a same-mask control's fresh initialisation from every other seed use
MASKREINIT_SEED_OFFSET = 104_729


def mask_reinit(ticket: Member, cfg: RunConfig, r: int) -> Member:
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


def _trajectory(cfg: RunConfig) -> np.ndarray:
    """Cumulative (ratio, output ratio, convolutions' ratio) after each round of a run."""
    out, feat = cfg.output_ratio, cfg.features_ratio
    return np.array([(round_ratio(cfg.ratio, cfg.rounds, r),
                      -1.0 if out is None else round_ratio(out, cfg.rounds, r),
                      -1.0 if feat is None else round_ratio(feat, cfg.rounds, r))
                     for r in range(1, cfg.rounds + 1)])


def share_prefixes(members: list[Member]) -> tuple[list[Member], dict]:
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
