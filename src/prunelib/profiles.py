"""The studies' sweeps, in one place: ``smoke`` (seconds, for CI and tests) and ``paper``.

``sweep_for(study, profile, seeds=None)`` returns the :class:`SweepConfig` that
the book's figures come from. Change a number here and every affected run gets
a new hash, so the results store recomputes exactly those runs.
"""

from __future__ import annotations

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
    "iterative_rewind20",
)


def _moons(profile: str) -> SweepConfig:
    if profile == "smoke":
        base = dict(
            study="moons", profile="smoke", dataset="moons", model="mlp",
            model_kwargs={"in_features": 2, "hidden": [16, 16], "n_classes": 2},
            data_kwargs={"n_train": 200, "n_val": 100, "n_test": 200, "noise": 0.25},
            train=TrainSpec(optimizer="adam", lr=0.02, max_iters=60, eval_every=10, patience=3),
        )
        return SweepConfig(base=base, techniques=("oneshot_finetune", "oneshot_reset", "oneshot_reinit",
                                                  "iterative_reset", "iterative_reinit"),
                           ratios=(0.0, 0.5, 0.8), seeds=(0, 1), prune_kinds=("structured", "unstructured"),
                           rounds=2)
    base = dict(
        study="moons", profile="paper", dataset="moons", model="mlp",
        model_kwargs={"in_features": 2, "hidden": [32, 32], "n_classes": 2},
        data_kwargs={"n_train": 500, "n_val": 500, "n_test": 2000, "noise": 0.25},
        train=TrainSpec(optimizer="adam", lr=0.01, max_iters=2000, eval_every=20, patience=15),
    )
    return SweepConfig(base=base, techniques=MOONS_TECHNIQUES, ratios=MOONS_RATIOS,
                       seeds=tuple(range(10)), prune_kinds=("structured", "unstructured"), rounds=4)


#: the lottery-ticket schedule on CIFAR-10: 20% of the remaining head removed per round
CIFAR_RATE = 0.2
CIFAR_ROUNDS = 11  # 1 - 0.8**11 = 0.914 of the head removed
CIFAR_ONESHOT_ROUNDS = (2, 4, 7, 11)  # one-shot runs at the ratios of these rounds
#: the OOD sets of the ``ood`` study's profiles: the offline trio that the committed results use
#: (CIFAR-100 has no offline copy); ``sweep_for(..., ood_sets=...)`` picks others
OOD_DEFAULT = ("tinyimagenet", "mnist", "gaussian")


def _cifar10(profile: str, study: str = "cifar10") -> SweepConfig:
    ood = OOD_DEFAULT if study == "ood" else ()
    techniques = ("iterative_reset", "iterative_reinit", "oneshot_reset", "oneshot_reinit")
    # structured removal: the poster's one-shot and iterative, with the capacity control
    # (one-shot reinit = a small dense head trained from scratch); unstructured masks: the
    # lottery ticket, its random re-init control, and one-shot reset
    skip = (("structured", "iterative_reinit"), ("unstructured", "oneshot_reinit"))
    if profile == "smoke":
        base = dict(
            study=study, profile="smoke", dataset="cifar10", model="poster_cnn", layers="head",
            data_kwargs={"limit_train": 512, "limit_val": 256, "limit_test": 256},
            train=TrainSpec(optimizer="adam", lr=2e-3, batch_size=64, max_iters=16, eval_every=8,
                            patience=2),
            ood_sets=ood,
        )
        ratios = (0.0, *lottery_ratios(0.5, 2))
        return SweepConfig(base=base, techniques=techniques, ratios=ratios, seeds=(0,),
                           prune_kinds=("unstructured", "structured"), rate_per_round=0.5, skip=skip,
                           ratios_by_schedule={"oneshot": (0.0, ratios[-1])})
    base = dict(
        study=study, profile="paper", dataset="cifar10", model="poster_cnn", layers="head",
        train=TrainSpec(optimizer="adam", lr=1e-3, batch_size=128, max_iters=7000, eval_every=350,
                        patience=5),
        ood_sets=ood,
    )
    ratios = lottery_ratios(CIFAR_RATE, CIFAR_ROUNDS)
    return SweepConfig(
        base=base, techniques=techniques, ratios=(0.0, *ratios), seeds=tuple(range(5)),
        prune_kinds=("unstructured", "structured"), rate_per_round=CIFAR_RATE, skip=skip,
        ratios_by_schedule={"oneshot": (0.0, *(ratios[k - 1] for k in CIFAR_ONESHOT_ROUNDS))},
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
    sweep = _moons(profile) if study == "moons" else _cifar10(profile, study)
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        sweep.seeds = tuple(range(seeds))
    if ood_sets is not None:
        if study != "ood":
            raise ValueError(f"ood_sets applies to the 'ood' study only, not {study!r}")
        sweep.base["ood_sets"] = resolve_ood_sets(ood_sets)
    return sweep
