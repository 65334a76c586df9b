"""The studies' sweeps, in one place: ``smoke`` (seconds, for CI and tests), ``paper`` and
``large`` (Frankle & Carbin's Conv-2 on CIFAR-10: for a GPU or a cluster).

``sweep_for(study, profile, seeds=None)`` returns the :class:`SweepConfig` that
the book's figures come from. Change a number here and every affected run gets
a new hash, so the results store recomputes exactly those runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .config import OOD_SETS, PROFILES, STUDIES, SweepConfig, TrainSpec, lottery_ratios

MOONS_RATIOS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MOONS_TECHNIQUES = (
    "oneshot_finetune",
    "oneshot_reset",
    "oneshot_reinit",
    "oneshot_randommask",
    "iterative_reset",
    "iterative_reinit",
    "iterative_maskreinit",
    "iterative_rewind20",
)
#: seeds of the Make Moons paper grid (each seed its own sample of the moons and its own split)
MOONS_SEEDS = 20


def _moons(profile: str) -> SweepConfig:
    if profile == "smoke":
        base = dict(
            study="moons", profile="smoke", dataset="moons", model="mlp",
            model_kwargs={"in_features": 2, "hidden": [16, 16], "n_classes": 2},
            data_kwargs={"n_train": 200, "n_val": 100, "n_test": 200, "noise": 0.25},
            train=TrainSpec(optimizer="adam", lr=0.02, max_iters=60, eval_every=10, patience=3),
        )
        return SweepConfig(base=base, techniques=("oneshot_finetune", "oneshot_reset", "oneshot_reinit",
                                                  "iterative_reset", "iterative_reinit",
                                                  "iterative_maskreinit"),
                           ratios=(0.0, 0.5, 0.8), seeds=(0, 1), prune_kinds=("structured", "unstructured"),
                           rounds=2, vary_split=True)
    base = dict(
        study="moons", profile="paper", dataset="moons", model="mlp",
        model_kwargs={"in_features": 2, "hidden": [32, 32], "n_classes": 2},
        data_kwargs={"n_train": 500, "n_val": 500, "n_test": 2000, "noise": 0.25},
        # the cap is twice what any run of the earlier 2,000-iteration grid needed but one
        train=TrainSpec(optimizer="adam", lr=0.01, max_iters=4000, eval_every=20, patience=15),
    )
    return SweepConfig(base=base, techniques=MOONS_TECHNIQUES, ratios=MOONS_RATIOS,
                       seeds=tuple(range(MOONS_SEEDS)), prune_kinds=("structured", "unstructured"),
                       rounds=4, vary_split=True)


#: the lottery-ticket schedule on CIFAR-10: 20% of the remaining head removed per round
CIFAR_RATE = 0.2
CIFAR_ROUNDS = 11  # 1 - 0.8**11 = 0.914 of the head removed
#: seeds of the CIFAR-10 paper grid (early-stopping regime) and of its fixed-budget twin
CIFAR_SEEDS = 10
CIFAR_FIXED_SEEDS = 5
#: 45,000 training images in batches of 128: iterations per epoch
CIFAR_ITERS_PER_EPOCH = 352
#: the fixed regime's budget: 30 epochs, where the dense network is clearly over-confident
#: (chapter 4 checks it); the early-stop regime's dense network stops after about 15-20
CIFAR_FIXED_EPOCHS = 30
#: rounds of the fixed regime's schedules (to 0.79 removed) and its controls' rounds
CIFAR_FIXED_ROUNDS = 7
CIFAR_FIXED_CONTROL_ROUNDS = (2, 4, 7)
#: the OOD sets of the ``ood`` study's profiles: the offline trio that the committed results use
#: (CIFAR-100 has no offline copy); ``sweep_for(..., ood_sets=...)`` picks others
OOD_DEFAULT = ("tinyimagenet", "mnist", "gaussian")
#: the techniques of the CIFAR-10 grids: the iterative schedule with reset (the poster's
#: algorithm for structured removal, the lottery ticket for masks) and its matched control
#: (the same mask or shape with a fresh initialisation: the small dense network when structured)
CIFAR_TECHNIQUES = ("iterative_reset", "iterative_maskreinit")


def _cifar10(profile: str, study: str = "cifar10") -> SweepConfig:
    ood = OOD_DEFAULT if study == "ood" else ()
    kinds = ("structured", "unstructured")
    if profile == "smoke":
        base = dict(
            study=study, profile="smoke", dataset="cifar10", model="poster_cnn", layers="head",
            data_kwargs={"limit_train": 512, "limit_val": 256, "limit_test": 256},
            train=TrainSpec(optimizer="adam", lr=2e-3, batch_size=64, max_iters=24, eval_every=4,
                            patience=3),
            ood_sets=ood,
        )
        ratios = lottery_ratios(0.5, 2)
        fixed = SweepConfig(
            base={**base, "regime": "fixed",
                  "train": dataclasses.replace(base["train"], max_iters=16, patience=None)},
            techniques=CIFAR_TECHNIQUES, ratios=(0.0, *ratios), seeds=(0,), prune_kinds=kinds,
            rate_per_round=0.5, vary_split=True,
            ratios_by_technique={"iterative_maskreinit": ratios})
        return SweepConfig(base=base, techniques=CIFAR_TECHNIQUES, ratios=(0.0, *ratios),
                           seeds=(0,), prune_kinds=kinds, rate_per_round=0.5, vary_split=True,
                           ratios_by_technique={"iterative_maskreinit": ratios}, extra=(fixed,))
    base = dict(
        study=study, profile="paper", dataset="cifar10", model="poster_cnn", layers="head",
        # Frankle & Carbin's 20,000-iteration cap; patience 10 evaluations = 2,000 iterations
        train=TrainSpec(optimizer="adam", lr=1e-3, batch_size=128, max_iters=20_000,
                        eval_every=200, patience=10),
        ood_sets=ood,
    )
    ratios = lottery_ratios(CIFAR_RATE, CIFAR_ROUNDS)
    fixed_ratios = ratios[:CIFAR_FIXED_ROUNDS]
    fixed = SweepConfig(
        base={**base, "regime": "fixed",
              "train": TrainSpec(optimizer="adam", lr=1e-3, batch_size=128,
                                 max_iters=CIFAR_FIXED_EPOCHS * CIFAR_ITERS_PER_EPOCH,
                                 eval_every=CIFAR_ITERS_PER_EPOCH, patience=None)},
        techniques=CIFAR_TECHNIQUES, ratios=(0.0, *fixed_ratios),
        seeds=tuple(range(CIFAR_FIXED_SEEDS)), prune_kinds=kinds, rate_per_round=CIFAR_RATE,
        vary_split=True,
        ratios_by_technique={"iterative_maskreinit": tuple(ratios[k - 1]
                                                           for k in CIFAR_FIXED_CONTROL_ROUNDS)})
    return SweepConfig(
        base=base, techniques=CIFAR_TECHNIQUES, ratios=(0.0, *ratios),
        seeds=tuple(range(CIFAR_SEEDS)), prune_kinds=kinds, rate_per_round=CIFAR_RATE,
        vary_split=True, ratios_by_technique={"iterative_maskreinit": ratios}, extra=(fixed,),
    )


#: the ``large`` profile: Frankle & Carbin's Conv-2 lottery-ticket protocol on CIFAR-10
#: (Adam 2e-4, batch 60, 20K iterations; per round 20% of the fully connected layers' weights,
#: 10% of the convolutions' and 10% of the output layer's)
LARGE_RATE = 0.2
LARGE_ROLE_RATES = {"features": 0.1, "output": 0.1}
LARGE_ROUNDS = 11  # fc: 1 - 0.8**11 = 91.4% removed; conv and output: 1 - 0.9**11 = 68.6%
LARGE_SEEDS = 5


def _large(study: str) -> SweepConfig:
    """Frankle & Carbin's Conv-2 (:class:`prunelib.models.Conv2`: two 3x3 conv-64, max-pool,
    fc 256-256-10) on CIFAR-10 with their lottery-ticket protocol (Frankle & Carbin 2019,
    figure 2 and appendix): Adam at 2e-4, batches of 60, at most 20,000 iterations, every
    layer pruned by magnitude layer by layer, per round 10% of the convolutions' weights, 20%
    of the fully connected layers' and 10% of the output layer's (``role_rates``: the run's
    ``features_ratio`` and ``output_ratio``), the survivors reset to their initial values
    (``iterative_reset``, the lottery ticket) and the same-mask control (``iterative_maskreinit``:
    the ticket's mask with a fresh initialisation), 11 rounds, 5 seeds.

    Training stops as in the ``paper`` profile: on the validation loss, patience 10 evaluations
    of every 200 iterations, best weights restored, at most 20,000 iterations (Frankle &
    Carbin train 20,000 iterations and report the early-stop iteration of the validation
    loss). Structured removal, the book's other kind, takes the same per-round rates on
    units: 10% of the convolutions' channels and 20% of the fully connected layers' neurons
    (the output layer keeps its units; it loses the input columns of the removed ones). Each
    seed draws its own train/validation split. The ``ood`` study evaluates the stored
    networks on the offline trio, with the uncertainty metrics of every study. A GPU computes
    a seed's execution group in tens of minutes, a CPU core in about a day: see
    ``book/cluster.md``.
    """
    ood = OOD_DEFAULT if study == "ood" else ()
    base = dict(
        study=study, profile="large", dataset="cifar10", model="conv2", layers="all",
        train=TrainSpec(optimizer="adam", lr=2e-4, batch_size=60, max_iters=20_000,
                        eval_every=200, patience=10),
        ood_sets=ood,
    )
    ratios = lottery_ratios(LARGE_RATE, LARGE_ROUNDS)
    return SweepConfig(
        base=base, techniques=CIFAR_TECHNIQUES, ratios=(0.0, *ratios),
        seeds=tuple(range(LARGE_SEEDS)), prune_kinds=("structured", "unstructured"),
        rate_per_round=LARGE_RATE, role_rates=dict(LARGE_ROLE_RATES), vary_split=True,
        ratios_by_technique={"iterative_maskreinit": ratios},
    )


def resolve_ood_sets(ood_sets: str | Sequence[str]) -> tuple[str, ...]:
    """OOD set names from ``"auto"``, a comma-separated string or a sequence of names.

    ``"auto"`` is every set :func:`prunelib.data.available_ood_sets` can serve now, trying the
    CIFAR-100 download (so, online: CIFAR-100 first; offline: the sets under ``$PRUNELIB_DATA``
    and Gaussian noise). Names are checked against :data:`prunelib.data.OOD_SETS`.
    """
    from .data import available_ood_sets

    if isinstance(ood_sets, str):
        if ood_sets.strip().lower() == "auto":
            return tuple(available_ood_sets(try_download=True))
        ood_sets = [s for s in ood_sets.split(",") if s.strip()]
    names = tuple(s.strip().lower() for s in ood_sets)
    if not names:
        raise ValueError("ood_sets is empty; name at least one of " + ", ".join(OOD_SETS))
    for name in names:
        if name not in OOD_SETS:
            raise ValueError(f"unknown OOD set {name!r}; allowed: {', '.join(OOD_SETS)} or 'auto'")
    return names


def sweep_for(study: str, profile: str, seeds: int | None = None,
              ood_sets: str | Sequence[str] | None = None) -> SweepConfig:
    """The sweep of ``study`` in ``profile``; ``seeds`` (a count) overrides the profile's.

    ``ood_sets`` (``ood`` study only) replaces the profile's OOD sets (:data:`OOD_DEFAULT`):
    ``"auto"``, ``"cifar100,mnist"`` or a sequence, see :func:`resolve_ood_sets`. The sets are
    part of every run's configuration, so each choice has its own records in the store.
    """
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}; allowed: {', '.join(STUDIES)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    if profile == "large":
        if study == "moons":
            raise ValueError("the large profile is Conv-2 on CIFAR-10 (studies cifar10 and ood); "
                             "Make Moons has the smoke and paper profiles")
        sweep = _large(study)
    else:
        sweep = _moons(profile) if study == "moons" else _cifar10(profile, study)
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        sweep = _with_seeds(sweep, seeds)
    if ood_sets is not None:
        if study != "ood":
            raise ValueError(f"ood_sets applies to the 'ood' study only, not {study!r}")
        sweep = _with_base(sweep, ood_sets=resolve_ood_sets(ood_sets))
    return sweep


def _with_seeds(sweep: SweepConfig, seeds: int) -> SweepConfig:
    """The grid with ``range(seeds)``; its extra parts (e.g. the fixed regime's grid, which
    has fewer seeds) get at most their own number of seeds."""
    extra = tuple(_with_seeds(p, min(seeds, len(p.seeds))) for p in sweep.extra)
    return dataclasses.replace(sweep, seeds=tuple(range(seeds)), extra=extra)


def _with_base(sweep: SweepConfig, **base) -> SweepConfig:
    return dataclasses.replace(sweep, base={**sweep.base, **base},
                               extra=tuple(_with_base(p, **base) for p in sweep.extra))
