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

Claims: workers that share a store claim an execution group before computing it, so that
nobody computes it twice at once (:meth:`ResultsStore.claim`, :mod:`prunelib.locks`). Folders
whose names start with a dot are never read as studies.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from . import locks
from .config import SCHEMA_VERSION, RunConfig, config_hash
from .files import HOST, atomic_write, parse_temporary, pid_alive
from .locks import CLAIM_HEARTBEAT_S, CLAIM_TTL_S, CLAIMS_FOLDER, Claim, claim_is_stale

__all__ = ["CLAIMS_FOLDER", "CLAIM_HEARTBEAT_S", "CLAIM_TTL_S", "HOST", "RECORD_CHECKSUM",
           "STALE_TEMPORARY_S", "Claim", "CorruptRecordWarning", "ResultsStore",
           "claim_is_stale", "record_checksum"]

#: the record's field holding the SHA-256 of its own canonical content
RECORD_CHECKSUM = "record_sha256"
#: temporary files of other hosts (or of an unknown format) older than this are removed
STALE_TEMPORARY_S = 24 * 3600.0


_UNSEALED = ("no record checksum (written by an older prunelib: if its content is trusted, "
             "`prunelib store seal` adds it)")


class CorruptRecordWarning(UserWarning):
    """A record on disk could not be trusted and will be recomputed (or was skipped)."""


def record_checksum(record: dict) -> str:
    """SHA-256 of a record's canonical JSON (sorted keys, no whitespace), without its own
    checksum field. Computed on the record as JSON gives it back, so it is what a reader
    recomputes."""
    body = {k: v for k, v in record.items() if k != RECORD_CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


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
        atomic_write(npz_path, blob)
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
        atomic_write(json_path, _record_text(full))
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
            atomic_write(path, _record_text(rec))
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
            parsed = parse_temporary(tmp.name)
            if parsed is not None and parsed[0] == HOST:
                if pid_alive(parsed[1]) is not False:
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
        for this process; None when a live holder has it. See :func:`prunelib.locks.take`:
        the claim file is ``<root>/.claims/<name>.claim``."""
        return locks.take(self.root / CLAIMS_FOLDER, name, what=what, ttl_s=ttl_s,
                          heartbeat_s=heartbeat_s)

    def claim_holder(self, name: str) -> dict | None:
        """The live holder's claim of ``name`` (its content), None when free or stale."""
        return locks.holder(self.root / CLAIMS_FOLDER, name)

    def claims(self) -> list[dict]:
        """Every claim file's content, with ``name`` and ``stale`` added."""
        return locks.listing(self.root / CLAIMS_FOLDER)

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
