"""Train many small MLPs of one shape at once, as one batched model.

Make Moons sweeps train hundreds of tiny ``Linear``/``ReLU`` networks; one at a
time, a small step is mostly Python and dispatch overhead. :func:`train_ensemble` stacks
the weights of E members into ``[E, out, in]`` tensors and runs every member's
forward and backward pass in one batched matmul per layer (``torch.baddbmm``; the stacked
model is :class:`prunelib.stacked.StackedMLP`).
Measured on 2 CPU cores (``benchmarks/train_throughput.py``) this is as fast as
``torch.func.stack_module_state`` + ``vmap`` (0.9-1.4x across runs), and plain
tensors make per-member masks, best-weight copies and dropping stopped members
simple. On CPU a group is trained in chunks of members sized to keep the
activations in cache (:func:`auto_chunk`), which is ~25 % faster for full-batch
training than all members at once.

Each member behaves as if trained alone by :func:`prunelib.training.train` with
``seed`` = its own seed (up to float rounding):

* the loss is the *sum* of the members' mean losses, so each member's gradient is
  its own;
* ``torch.optim`` Adam and SGD (momentum, weight decay) are elementwise, so one
  optimizer over the stacked tensors updates each member independently;
* each member's mini-batches come from its own ``torch.Generator`` (the same
  permutations :func:`~prunelib.training.train` draws for that seed);
* masks are per member (stacked; a member without a mask for a parameter is
  unmasked), applied to gradients and weights at every step;
* evaluation, early stopping with patience, best-weight tracking
  (the improved members' rows copied into stacked copies), history and rewind
  states are per member.
  Training goes on until every member has run out of patience or ``max_iters``.
  A member that runs out of patience is dropped from the stack (its rows of the
  weights, masks, batch order and optimizer state), so the remaining members
  train faster: on full-batch Make Moons the step is compute-bound.

Models whose layer shapes differ are split into groups of equal shape, each
trained as one ensemble; the results come back in the order of ``models``.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .stacked import StackedMLP, auto_chunk, parse_mlp, shape_signature, stack_masks
from .training import (
    TrainConfig,
    TrainResult,
    _acc_dtype,
    _as_xy,
    _param_dtype,
    make_optimizer_unfused,
    resolve_device,
)

__all__ = ["StackedMLP", "auto_chunk", "predict_logits_ensemble", "train_ensemble"]

def train_ensemble(models: list[nn.Module], masks_list: list[dict | None] | None,
                   train: tuple[torch.Tensor, torch.Tensor],
                   val: tuple[torch.Tensor, torch.Tensor], cfg: TrainConfig | None = None,
                   seeds: list[int] | None = None, device: str | torch.device = "cpu",
                   progress: bool = False, eval_batch_size: int = 4096,
                   chunk: int | str | None = "auto") -> list[TrainResult]:
    """Train ``models`` (MLP-shaped) together; one :class:`TrainResult` per model.

    ``masks_list[e]`` (or None) are member e's masks by parameter name;
    ``seeds[e]`` its seed for the batch order (default ``cfg.seed`` for all).
    Each model gets its best weights written back (``cfg.restore_best``), as
    :func:`prunelib.training.train` would leave it.

    Models are grouped by layer shapes; a group is trained in chunks of at most
    ``chunk`` members, one chunk after the other (``"auto"``: :func:`auto_chunk`;
    None: the whole group at once). Members are independent, so chunking changes
    speed only.
    """
    cfg = TrainConfig() if cfg is None else cfg
    models = list(models)
    if not models:
        return []
    E = len(models)
    if seeds is None:
        seeds = [cfg.seed] * E
    seeds = [int(s) for s in seeds]
    if len(seeds) != E:
        raise ValueError(f"{len(seeds)} seeds for {E} models")
    if masks_list is not None and len(masks_list) != E:
        raise ValueError(f"masks_list has {len(masks_list)} entries for {E} models")
    if not (chunk is None or chunk == "auto" or (isinstance(chunk, int) and chunk >= 1)):
        raise ValueError(f"chunk must be 'auto', None or an int >= 1, got {chunk!r}")
    groups: dict[tuple, list[int]] = {}
    for e, m in enumerate(models):
        groups.setdefault(shape_signature(parse_mlp(m)), []).append(e)
    n = len(train[1])
    rows = n if cfg.batch_size is None else min(cfg.batch_size, n)
    results: list[TrainResult | None] = [None] * E
    for idxs in groups.values():
        size = auto_chunk(models[idxs[0]], rows, resolve_device(device)) if chunk == "auto" \
            else chunk
        size = len(idxs) if size is None else size
        n_chunks = -(-len(idxs) // size)
        bounds = [round(i * len(idxs) / n_chunks) for i in range(n_chunks + 1)]
        for lo, hi in itertools.pairwise(bounds):
            part = idxs[lo:hi]
            res = _train_group(
                [models[e] for e in part],
                None if masks_list is None else [masks_list[e] for e in part],
                train, val, cfg, [seeds[e] for e in part], device, progress, eval_batch_size,
            )
            for e, r in zip(part, res):
                results[e] = r
    return results  # type: ignore[return-value]


@torch.no_grad()
def _eval_stack(stack: StackedMLP, X, y, batch_size: int):
    """Per-member (sum of cross-entropy [E], number correct [E])."""
    E = stack.E
    loss = torch.zeros(E, dtype=_acc_dtype(X.device), device=X.device)
    correct = torch.zeros(E, dtype=torch.long, device=X.device)
    for i in range(0, X.shape[0], batch_size):
        out = stack(X[i:i + batch_size])                    # [E, B, C]
        yb = y[i:i + batch_size].unsqueeze(0).expand(E, -1)
        loss += F.cross_entropy(out.transpose(1, 2), yb, reduction="none").sum(1).to(loss.dtype)
        correct += (out.argmax(2) == yb).sum(1)
    return loss, correct


def _compact_optimizer(opt: torch.optim.Optimizer, pairs, keep: torch.Tensor,
                       cfg: TrainConfig) -> torch.optim.Optimizer:
    """A new optimizer over the new params of ``pairs``, state rows ``keep`` carried over."""
    new_opt = make_optimizer_unfused([q for _, q in pairs], cfg)
    for p, q in pairs:
        st = opt.state.get(p)
        if not st:
            continue
        new_opt.state[q] = {
            k: (v.index_select(0, keep).contiguous()
                if torch.is_tensor(v) and v.shape == p.shape else v)
            for k, v in st.items()
        }
    return new_opt


def _train_group(models, masks_list, train, val, cfg: TrainConfig, seeds, device,
                 progress: bool, eval_batch_size: int) -> list[TrainResult]:
    dev = resolve_device(device)
    dtype = _param_dtype(models[0])
    Xtr, ytr = _as_xy(train, dev, "train", dtype)
    Xva, yva = _as_xy(val, dev, "val", dtype)
    n = Xtr.shape[0]
    bs = n if cfg.batch_size is None else min(cfg.batch_size, n)
    full_batch = bs >= n

    stack = StackedMLP(models, dev)
    E = stack.E
    # the stacked forward must be what each model computes (catches a custom forward)
    with torch.no_grad():
        probe = Xtr[: min(8, n)]
        ref = torch.stack([m(probe.to(next(m.parameters()).device)).to(dev, probe.dtype)
                           for m in models])
        if not torch.allclose(stack(probe), ref, rtol=1e-4, atol=1e-5):
            raise TypeError("train_ensemble: a model's forward is not the sequence of its "
                            "Linear/activation layers")
    mask_pairs = stack_masks(stack, models, masks_list)
    with torch.no_grad():
        for i, m in mask_pairs:
            stack.params[i].mul_(m)
    # not the fused Adam: it rounds a member's update differently depending on the member's
    # place in the stack, and a member must train bit-identically in any batch (a resumed
    # sweep forms other batches than an uninterrupted one); the default is as fast here
    opt = make_optimizer_unfused(stack.params, cfg)

    gens = []
    for s in seeds:
        g = torch.Generator(device="cpu")
        g.manual_seed(s)
        gens.append(g)
    perms = None
    pos = n

    # per-member bookkeeping, indexed by member (0..E-1); the stack holds the members
    # in ``slots`` (the ones still training: stopped members are dropped from it)
    slots = torch.arange(E, device=dev)
    acc_dt = _acc_dtype(dev)
    best_loss = torch.full((E,), math.inf, dtype=acc_dt, device=dev)
    best_iter = torch.zeros(E, dtype=torch.long, device=dev)
    bad = torch.zeros(E, dtype=torch.long, device=dev)
    stopped_at: list[int | None] = [None] * E
    best_params = [p.detach().clone() for p in stack.params]      # [E, ...]
    last_params = [p.detach().clone() for p in stack.params]      # weights where each stopped
    full_masks = list(mask_pairs)
    histories: list[list[dict]] = [[] for _ in range(E)]
    rewind: list[OrderedDict | None] = [None] * E
    if cfg.rewind_iteration == 0:
        rewind = [stack.member_state(e) for e in range(E)]
    run_loss = torch.zeros(E, dtype=acc_dt, device=dev)
    run_correct = torch.zeros(E, dtype=torch.long, device=dev)
    run_n = 0
    first_step = True

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_iters, desc=f"ensemble x{E}", leave=False)

    def evaluate_now(iteration: int) -> None:
        """Evaluate the members in the stack; drop those that ran out of patience."""
        nonlocal run_n, slots, opt, perms, mask_pairs, run_loss, run_correct
        vloss, vcorrect = _eval_stack(stack, Xva, yva, eval_batch_size)   # per slot
        vloss = vloss / Xva.shape[0]
        vacc = (vcorrect.double() / Xva.shape[0]).tolist()
        tl = (run_loss / max(run_n, 1)).tolist()
        ta = (run_correct.double() / max(run_n, 1)).tolist()
        vl = vloss.tolist()
        members = slots.tolist()
        for j, e in enumerate(members):
            histories[e].append({
                "iteration": iteration,
                "train_loss": tl[j] if run_n else math.nan,
                "train_acc": ta[j] if run_n else math.nan,
                "val_loss": vl[j], "val_acc": vacc[j],
            })
        run_loss.zero_()
        run_correct.zero_()
        run_n = 0
        prev = best_loss.index_select(0, slots)
        improved = torch.ones_like(vloss, dtype=torch.bool) if iteration == 0 else vloss < prev
        best_loss.index_copy_(0, slots, torch.where(improved, vloss, prev))
        best_iter.index_copy_(0, slots, torch.where(
            improved, torch.full_like(slots, iteration), best_iter.index_select(0, slots)))
        nbad = torch.where(improved, 0, bad.index_select(0, slots) + 1)
        bad.index_copy_(0, slots, nbad)
        if bool(improved.any()):
            local = improved.nonzero().flatten()
            glob = slots.index_select(0, local)
            for bp, p in zip(best_params, stack.params):
                bp.index_copy_(0, glob, p.detach().index_select(0, local))
        if cfg.patience is not None:
            stop = nbad >= cfg.patience
            if bool(stop.any()):
                for j in stop.nonzero().flatten().tolist():
                    stopped_at[members[j]] = iteration
                keep = (~stop).nonzero().flatten()
                gone = stop.nonzero().flatten()
                for lp, p in zip(last_params, stack.params):
                    lp.index_copy_(0, slots.index_select(0, gone), p.detach().index_select(0, gone))
                slots = slots.index_select(0, keep)
                if keep.numel():
                    opt = _compact_optimizer(opt, stack.select(keep), keep, cfg)
                    mask_pairs = [(i, m.index_select(0, keep)) for i, m in mask_pairs]
                    if perms is not None:
                        perms = perms.index_select(0, keep)
                    run_loss = run_loss[: keep.numel()].clone()
                    run_correct = run_correct[: keep.numel()].clone()
        if bar is not None:
            bar.update(iteration - bar.n)
            bar.set_postfix(active=int(slots.numel()))

    it = 0
    try:
        evaluate_now(0)
        while it < cfg.max_iters and slots.numel() > 0:
            A = stack.E
            if full_batch:
                xb = Xtr
                yb = ytr.unsqueeze(0).expand(A, -1)
            else:
                if pos >= n:
                    perms = torch.stack([torch.randperm(n, generator=gens[e])
                                         for e in slots.tolist()]).to(dev)
                    pos = 0
                idx = perms[:, pos:pos + bs]                   # [A, b]
                pos += bs
                xb, yb = Xtr[idx], ytr[idx]                     # [A, b, in], [A, b]
            out = stack(xb)                                     # [A, b, C]
            losses = F.cross_entropy(out.transpose(1, 2), yb, reduction="none").mean(1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            if mask_pairs:
                for i, m in mask_pairs:
                    g = stack.params[i].grad
                    if g is not None:
                        g.mul_(m)
            opt.step()
            if mask_pairs:
                with torch.no_grad():
                    for i, m in mask_pairs:
                        stack.params[i].mul_(m)
            it += 1
            nb = yb.shape[1]
            with torch.no_grad():
                run_loss.add_(losses.detach(), alpha=nb)
                run_correct.add_((out.detach().argmax(2) == yb).sum(1))
            run_n += nb
            if first_step:
                tl = (run_loss / nb).tolist()
                ta = (run_correct.double() / nb).tolist()
                for e in range(E):
                    histories[e][0]["train_loss"] = tl[e]
                    histories[e][0]["train_acc"] = ta[e]
                first_step = False
            if cfg.rewind_iteration is not None and it == cfg.rewind_iteration:
                for j, e in enumerate(slots.tolist()):
                    rewind[e] = stack.member_state(j)
            if it % cfg.eval_every == 0 or it == cfg.max_iters:
                evaluate_now(it)
    finally:
        if bar is not None:
            bar.close()

    if slots.numel():
        for lp, p in zip(last_params, stack.params):
            lp.index_copy_(0, slots, p.detach())
    final = best_params if cfg.restore_best else last_params
    with torch.no_grad():
        for i, m in full_masks:
            final[i].mul_(m)
    stack.write_back(models, final)     # stack.names is per member: valid after select
    bl = best_loss.tolist()
    bi = best_iter.tolist()
    return [
        TrainResult(
            best_iteration=int(bi[e]),
            best_val_loss=float(bl[e]),
            stopped_iteration=stopped_at[e] if stopped_at[e] is not None else it,
            history=histories[e],
            rewind_state=rewind[e],
            stopped_by="patience" if stopped_at[e] is not None else "cap",
        )
        for e in range(E)
    ]


@torch.no_grad()
def predict_logits_ensemble(models: list[nn.Module], X: torch.Tensor, batch_size: int = 4096,
                            device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits of every model on ``X`` as one ``[E, N, C]`` CPU tensor (batched per shape group).

    Models of different shapes are fine; the result is stacked in the order of ``models``.
    """
    models = list(models)
    if not models:
        return torch.empty(0)
    dev = resolve_device(device)
    X = torch.as_tensor(X).to(_param_dtype(models[0]) or torch.float32)
    groups: dict[tuple, list[int]] = {}
    for e, m in enumerate(models):
        groups.setdefault(shape_signature(parse_mlp(m)), []).append(e)
    out: list[torch.Tensor | None] = [None] * len(models)
    for idxs in groups.values():
        stack = StackedMLP([models[e] for e in idxs], dev)
        chunks = [stack(X[i:i + batch_size].to(dev)).float().cpu()
                  for i in range(0, X.shape[0], batch_size)]
        logits = torch.cat(chunks, dim=1)
        for j, e in enumerate(idxs):
            out[e] = logits[j]
    return torch.stack(out)  # type: ignore[arg-type]
