"""Claims on work, held in a shared folder.

Workers that share a results store (processes of one machine, jobs of a cluster, several
users) claim an execution group before computing it, so that nobody computes it twice at
once. A claim is a file ``<folder>/<name>.claim`` (JSON; a store keeps them in
``<root>/.claims/``) created atomically (a hard link of a complete temporary file: exactly one creator wins, on local and NFS file systems) holding
the holder's host, pid, user, start time and a heartbeat that a thread of the holder
rewrites every :data:`CLAIM_HEARTBEAT_S` seconds. A claim is stale, and taken over, when its
holder is a process of this host that no longer runs, or when its heartbeat is older than
its time to live (:data:`CLAIM_TTL_S`, stored in the claim): a crashed worker's group is
picked up again by the next worker that comes to it. Taking over is serialised by a second
file (``<name>.break``), so two workers never both take over the same stale claim. The
holder removes its claim when the group is done (and the ``.claims`` folder when it is
empty); see :func:`take` and :meth:`prunelib.store.ResultsStore.claim`.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

from .files import HOST, atomic_write, pid_alive

#: the folder of a store's claims (:func:`take`)
CLAIMS_FOLDER = ".claims"
#: seconds between two heartbeats of a held claim
CLAIM_HEARTBEAT_S = 30.0
#: a claim whose heartbeat is older than this (seconds) is stale: its holder is taken for dead
CLAIM_TTL_S = 300.0


def read_claim(path: Path) -> tuple[dict, float] | None:
    """A claim file's content and modification time; None when it does not exist. A file
    that cannot be parsed gives ``{}`` (judged by its age alone)."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}, time.time()
    try:
        info = json.loads(text)
    except ValueError:
        info = {}
    return (info if isinstance(info, dict) else {}), mtime


def claim_is_stale(info: dict, mtime: float, now: float | None = None) -> bool:
    """Whether a claim's holder is taken for dead: a process of this host that no longer
    runs, or a heartbeat (or, unreadable, a file) older than the claim's time to live."""
    now = time.time() if now is None else now
    if info.get("host") == HOST and pid_alive(info.get("pid", -1)) is False:
        return True
    ttl = info.get("ttl_s", CLAIM_TTL_S)
    ttl = float(ttl) if isinstance(ttl, (int, float)) else CLAIM_TTL_S
    beat = info.get("heartbeat")
    last = max(mtime, float(beat)) if isinstance(beat, (int, float)) else mtime
    return now - last > ttl


class Claim:
    """A claim held by this process (:meth:`ResultsStore.claim`): a heartbeat thread keeps it
    alive until :meth:`release` (or the end of a ``with`` block). ``lost`` turns True when
    the claim was taken over meanwhile (its holder was taken for dead)."""

    def __init__(self, path: Path, info: dict, heartbeat_s: float):
        self.path, self.info, self.lost = path, info, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True,
                                        name=f"claim-heartbeat-{path.stem}")
        self._thread.start()

    @property
    def token(self) -> str:
        return self.info["token"]

    def _mine(self) -> bool:
        cur = read_claim(self.path)
        return cur is not None and cur[0].get("token") == self.token

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                if not self._mine():
                    self.lost = True
                    return
                self.info["heartbeat"] = time.time()
                atomic_write(self.path, json.dumps(self.info, sort_keys=True).encode())
            except OSError:
                continue  # a slow or busy file system: try again at the next beat

    def release(self) -> None:
        """Stop the heartbeat and remove the claim (if it is still this one's), and the
        claims folder when it is empty."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        try:
            if self._mine():
                self.path.unlink()
        except OSError:
            pass
        try:
            self.path.parent.rmdir()  # only when empty
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def take(folder: Path, name: str, *, what: str = "", ttl_s: float | None = None,
          heartbeat_s: float | None = None) -> Claim | None:
    """Claim ``name`` (e.g. an execution group, :func:`prunelib.experiments.group_id`) in
    ``folder`` for this process; None when a live holder has it.

    The claim file ``<folder>/<name>.claim`` (JSON) is created atomically and holds
    ``host``, ``hostname``, ``pid``, ``user``, ``started``, ``heartbeat``, ``ttl_s``,
    a random ``token`` and ``what`` (a description). A stale claim (see
    :func:`claim_is_stale`) is taken over. Use the returned :class:`Claim` as a context
    manager, or call its ``release()``."""
    ttl = CLAIM_TTL_S if ttl_s is None else float(ttl_s)
    beat = CLAIM_HEARTBEAT_S if heartbeat_s is None else float(heartbeat_s)
    path = Path(folder) / f"{name}.claim"
    now = time.time()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name (no passwd entry)
        user = str(os.getuid()) if hasattr(os, "getuid") else "?"
    info = {"host": HOST, "hostname": socket.gethostname(), "pid": os.getpid(),
            "user": user, "started": now, "heartbeat": now, "ttl_s": ttl,
            "heartbeat_s": beat, "token": secrets.token_hex(8), "what": what}
    tmp = path.parent / f".{path.name}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    for _ in range(5):  # the folder goes when its last claim is released: make it again
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(json.dumps(info, sort_keys=True).encode())
            break
        except FileNotFoundError:
            continue
        except PermissionError as e:
            from .preflight import PreflightError

            raise PreflightError(
                f"cannot claim a group in {path.parent} ({e.strerror}): every user of a "
                "shared store must be able to write its folders (e.g. chmod -R g+ws on a "
                "group-owned store and umask 002; see book/cluster.md)") from None
    try:
        for _ in range(3):
            if create_exclusive(tmp, path):
                return Claim(path, info, beat)
            cur = read_claim(path)
            if cur is None:
                continue  # released meanwhile: try again
            if not claim_is_stale(*cur) or not break_claim(path, cur[0]):
                return None
        return None
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def holder(folder: Path, name: str) -> dict | None:
    """The live holder's claim of ``name`` (its content), None when free or stale."""
    cur = read_claim(Path(folder) / f"{name}.claim")
    if cur is None or claim_is_stale(*cur):
        return None
    return cur[0]


def listing(folder: Path) -> list[dict]:
    """Every claim file's content, with ``name`` and ``stale`` added."""
    out = []
    folder = Path(folder)
    for path in sorted(folder.glob("*.claim")) if folder.is_dir() else []:
        cur = read_claim(path)
        if cur is not None:
            out.append({**cur[0], "name": path.stem, "stale": claim_is_stale(*cur)})
    return out


def create_exclusive(tmp: Path, path: Path) -> bool:
    """Put the complete file ``tmp`` at ``path`` unless ``path`` exists; whether it did.

    A hard link is atomic and exclusive on POSIX file systems, NFS included, and the file
    appears with its content; where links are not supported, ``O_EXCL`` creation."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(tmp.read_bytes())
    return True


def break_claim(path: Path, seen: dict) -> bool:
    """Remove the stale claim ``seen`` at ``path``, unless someone else is doing the same or
    it changed meanwhile; whether the way is free now. Serialised by ``<name>.break``."""
    lock = path.with_suffix(".break")
    try:
        os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        try:  # a breaker that died: its lock goes after a time to live
            if time.time() - lock.stat().st_mtime > CLAIM_TTL_S:
                lock.unlink()
        except OSError:
            pass
        return False
    except OSError:
        return False
    try:
        cur = read_claim(path)
        if cur is None:
            return True
        if cur[0].get("token") != seen.get("token") or not claim_is_stale(*cur):
            return False
        path.unlink()
        return True
    except OSError:
        return False
    finally:
        try:
            lock.unlink()
        except OSError:
            pass
