"""The results store: atomic, content-addressed, never reads a corrupt record."""

import json
import os

import numpy as np
import pytest

from prunelib.config import RunConfig
from prunelib.store import HOST, CorruptRecordWarning, ResultsStore


@pytest.fixture
def cfg():
    return RunConfig(study="moons", profile="smoke", dataset="moons", model="mlp",
                     technique="oneshot_reset", ratio=0.5, seed=0)


def _save(store, cfg):
    return store.save(cfg, {"metrics": {"accuracy": 0.9}}, {"test_logits": np.ones((4, 2), np.float16)})


def test_roundtrip(tmp_path, cfg):
    store = ResultsStore(tmp_path)
    path = _save(store, cfg)
    assert path.name == f"{cfg.key()}.json" and path.parent.name == "moons"
    rec = store.load(cfg)
    assert rec["metrics"]["accuracy"] == 0.9 and rec["config"] == cfg.to_dict()
    assert store.arrays(rec)["test_logits"].dtype == np.float16
    assert [r["key"] for r in store.records("moons")] == [cfg.key()]
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary files left behind


def test_missing_is_none(tmp_path, cfg):
    assert ResultsStore(tmp_path).load(cfg) is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_key", "npz_missing", "npz_changed"])
def test_corrupt_records_are_reported_not_read(tmp_path, cfg, damage):
    store = ResultsStore(tmp_path)
    json_path = _save(store, cfg)
    npz_path = json_path.with_suffix(".npz")
    if damage == "truncate":
        json_path.write_text(json_path.read_text()[:40])
    elif damage == "garbage":
        json_path.write_bytes(b"\x00\x01")
    elif damage == "wrong_key":
        rec = json.loads(json_path.read_text())
        rec["config"]["seed"] = 99
        json_path.write_text(json.dumps(rec))
    elif damage == "npz_missing":
        npz_path.unlink()
    else:
        npz_path.write_bytes(npz_path.read_bytes()[:-3])
    with pytest.warns(CorruptRecordWarning, match="recomputed"):
        assert store.load(cfg) is None


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path, cfg):
    import subprocess
    import sys

    store = ResultsStore(tmp_path)
    _save(store, cfg)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / "moons" / f".{cfg.key()}.json.{HOST}.{dead}.abc123.tmp"
    live = tmp_path / "moons" / f".{cfg.key()}.npz.{HOST}.{os.getpid()}.def456.tmp"
    stale.write_text("half a reco")
    live.write_text("being written")
    assert store.remove_stale_temporaries() == [stale]
    assert not stale.exists() and live.exists()
    assert store.load(cfg) is not None
