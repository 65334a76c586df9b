"""What a run reads: its data splits, its OOD sets and its trainer settings.

:func:`load_data` gives the splits of a :class:`~prunelib.config.RunConfig` (the last few
kept in memory: every run of a sweep shares them) and refuses data whose fingerprint is not
the run's ``data_id``; :func:`load_ood_sets` its out-of-distribution sets, normalised with
the in-distribution statistics; :func:`ood_evaluation` scores a network on them;
:func:`train_config` turns the run's training settings and regime into a
:class:`~prunelib.training.TrainConfig`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import data as pdata
from . import metrics as M
from .config import RunConfig
from .training import TrainConfig, predict_logits

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
