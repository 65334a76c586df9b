"""A correct, fast early-stopping trainer on in-memory tensors.

:func:`train` trains a classifier (cross-entropy on logits) from tensors
``(X, y)`` held in memory, evaluates it on a validation split every
``eval_every`` iterations (optimizer steps), stops early when the validation
loss has not improved for ``patience`` evaluations, and restores the weights of
the best evaluation from a real copy.

What it guards against:

* **the early-stop iteration** reported in ``TrainResult.best_iteration`` is
  the argmin of the validation loss over every evaluation, iteration 0 (before
  any step) included, not the iteration at which patience ran out
  (``TrainResult.stopped_iteration``);
* **best weights** are cloned tensor by tensor when they are recorded, never kept
  as a ``state_dict()`` of references that would follow the training;
* **the optimizer** is built inside :func:`train` from the model's parameters as
  they are at the call, so layers replaced before the call are trained;
* **masks** (``{parameter name: 0/1 tensor}``, each of its parameter's shape) are
  applied before the first step, to the gradients before every step and to the
  weights after every step, so pruned weights stay exactly zero under momentum and
  weight decay. A layer carrying a ``torch.nn.utils.prune`` reparametrisation is
  masked through its ``<name>_orig`` parameter. (In a training loop of your own,
  attach the masks with :func:`prunelib.pruning.masks.attach_masks` instead.)

Mini-batches are drawn without a ``DataLoader``: each epoch a permutation of the
training indices comes from a ``torch.Generator`` seeded with ``cfg.seed`` and the
batches index the tensors directly (the last batch of an epoch may be smaller).
``batch_size=None`` trains on the full batch. On CPU the same seed gives the same
history and weights.

**Train metrics in the history.** ``train_loss``/``train_acc`` at an evaluation at
iteration ``t > 0`` are the running mean over the training samples of the steps
since the previous evaluation, each measured on the weights before its step (as
the forward pass of the step computed it: no extra pass over the training set).
At iteration 0 they are those of the initial weights on the first batch (the whole
training set in full-batch mode), filled in by the first step. Validation metrics
are exact passes over the validation split.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .pruning._common import _check_masks as _check_pruning_masks

__all__ = [
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "make_optimizer",
    "predict_logits",
    "resolve_device",
    "snapshot",
    "train",
]

OPTIMIZERS = ("adam", "sgd")


@dataclass
class TrainConfig:
    """Optimiser, budget and early stopping for :func:`train`.

    ``batch_size`` None is full batch. ``max_iters`` and ``eval_every`` count
    iterations (optimizer steps); ``patience`` counts evaluations without a strictly
    lower validation loss (None: never stop early). ``momentum`` is used by SGD only.
    ``rewind_iteration`` K asks for a copy of the state after K iterations (0: the
    initial state, masks applied). ``restore_best`` True restores the weights of the best
    evaluation, False leaves the final weights in the model (the best iteration is still
    reported); None (the default) restores them when early stopping is on
    (``patience`` set) and keeps the last weights of a fixed budget (``patience=None``). ``channels_last`` uses the
    channels-last memory format for 4-D (image) inputs, which is faster for
    convolutions on CPU; the model is returned in the contiguous format.

    >>> TrainConfig(patience=None).restore_best      # a fixed budget keeps the last weights
    False
    >>> TrainConfig(patience=5).restore_best          # early stopping restores the best
    True
    """

    optimizer: str = "adam"
    lr: float = 1e-2
    batch_size: int | None = None
    max_iters: int = 2000
    eval_every: int = 20
    patience: int | None = 20
    weight_decay: float = 0.0
    momentum: float = 0.9
    seed: int = 0
    rewind_iteration: int | None = None
    restore_best: bool | None = None
    channels_last: bool = True

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; allowed: 'adam', 'sgd'")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.batch_size is not None and (not _is_int(self.batch_size) or self.batch_size < 1):
            raise ValueError(f"batch_size must be None (full batch) or an int >= 1, "
                             f"got {self.batch_size!r}")
        if not _is_int(self.max_iters) or self.max_iters < 1:
            raise ValueError(f"max_iters must be an int >= 1, got {self.max_iters!r}")
        if not _is_int(self.eval_every) or self.eval_every < 1:
            raise ValueError(f"eval_every must be an int >= 1, got {self.eval_every!r}")
        if self.patience is not None and (not _is_int(self.patience) or self.patience < 1):
            raise ValueError(f"patience must be None (no early stopping) or an int >= 1 "
                             f"(evaluations), got {self.patience!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if self.restore_best is None:
            self.restore_best = self.patience is not None
        if self.rewind_iteration is not None and (
            not _is_int(self.rewind_iteration) or self.rewind_iteration < 0
        ):
            raise ValueError(f"rewind_iteration must be None or an int >= 0, "
                             f"got {self.rewind_iteration!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class TrainResult:
    """What :func:`train` reports.

    ``best_iteration`` is the argmin of the validation loss over all evaluations
    (the early-stop point; ties go to the earliest), ``stopped_iteration`` the
    iteration at which training ended and ``stopped_by`` why: ``"patience"`` (no lower
    validation loss for ``patience`` evaluations) or ``"cap"`` (``max_iters`` reached).
    ``history``
    holds one dict per evaluation: ``iteration, train_loss, train_acc, val_loss,
    val_acc`` (see the module docstring for the train metrics). ``rewind_state`` is
    a copy of the state dict after ``cfg.rewind_iteration`` iterations, or None
    (not asked for, or training stopped before it).

    >>> r = TrainResult(best_iteration=20, best_val_loss=0.3, stopped_iteration=40,
    ...                 history=[{"iteration": 20, "val_acc": 0.9}])
    >>> r.best_val_acc
    0.9
    """

    best_iteration: int
    best_val_loss: float
    stopped_iteration: int
    history: list[dict] = field(default_factory=list)
    rewind_state: dict | None = None
    stopped_by: str = "cap"

    @property
    def best_val_acc(self) -> float:
        for h in self.history:
            if h["iteration"] == self.best_iteration:
                return h["val_acc"]
        return float("nan")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; anything else goes to ``torch.device``.

    >>> resolve_device("cpu"), resolve_device(None)
    (device(type='cpu'), device(type='cpu'))
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def snapshot(model: nn.Module) -> OrderedDict:
    """A real copy of ``model.state_dict()`` (every tensor detached and cloned).

    >>> from torch import nn
    >>> net = nn.Linear(2, 1)
    >>> copy = snapshot(net)
    >>> copy["weight"].data_ptr() != net.weight.data_ptr()
    True
    """
    return OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg`` over ``params`` (built fresh: it sees what it is given).

    Uses PyTorch's fused implementation where it applies (CPU or CUDA parameters
    of one floating dtype): the same update, fewer kernel calls per step.

    >>> from torch import nn
    >>> type(make_optimizer(nn.Linear(2, 1).parameters(), TrainConfig(optimizer="sgd"))).__name__
    'SGD'
    """
    params = list(params)
    fused = (
        len(params) > 0
        and all(p.device.type in ("cpu", "cuda") for p in params)
        and len({(p.device, p.dtype) for p in params}) == 1
        and params[0].dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    )
    kw = {"fused": True} if fused else {}
    try:
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, **kw)
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)
    except (RuntimeError, TypeError, ValueError):
        if not kw:
            raise
        return make_optimizer_unfused(params, cfg)


def make_optimizer_unfused(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """:func:`make_optimizer` with PyTorch's default (non-fused) implementation.

    >>> from torch import nn
    >>> type(make_optimizer_unfused(nn.Linear(2, 1).parameters(), TrainConfig())).__name__
    'Adam'
    """
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _param_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's first floating parameter (None: none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def _as_xy(data, device: torch.device, name: str,
           dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)`` on ``device``: X floating (``dtype`` if given), y long."""
    try:
        X, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of tensors (X, y)") from None
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if dtype is not None:
        X = X.to(dtype)
    elif not X.is_floating_point():
        X = X.float()
    return X.to(device), y.to(device=device, dtype=torch.long)


def _check_masks(model: nn.Module, masks: dict | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(parameter, mask as a tensor like the parameter)] for the masked parameters.

    Every mask must have exactly its parameter's shape and hold only 0 and 1. The
    parameter of a layer carrying a ``torch.nn.utils.prune`` mask is ``<name>_orig``.
    """
    if not masks:
        return []
    return [(t.param, torch.empty_like(t.param, requires_grad=False).copy_(m))
            for t, m in _check_pruning_masks(model, masks)]


def _apply_masks(pairs) -> None:
    with torch.no_grad():
        for p, m in pairs:
            p.mul_(m)


@torch.no_grad()
def _eval_sums(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int):
    """(sum of cross-entropy, number correct) as 0-d tensors; model already in eval mode."""
    loss = torch.zeros((), dtype=_acc_dtype(X.device), device=X.device)
    correct = torch.zeros((), dtype=torch.long, device=X.device)
    for i in range(0, X.shape[0], batch_size):
        out = model(X[i:i + batch_size])
        yb = y[i:i + batch_size]
        loss += F.cross_entropy(out, yb, reduction="sum").to(loss.dtype)
        correct += (out.argmax(1) == yb).sum()
    return loss, correct


def _acc_dtype(device: torch.device) -> torch.dtype:
    """float64 accumulators where the device has them (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _maybe_channels_last(X: torch.Tensor, use: bool) -> torch.Tensor:
    if use and X.dim() == 4:
        return X.contiguous(memory_format=torch.channels_last)
    return X


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
@torch.no_grad()
def predict_logits(model: nn.Module, X: torch.Tensor, batch_size: int = 4096,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits of ``model`` on ``X`` (eval mode, no grad, in batches), as a CPU tensor.

    The model is moved to ``device``; its train/eval mode is restored afterwards.

    >>> import torch
    >>> from torch import nn
    >>> predict_logits(nn.Linear(2, 3), torch.zeros(5, 2)).shape
    torch.Size([5, 3])
    """
    dev = resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    try:
        X = torch.as_tensor(X)
        dtype = _param_dtype(model)
        if dtype is not None:
            X = X.to(dtype)
        elif not X.is_floating_point():
            X = X.float()
        outs = [model(X[i:i + batch_size].to(dev)).float().cpu()
                for i in range(0, X.shape[0], batch_size)]
    finally:
        model.train(was_training)
    if not outs:
        return torch.empty(0)
    return torch.cat(outs)


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096,
             device: str | torch.device = "cpu") -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``(X, y)`` (eval mode, no grad).

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = net.weight.zero_(), net.bias.zero_()
    >>> loss, acc = evaluate(net, torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]))
    >>> round(loss, 4), acc
    (0.6931, 0.5)
    """
    dev = resolve_device(device)
    X, y = _as_xy((X, y), dev, "evaluate data", _param_dtype(model))
    was_training = model.training
    model.to(dev).eval()
    try:
        loss, correct = _eval_sums(model, X, y, batch_size)
    finally:
        model.train(was_training)
    n = X.shape[0]
    return loss.item() / n, correct.item() / n


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------
class _EarlyStopping:
    """Best-so-far bookkeeping shared by :func:`train` (scalar version)."""

    def __init__(self, patience: int | None):
        self.patience = patience
        self.best_loss = math.inf
        self.best_iteration = 0
        self.bad = 0

    def update(self, iteration: int, val_loss: float) -> tuple[bool, bool]:
        """(improved, stop)."""
        if val_loss < self.best_loss or (iteration == 0 and self.best_loss == math.inf):
            self.best_loss = val_loss
            self.best_iteration = iteration
            self.bad = 0
            return True, False
        self.bad += 1
        return False, self.patience is not None and self.bad >= self.patience


def train(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
          val: tuple[torch.Tensor, torch.Tensor], cfg: TrainConfig | None = None,
          masks: dict | None = None, device: str | torch.device = "cpu",
          progress: bool = False, eval_batch_size: int = 4096) -> TrainResult:
    """Train ``model`` in place with early stopping; return a :class:`TrainResult`.

    ``train`` and ``val`` are ``(X, y)`` tensors (``y`` class indices). ``masks``
    maps parameter names (as in ``model.named_parameters()``) to 0/1 tensors of the
    parameter's shape; masked weights are zero on return. The model ends on
    ``device`` with the best weights (``cfg.restore_best``) and in the train/eval
    mode it came in. ``progress`` shows a tqdm bar.

    >>> import torch
    >>> from prunelib.models import MLP
    >>> from prunelib.data import make_moons_splits
    >>> _ = torch.manual_seed(0)
    >>> splits = make_moons_splits(n_train=200, n_val=100, n_test=100)
    >>> net = MLP(2, (16,), 2)
    >>> result = train(net, splits.train, splits.val, TrainConfig(max_iters=100, eval_every=20))
    >>> result.history[-1]["iteration"], result.best_val_loss < result.history[0]["val_loss"]
    (100, True)
    """
    cfg = TrainConfig() if cfg is None else cfg
    dev = resolve_device(device)
    dtype = _param_dtype(model)
    Xtr, ytr = _as_xy(train, dev, "train", dtype)
    Xva, yva = _as_xy(val, dev, "val", dtype)
    use_cl = cfg.channels_last and Xtr.dim() == 4
    Xtr = _maybe_channels_last(Xtr, use_cl)
    Xva = _maybe_channels_last(Xva, use_cl)
    n = Xtr.shape[0]
    bs = n if cfg.batch_size is None else min(cfg.batch_size, n)
    full_batch = bs >= n

    was_training = model.training
    model.to(dev)
    if use_cl:
        model.to(memory_format=torch.channels_last)
    pairs = _check_masks(model, masks)
    _apply_masks(pairs)
    # built here, after any replacement of layers: it sees the current parameters
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)

    gen = torch.Generator(device="cpu")
    gen.manual_seed(cfg.seed)
    perm = None
    pos = n

    stopper = _EarlyStopping(cfg.patience)
    history: list[dict] = []
    best_state = None
    rewind_state = snapshot(model) if cfg.rewind_iteration == 0 else None
    run_loss = torch.zeros((), dtype=_acc_dtype(dev), device=dev)
    run_correct = torch.zeros((), dtype=torch.long, device=dev)
    run_n = 0
    first_step_metrics = True   # the step after iteration 0 fills history[0]'s train metrics

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_iters, desc="train", leave=False)

    def evaluate_now(iteration: int) -> bool:
        nonlocal best_state, run_loss, run_correct, run_n
        model.eval()
        vloss, vcorrect = _eval_sums(model, Xva, yva, eval_batch_size)
        model.train()
        val_loss = vloss.item() / Xva.shape[0]
        entry = {"iteration": iteration, "train_loss": math.nan, "train_acc": math.nan,
                 "val_loss": val_loss, "val_acc": vcorrect.item() / Xva.shape[0]}
        if run_n:
            entry["train_loss"] = run_loss.item() / run_n
            entry["train_acc"] = run_correct.item() / run_n
        run_loss.zero_()
        run_correct.zero_()
        run_n = 0
        history.append(entry)
        improved, stop = stopper.update(iteration, val_loss)
        if improved:
            best_state = snapshot(model)   # a real copy, not references
        if bar is not None:
            bar.update(iteration - bar.n)
            bar.set_postfix(val_loss=f"{val_loss:.4f}", best=stopper.best_iteration)
        return stop

    it = 0
    model.train()
    try:
        stop = evaluate_now(0)
        while it < cfg.max_iters and not stop:
            if full_batch:
                xb, yb = Xtr, ytr
            else:
                if pos >= n:
                    perm = torch.randperm(n, generator=gen).to(dev)
                    pos = 0
                idx = perm[pos:pos + bs]
                pos += bs
                xb, yb = Xtr[idx], ytr[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if pairs:
                for p, m in pairs:
                    if p.grad is not None:
                        p.grad.mul_(m)
            opt.step()
            if pairs:
                _apply_masks(pairs)
            it += 1
            nb = yb.shape[0]
            with torch.no_grad():
                run_loss.add_(loss.detach(), alpha=nb)
                run_correct.add_((out.detach().argmax(1) == yb).sum())
            run_n += nb
            if first_step_metrics:
                history[0]["train_loss"] = run_loss.item() / nb
                history[0]["train_acc"] = run_correct.item() / nb
                first_step_metrics = False
            if cfg.rewind_iteration is not None and it == cfg.rewind_iteration:
                rewind_state = snapshot(model)
            if it % cfg.eval_every == 0 or it == cfg.max_iters:
                stop = evaluate_now(it)
    finally:
        if bar is not None:
            bar.close()

    if cfg.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    _apply_masks(pairs)
    if use_cl:
        model.to(memory_format=torch.contiguous_format)
        if rewind_state is not None:
            rewind_state = OrderedDict((k, v.contiguous()) for k, v in rewind_state.items())
    model.train(was_training)
    return TrainResult(
        best_iteration=stopper.best_iteration,
        best_val_loss=stopper.best_loss,
        stopped_iteration=it,
        history=history,
        rewind_state=rewind_state,
        stopped_by="patience" if stop else "cap",
    )
