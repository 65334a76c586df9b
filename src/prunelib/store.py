"""A content-addressed results store: one record per run, verified end to end.

Layout under the store's root::

    <root>/<study>/<key>.json   the record: configuration, metrics, reliability
                                bins, confidence histograms, training history
    <root>/<study>/<key>.npz    compact arrays: float16 test logits, labels and,
                                for OOD evaluations, the scores on each OOD set

``key`` is :func:`prunelib.config.config_hash` of the run's configuration. Both
files are written to a temporary name and renamed into place (atomic on POSIX);
the arrays file first, then the record, which carries the arrays' SHA-256
(``arrays_sha256``) and the SHA-256 of its own canonical content
(``record_sha256``: sorted keys, no whitespace, every field but this one).

A record is trusted only when it parses, has this schema, its key matches its
configuration (and its file name), its own checksum matches its content, it has
its ``metrics``, and its arrays match their checksum. Anything else is reported
as corrupt (:class:`CorruptRecordWarning`, naming the file and the reason) and
treated as missing, so the run is recomputed — it is never read as a result. A
record edited by hand is therefore caught: change one digit and its checksum no
longer matches.

Records written before records carried their own checksum (prunelib before
issue #17) are reported as corrupt too. :meth:`ResultsStore.seal` (on the command
line ``prunelib store seal --store results``) adds the checksum to every such
record that is otherwise verified (key matches configuration, arrays match);
run it once on a store whose records you have not edited.

Files are created with the permissions the process umask allows (``0644`` with
umask ``022``), so a store copied to or shared with another user is readable by
them. Temporary files are named ``.<file>.<host>.<pid>.<random>.tmp``: a sweep
removes those of dead processes of its own host only, and anyone's temporary
files older than :data:`STALE_TEMPORARY_S` (a writer takes seconds), so machines
sharing a store never delete each other's live temporaries.

Claims: workers that share a store (processes of one machine, jobs of a cluster, several
users) claim an execution group before computing it, so that nobody computes it twice at
once. A claim is a file ``<root>/.claims/<name>.claim`` (JSON) created atomically (a hard link of a
complete temporary file: exactly one creator wins, on local and NFS file systems) holding
the holder's host, pid, user, start time and a heartbeat that a thread of the holder
rewrites every :data:`CLAIM_HEARTBEAT_S` seconds. A claim is stale, and taken over, when its
holder is a process of this host that no longer runs, or when its heartbeat is older than
its time to live (:data:`CLAIM_TTL_S`, stored in the claim): a crashed worker's group is
picked up again by the next worker that comes to it. Taking over is serialised by a second
file (``<name>.break``), so two workers never both take over the same stale claim. The
holder removes its claim when the group is done (and the ``.claims`` folder when it is
empty); see :meth:`ResultsStore.claim`. Folders whose names start with a dot are never read
as studies.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from .config import SCHEMA_VERSION, RunConfig, config_hash

#: the record's field holding the SHA-256 of its own canonical content
RECORD_CHECKSUM = "record_sha256"
#: temporary files of other hosts (or of an unknown format) older than this are removed
STALE_TEMPORARY_S = 24 * 3600.0
#: the folder of the store's claims (:meth:`ResultsStore.claim`)
CLAIMS_FOLDER = ".claims"
#: seconds between two heartbeats of a held claim
CLAIM_HEARTBEAT_S = 30.0
#: a claim whose heartbeat is older than this (seconds) is stale: its holder is taken for dead
CLAIM_TTL_S = 300.0


_UNSEALED = ("no record checksum (written by an older prunelib: if its content is trusted, "
             "`prunelib store seal` adds it)")


class CorruptRecordWarning(UserWarning):
    """A record on disk could not be trusted and will be recomputed (or was skipped)."""


def _host_tag() -> str:
    """This machine and PID namespace, as a file-name-safe tag: the host name plus a
    short hash of the kernel's boot id and the PID namespace, so that two containers
    with one host name, or a rebooted machine, do not take each other's process ids
    for their own."""
    name = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname() or "host")[:32] or "host"
    ident = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            ident.append(os.readlink(path) if path.endswith("/pid") else Path(path).read_text())
        except OSError:
            ident.append("")
    return f"{name}-{hashlib.sha256('|'.join(ident).encode()).hexdigest()[:8]}"


HOST = _host_tag()


def record_checksum(record: dict) -> str:
    """SHA-256 of a record's canonical JSON (sorted keys, no whitespace), without its own
    checksum field. Computed on the record as JSON gives it back, so it is what a reader
    recomputes."""
    body = {k: v for k, v in record.items() if k != RECORD_CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place.

    The temporary file is created with mode ``0o666`` minus the umask (as ``open`` does),
    and named by this host and process so that :meth:`ResultsStore.remove_stale_temporaries`
    on any machine sharing the store can tell whether its writer may still be alive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _parse_temporary(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a temporary file's name, None for another format."""
    parts = name.rsplit(".", 4)  # ['.<file>', host, pid, random, 'tmp']
    if len(parts) != 5 or parts[4] != "tmp" or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` of this host runs (None: cannot tell). A zombie -- a process
    that ended (e.g. killed) but that its parent has not reaped yet -- does not run."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError, ValueError, TypeError):
        return None  # alive under another user, or not a process id here
    try:  # Linux: the state field of /proc/<pid>/stat, after the parenthesised command
        state = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _read_claim(path: Path) -> tuple[dict, float] | None:
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
    if info.get("host") == HOST and _pid_alive(info.get("pid", -1)) is False:
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
        cur = _read_claim(self.path)
        return cur is not None and cur[0].get("token") == self.token

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                if not self._mine():
                    self.lost = True
                    return
                self.info["heartbeat"] = time.time()
                _atomic_write(self.path, json.dumps(self.info, sort_keys=True).encode())
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


class ResultsStore:
    """Records keyed by configuration hash under ``root``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def paths(self, cfg: RunConfig) -> tuple[Path, Path]:
        key = config_hash(cfg)
        folder = self.root / cfg.study
        return folder / f"{key}.json", folder / f"{key}.npz"

    # -- writing ------------------------------------------------------------
    def save(self, cfg: RunConfig, record: dict, arrays: dict[str, np.ndarray]) -> Path:
        """Write ``arrays`` then the record (with key, schema and both checksums)."""
        json_path, npz_path = self.paths(cfg)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        blob = buf.getvalue()
        _atomic_write(npz_path, blob)
        full = {
            "schema": SCHEMA_VERSION,
            "key": config_hash(cfg),
            "config": cfg.to_dict(),
            **record,
            "arrays_sha256": hashlib.sha256(blob).hexdigest(),
        }
        full.pop(RECORD_CHECKSUM, None)
        # the checksum is taken over the record as a reader will parse it (numpy scalars,
        # tuples... converted), so that reading it back gives exactly the same content
        full = json.loads(json.dumps(full, default=_json_default))
        _atomic_write(json_path, _record_text(full))
        return json_path

    def seal(self, study: str | None = None) -> int:
        """Add the record checksum to the verified records that lack it; their number.

        For records written before records were checksummed (e.g. by a sweep still running
        older code). A record is sealed only when it parses, has this schema, its key matches
        its configuration and file name, it has its metrics and its arrays match their
        checksum; records already sealed or failing a check are left as they are (and
        reported as corrupt by :meth:`load`). Sealing trusts the content of the records: run
        it on stores that nobody has edited by hand."""
        sealed = 0
        for path in self._record_paths(study):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError, RecursionError):
                continue
            if not isinstance(rec, dict) or RECORD_CHECKSUM in rec:
                continue
            if self._problem(path, rec, expect_key=path.stem, verify_arrays=True,
                             check_sum=False) is not None:
                continue
            _atomic_write(path, _record_text(rec))
            sealed += 1
        return sealed

    # -- reading ------------------------------------------------------------
    def load(self, cfg: RunConfig) -> dict | None:
        """The record of ``cfg``, or None if missing or corrupt (a warning says which)."""
        json_path, _ = self.paths(cfg)
        if not json_path.exists():
            return None
        return self._read(json_path, expect_key=config_hash(cfg))

    def remove_stale_temporaries(self, max_age_s: float | None = None) -> list[Path]:
        """Delete temporary files whose writer no longer runs (e.g. killed with -9).

        A temporary file of this host (and PID namespace) is removed when its writer's
        process is gone; any other one (another machine sharing the store, or an older
        naming) only when it has not been modified for ``max_age_s`` seconds (default
        :data:`STALE_TEMPORARY_S`, a day), since its writer's process cannot be checked
        from here."""
        max_age = STALE_TEMPORARY_S if max_age_s is None else max_age_s
        now = time.time()
        removed = []
        try:
            removed += self._remove_stale(max_age, now)
        finally:
            try:  # the claims folder, when a killed worker's temporary file was all it held
                (self.root / CLAIMS_FOLDER).rmdir()
            except OSError:
                pass
        return removed

    def _remove_stale(self, max_age: float, now: float) -> list[Path]:
        removed = []
        for tmp in list(self.root.glob(".*.tmp")) + list(self.root.glob("*/.*.tmp")):
            parsed = _parse_temporary(tmp.name)
            if parsed is not None and parsed[0] == HOST:
                if _pid_alive(parsed[1]) is not False:
                    continue  # alive, or alive under another user / not a process id here
            else:
                try:
                    if now - tmp.stat().st_mtime < max_age:
                        continue
                except OSError:
                    continue
            try:
                tmp.unlink()
            except FileNotFoundError:
                continue
            except OSError:
                continue  # not ours to remove (e.g. a read-only shared store)
            removed.append(tmp)
        return removed

    def has(self, cfg: RunConfig) -> bool:
        return self.load(cfg) is not None

    # -- claims -------------------------------------------------------------
    def claim(self, name: str, *, what: str = "", ttl_s: float | None = None,
              heartbeat_s: float | None = None) -> Claim | None:
        """Claim ``name`` (e.g. an execution group, :func:`prunelib.experiments.group_id`)
        for this process; None when a live holder has it.

        The claim file ``<root>/.claims/<name>.claim`` (JSON) is created atomically and holds
        ``host``, ``hostname``, ``pid``, ``user``, ``started``, ``heartbeat``, ``ttl_s``,
        a random ``token`` and ``what`` (a description). A stale claim (see
        :func:`claim_is_stale`) is taken over. Use the returned :class:`Claim` as a context
        manager, or call its ``release()``."""
        ttl = CLAIM_TTL_S if ttl_s is None else float(ttl_s)
        beat = CLAIM_HEARTBEAT_S if heartbeat_s is None else float(heartbeat_s)
        path = self.root / CLAIMS_FOLDER / f"{name}.claim"
        now = time.time()
        try:
            import getpass

            user = getpass.getuser()
        except (KeyError, OSError, ImportError):  # no user name (no passwd entry)
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
                if _create_exclusive(tmp, path):
                    return Claim(path, info, beat)
                cur = _read_claim(path)
                if cur is None:
                    continue  # released meanwhile: try again
                if not claim_is_stale(*cur) or not _break_claim(path, cur[0]):
                    return None
            return None
        finally:
            try:
                tmp.unlink()
            except OSError:
                pass

    def claim_holder(self, name: str) -> dict | None:
        """The live holder's claim of ``name`` (its content), None when free or stale."""
        cur = _read_claim(self.root / CLAIMS_FOLDER / f"{name}.claim")
        if cur is None or claim_is_stale(*cur):
            return None
        return cur[0]

    def claims(self) -> list[dict]:
        """Every claim file's content, with ``name`` and ``stale`` added."""
        out = []
        folder = self.root / CLAIMS_FOLDER
        for path in sorted(folder.glob("*.claim")) if folder.is_dir() else []:
            cur = _read_claim(path)
            if cur is not None:
                out.append({**cur[0], "name": path.stem, "stale": claim_is_stale(*cur)})
        return out

    def arrays(self, record: dict) -> dict[str, np.ndarray]:
        """The arrays beside a record (test logits, labels, OOD scores)."""
        study = record["config"]["study"]
        with np.load(self.root / study / f"{record['key']}.npz") as z:
            return {k: z[k] for k in z.files}

    def records(self, study: str | None = None, verify_arrays: bool = True) -> list[dict]:
        """Every valid record (of one study, or all); corrupt ones are warned about.

        ``verify_arrays=False`` skips the arrays' checksums (a quick scan of the records)."""
        out, unsealed = [], []
        for path in self._record_paths(study):
            rec = self._read(path, expect_key=path.stem, verify_arrays=verify_arrays,
                             unsealed=unsealed)
            if rec is not None:
                out.append(rec)
        if unsealed:  # one warning for a store written by an older prunelib, not thousands
            warnings.warn(f"{len(unsealed)} record(s) in {self.root} have no record checksum "
                          f"(written by an older prunelib), e.g. {unsealed[0]}; they are treated "
                          "as corrupt and will be recomputed: if their content is trusted, "
                          f"`prunelib store seal --store {self.root}` adds it",
                          CorruptRecordWarning, stacklevel=2)
        return out

    def _record_paths(self, study: str | None) -> list[Path]:
        if study:
            folders = [self.root / study]
        elif self.root.is_dir():  # dot-folders (claims, job logs) hold no records
            folders = sorted(p for p in self.root.iterdir()
                             if p.is_dir() and not p.name.startswith("."))
        else:
            folders = []
        return [p for folder in folders for p in sorted(folder.glob("*.json"))]

    def _read(self, json_path: Path, expect_key: str, verify_arrays: bool = True,
              unsealed: list | None = None) -> dict | None:
        try:
            rec = json.loads(json_path.read_text())
        except (OSError, ValueError, RecursionError) as e:
            why = f"unreadable JSON ({e.__class__.__name__})"
        else:
            why = self._problem(json_path, rec, expect_key, verify_arrays)
        if why is None:
            return rec
        if unsealed is not None and why == _UNSEALED:
            unsealed.append(json_path)
            return None
        warnings.warn(f"corrupt record {json_path}: {why}; it will be recomputed",
                      CorruptRecordWarning, stacklevel=3)
        return None

    def _problem(self, json_path: Path, rec, expect_key: str, verify_arrays: bool,
                 check_sum: bool = True) -> str | None:
        """Why the parsed record ``rec`` cannot be trusted, or None."""
        if not isinstance(rec, dict) or rec.get("schema") != SCHEMA_VERSION:
            return "missing or different schema version"
        try:
            key = config_hash(rec["config"])
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
            return f"invalid configuration ({e.__class__.__name__}: {e})"
        if key != rec.get("key") or key != expect_key:
            return "key does not match the configuration"
        if check_sum:
            if RECORD_CHECKSUM not in rec:
                return _UNSEALED
            try:
                digest = record_checksum(rec)
            except (TypeError, ValueError, RecursionError) as e:
                return f"content cannot be checksummed ({e.__class__.__name__})"
            if digest != rec[RECORD_CHECKSUM]:
                return "content does not match its checksum (edited or damaged)"
        if not isinstance(rec.get("metrics"), dict):
            return "no metrics"
        npz_path = json_path.with_suffix(".npz")
        if not verify_arrays:
            return None if npz_path.exists() else "arrays file missing"
        try:
            digest = hashlib.sha256(npz_path.read_bytes()).hexdigest()
        except OSError as e:
            return f"arrays file unreadable ({e.__class__.__name__})"
        if digest != rec.get("arrays_sha256"):
            return "arrays file does not match its checksum"
        return None


def _create_exclusive(tmp: Path, path: Path) -> bool:
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


def _break_claim(path: Path, seen: dict) -> bool:
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
        cur = _read_claim(path)
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


def _record_text(rec: dict) -> bytes:
    """The record file's bytes: ``rec`` with its checksum, keys sorted, no whitespace (every
    clone carries the store; ``python -m json.tool`` shows a record indented)."""
    rec = {**rec, RECORD_CHECKSUM: record_checksum(rec)}
    return json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in a record")
