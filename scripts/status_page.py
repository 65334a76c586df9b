#!/usr/bin/env python
"""Write the book's execution-status table: for every executed page of ``_toc.yml``, when
the book build executed it, how long it took, on which machine and library versions, and
how many runs of its grid the results store holds.

The book build (``jupyter-book build``, execution mode ``cache``) executes each notebook
and records it in the jupyter-cache database ``_build/.jupyter_cache``: one record per
executed version of a page, with its time of caching and its execution time in seconds.
The page that is read is the record matching the page's current code (the one the build
used). The cache does not note the machine, so this script does: ``--begin`` (run just
before the build) notes the start time, and the run after the build stamps every record
created since then with this machine, Python, torch and prunelib versions and the git
commit (``_build/status/executions.json``). Records from an earlier build keep the stamp
they got then.

The table is written to ``_build/status/execution.md``, which ``book/status.md`` includes;
``make book`` runs this script before and after ``jupyter-book build`` and, when the
table changed, builds again: Sphinx then re-reads only the status page and no notebook
is executed twice (they come from the cache).

    python scripts/status_page.py --begin     # before the build: note the start time
    python scripts/status_page.py             # after it: stamp new executions, write the table
    python scripts/status_page.py --exit-code-if-changed 10   # ... and say whether it changed
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toc import source_of, toc_entries  # the scripts' shared toc reader

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("_build") / ".jupyter_cache"
OUT = Path("_build") / "status" / "execution.md"
STAMPS = Path("_build") / "status" / "executions.json"
STORE = Path("results")

#: the study whose ``paper`` grid each chapter draws from the results store
CHAPTER_STUDIES: dict[str, str] = {
    "notebooks/02_lottery_ticket": "moons",
    "notebooks/03_make_moons": "moons",
    "notebooks/04_cifar10": "cifar10",
    "notebooks/05_ood": "ood",
}
PROFILE = "paper"


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------


def read_notebook(path: Path):
    """The page as the build executes it (a notebook; None for a page without code)."""
    import nbformat

    if path.suffix == ".ipynb":
        return nbformat.read(path, as_version=4)
    from myst_nb.core.read import is_myst_markdown_notebook, read_myst_markdown_notebook

    text = path.read_text(encoding="utf8")
    if not is_myst_markdown_notebook(text):
        return None
    return read_myst_markdown_notebook(text, add_source_map=True, path=str(path))


# --------------------------------------------------------------------------------------------
# The environment and the stamps
# --------------------------------------------------------------------------------------------


def environment(root: Path = ROOT) -> dict[str, str]:
    """This machine and the versions that an execution in this process's environment uses."""
    import torch

    import prunelib
    from prunelib.sweep import machine_description

    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "src", "notebooks", "book"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"machine": machine_description(), "python": platform.python_version(),
            "torch": torch.__version__, "prunelib": prunelib.__version__, "commit": commit}


def _utc(t: dt.datetime) -> dt.datetime:
    """jupyter-cache writes UTC times and SQLite returns them without a time zone."""
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def load_stamps(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"build_started": None, "executions": {}}
    data.setdefault("build_started", None)
    data.setdefault("executions", {})
    return data


# --------------------------------------------------------------------------------------------
# The results store
# --------------------------------------------------------------------------------------------


def store_counts(studies, store: Path,
                 grid_for: Callable[[str], object] | None = None) -> dict[str, tuple[int, int]]:
    """``{study: (runs of its grid in the store, runs in the grid)}``, read only.

    The grid is bound to the data identity of its records in the store (never to data found
    now, so nothing is loaded or downloaded); a store without any of its runs holds 0.
    """
    import warnings

    from prunelib.store import CorruptRecordWarning, ResultsStore
    from prunelib.sweep import bind_data, sweep_results

    if grid_for is None:
        from prunelib.profiles import sweep_for

        def grid_for(study):
            return sweep_for(study, PROFILE)

    rs = ResultsStore(store)
    out = {}
    for study in dict.fromkeys(studies):
        sweep = grid_for(study)
        total = len(sweep.runs())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptRecordWarning)
            try:
                bound = bind_data(sweep, rs, source="store")
            except ValueError:  # the store holds none of the grid's runs
                held = 0
            else:
                held = len(sweep_results(bound, rs))
        out[study] = (held, total)
    return out


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    entry: str
    executed: dt.datetime | None = None
    seconds: float | None = None
    env: dict = field(default_factory=dict)
    study: str | None = None
    runs: tuple[int, int] | None = None
    note: str = ""


def collect(root: Path, cache_dir: Path, stamps: dict, store: Path | None = None,
            studies: Mapping[str, str] = CHAPTER_STUDIES,
            grid_for: Callable[[str], object] | None = None) -> list[Row]:
    """One :class:`Row` per executed page of the toc; stamps new executions in ``stamps``."""
    pages = []
    for entry in toc_entries(root):
        path = source_of(root, entry)
        nb = read_notebook(path) if path is not None else None
        if nb is not None:
            pages.append((entry, nb))
    cache = None
    if (cache_dir / "global.db").is_file():
        from jupyter_cache import get_cache

        cache = get_cache(str(cache_dir))
    started = stamps.get("build_started")
    started = dt.datetime.fromisoformat(started) if started else None
    env = None
    rows = []
    live = set()
    for entry, nb in pages:
        row = Row(entry, study=studies.get(entry))
        record = None
        if cache is not None:
            try:
                record = cache.match_cache_notebook(nb)
            except KeyError:
                record = None
        if record is None:
            row.note = "not executed since its code last changed"
        else:
            row.executed = _utc(record.created)
            row.seconds = (record.data or {}).get("execution_seconds")
            # the same code executed again (e.g. after the store changed) is a new execution
            key = f"{record.hashkey}@{row.executed.isoformat()}"
            live.add(key)
            stamp = stamps["executions"].get(key)
            if stamp is None and started is not None and row.executed >= started:
                env = env or environment(root)
                stamp = stamps["executions"][key] = dict(env)
            if stamp is None:
                row.note = "executed before the machine was recorded"
            else:
                row.env = stamp
        rows.append(row)
    # forget the stamps of records that are gone (a cleared cache, older versions of a page)
    stamps["executions"] = {k: v for k, v in stamps["executions"].items() if k in live}
    if store is not None:
        counts = store_counts([r.study for r in rows if r.study], store, grid_for)
        for row in rows:
            if row.study:
                row.runs = counts[row.study]
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def render(rows: list[Row], store_label: str = "results/") -> str:
    """The table as MyST Markdown (included by ``book/status.md``)."""
    lines = [
        "| Page | Executed (UTC) | Time | Machine | Versions | Runs in the store |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    total = 0.0
    for r in rows:
        page = f"{{doc}}`/{r.entry}`"
        when = r.executed.strftime("%Y-%m-%d %H:%M") if r.executed else "—"
        took = _duration(r.seconds) if r.executed else "—"
        total += r.seconds or 0.0
        if r.env:
            machine = r.env.get("machine", "?")
            versions = (f"Python {r.env.get('python', '?')}, torch {r.env.get('torch', '?')}, "
                        f"prunelib {r.env.get('prunelib', '?')}; commit "
                        f"{r.env.get('commit', '?')}")
        else:
            machine, versions = (r.note or "—"), "—"
        if r.runs is not None:
            held, grid = r.runs
            runs = f"{held:,} of {grid:,} (`{r.study}`, {PROFILE})"
        else:
            runs = "—"
        lines.append("| " + " | ".join(_cell(c) for c in (page, when, took, machine, versions,
                                                          runs)) + " |")
    executed = [r for r in rows if r.executed]
    lines += [
        "",
        (f"{len(executed)} of {len(rows)} executed pages in the execution cache; their "
         f"execution took {_duration(total)} in all. Runs are counted in `{store_label}` "
         f"against each chapter's `{PROFILE}` grid (`prunelib.profiles.sweep_for`)."),
        "",
    ]
    return "\n".join(lines)


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (keeps Sphinx from re-reading)."""
    if path.is_file() and path.read_text(encoding="utf8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf8")
    return True


PLACEHOLDER = ("*The execution status is written when the book is built with `make book`; "
               "this build has not executed the pages yet.*\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="the book's root (holds _toc.yml)")
    ap.add_argument("--cache", type=Path, help=f"jupyter-cache folder (default: ROOT/{CACHE})")
    ap.add_argument("--store", type=Path, help=f"results store (default: ROOT/{STORE})")
    ap.add_argument("--out", type=Path, help=f"the table (default: ROOT/{OUT})")
    ap.add_argument("--stamps", type=Path, help=f"machine stamps (default: ROOT/{STAMPS})")
    ap.add_argument("--begin", action="store_true",
                    help="before the build: note its start time (and write a placeholder "
                         "table if there is none)")
    ap.add_argument("--exit-code-if-changed", type=int, default=0, metavar="N",
                    help="exit with N when the table changed (default: 0)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    cache = args.cache or root / CACHE
    store = args.store or root / STORE
    out = args.out or root / OUT
    stamps_path = args.stamps or root / STAMPS

    stamps = load_stamps(stamps_path)
    if args.begin:
        stamps["build_started"] = dt.datetime.now(dt.timezone.utc).isoformat()
        write_if_changed(stamps_path, json.dumps(stamps, indent=1, sort_keys=True))
        if not out.is_file():
            write_if_changed(out, PLACEHOLDER)
        return 0
    rows = collect(root, cache, stamps, store)
    write_if_changed(stamps_path, json.dumps(stamps, indent=1, sort_keys=True))
    label = store.relative_to(root).as_posix() + "/" if store.is_relative_to(root) else str(store)
    changed = write_if_changed(out, render(rows, label))
    print(f"status page: {out} {'updated' if changed else 'unchanged'} "
          f"({sum(r.executed is not None for r in rows)} of {len(rows)} pages executed)")
    return args.exit_code_if_changed if changed else 0


if __name__ == "__main__":
    sys.exit(main())
