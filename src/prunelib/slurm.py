"""Slurm through ``submitit``: how a sweep's jobs are submitted to a cluster.

:class:`SlurmOptions` holds the submission settings (partition, time limit, CPUs and GPUs per
task, how many tasks run at once, where the logs go); :func:`submit_slurm` submits one array
task per execution group, each running :func:`prunelib.executors.run_group_job`. Needs
``submitit`` (``pip install 'prunelib[cluster]'``); its ``local`` and ``debug`` clusters run
the same path without Slurm (tests). :mod:`prunelib.executors` drives, waits and reports.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .config import RunConfig

__all__ = ["SlurmOptions", "parse_slurm_time", "slurm_executor", "submit_slurm"]


@dataclasses.dataclass
class SlurmOptions:
    """How the Slurm jobs of a sweep are submitted (one array task per execution group).

    ``time``: the time limit of one task, in Slurm's formats (``"90"`` minutes,
    ``"4:00:00"``, ``"1-12:00:00"``); ``cpus`` and ``gpus`` per task; ``array_parallelism``:
    at most this many tasks run at once; ``folder``: where submitit puts the logs and
    pickles (default ``<store>/.jobs/<sweep>/slurm``); ``cluster``: submitit's executor,
    ``"slurm"``, or ``"local"`` / ``"debug"`` to run the same path without a cluster (tests);
    ``extra``: further submitit parameters (e.g. ``{"slurm_account": "lab"}``)."""

    partition: str | None = None
    time: str = "12:00:00"
    cpus: int = 4
    gpus: int = 0
    array_parallelism: int = 32
    folder: str | None = None
    cluster: str = "slurm"
    name: str = "prunelib"
    extra: dict = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        from .preflight import PreflightError

        parse_slurm_time(self.time)
        if self.cpus < 1 or self.gpus < 0 or self.array_parallelism < 1:
            raise PreflightError(f"Slurm options: --slurm-cpus and --slurm-array-parallelism must "
                                 f"be >= 1 and --slurm-gpus >= 0, got cpus={self.cpus}, "
                                 f"gpus={self.gpus}, array parallelism={self.array_parallelism}")
        if self.cluster not in ("slurm", "local", "debug"):
            raise PreflightError(f"unknown submitit cluster {self.cluster!r}: slurm, local or "
                                 "debug")


def parse_slurm_time(text: str | int) -> int:
    """Minutes of a Slurm time limit: ``"90"``, ``"90:00"`` (minutes:seconds), ``"4:00:00"``,
    ``"2-0"``, ``"2-12:00"``, ``"2-12:00:00"`` (days-hours[:minutes[:seconds]]).

    >>> parse_slurm_time("4:00:00"), parse_slurm_time("1-12"), parse_slurm_time(90)
    (240, 2160, 90)
    """
    from .preflight import PreflightError

    s = str(text).strip()
    days, _, rest = s.rpartition("-") if "-" in s else ("", "", s)
    try:
        d = int(days) if days else 0
        parts = [int(p) for p in rest.split(":")]
    except ValueError:
        parts = []
    if not parts or d < 0 or any(p < 0 for p in parts) or len(parts) > 3:
        raise PreflightError(f"--slurm-time {text!r} is not a Slurm time limit: give minutes "
                             "('90'), 'hours:minutes:seconds' ('4:00:00') or "
                             "'days-hours:minutes:seconds' ('1-12:00:00')")
    if days:  # days-hours[:minutes[:seconds]]
        h, m, sec = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        h, m, sec = parts
    else:  # minutes[:seconds]
        h, (m, sec) = 0, (parts + [0])[:2]
    minutes = d * 1440 + h * 60 + m + (1 if sec else 0)
    if minutes < 1:
        raise PreflightError(f"--slurm-time {text!r} is less than a minute")
    return minutes


def slurm_executor(options: SlurmOptions, folder: str | os.PathLike, name: str | None = None):
    """A ``submitit.AutoExecutor`` with ``options`` as submission parameters."""
    try:
        import submitit
    except ImportError:
        from .preflight import PreflightError

        raise PreflightError("--executor slurm needs submitit: pip install 'prunelib[cluster]' "
                             "(or pip install submitit)") from None
    options.check()
    ex = submitit.AutoExecutor(folder=str(folder), cluster=options.cluster)
    params = dict(name=name or options.name, timeout_min=parse_slurm_time(options.time),
                  cpus_per_task=int(options.cpus), nodes=1, tasks_per_node=1,
                  slurm_array_parallelism=int(options.array_parallelism))
    if options.gpus:
        params["gpus_per_node"] = int(options.gpus)
    if options.partition:
        params["slurm_partition"] = options.partition
    params.update(options.extra)
    ex.update_parameters(**params)
    return ex


def submit_slurm(groups: list[list[RunConfig]], store: str | os.PathLike, options: SlurmOptions,
                 *, folder: str | os.PathLike, events: str | os.PathLike, device: str = "auto",
                 vectorize: bool = True, fresh: bool = False, ttl_s: float | None = None,
                 heartbeat_s: float | None = None) -> list:
    """Submit one array task per group (:func:`prunelib.executors.run_group_job`); the
    ``submitit`` jobs."""
    from .executors import run_group_job  # the job's function (executors drives this module)

    study = groups[0][0].study if groups else "sweep"
    ex = slurm_executor(options, folder, name=f"{options.name}-{study}")
    n = len(groups)
    args = ([str(Path(store).absolute())] * n, [[c.to_dict() for c in g] for g in groups],
            [device] * n, [vectorize] * n, [fresh] * n, [str(Path(events).absolute())] * n,
            [ttl_s] * n, [heartbeat_s] * n)
    return ex.map_array(run_group_job, *args)
