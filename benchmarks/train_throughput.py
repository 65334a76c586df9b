"""Training throughput: prunelib's loop vs a bare loop vs the poster's loop; ensembles.

Part 1, the CIFAR-10 shape (the poster's CNN, random 32x32x3 images in memory),
images per second of

* ``prunelib.training.train`` (SGD with momentum, batch 128, one validation pass
  per epoch over a small split, history and early-stopping bookkeeping included);
* a minimal bare PyTorch loop on the same in-memory tensors, same batch size
  (index a permutation, forward, loss, zero_grad, backward, step), once as a user
  would write it and once with the channels-last memory format that
  ``train`` uses for images (that pair isolates the loop's own overhead);
* the poster's loop, as in the PyTorch CIFAR-10 tutorial its code follows: batch
  size 4 through a ``DataLoader`` over a dataset that, like
  ``torchvision.datasets.CIFAR10``, keeps uint8 HWC images and turns each one into
  a PIL image and then a normalised tensor (``ToTensor`` + ``Normalize``) on every
  access; SGD with momentum.

Targets (issue 5): library >= 0.9x the bare loop, >= 20x the poster's loop.

Part 2, Make Moons MLPs: E = 40 members trained as one batched ensemble
(``prunelib.ensemble.train_ensemble``) vs one at a time with ``train``, at the sizes of
the ``paper`` profile (hidden layers and training points read from
``prunelib.profiles``; full batch, Adam), the same with mini-batches of 64, and the
``smoke`` profile's size; plus the raw step time of
the two ways of batching (``torch.baddbmm`` on stacked weights, which
``train_ensemble`` uses, vs ``torch.func.stack_module_state`` + ``vmap``).
Target (issue 5): >= 10x.

Loops are interleaved over rounds and the best round reported (as ``timeit``
does: on a shared machine the slower rounds measure the neighbours), with the
ratio of the medians beside it. One run, about 30 s on 2 idle CPU cores::

    python benchmarks/train_throughput.py [--rounds 5] [--images 8192] [--members 40]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from prunelib.ensemble import StackedMLP, train_ensemble
from prunelib.models import MLP, PosterCNN
from prunelib.profiles import sweep_for
from prunelib.training import TrainConfig, train


def mlp(hidden, seed):
    torch.manual_seed(seed)
    return MLP(2, hidden, 2)


# ---------------------------------------------------------------------------
# part 1: CIFAR-10 shape
# ---------------------------------------------------------------------------
LR, MOMENTUM = 1e-3, 0.9


def run_library(X, y, val, batch, epochs):
    torch.manual_seed(0)
    model = PosterCNN()
    iters = epochs * (X.shape[0] // batch)
    cfg = TrainConfig(optimizer="sgd", lr=LR, momentum=MOMENTUM, batch_size=batch,
                      max_iters=iters, eval_every=X.shape[0] // batch, patience=None)
    t = time.perf_counter()
    train(model, (X, y), val, cfg)
    return iters * batch / (time.perf_counter() - t)


def run_bare(X, y, batch, epochs, channels_last=False):
    torch.manual_seed(0)
    model = PosterCNN()
    t = time.perf_counter()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        X = X.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    n = X.shape[0]
    seen = 0
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n - batch + 1, batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += batch
    return seen / (time.perf_counter() - t)


class PILImages(torch.utils.data.Dataset):
    """uint8 HWC images transformed one by one on access, as torchvision's CIFAR10 does."""

    def __init__(self, X, y):
        from torchvision import transforms

        self.images = (X.permute(0, 2, 3, 1) * 255).clamp(0, 255).to(torch.uint8).numpy()
        self.labels = y.tolist()
        self.transform = transforms.Compose([
            transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def run_poster(X, y, images):
    torch.manual_seed(0)
    model = PosterCNN()
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loader = DataLoader(PILImages(X, y), batch_size=4, shuffle=True)
    t = time.perf_counter()
    seen = 0
    for inputs, labels in loader:
        opt.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        opt.step()
        seen += 4
        if seen >= images:
            break
    return seen / (time.perf_counter() - t)


def part1(args):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(args.images, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.images,), generator=g)
    val = (torch.randn(512, 3, 32, 32, generator=g), torch.randint(0, 10, (512,), generator=g))
    batch, epochs = args.batch, args.epochs
    run_library(X[:1024], y[:1024], val, batch, 1)   # warm up
    run_bare(X[:1024], y[:1024], batch, 1)
    res = {"library": [], "bare": [], "bare_cl": [], "poster": []}
    for _ in range(args.rounds):
        res["library"].append(run_library(X, y, val, batch, epochs))
        res["bare"].append(run_bare(X, y, batch, epochs))
        res["bare_cl"].append(run_bare(X, y, batch, epochs, channels_last=True))
        res["poster"].append(run_poster(X, y, args.poster_images))
    best = {k: max(v) for k, v in res.items()}
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"\n== CIFAR-10 shape: PosterCNN, {args.images} random images in memory, "
          f"batch {batch}, {epochs} epoch(s) per run, best of {args.rounds} interleaved rounds")
    for k, label in [("library", "prunelib train()"),
                     ("bare", "bare in-memory loop"),
                     ("bare_cl", "bare loop + channels_last"),
                     ("poster", "poster loop (DataLoader, batch 4)")]:
        runs = ", ".join(f"{v:,.0f}" for v in res[k])
        print(f"  {label:36s} {best[k]:10,.0f} images/s   (rounds: {runs})")
    ratios = {}
    for key, other, label, note in [
        ("library_vs_bare", "bare", "bare loop", "target >= 0.9x"),
        ("library_vs_bare_cl", "bare_cl", "bare loop + ch.-last", "the loop's own overhead"),
        ("library_vs_poster", "poster", "poster loop", "target >= 20x"),
    ]:
        ratios[key] = best["library"] / best[other]
        print(f"  ratio library / {label:22s} {ratios[key]:6.2f}x  "
              f"(medians: {med['library'] / med[other]:5.2f}x)   {note}")
    return ratios


# ---------------------------------------------------------------------------
# part 2: Make Moons ensembles
# ---------------------------------------------------------------------------
def moons(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * torch.pi
    y = torch.randint(0, 2, (n,), generator=g)
    X = torch.stack([torch.cos(t) + y, torch.sin(t) * (1 - 2 * y) + 0.5 * y], 1)
    return X + 0.25 * torch.randn(n, 2, generator=g), y


def ensemble_case(name, hidden, n_train, batch, iters, members, rounds, eval_every=25):
    """Best-of-``rounds`` seconds: all members vectorised vs one at a time."""
    tr, va = moons(n_train, 0), moons(max(n_train // 2, 100), 1)
    cfg = TrainConfig(optimizer="adam", lr=0.01, batch_size=batch, max_iters=iters,
                      eval_every=eval_every, patience=None)
    seeds = list(range(members))
    t_ens, t_seq = [], []
    for _ in range(rounds):
        models = [mlp(hidden, s) for s in seeds]
        t = time.perf_counter()
        train_ensemble(models, None, tr, va, cfg, seeds=seeds)
        t_ens.append(time.perf_counter() - t)
        models = [mlp(hidden, s) for s in seeds]
        t = time.perf_counter()
        for s, m in zip(seeds, models):
            train(m, tr, va, TrainConfig(**{**cfg.__dict__, "seed": s}))
        t_seq.append(time.perf_counter() - t)
    te, ts = min(t_ens), min(t_seq)
    print(f"  {name:40s} vectorised {te:6.2f} s   one at a time {ts:6.2f} s   "
          f"speedup {ts / te:5.1f}x  (medians: "
          f"{statistics.median(t_seq) / statistics.median(t_ens):4.1f}x)")
    return ts / te


def raw_steps(hidden, n, members, steps=60):
    """Seconds per step: stacked baddbmm vs stack_module_state + vmap (full batch)."""
    from torch.func import functional_call, stack_module_state, vmap

    X, y = moons(n, 0)
    models = [mlp(hidden, s) for s in range(members)]
    yb = y.expand(members, -1)

    st = StackedMLP(models)
    opt = torch.optim.Adam(st.params, lr=0.01)

    def step_bmm():
        out = st(X)
        loss = F.cross_entropy(out.transpose(1, 2), yb, reduction="none").mean(1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    opt2 = torch.optim.Adam(list(params.values()), lr=0.01)

    def f(p, b, x):
        return functional_call(base, (p, b), (x,))

    def step_vmap():
        out = vmap(f, in_dims=(0, 0, None))(params, buffers, X)
        loss = F.cross_entropy(out.transpose(1, 2), yb, reduction="none").mean(1).sum()
        opt2.zero_grad()
        loss.backward()
        opt2.step()

    times = {"bmm": [], "vmap": []}
    for _ in range(3):  # interleaved; best of 3
        for name, fn in (("bmm", step_bmm), ("vmap", step_vmap)):
            fn()
            t = time.perf_counter()
            for _ in range(steps // 3):
                fn()
            times[name].append((time.perf_counter() - t) / (steps // 3))
    return {k: min(v) for k, v in times.items()}


def part2(args):
    E, it, r = args.members, args.moons_iters, args.moons_rounds
    sizes = {}
    for profile in ("paper", "smoke"):
        base = sweep_for("moons", profile).base
        sizes[profile] = (tuple(base["model_kwargs"]["hidden"]), base["data_kwargs"]["n_train"])
    (h_p, n_p), (h_s, n_s) = sizes["paper"], sizes["smoke"]
    hp = "-".join(map(str, h_p))
    print(f"\n== Make Moons MLP ensembles: E = {E} members, Adam, {it} iterations, evaluation "
          f"every 25, no early stopping, best of {r} rounds")
    out = {
        "paper_full_batch": ensemble_case(
            f"paper size ({hp}, n={n_p}, full batch)", h_p, n_p, None, it, E, r),
        "paper_minibatch64": ensemble_case(
            f"paper size ({hp}, n={n_p}, batch 64)", h_p, n_p, 64, it, E, r),
        "smoke_full_batch": ensemble_case(
            f"smoke size ({'-'.join(map(str, h_s))}, n={n_s}, full batch)", h_s, n_s, None, it, E, r),
    }
    t = raw_steps(h_p, n_p, E)
    print(f"  raw step, paper size, full batch: baddbmm {t['bmm'] * 1e3:.2f} ms, "
          f"stack_module_state+vmap {t['vmap'] * 1e3:.2f} ms "
          f"(vmap / baddbmm {t['vmap'] / t['bmm']:.2f}x)")
    print("  target >= 10x (issue 5)")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--poster-images", type=int, default=2000)
    ap.add_argument("--members", type=int, default=40)
    ap.add_argument("--moons-iters", type=int, default=150)
    ap.add_argument("--moons-rounds", type=int, default=2)
    ap.add_argument("--skip-cifar", action="store_true")
    ap.add_argument("--skip-moons", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    if not args.skip_cifar:
        part1(args)
    if not args.skip_moons:
        part2(args)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
