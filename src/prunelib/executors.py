"""Sweeps past one machine: worker processes here, or Slurm jobs through ``submitit``.

A sweep's unit of work is an execution group (:func:`prunelib.experiments.execution_groups`:
a seed's runs of one regime, which share the dense phase and the prefixes of the iterative
schedules), so no shared work is computed twice. Three executors compute them:

* ``serial`` -- this process, group after group (:func:`prunelib.sweep.run_sweep`'s default);
* ``local`` -- ``workers`` worker processes on this machine (``python -m
  prunelib.executors``), each taking the next group nobody holds;
* ``slurm`` -- one Slurm array task per group, submitted with ``submitit`` (``pip install
  'prunelib[cluster]'``; :class:`SlurmOptions`: partition, time limit, CPUs and GPUs per
  task, how many tasks run at once, where the logs go).

Every worker claims a group in the store before computing it (:meth:`prunelib.store.
ResultsStore.claim`: an atomic claim file with host, pid and a heartbeat; stale claims
expire), so two workers -- or two users sharing a store -- never compute the same group at
once, and a crashed worker's group is picked up again by the next pass. Records are written
atomically, one by one, as today. Each worker also leaves one small event file per group it
started, finished, failed or found held under ``<store>/.jobs/<sweep>/events/``; the driver
reads them for its progress bar over groups and its report (failures with the log that has
the traceback). A rerun computes only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from .config import RunConfig
from .slurm import SlurmOptions, parse_slurm_time, slurm_executor, submit_slurm
from .store import ResultsStore

__all__ = ["EXECUTORS", "SlurmOptions", "parse_slurm_time", "run_distributed", "run_group_job",
           "slurm_executor", "submit_slurm", "work_groups"]  # Slurm's four: prunelib.slurm

EXECUTORS = ("serial", "local", "slurm")
#: where a distributed sweep's events and worker logs go, under the store
JOBS_FOLDER = ".jobs"


# ---------------------------------------------------------------------------------------------
# the worker: claim, compute, release, one group after another
# ---------------------------------------------------------------------------------------------
def _missing(store: ResultsStore, group: list[RunConfig]) -> list[RunConfig]:
    return [c for c in group if store.load(c) is None]


def _event(events: Path | None, gid: str, kind: str, worker: str, **info) -> None:
    """One event file: ``<gid>.<kind>.<worker>.<random>.event`` (JSON) (atomic: written, then renamed)."""
    if events is None:
        return
    from .files import HOST, atomic_write

    body = {"group": gid, "kind": kind, "worker": worker, "host": HOST,
            "hostname": socket.gethostname(), "pid": os.getpid(), "time": time.time(), **info}
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", worker) or "worker"
    atomic_write(events / f"{gid}.{kind}.{safe}.{secrets.token_hex(3)}.event",
                  json.dumps(body, sort_keys=True).encode())


def read_events(events: Path) -> list[dict]:
    """Every event a distributed sweep's workers left, oldest first."""
    out = []
    for p in sorted(events.glob("*.event")) if events.is_dir() else []:
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda e: e.get("time", 0))


def work_groups(groups: list[list[RunConfig]], store: ResultsStore | str, *,
                device: str = "auto", vectorize: bool = True, fresh: bool = False,
                events: str | os.PathLike | None = None, worker: str = "",
                log: str = "", ttl_s: float | None = None,
                heartbeat_s: float | None = None) -> dict:
    """Compute ``groups`` into ``store``, each under its claim; what happened to each.

    Passes over the groups: a group whose runs are all stored is done; one that a live
    worker holds is skipped (``held``); any other is claimed, its missing runs (all of them
    with ``fresh``) computed and the claim released. Passes repeat while one makes progress,
    so a group whose worker died meanwhile (its claim stale) is picked up. A group that
    raises is ``failed`` (its traceback in the events and in this worker's output) and the
    worker goes on. Returns ``{"done": [ids], "failed": {id: error}, "held": {id: holder}}``.
    """
    from .experiments import compute_group, describe_group, group_id
    from .sweep import machine_description, pick_device

    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    events = Path(events) if events is not None else None
    device = pick_device(device)
    machine = machine_description()
    worker = worker or f"{socket.gethostname()}-{os.getpid()}"
    pending = {group_id(g): g for g in groups}
    report: dict = {"done": [], "failed": {}, "held": {}}
    fresh_left = set(pending) if fresh else set()
    progressed = True
    while pending and progressed:
        progressed = False
        for gid, group in list(pending.items()):
            if events is not None and any(events.glob(f"{gid}.failed.*.event")):
                pending.pop(gid)  # failed in another worker of this sweep: not tried again
                report["held"].pop(gid, None)
                continue
            if gid not in fresh_left and not _missing(store, group):
                pending.pop(gid)
                report["held"].pop(gid, None)
                progressed = True
                continue
            what = describe_group(group)
            claim = store.claim(gid, what=what, ttl_s=ttl_s, heartbeat_s=heartbeat_s)
            if claim is None:
                holder = store.claim_holder(gid) or {}
                if gid not in report["held"]:
                    _event(events, gid, "held", worker, what=what, holder=holder)
                report["held"][gid] = holder
                continue
            report["held"].pop(gid, None)
            with claim:
                todo = group if gid in fresh_left else _missing(store, group)
                if not todo:  # finished by another worker just before this claim
                    pending.pop(gid)
                    progressed = True
                    continue
                _event(events, gid, "started", worker, what=what, runs=len(todo), log=log)
                print(f"[{worker}] {time.strftime('%H:%M:%S')} group {gid}: {what}: computing "
                      f"{len(todo)} run(s)", flush=True)
                t0 = time.perf_counter()
                try:
                    written, _ = compute_group(todo, store, device, vectorize, machine)
                except Exception as e:  # noqa: BLE001 - any error of a group is reported
                    error = f"{e.__class__.__name__}: {e}"
                    tb = traceback.format_exc()
                    print(f"[{worker}] group {gid} failed: {error}\n{tb}", flush=True)
                    _event(events, gid, "failed", worker, what=what, error=error,
                           traceback=tb, log=log)
                    report["failed"][gid] = error
                    pending.pop(gid)
                    fresh_left.discard(gid)
                    continue
                lost = claim.lost
            seconds = time.perf_counter() - t0
            print(f"[{worker}] group {gid}: {written} record(s) written in {seconds:.1f} s"
                  + (" (its claim was taken over meanwhile)" if lost else ""), flush=True)
            _event(events, gid, "done", worker, what=what, runs=written, seconds=seconds, log=log)
            report["done"].append(gid)
            pending.pop(gid)
            fresh_left.discard(gid)
            progressed = True
    return report


def _group_runs(runs: list[dict]) -> list[RunConfig]:
    return [RunConfig.from_dict(dict(r)) for r in runs]


def run_group_job(store: str, runs: list[dict], device: str = "auto", vectorize: bool = True,
                  fresh: bool = False, events: str | None = None, ttl_s: float | None = None,
                  heartbeat_s: float | None = None) -> dict:
    """One Slurm array task (submitted by :func:`submit_slurm`): compute one group (its runs
    as configuration dicts) under its claim. Raises when the group fails, so that the job is
    marked failed and its log has the traceback; returns the worker's report otherwise."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    single = (os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
              or os.getpid())
    worker = f"slurm-{job}_{task}" if job and task else f"job-{single}"
    try:
        import submitit

        env = submitit.JobEnvironment()
        log = str(env.paths.stdout)
    except (ImportError, RuntimeError, KeyError, ValueError, AttributeError):
        log = ""
    report = work_groups([_group_runs(runs)], store, device=device, vectorize=vectorize,
                         fresh=fresh, events=events, worker=worker, log=log, ttl_s=ttl_s,
                         heartbeat_s=heartbeat_s)
    if report["failed"]:
        raise RuntimeError("; ".join(report["failed"].values()))
    return report


# ---------------------------------------------------------------------------------------------
# the driver: submit or start, wait, report
# ---------------------------------------------------------------------------------------------
def _job_folder(store: Path, executor: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    from .store import HOST

    return store / JOBS_FOLDER / f"{executor}-{stamp}-{HOST}-{os.getpid()}"


def run_distributed(groups: list[list[RunConfig]], store: ResultsStore, *, executor: str,
                    workers: int | None = None, slurm: SlurmOptions | None = None,
                    device: str = "auto", vectorize: bool = True, fresh: bool = False,
                    progress: bool = True, ttl_s: float | None = None,
                    heartbeat_s: float | None = None, poll_s: float | None = None) -> dict:
    """Compute ``groups`` with ``executor`` (``local`` or ``slurm``), wait, and report.

    Returns ``{"groups", "done", "failed", "held", "folder", "logs"}``: ``failed`` a list of
    ``{"group", "what", "error", "log"}`` (the log holds the traceback), ``held`` the groups
    that other workers held throughout. A progress bar counts finished groups."""
    from tqdm import tqdm

    from .experiments import describe_group, group_id

    folder = _job_folder(store.root, executor)
    events = folder / "events"
    events.mkdir(parents=True, exist_ok=True)
    by_id = {group_id(g): g for g in groups}
    what = {gid: describe_group(g) for gid, g in by_id.items()}
    study = groups[0][0].study if groups else "sweep"
    if executor == "local":
        n = max(1, min(int(workers or os.cpu_count() or 1), len(groups)))
        handles = _start_local(groups, store, folder, events, n, device, vectorize, fresh,
                               ttl_s, heartbeat_s)
        logs = {h["worker"]: h["log"] for h in handles}
        print(f"{len(groups)} group(s) to {n} local worker(s); logs: {folder}/worker-*.log",
              flush=True)
        poll = 0.25 if poll_s is None else poll_s
    elif executor == "slurm":
        slurm = slurm or SlurmOptions()
        sub = Path(slurm.folder) if slurm.folder else folder / "slurm"
        jobs = submit_slurm(groups, store.root, slurm, folder=sub, events=events, device=device,
                            vectorize=vectorize, fresh=fresh, ttl_s=ttl_s,
                            heartbeat_s=heartbeat_s)
        handles = [{"job": j, "group": group_id(g), "log": str(j.paths.stdout)}
                   for j, g in zip(jobs, groups)]
        logs = {h["group"]: h["log"] for h in handles}
        first = jobs[0].job_id.split("_")[0] if jobs else "-"
        print(f"submitted {len(jobs)} Slurm task(s) ({slurm.cluster}, array {first}, at most "
              f"{slurm.array_parallelism} at once); logs: {sub}", flush=True)
        if len(handles) <= 20:
            for h in handles:
                print(f"  {h['job'].job_id}: {what[h['group']]}: {h['log']}", flush=True)
        poll = (0.5 if slurm.cluster != "slurm" else 15.0) if poll_s is None else poll_s
    else:
        raise ValueError(f"unknown executor {executor!r}; allowed: local, slurm (serial: "
                         "prunelib.sweep.run_sweep)")

    finished: set[str] = set()
    try:
        with tqdm(total=len(groups), unit="group", disable=not progress,
                  desc=f"{study} ({executor})") as bar:
            while True:
                running = _still_running(executor, handles)
                for e in read_events(events):
                    if e.get("kind") in ("done", "failed") and e["group"] not in finished:
                        finished.add(e["group"])
                        bar.update(1)
                if not running:
                    break
                time.sleep(poll)
    except KeyboardInterrupt:
        _stop(executor, handles)
        raise
    return _report(executor, handles, by_id, what, read_events(events), folder, logs, store)


def _start_local(groups, store, folder, events, n, device, vectorize, fresh, ttl_s,
                 heartbeat_s) -> list[dict]:
    plan = folder / "groups.plan"  # JSON; not *.json, which stores read as records
    plan.write_text(json.dumps([[c.to_dict() for c in g] for g in groups]))
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # share the cores among the workers
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
    handles = []
    for i in range(n):
        worker = f"local-{i}"
        log = folder / f"worker-{i}.log"
        cmd = [sys.executable, "-m", "prunelib.executors", "--plan", str(plan),
               "--store", str(store.root), "--device", device, "--events", str(events),
               "--worker", worker, "--log", str(log)]
        cmd += [] if vectorize else ["--no-vectorize"]
        cmd += ["--fresh"] if fresh else []
        cmd += [] if ttl_s is None else ["--ttl", str(ttl_s)]
        cmd += [] if heartbeat_s is None else ["--heartbeat", str(heartbeat_s)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        handles.append({"worker": worker, "proc": proc, "log": str(log)})
    return handles


def _still_running(executor: str, handles: list[dict]) -> bool:
    if executor == "local":
        return any(h["proc"].poll() is None for h in handles)
    return not all(_job_done(h["job"]) for h in handles)


def _job_done(job) -> bool:
    try:
        return job.done()
    except Exception:  # noqa: BLE001 - submitit's debug executor re-raises the job's error
        return True


def _stop(executor: str, handles: list[dict]) -> None:
    """Interrupted: stop the workers so that they release their claims (local). Slurm jobs
    are left to run (they write into the store without the driver): say how to stop them."""
    if executor == "local":
        for h in handles:
            if h["proc"].poll() is None:
                h["proc"].send_signal(signal.SIGINT)
        deadline = time.time() + 20
        for h in handles:
            try:
                h["proc"].wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                h["proc"].kill()
    else:
        arrays = sorted({h["job"].job_id.split("_")[0] for h in handles})
        print(f"prunelib: the Slurm jobs keep running and write into the store; `scancel "
              f"{' '.join(arrays)}` stops them. Run the same command again later: it hands out "
              "only what is missing and not held by a running job", file=sys.stderr)


def _report(executor, handles, by_id, what, events, folder, logs, store) -> dict:
    """What became of each group, from the events and the workers' exit."""
    last: dict[str, dict] = {}
    started: dict[str, list[dict]] = {}
    for e in events:
        if e.get("kind") == "started":
            started.setdefault(e["group"], []).append(e)
        if e.get("kind") in ("done", "failed", "held"):
            if e["kind"] == "held" and last.get(e["group"], {}).get("kind") in ("done", "failed"):
                continue
            last[e["group"]] = e
    exits = {}
    if executor == "local":
        for h in handles:
            exits[h["worker"]] = h["proc"].returncode
    failed, done, held = [], [], []
    for gid in by_id:
        e = last.get(gid)
        if e is not None and e["kind"] == "done":
            done.append(gid)
            continue
        if e is not None and e["kind"] == "failed":
            failed.append({"group": gid, "what": what[gid], "error": e.get("error", "?"),
                           "log": e.get("log") or _log_of(logs, e, gid, folder)})
            continue
        tries = started.get(gid, [])
        if tries:  # started, never finished: its worker died
            t = tries[-1]
            code = exits.get(t.get("worker"))
            why = (f"its worker {t.get('worker')} stopped while computing it"
                   + (f" (exit status {code})" if code is not None else ""))
            log = t.get("log") or _log_of(logs, t, gid, folder)
            if executor == "slurm":
                why, log = _slurm_failure(handles, gid, why, log)
            failed.append({"group": gid, "what": what[gid], "error": why, "log": log})
            continue
        if e is not None and e["kind"] == "held":
            holder = e.get("holder", {})
            if not _missing(store, by_id[gid]):  # its holder finished it meanwhile
                done.append(gid)
            elif store.claim_holder(gid) is not None:
                held.append({"group": gid, "what": what[gid], "holder": holder})
            else:  # its holder is gone (e.g. a worker killed right after claiming it)
                failed.append({"group": gid, "what": what[gid], "log": str(folder),
                               "error": f"{holder_text(holder)}, which stopped before "
                                        "finishing it"})
            continue
        why, log = "no worker reached it", str(folder)
        if executor == "slurm":
            why, log = _slurm_failure(handles, gid, "its job ended without computing it", log)
        elif any(code not in (0, None) for code in exits.values()):
            bad = {w: c for w, c in exits.items() if c not in (0, None)}
            why = f"the workers exited ({bad}) before reaching it"
        failed.append({"group": gid, "what": what[gid], "error": why, "log": log})
    return {"groups": len(by_id), "done": done, "failed": failed, "held": held,
            "folder": str(folder), "logs": logs}


def _log_of(logs: dict, event: dict, gid: str, folder) -> str:
    """The log of an event's worker (local: by worker; Slurm: by group)."""
    return logs.get(event.get("worker")) or logs.get(gid) or str(folder)


def _slurm_failure(handles, gid, why, log):
    for h in handles:
        if h["group"] == gid:
            try:
                exc = h["job"].exception()
            except Exception as e:  # noqa: BLE001 - e.g. the job was cancelled
                exc = e
            state = getattr(h["job"], "state", "?")
            if exc is not None:
                text = " ".join(str(exc).split())
                why = f"job {h['job'].job_id} ({state}): {text[-300:]}"
            else:
                why = f"job {h['job'].job_id} ({state}): {why}"
            return why, h["log"]
    return why, log


def format_failures(report: dict) -> list[str]:
    """One line per failed or held group, for the end of a sweep."""
    lines = []
    for f in report.get("failed", []):
        lines.append(f"group {f['group']} ({f['what']}) failed: {f['error']}; log: {f['log']}")
    for h in report.get("held", []):
        lines.append(f"group {h['group']} ({h['what']}) not computed: {holder_text(h['holder'])}")
    return lines


def holder_text(holder: dict) -> str:
    """``"held by alice@node12 (pid 4242) since 14:02:11"``."""
    if not holder:
        return "held by another worker"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (f"held by {holder.get('user', '?')}@{holder.get('hostname', '?')} (pid "
            f"{holder.get('pid', '?')}) since {since}")


# ---------------------------------------------------------------------------------------------
# python -m prunelib.executors: a local worker
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m prunelib.executors",
                                description="A local worker of a distributed sweep (started by "
                                            "`prunelib sweep --executor local`).")
    p.add_argument("--plan", required=True, help="JSON file: a list of groups of run configs")
    p.add_argument("--store", required=True, help="results store folder")
    p.add_argument("--device", default="auto", help="device to train on")
    p.add_argument("--events", default=None, help="folder for the event files")
    p.add_argument("--worker", default="", help="this worker's name")
    p.add_argument("--log", default="", help="this worker's log file (named in its events)")
    p.add_argument("--no-vectorize", action="store_true", help="train MLPs one at a time")
    p.add_argument("--fresh", action="store_true", help="recompute runs already stored")
    p.add_argument("--ttl", type=float, default=None, help="claims' time to live (seconds)")
    p.add_argument("--heartbeat", type=float, default=None, help="seconds between heartbeats")
    args = p.parse_args(argv)
    groups = [_group_runs(g) for g in json.loads(Path(args.plan).read_text())]
    try:
        report = work_groups(groups, args.store, device=args.device,
                             vectorize=not args.no_vectorize, fresh=args.fresh,
                             events=args.events, worker=args.worker, log=args.log,
                             ttl_s=args.ttl, heartbeat_s=args.heartbeat)
    except KeyboardInterrupt:
        print(f"[{args.worker}] interrupted; claims released", flush=True)
        return 130
    print(f"[{args.worker}] finished: {len(report['done'])} group(s) done, "
          f"{len(report['failed'])} failed, {len(report['held'])} held by others", flush=True)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
