"""``prunelib`` command line: ``sweep`` a study into a results store, ``report`` it.

Every input of a sweep (store, device, data files and arrays, seeds) is checked before any
training. A wrong one ends the command with one line, ``prunelib: <what is wrong and how
to fix it>``, and exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from . import __version__
from .config import PROFILES, STUDIES

EPILOG = """\
examples:
  prunelib sweep moons --profile smoke --store results
  prunelib sweep ood --profile paper --store results   # after `prunelib sweep cifar10`
  prunelib sweep cifar10 --profile paper --store results --executor local --workers 4
  prunelib sweep cifar10 --profile large --store /shared/results --executor slurm \
      --slurm-partition gpu --slurm-gpus 1 --slurm-time 2:00:00   # needs prunelib[cluster]
  prunelib report --store results --study moons --aggregate
  prunelib store seal --store results   # checksum records written by an older prunelib

exit status: 0 done; 1 nothing to report, nothing computed, a group failed (distributed
sweeps), or an unexpected error;
2 a wrong input (one line on stderr says what and how to fix it); 130 interrupted.
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help with ``(default: ...)`` after every option that has a default worth showing."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _TopFormatter(_Formatter, argparse.RawDescriptionHelpFormatter):
    """The top-level help: its description and examples keep their lines."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunelib", description=__doc__.replace("``", ""),
                                epilog=EPILOG, formatter_class=_TopFormatter)
    p.add_argument("--version", action="version", version=f"prunelib {__version__}")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error instead of one line")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error instead of one line")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="what to do (`prunelib COMMAND --help` for its options)")

    s = sub.add_parser(
        "sweep", parents=[common], formatter_class=_Formatter,
        help="compute a study's missing runs into a results store",
        description="Compute the runs of a study's grid that are not in the store yet (all of "
                    "them with --fresh). Runs are written one by one as they finish, so an "
                    "interrupted sweep resumes where it stopped. Ends with one summary line.")
    s.add_argument("study", choices=STUDIES,
                   help="moons (Make Moons MLPs), cifar10 (CIFAR-10 CNNs) or ood (the stored "
                        "cifar10 networks evaluated on OOD sets; run the cifar10 sweep first)")
    s.add_argument("--profile", choices=PROFILES, default="smoke",
                   help="smoke: a tiny grid in seconds; paper: the book's grid; large: Frankle "
                        "& Carbin's Conv-2 on CIFAR-10 (cifar10 and ood; for a GPU or a cluster)")
    s.add_argument("--store", default="results", help="results store folder")
    s.add_argument("--device", default="auto",
                   help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:<index> or mps")
    s.add_argument("--seeds", type=int, default=None,
                   help="number of seeds, 1 to 1000 (default: the profile's)")
    s.add_argument("--ood-sets", default=None,
                   help="ood study: comma-separated OOD sets (cifar100, tinyimagenet, mnist, "
                        "gaussian) or 'auto' (all that can be had now, CIFAR-100 first when "
                        "online) (default: the profile's offline trio tinyimagenet,mnist,"
                        "gaussian)")
    s.add_argument("--fresh", action="store_true", help="recompute runs already in the store")
    s.add_argument("--no-progress", action="store_true",
                   help="no progress bar (the summary line is still printed)")
    x = s.add_argument_group(
        "executors", "Where the runs are computed, one execution group (a seed's runs sharing "
        "the dense phase) at a time. Every worker claims a group in the store before computing "
        "it, so sweeps sharing a store never compute a group twice; a rerun computes only what "
        "is missing. Logs go under STORE/.jobs/.")
    x.add_argument("--executor", choices=("serial", "local", "slurm"), default="serial",
                   help="serial: in this process; local: --workers processes on this machine; "
                        "slurm: one Slurm array task per group, through submitit (pip install "
                        "'prunelib[cluster]')")
    x.add_argument("--workers", type=int, default=None, metavar="N",
                   help="--executor local: worker processes (default: one per CPU core, at most "
                        "one per group)")
    x.add_argument("--slurm-partition", default=None, metavar="NAME",
                   help="--executor slurm: the partition (default: the cluster's)")
    x.add_argument("--slurm-time", default=None, metavar="TIME",
                   help="--executor slurm: time limit of one task: minutes, H:MM:SS or "
                        "D-HH:MM:SS (default: 12:00:00)")
    x.add_argument("--slurm-cpus", type=int, default=None, metavar="N",
                   help="--executor slurm: CPUs per task (default: 4)")
    x.add_argument("--slurm-gpus", type=int, default=None, metavar="N",
                   help="--executor slurm: GPUs per task (default: 0)")
    x.add_argument("--slurm-array-parallelism", type=int, default=None, metavar="N",
                   help="--executor slurm: at most this many tasks at once (default: 32)")
    x.add_argument("--slurm-folder", default=None, metavar="FOLDER",
                   help="--executor slurm: folder of the jobs' logs and submission files, on a "
                        "file system the nodes share (default: STORE/.jobs/<sweep>/slurm)")

    r = sub.add_parser(
        "report", parents=[common], formatter_class=_Formatter,
        help="print the stored runs: one row per run, or aggregated over seeds",
        description="Print every valid record of a store as a table (one row per run) or, with "
                    "--aggregate, the mean and 95% t interval over seeds per study, profile, "
                    "regime, prune kind, technique and ratio. Corrupt or malformed records are "
                    "skipped and named on stderr. cap_stopped is 1 for an early-stopping run "
                    "that ended at the iteration cap rather than by patience, and empty for "
                    "fixed-budget runs, which always train to their budget.")
    r.add_argument("--store", default="results", help="results store folder to read")
    r.add_argument("--study", choices=STUDIES, default=None,
                   help="only this study's records (default: every study)")
    r.add_argument("--profile", choices=PROFILES, default=None,
                   help="only this profile's records (default: every profile)")
    r.add_argument("--format", choices=("table", "csv"), default="table",
                   help="a text table, or CSV for other tools")
    r.add_argument("--aggregate", action="store_true",
                   help="mean ± 95%% interval over seeds per study, profile, regime, prune kind, "
                        "technique and ratio (prunelib.analysis.summarise) instead of one row "
                        "per run; CSV has <metric>, <metric>_lower, <metric>_upper columns")
    r.add_argument("--metrics", default="accuracy,ece",
                   help="with --aggregate: comma-separated metric columns to aggregate")

    st = sub.add_parser(
        "store", parents=[common], formatter_class=_Formatter,
        help="maintain a results store (seal)",
        description="Maintain a results store.")
    ss = st.add_subparsers(dest="action", required=True, metavar="ACTION",
                           help="what to do with the store")
    seal = ss.add_parser(
        "seal", parents=[common], formatter_class=_Formatter,
        help="add the record checksum to records written by an older prunelib",
        description="Records carry a checksum of their own content, checked on every read; "
                    "records without one (written by a prunelib before it, e.g. by a sweep "
                    "that was running during an upgrade) are reported as corrupt. This adds "
                    "the checksum to each such record that is otherwise verified (its key "
                    "matches its configuration, its arrays match their checksum). Run it on "
                    "stores nobody has edited by hand.")
    seal.add_argument("--store", default="results", help="results store folder")
    seal.add_argument("--study", choices=STUDIES, default=None,
                      help="only this study's records (default: every study)")
    return p


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or e.__class__.__name__


def _user_error(e: BaseException) -> bool:
    """A wrong input (bad value, missing data): reported in one line with exit status 2."""
    if isinstance(e, ValueError):
        return True
    data = sys.modules.get("prunelib.data")
    missing = getattr(data, "DataNotFoundError", None) if data is not None else None
    return missing is not None and isinstance(e, missing)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"prunelib: warning: {_one_line(message) if isinstance(message, Warning) else message}",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _main(argv)
    except BrokenPipeError:  # e.g. `prunelib report | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print("prunelib: interrupted; the runs finished so far are in the store: run the same "
              "command again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # one line for the user, the traceback with --debug
        if debug:
            raise
        if _user_error(e):
            print(f"prunelib: {_one_line(e)}", file=sys.stderr)
            return 2
        print(f"prunelib: unexpected error: {e.__class__.__name__}: {_one_line(e)} (run again "
              "with --debug for the traceback)", file=sys.stderr)
        return 1


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "store":
        return _seal(args)
    return _report(args)


def _slurm_options(args):
    """The Slurm options given, checked (None for another executor, which must get none)."""
    from .executors import SlurmOptions
    from .preflight import PreflightError

    given = {k: getattr(args, f"slurm_{k}") for k in ("partition", "time", "cpus", "gpus",
                                                     "array_parallelism", "folder")}
    given = {k: v for k, v in given.items() if v is not None}
    if args.executor != "slurm":
        if given:
            flag = "--slurm-" + next(iter(given)).replace("_", "-")
            raise PreflightError(f"{flag} applies to --executor slurm only (this sweep's executor "
                                 f"is {args.executor})")
        return None
    options = SlurmOptions(**given)
    options.check()
    return options


def _sweep(args) -> int:
    from .preflight import (
        PreflightError,
        check_data,
        check_ood_sources,
        check_seeds,
        check_store,
        check_sweep,
    )
    from .profiles import sweep_for
    from .sweep import run_sweep

    check_seeds(args.seeds)
    if args.workers is not None and (args.executor != "local" or args.workers < 1):
        raise PreflightError("--workers applies to --executor local and must be >= 1, got "
                             f"--workers {args.workers} with --executor {args.executor}")
    slurm = _slurm_options(args)
    sweep = sweep_for(args.study, args.profile, seeds=args.seeds, ood_sets=args.ood_sets)
    sweep.runs()  # validate every configuration before anything else
    check_ood_sources(sweep, args.store)  # before the data: the ood study needs no training
    if args.executor == "slurm":  # the device is the compute nodes', resolved there
        check_store(args.store, write=False, study=args.study)
        check_data(sweep)
        device = args.device
    else:
        device = check_sweep(sweep, args.store, args.device)
    df = run_sweep(sweep, args.store, fresh=args.fresh, device=device,
                   progress=not args.no_progress, summary=True, executor=args.executor,
                   workers=args.workers, slurm=slurm)
    outcome = df.attrs.get("sweep", {})
    if outcome.get("failed"):
        print(f"prunelib: {len(outcome['failed'])} group(s) failed (see above, and their logs); "
              "the runs finished are in the store: run the same command again to compute the "
              "rest", file=sys.stderr)
        return 1
    if outcome.get("asked") and not outcome.get("computed"):
        why = "see the warnings above"
        if outcome.get("held") == outcome["asked"]:
            why = ("other workers are computing them (see the warnings above): run the same "
                   "command again when they are done")
        elif args.study == "ood":
            why = (f"the ood study evaluates the stored cifar10 networks and none of theirs is "
                   f"in {args.store}: run `prunelib sweep cifar10 --profile {args.profile} "
                   f"--store {args.store}` first")
        print(f"prunelib: none of the {outcome['asked']} runs to compute was computed: {why}",
              file=sys.stderr)
        return 1
    return 0


def _existing_store(store: str) -> Path:
    from .preflight import PreflightError

    root = Path(store)
    if not root.exists():
        raise PreflightError(f"the store {root} does not exist: give --store the folder a sweep "
                             "wrote (prunelib sweep ... --store FOLDER)")
    if not root.is_dir():
        raise PreflightError(f"the store {root} is a file, not a folder: give --store the folder "
                             "a sweep wrote")
    return root


def _seal(args) -> int:
    from .preflight import check_store
    from .store import ResultsStore

    root = _existing_store(args.store)
    check_store(root, write=True)
    n = ResultsStore(root).seal(args.study)
    print(f"sealed {n} record(s) in {root}" + (f" ({args.study})" if args.study else ""))
    return 0


def _report(args) -> int:
    from .sweep import REPORT_COLUMNS, aggregate_results, load_results

    root = _existing_store(args.store)
    df = load_results(root, study=args.study, profile=args.profile)
    if df.empty:
        print(f"prunelib: no records in {args.store}" + (f" for study {args.study}" if args.study else ""),
              file=sys.stderr)
        return 1
    import pandas as pd

    if args.aggregate:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in metrics if m not in df]
        if not metrics or unknown:
            from .preflight import PreflightError

            numeric = sorted(c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]))
            raise PreflightError(f"no metric column {unknown[0] if unknown else '(none given)'!r}"
                                 f" in the records: give --metrics some of {', '.join(numeric)}")
        agg = aggregate_results(df, metrics=metrics)
        if args.format == "csv":
            agg.to_csv(sys.stdout, index=False)
            return 0
        from .analysis import format_interval

        shown = agg[[c for c in agg.columns if not c.endswith(("_lower", "_upper"))]].copy()
        for m in metrics:
            shown[m] = [format_interval(a, lo, hi, digits=4)
                        for a, lo, hi in zip(agg[m], agg[f"{m}_lower"], agg[f"{m}_upper"])]
            shown = shown.rename(columns={m: f"{m} (mean ± 95% CI)"})
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(shown.to_string(index=False))
        return 0
    df = df.sort_values(["study", "profile", "prune", "technique", "ratio", "seed"])
    ood = [c for c in df.columns if c.startswith(("auroc_", "fpr95_", "aupr_"))]
    cols = REPORT_COLUMNS + [c for c in ("ece_ts", "brier", "nll", "parameters") if c in df] + ood
    table = df.reindex(columns=cols)  # every report column, even where no record has it
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
