"""Make Moons sweep: one batched ensemble per round vs one model at a time.

A sweep of 4 treatments x 10 ratios x 10 seeds (400 runs, structured pruning) with the
data, MLP and training budget of the book's Make Moons ``paper`` profile, computed
twice into fresh temporary stores — vectorised (all members of a
round trained as one batched model, :mod:`prunelib.ensemble`) and one model at a
time (:func:`prunelib.training.train`) — measured in one run and printed as a ratio.
Targets: vectorised >= 10x faster; vectorised sweep under 60 s on 2 cores.

    python benchmarks/moons_sweep.py [--seeds 10]
"""

import argparse
import tempfile
import time

import torch

from prunelib.config import SweepConfig
from prunelib.profiles import sweep_for
from prunelib.sweep import run_sweep


def sweep(seeds: int) -> SweepConfig:
    base = sweep_for("moons", "paper").base
    return SweepConfig(base=base, techniques=("oneshot_finetune", "oneshot_reset", "oneshot_reinit",
                                              "oneshot_randommask"),
                       ratios=tuple(round(0.1 * i, 1) for i in range(10)), seeds=tuple(range(seeds)))


def timed(vectorize: bool, seeds: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        df = run_sweep(sweep(seeds), d, progress=False, vectorize=vectorize)
        return time.perf_counter() - t0, len(df)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=10)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    timed(True, 1)  # warm-up: one-time imports (the first optimizer loads torch._dynamo, ~2 s)
    timed(False, 1)
    t_vec, n = timed(True, args.seeds)
    t_one, _ = timed(False, args.seeds)
    print(f"{n} runs (4 treatments x 10 ratios x {args.seeds} seeds)")
    print(f"vectorised:        {t_vec:7.1f} s  ({n / t_vec:6.1f} runs/s)  target < 60 s")
    print(f"one at a time:     {t_one:7.1f} s  ({n / t_one:6.1f} runs/s)")
    print(f"speed-up vectorised / one at a time: {t_one / t_vec:.1f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
