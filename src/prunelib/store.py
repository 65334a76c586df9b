"""A content-addressed results store: one record per run, never a half-written one.

Layout under the store's root::

    <root>/<study>/<key>.json   the record: configuration, metrics, reliability
                                bins, confidence histograms, training history
    <root>/<study>/<key>.npz    compact arrays: float16 test logits, labels and,
                                for OOD evaluations, the scores on each OOD set

``key`` is :func:`prunelib.config.config_hash` of the run's configuration. Both
files are written to a temporary name and renamed into place (atomic on POSIX);
the arrays file first, then the record, which carries the arrays' SHA-256. A
record that does not parse, whose key does not match its configuration, or
whose arrays are missing or do not match the checksum is reported as corrupt
and treated as missing, so the run is recomputed — it is never read as a result.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .config import SCHEMA_VERSION, RunConfig, config_hash


class CorruptRecordWarning(UserWarning):
    """A record on disk could not be trusted and will be recomputed."""


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's PID in the name lets a later sweep remove what a killed writer left
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
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
        """Write ``arrays`` then the record (with key, schema and checksum)."""
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
        text = json.dumps(full, indent=1, sort_keys=True, default=_json_default)
        _atomic_write(json_path, text.encode())
        return json_path

    # -- reading ------------------------------------------------------------
    def load(self, cfg: RunConfig) -> dict | None:
        """The record of ``cfg``, or None if missing or corrupt (a warning says which)."""
        json_path, _ = self.paths(cfg)
        if not json_path.exists():
            return None
        return self._read(json_path, expect_key=config_hash(cfg))

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete temporary files left by writers that no longer run (e.g. killed with -9)."""
        removed = []
        for tmp in self.root.glob("*/.*.tmp"):
            try:
                pid = int(tmp.name.rsplit(".", 3)[-3])
                os.kill(pid, 0)  # raises if no such process
                continue
            except ProcessLookupError:
                pass
            except (ValueError, IndexError, PermissionError):
                continue
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        return removed

    def has(self, cfg: RunConfig) -> bool:
        return self.load(cfg) is not None

    def arrays(self, record: dict) -> dict[str, np.ndarray]:
        """The arrays beside a record (test logits, labels, OOD scores)."""
        study = record["config"]["study"]
        with np.load(self.root / study / f"{record['key']}.npz") as z:
            return {k: z[k] for k in z.files}

    def records(self, study: str | None = None, verify_arrays: bool = True) -> list[dict]:
        """Every valid record (of one study, or all); corrupt ones are warned about.

        ``verify_arrays=False`` skips the arrays' checksums (a quick scan of the records)."""
        folders = [self.root / study] if study else sorted(p for p in self.root.glob("*") if p.is_dir())
        out = []
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                rec = self._read(path, expect_key=path.stem, verify_arrays=verify_arrays)
                if rec is not None:
                    out.append(rec)
        return out

    def _read(self, json_path: Path, expect_key: str, verify_arrays: bool = True) -> dict | None:
        def corrupt(why: str):
            warnings.warn(f"corrupt record {json_path}: {why}; it will be recomputed",
                          CorruptRecordWarning, stacklevel=3)

        try:
            rec = json.loads(json_path.read_text())
        except (OSError, ValueError) as e:
            return corrupt(f"unreadable JSON ({e.__class__.__name__})")
        if not isinstance(rec, dict) or rec.get("schema") != SCHEMA_VERSION:
            return corrupt("missing or different schema version")
        try:
            key = config_hash(rec["config"])
        except (KeyError, TypeError, ValueError) as e:
            return corrupt(f"invalid configuration ({e})")
        if key != rec.get("key") or key != expect_key:
            return corrupt("key does not match the configuration")
        npz_path = json_path.with_suffix(".npz")
        if not verify_arrays:
            return rec if npz_path.exists() else corrupt("arrays file missing")
        try:
            digest = hashlib.sha256(npz_path.read_bytes()).hexdigest()
        except OSError:
            return corrupt("arrays file missing")
        if digest != rec.get("arrays_sha256"):
            return corrupt("arrays file does not match its checksum")
        return rec


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in a record")
