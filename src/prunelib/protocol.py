"""How the CIFAR-10 study was run, in words the chapters print: the training protocol, its cost
against the compute budget, what the fixed-budget grid leaves out and why, and the limits of
the measurements (the ECE noise floor, the machines). Every sentence is computed from the grid's
configuration, the measured compute plan (:func:`prunelib.book.compute_plan`) and the stored
records."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from . import claims as C
from .config import SweepConfig
from .store import ResultsStore

COMPUTE_BUDGET_HOURS = 10.0
"""CPU-hours of one 2-core machine that the CIFAR-10 paper grid (both regimes) was to fit."""


def compute_budget(plan: pd.DataFrame, budget_hours: float = COMPUTE_BUDGET_HOURS) -> str:
    """The CIFAR-10 grid's cost against the budget it was sized for, from the measured plan
    (:func:`prunelib.book.compute_plan`): the hours planned, the hours stored so far and the
    hours the whole grid takes at the rate its stored phases ran. Says plainly when the grid
    overruns the budget."""
    planned, done = plan["projected hours"].sum(), plan["hours so far"].sum()
    total = plan["hours at completion"].sum(min_count=len(plan))  # NaN if a part is unmeasured
    if pd.isna(total):
        return (f"The grid was to fit about {budget_hours:g} CPU-hours of the 2-core machine; "
                "its cost cannot be projected until every regime has a stored dense network.")
    text = (f"The grid was to fit about {budget_hours:g} CPU-hours of the 2-core machine. It was "
            f"planned at {planned:.1f} hours; {done:.1f} hours of training are stored")
    if (plan["phases stored"] < plan["training phases"]).any():
        text += f", and at the rate the stored phases ran the whole grid takes {total:.1f} hours"
    else:
        text += " (the whole grid)"
    if total > 1.1 * budget_hours:
        text += f": {total / budget_hours:.1f}x the budget"
        if planned > 1.1 * budget_hours:
            text += (f" (the plan itself was {planned / budget_hours:.1f}x it; each "
                     "regime's line below says how far its runs departed from the plan)")
    return text + "."


def measurement_notes(table: pd.DataFrame, store: str | Path, records: list[dict]) -> str:
    """Two limitations of the CIFAR-10 measurements, computed: the noise floor of binned ECE
    for a perfectly calibrated predictor with the early-stopped dense network's test
    confidences (:func:`prunelib.analysis.noise_floor`, averaged over up to 3 seeds), and the
    devices and machines that computed ``records`` (as each record states them). Markdown
    bullets; a part whose runs are missing says so."""
    from .analysis import noise_floor

    lines = []
    dense = table[(table.ratio == 0) & (table.regime == "early_stop")] if len(table) else table
    if len(dense):
        # the dense network is one record per seed, listed under every technique: one row each
        dense = dense.sort_values("seed", kind="stable").drop_duplicates("seed")
        f = noise_floor(dense, ResultsStore(store), by=("ratio",), max_seeds=3).iloc[0]
        lines.append(
            f"- **ECE is noisy.** Binned ECE on the CIFAR-10 test set reads {f['ece_floor']:.3f} "
            f"(90% of draws in [{f['ece_floor_lower']:.3f}, {f['ece_floor_upper']:.3f}]) for a "
            "*perfectly calibrated* predictor with the early-stopped dense network's confidences "
            f"({min(len(dense), 3)} seeds): differences of that size are within the "
            "estimator's noise. The chapters draw this floor, and give the debiased and smooth "
            "ECE and the proper scoring rules beside it.")
    else:
        lines.append("- **ECE is noisy.** (The early-stopped dense networks are not in the store "
                     "yet, so its noise floor cannot be computed here.)")
    devices = sorted({str(r.get("device", "not recorded")) for r in records})
    machines = pd.Series([r.get("machine", "not recorded") for r in records]).value_counts()
    if len(records):
        where = "; ".join(f"{m} ({n} runs)" for m, n in machines.items())
        lines.append(f"- **Where the runs were computed.** The {len(records)} stored CIFAR-10 "
                     f"runs were computed on {', '.join(devices)}: {where}. Chapter 4 gives "
                     "their training time.")
    return "\n".join(lines)


def training_protocol(sweep: SweepConfig, records: list[dict]) -> str:
    """The CIFAR-10 chapter's training protocol in words, from the grid's configuration (its
    early-stopping part and its ``fixed`` part) and the data line of the stored records."""
    t = sweep.base["train"]
    data = next((r["data"].splitlines()[0] for r in records if r.get("data")), None)
    n_train = re.search(r"train ([\d,]+)", data or "")
    text = (f"Every network trains with {t.optimizer.capitalize()} (learning rate {t.lr:g}, "
            f"batches of {t.batch_size}) on the training split"
            + (f" of {data}" if data else "") + "; the train/validation split is drawn afresh "
            "for each seed. With early stopping, the early-stop iteration is the argmin of the "
            f"validation loss, evaluated every {t.eval_every:,} iterations; training ends after "
            f"{t.patience} evaluations without improvement or at the cap of {t.max_iters:,} "
            "iterations.")
    for part in sweep.extra:
        f = part.base["train"]
        epochs = (f" — {f.max_iters * f.batch_size / int(n_train.group(1).replace(',', '')):.0f}"
                  " epochs" if n_train else "")
        text += (f" In the `{part.base.get('regime')}` regime every training phase runs "
                 f"{f.max_iters:,} iterations{epochs} — and keeps the last weights.")
    return text


def fixed_grid_cuts(sweep: SweepConfig, plan: pd.DataFrame) -> str:
    """What the CIFAR-10 grid's ``fixed`` part leaves out relative to its main part, and why,
    from the two configurations and the measured plan
    (:func:`prunelib.book.compute_plan`)."""
    fixed = next((p for p in sweep.extra if p.base.get("regime") == "fixed"), None)
    if fixed is None:
        return "This grid has no fixed-budget part."
    by = plan.set_index("regime")
    main_ratios = [r for r in sweep.ratios if r > 0]
    fixed_ratios = [r for r in fixed.ratios if r > 0]
    controls = fixed.ratios_by_technique.get("iterative_maskreinit", tuple(fixed_ratios))
    parts = []
    if len(fixed.seeds) < len(sweep.seeds):
        parts.append(f"{len(fixed.seeds)} of the main grid's {len(sweep.seeds)} seeds (the same "
                     "seeds and splits, so the regimes pair by seed)")
    if max(fixed_ratios) < max(main_ratios):
        p8 = C.nearest(sweep.ratios, 0.8)
        parts.append(f"schedules that stop at {max(fixed_ratios):.2f} removed instead of "
                     f"{max(main_ratios):.2f} (the regime claims sit at {p8:.2f})")
    if not controls:
        parts.append("no same-mask controls")
    elif len(controls) < len(fixed_ratios):
        parts.append("same-mask controls at " + ", ".join(f"{r:.2f}" for r in controls)
                     + f" only, not at all {len(fixed_ratios)} ratios")
    if not parts:
        return "The fixed-budget grid is as large as the main one."
    t = fixed.base["train"]
    es, fx = by.loc["early_stop"], by.loc["fixed"]
    return ("To fit the compute plan, the fixed-budget grid has " + "; ".join(parts) + ". Why: "
            f"each of its training phases runs the whole budget of {t.max_iters:,} iterations "
            f"(measured {fx['s per training (measured)']:.0f} s for the dense network, against "
            f"{es['s per training (measured)']:.0f} s with early stopping), and its "
            f"{int(fx['training phases'])} phases were planned at "
            f"{fx['projected hours']:.1f} hours beside the main grid's "
            f"{es['projected hours']:.1f}.")
