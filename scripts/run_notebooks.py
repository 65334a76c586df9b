#!/usr/bin/env python
"""Execute the book's notebooks with papermill, fresh, and fail on any error.

Default: every ``notebooks/*.ipynb`` in name order, parameter ``profile="smoke"``,
kernel ``python3``, working directory ``notebooks/``, outputs written to
``_build/smoke/`` (emptied first, so nothing stale survives). Prints the wall
time of each notebook and exits non-zero if any notebook fails.

    python scripts/run_notebooks.py                      # all, smoke profile
    python scripts/run_notebooks.py notebooks/03_make_moons.ipynb
    python scripts/run_notebooks.py -p profile paper -p seeds 3 --out _build/paper
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _resolve(value: str):
    """Type a ``-p`` value the way papermill's CLI does: bool, None, int, float, else str."""
    if value in ("True", "true"):
        return True
    if value in ("False", "false"):
        return False
    if value in ("None", "none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)"
    )
    ap.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="papermill parameter (repeatable); default: -p profile smoke",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "smoke", help="output folder")
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds")
    ap.add_argument("--keep", action="store_true", help="do not empty the output folder first")
    args = ap.parse_args(argv)

    import papermill as pm  # imported late so --help works without it

    params = {k: _resolve(v) for k, v in (args.parameter or [("profile", "smoke")])}
    notebooks = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    if not notebooks:
        print(f"no notebooks found in {NOTEBOOKS}", file=sys.stderr)
        return 1
    missing = [p for p in notebooks if not p.is_file()]
    if missing:
        print("missing: " + ", ".join(map(str, missing)), file=sys.stderr)
        return 1

    out = args.out.resolve()
    if out.exists() and not args.keep:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    print(f"parameters: {params}  kernel: {args.kernel}  cwd: {NOTEBOOKS}  out: {out}", flush=True)
    results: list[tuple[str, float, str | None]] = []
    t_all = time.perf_counter()
    for nb in notebooks:
        t0 = time.perf_counter()
        error = None
        print(f"--> {nb.name}", flush=True)
        try:
            pm.execute_notebook(
                str(nb),
                str(out / nb.name),
                parameters=params,
                kernel_name=args.kernel,
                cwd=str(nb.parent),
                execution_timeout=args.timeout,
                progress_bar=False,
                log_output=False,
            )
        except Exception as exc:  # noqa: BLE001  (a failing cell, a dead kernel, a timeout: record, go on)
            error = f"{type(exc).__name__}: {exc}"
        dt = time.perf_counter() - t0
        results.append((nb.name, dt, error))
        status = "ok" if error is None else "FAILED"
        print(f"<-- {nb.name}: {status} in {dt:.1f}s", flush=True)
        if error:
            print(error, file=sys.stderr, flush=True)

    failed = [name for name, _, err in results if err]
    print(f"\n{'notebook':<32} {'seconds':>8}  status")
    for name, dt, err in results:
        print(f"{name:<32} {dt:>8.1f}  {'FAILED' if err else 'ok'}")
    print(
        f"total {time.perf_counter() - t_all:.1f}s; {len(results) - len(failed)} ok, {len(failed)} failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
