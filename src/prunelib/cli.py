"""``prunelib`` command line: ``sweep`` a study into a results store, ``report`` it."""

from __future__ import annotations

import argparse
import sys

from .config import PROFILES, STUDIES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunelib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sweep", help="compute a study's missing runs into a results store")
    s.add_argument("study", choices=STUDIES)
    s.add_argument("--profile", choices=PROFILES, default="smoke")
    s.add_argument("--store", default="results", help="results store folder (default: results)")
    s.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda...")
    s.add_argument("--seeds", type=int, default=None, help="number of seeds (default: profile's)")
    s.add_argument("--ood-sets", default=None,
                   help="ood study: comma-separated OOD sets (cifar100, tinyimagenet, mnist, "
                        "gaussian) or 'auto' (all that can be had now, CIFAR-100 first when "
                        "online); default: the profile's offline trio")
    s.add_argument("--fresh", action="store_true", help="recompute runs already in the store")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")

    r = sub.add_parser("report", help="print one row per stored run")
    r.add_argument("--store", default="results")
    r.add_argument("--study", choices=STUDIES, default=None)
    r.add_argument("--profile", choices=PROFILES, default=None)
    r.add_argument("--format", choices=("table", "csv"), default="table")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # e.g. `prunelib report | head`
        sys.stderr.close()
        return 0


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sweep":
        from .profiles import sweep_for
        from .sweep import run_sweep

        try:
            sweep = sweep_for(args.study, args.profile, seeds=args.seeds, ood_sets=args.ood_sets)
            sweep.runs()  # validate every configuration before any training
        except ValueError as e:
            print(f"prunelib: {e}", file=sys.stderr)
            return 2
        run_sweep(sweep, args.store, fresh=args.fresh, device=args.device,
                  progress=not args.no_progress)
        return 0

    from .sweep import REPORT_COLUMNS, load_results

    df = load_results(args.store, study=args.study, profile=args.profile)
    if df.empty:
        print(f"prunelib: no records in {args.store}" + (f" for study {args.study}" if args.study else ""),
              file=sys.stderr)
        return 1
    df = df.sort_values(["study", "profile", "prune", "technique", "ratio", "seed"])
    ood = [c for c in df.columns if c.startswith(("auroc_", "fpr95_", "aupr_"))]
    cols = REPORT_COLUMNS + [c for c in ("ece_ts", "brier", "nll", "parameters") if c in df] + ood
    if args.format == "csv":
        df[cols].to_csv(sys.stdout, index=False)
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
