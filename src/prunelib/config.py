"""Run and sweep configurations, hashed to name runs (OpenLTH style).

A :class:`RunConfig` describes one training-and-pruning run completely: data,
model, how it is pruned, what happens to the surviving weights, and how it is
trained.  Its :func:`config_hash` (SHA-256 of the canonical JSON of every field
plus :data:`SCHEMA_VERSION`) names the run in the results store, so any change
of any field gives a new run, while the order in which fields are written does
not matter.

Techniques are named ``"<schedule>_<treatment>"``:

* schedule ``oneshot`` (prune once to the target ratio) or ``iterative``
  (``rounds`` rounds with a constant per-round rate ending exactly at the
  target);
* treatment ``finetune`` (keep the trained values), ``reset`` (survivors back
  to their initial values: the lottery ticket), ``rewind<K>`` (survivors back to
  their values after K iterations, e.g. ``rewind50``), ``reinit`` (a fresh random
  initialisation of the pruned shape or mask, which the run derives by its own
  prune-and-retrain rounds), ``maskreinit`` (Frankle & Carbin's control: the mask of
  the ``reset`` run of the same schedule, seed and ratio -- the lottery ticket's mask,
  or for structured removal its shape, i.e. the small dense network -- with a fresh
  random initialisation, trained once) and ``randommask`` (remove at random, then
  reset: the mask control).

Training regimes (``regime``): ``early_stop`` trains every phase to the minimum of the
validation loss (patience-based stop, best weights restored); ``fixed`` trains every
phase for exactly ``train.max_iters`` iterations and keeps the last weights, as most
practitioners do (the regime in which networks become over-confident).

``data_id`` is the fingerprint of the data a run was trained and tested on
(:func:`prunelib.data.fingerprint`; ``ood_data_id`` the same for its OOD sets), so
runs made from different data never answer for each other.

Ratio 0 means "no pruning": the record holds the dense trained network, the
same for every technique that shares its seed.

Per-role ratios: ``ratio`` is the fraction of each selected hidden layer's weights (or
units) removed, ``output_ratio`` the output layer's (unstructured only; None: half of
``ratio``) and ``features_ratio`` the hidden convolutions' (the ``"features"`` role of
:func:`prunelib.models.layer_roles`; None: ``ratio``), so that Frankle & Carbin's Conv-2
protocol (conv 10%, fc 20%, output 10% per round) is one run. A run without a
``features_ratio`` has no such field in its configuration: its key is what it was before
the field existed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field

SCHEMA_VERSION = 2

STUDIES = ("moons", "cifar10", "ood")
#: OOD set names (:func:`prunelib.data.load_ood`), in order of preference for a CIFAR-10 model
OOD_SETS = ("cifar100", "tinyimagenet", "mnist", "gaussian")
PROFILES = ("smoke", "paper", "large")
SCHEDULES = ("oneshot", "iterative")
TREATMENTS = ("finetune", "reset", "rewind", "reinit", "maskreinit", "randommask")
REGIMES = ("early_stop", "fixed")
PRUNE_KINDS = ("structured", "unstructured")
MODELS = ("mlp", "poster_cnn", "conv2")
DATASETS = ("moons", "cifar10")

_TECHNIQUE = re.compile(r"^(oneshot|iterative)_(finetune|reset|reinit|maskreinit|randommask|rewind(\d+))$")


def parse_technique(technique: str) -> tuple[str, str, int | None]:
    """Split ``"iterative_rewind50"`` into ``("iterative", "rewind", 50)``.

    Raises ``ValueError`` naming the allowed forms for anything else.
    """
    m = _TECHNIQUE.match(technique)
    if not m:
        raise ValueError(
            f"unknown technique {technique!r}: use '<schedule>_<treatment>' with schedule in "
            f"{SCHEDULES} and treatment in ('finetune', 'reset', 'rewind<K>', 'reinit', "
            "'maskreinit', 'randommask'), e.g. 'oneshot_reset' or 'iterative_rewind50'"
        )
    schedule, treatment = m.group(1), m.group(2)
    if m.group(3) is not None:
        return schedule, "rewind", int(m.group(3))
    return schedule, treatment, None


@dataclass
class TrainSpec:
    """Optimiser and budget; mirrors :class:`prunelib.training.TrainConfig`.

    ``batch_size`` None means full batch; ``patience`` counts evaluations (None:
    never stop early); ``eval_every`` is in iterations (optimizer steps).
    """

    optimizer: str = "adam"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int | None = None
    max_iters: int = 2000
    eval_every: int = 20
    patience: int | None = 20


@dataclass
class RunConfig:
    """Everything that determines one run. See the module docstring for techniques."""

    study: str
    profile: str
    dataset: str
    model: str
    technique: str
    ratio: float
    seed: int
    prune: str = "structured"
    score: str = "l1"
    layers: str = "all"
    scope: str = "layer"
    rounds: int = 1
    output_ratio: float | None = None
    features_ratio: float | None = None
    model_kwargs: dict = field(default_factory=dict)
    data_kwargs: dict = field(default_factory=dict)
    data_seed: int = 0
    train: TrainSpec = field(default_factory=TrainSpec)
    ood_sets: tuple[str, ...] = ()
    regime: str = "early_stop"
    data_id: str = ""
    ood_data_id: str = ""

    def __post_init__(self):
        if isinstance(self.train, dict):
            self.train = TrainSpec(**self.train)
        self.ood_sets = tuple(self.ood_sets)
        self.ratio = float(self.ratio)
        self.validate()

    # -- validation ---------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` with the allowed values for any bad field."""
        _check_choice("study", self.study, STUDIES)
        _check_choice("profile", self.profile, PROFILES)
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("model", self.model, MODELS)
        _check_choice("prune", self.prune, PRUNE_KINDS)
        _check_choice("layers", self.layers, ("all", "head", "features"))
        _check_choice("scope", self.scope, ("layer", "global"))
        _check_choice("regime", self.regime, REGIMES)
        schedule, treatment, _ = parse_technique(self.technique)
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"ratio must be in [0, 1), got {self.ratio}")
        if self.output_ratio is not None and not 0.0 <= self.output_ratio < 1.0:
            raise ValueError(f"output_ratio must be None or in [0, 1), got {self.output_ratio}")
        if self.features_ratio is not None and not 0.0 <= self.features_ratio < 1.0:
            raise ValueError("features_ratio must be None or in [0, 1), got "
                             f"{self.features_ratio}")
        scores = ("l1", "l2", "random") if self.prune == "structured" else ("magnitude", "random")
        _check_choice(f"score (for {self.prune} pruning)", self.score, scores)
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if schedule == "oneshot" and self.rounds != 1:
            raise ValueError(f"a oneshot technique has rounds=1, got rounds={self.rounds}")
        if treatment == "maskreinit" and schedule == "oneshot":
            raise ValueError("maskreinit takes the mask of an iterative reset run: use "
                             "'iterative_maskreinit' (for one shot, 'oneshot_reinit' is the same)")
        if self.regime == "fixed" and self.train.patience is not None:
            raise ValueError("the 'fixed' regime trains a fixed budget with no early stopping: "
                             "set train.patience=None")
        if self.regime == "early_stop" and self.train.patience is None:
            raise ValueError("the 'early_stop' regime needs train.patience (evaluations); use "
                             "regime='fixed' for a fixed budget")
        _check_choice("train.optimizer", self.train.optimizer, ("adam", "sgd"))
        if self.train.lr <= 0 or self.train.max_iters < 1 or self.train.eval_every < 1:
            raise ValueError("train.lr must be > 0, train.max_iters and train.eval_every >= 1")
        if self.ood_sets:
            for name in self.ood_sets:
                _check_choice("ood set", name, OOD_SETS)
            if len(set(self.ood_sets)) != len(self.ood_sets):
                raise ValueError(f"ood_sets has duplicates: {self.ood_sets}")

    # -- derived ------------------------------------------------------------
    @property
    def schedule(self) -> str:
        return parse_technique(self.technique)[0]

    @property
    def treatment(self) -> str:
        return parse_technique(self.technique)[1]

    @property
    def rewind_iteration(self) -> int | None:
        return parse_technique(self.technique)[2]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["ood_sets"] = list(self.ood_sets)
        if d["features_ratio"] is None:  # absent unless set: older runs keep their keys
            del d["features_ratio"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return cls(**d)

    def key(self) -> str:
        return config_hash(self)


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def canonical_json(obj) -> str:
    """JSON with sorted keys and no whitespace: equal configs give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(cfg: RunConfig | dict) -> str:
    """First 16 hex digits of SHA-256 over ``{"schema": SCHEMA_VERSION, "config": ...}``."""
    d = cfg.to_dict() if isinstance(cfg, RunConfig) else RunConfig.from_dict(dict(cfg)).to_dict()
    text = canonical_json({"schema": SCHEMA_VERSION, "config": d})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SweepConfig:
    """A grid: techniques x prune kinds x ratios x seeds over one base run.

    ``base`` holds every other field of :class:`RunConfig` (study, profile, data,
    model, training...). Iterative techniques use ``rounds`` rounds, or, when
    ``rate_per_round`` is set, as many rounds as it takes to reach each ratio
    removing that fraction of the remaining units or weights per round (the
    lottery-ticket schedule: ratio ``1 - (1 - rate) ** k`` takes ``k`` rounds, and
    the runs to smaller ratios are the prefixes of the runs to larger ones, which
    the experiment engine computes once). ``ratios_by_schedule`` optionally gives
    one schedule (``"oneshot"`` or ``"iterative"``) its own ratios, and ``skip``
    leaves ``(prune kind, technique)`` pairs out of the grid; ``ratios_by_technique`` gives a
    technique (e.g. a control) its own ratios. ``vary_split`` sets each run's ``data_seed``
    to its seed, so seeds vary the train/validation split (and, for generated data, the
    sample) as well as the initialisation. ``extra`` holds further grids of the same study
    (e.g. the same techniques in another training regime), whose runs follow this one's.

    ``role_rates`` (with ``rate_per_round``) gives layer roles their own per-round rates:
    ``{"features": 0.1, "output": 0.1}`` makes a run of ``k`` rounds (ratio ``1 - (1 -
    rate_per_round) ** k`` of the hidden fully connected layers) remove ``1 - 0.9 ** k`` of
    the convolutions' weights (``features_ratio``) and of the output layer's
    (``output_ratio``): Frankle & Carbin's per-layer-group rates. Runs at ratio 0 get none.
    """

    base: dict
    techniques: tuple[str, ...]
    ratios: tuple[float, ...]
    seeds: tuple[int, ...]
    prune_kinds: tuple[str, ...] = ("structured",)
    rounds: int = 3
    scores: dict = field(default_factory=dict)  # prune kind -> score; default l1 / magnitude
    rate_per_round: float | None = None
    ratios_by_schedule: dict = field(default_factory=dict)
    skip: tuple = ()  # (prune kind, technique) pairs left out of the grid
    vary_split: bool = False  # True: each seed draws its own train/validation split (data_seed)
    ratios_by_technique: dict = field(default_factory=dict)  # technique -> its own ratios
    extra: tuple = ()  # further SweepConfigs of the same study (e.g. another regime)
    role_rates: dict = field(default_factory=dict)  # "features"/"output" -> per-round rate

    def rounds_for(self, ratio: float) -> int:
        """Rounds an iterative run to ``ratio`` takes (see the class docstring)."""
        if self.rate_per_round is None or ratio == 0:
            return self.rounds
        k = math.log(1.0 - ratio) / math.log(1.0 - self.rate_per_round)
        if abs(k - round(k)) > 1e-6 or round(k) < 1:
            raise ValueError(f"ratio {ratio} is not 1 - (1 - {self.rate_per_round})**k for an "
                             f"integer k >= 1; use lottery_ratios({self.rate_per_round}, k)")
        return round(k)

    def role_ratios(self, ratio: float) -> dict:
        """``features_ratio`` / ``output_ratio`` of a run to ``ratio`` (see ``role_rates``)."""
        if not self.role_rates or ratio == 0:
            return {}
        unknown = sorted(set(self.role_rates) - {"features", "output"})
        if unknown or self.rate_per_round is None:
            raise ValueError("role_rates gives per-round rates to the roles 'features' and "
                             f"'output' of a grid with rate_per_round (got {self.role_rates}, "
                             f"rate_per_round={self.rate_per_round})")
        k = self.rounds_for(ratio)
        return {f"{role}_ratio": 1.0 - (1.0 - rate) ** k for role, rate in self.role_rates.items()}

    def runs(self) -> list[RunConfig]:
        """All run configurations of the grid, validated before any training starts."""
        out = []
        for kind in self.prune_kinds:
            score = self.scores.get(kind, "l1" if kind == "structured" else "magnitude")
            for technique in self.techniques:
                if (kind, technique) in self.skip:
                    continue
                schedule = parse_technique(technique)[0]
                ratios = self.ratios_by_technique.get(
                    technique, self.ratios_by_schedule.get(schedule, self.ratios))
                for ratio in ratios:
                    for seed in self.seeds:
                        split = {"data_seed": seed} if self.vary_split else {}
                        out.append(
                            RunConfig(
                                **{
                                    **self.base,
                                    "technique": technique,
                                    "prune": kind,
                                    "score": score,
                                    "ratio": ratio,
                                    "seed": seed,
                                    "rounds": self.rounds_for(ratio) if schedule == "iterative" else 1,
                                    **split,
                                    **self.role_ratios(ratio),
                                }
                            )
                        )
        for part in self.extra:
            out += part.runs()
        return out


def lottery_ratios(rate: float, max_rounds: int) -> tuple[float, ...]:
    """``1 - (1 - rate) ** k`` for k = 1..max_rounds: the ratios an iterative schedule
    removing ``rate`` of what remains per round passes through."""
    return tuple(1.0 - (1.0 - rate) ** k for k in range(1, max_rounds + 1))
