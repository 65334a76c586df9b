"""The chapters' ``compute`` parameter: read the store, compute what it lacks, or recompute."""

from pathlib import Path

import pytest

from prunelib.book import chapter_runs

ROOT = Path(__file__).resolve().parent.parent


def test_missing_fills_an_empty_store_and_then_computes_nothing(tmp_path):
    store = tmp_path / "store"
    first = chapter_runs("moons", "smoke", store, compute="missing", seeds=1)
    assert len(first.df) == len(first.sweep.runs()) > 0
    assert "computed" in first.how
    stamps = {p: p.stat().st_mtime_ns for p in store.rglob("*.json")}
    assert len(stamps) == len(first.df)
    again = chapter_runs("moons", "smoke", store, compute="missing", seeds=1)
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*.json")} == stamps
    assert list(again.df["key"]) == list(first.df["key"])


def test_all_recomputes_into_a_fresh_store(tmp_path, monkeypatch):
    store = tmp_path / "store"
    chapter_runs("moons", "smoke", store, compute="missing", seeds=1)
    n_files = len(list(store.rglob("*.json")))
    fresh = chapter_runs("moons", "smoke", store, compute="all", seeds=1)
    assert Path(fresh.store.root) != store and len(list(store.rglob("*.json"))) == n_files


def test_unknown_compute_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compute must be one of"):
        chapter_runs("moons", "smoke", tmp_path, compute="everything")


def test_paper_store_without_runs_says_what_to_do(tmp_path):
    with pytest.raises(RuntimeError, match='compute = "missing"'):
        chapter_runs("cifar10", "paper", tmp_path, compute="store")


def test_a_chapter_recomputes_into_an_empty_store_with_one_parameter(tmp_path):
    """compute="missing" on an empty store (smoke profile): the chapter trains its grid into
    that store and draws every figure."""
    papermill = pytest.importorskip("papermill")
    store = tmp_path / "store"
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "03_make_moons.ipynb"), str(out),
                               parameters={"profile": "smoke", "compute": "missing",
                                           "store": str(store)},
                               cwd=str(ROOT / "notebooks"), kernel_name="python3",
                               progress_bar=False)
    assert len(list(store.glob("moons/*.json"))) > 0
    import nbformat

    nb = nbformat.read(out, as_version=4)
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.outputs)
    assert images >= 5
