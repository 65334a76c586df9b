"""What is published: the workflow that deploys the book (validated against the
GitHub-workflow JSON schema, offline), the book's execution-status page (its generator on
a tiny fake execution cache and results store) and the README's Python examples (run)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BOOK_WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"

spec = importlib.util.spec_from_file_location("status_page", ROOT / "scripts" / "status_page.py")
status_page = importlib.util.module_from_spec(spec)
sys.modules.setdefault("status_page", status_page)  # its dataclasses look their module up
spec.loader.exec_module(status_page)


# --------------------------------------------------------------------------------------------
# The publish workflow
# --------------------------------------------------------------------------------------------


def _check_jsonschema() -> str:
    exe = Path(sys.executable).with_name("check-jsonschema")
    found = str(exe) if exe.is_file() else shutil.which("check-jsonschema")
    if found is None:
        pytest.skip("check-jsonschema is not installed (it is in the 'dev' extra)")
    return found


def validate(*files: Path) -> subprocess.CompletedProcess:
    """``check-jsonschema --builtin-schema vendor.github-workflows``, as .ci/run runs it."""
    return subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.github-workflows",
                           *map(str, files)], capture_output=True, text=True, timeout=120,
                          check=False)


def test_workflows_are_valid_github_workflows():
    assert BOOK_WORKFLOW in WORKFLOWS
    proc = validate(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("breakage", ["no runs-on", "unknown trigger", "steps not a list",
                                      "uses and run in one step"])
def test_a_broken_workflow_fails_validation(tmp_path, breakage):
    wf = yaml.safe_load(BOOK_WORKFLOW.read_text())
    on = wf.pop(True) if True in wf else wf.pop("on")  # YAML 1.1 reads the key `on` as True
    wf["on"] = on
    build = wf["jobs"]["build"]
    if breakage == "no runs-on":
        del build["runs-on"]
    elif breakage == "unknown trigger":
        wf["on"]["pushh"] = wf["on"].pop("push")
    elif breakage == "steps not a list":
        build["steps"] = {"run": "make book"}
    else:
        build["steps"][0]["run"] = "echo both"
    broken = tmp_path / "book.yml"
    broken.write_text(yaml.safe_dump(wf, sort_keys=False))
    assert validate(broken).returncode != 0, breakage


def test_book_workflow_builds_from_the_store_and_deploys_to_pages():
    wf = yaml.safe_load(BOOK_WORKFLOW.read_text())
    on = wf.get("on", wf.get(True))
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    assert wf["concurrency"]["group"]
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    uses = {s["uses"].split("@")[0]: s for s in build["steps"] if "uses" in s}
    assert "actions/checkout" in uses
    assert str(uses["actions/setup-python"]["with"]["python-version"]) == "3.11"
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    runs = " ".join(s.get("run", "") for s in build["steps"])
    assert "make book" in runs and "PRUNELIB_DATA=" in runs  # no data folder: the store alone
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]


def test_ci_validates_the_workflows_and_builds_the_book_without_data():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--builtin-schema vendor.github-workflows" in ci
    book = [ln for ln in ci.splitlines() if ln.startswith("step book ")]
    assert book == ["step book env -u PRUNELIB_DATA make book PRUNELIB_DATA="]


# --------------------------------------------------------------------------------------------
# The execution-status page
# --------------------------------------------------------------------------------------------


def _notebook(path: Path, code: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


MYST_PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A page with code

```{code-cell} ipython3
print("hello")
```
"""


@pytest.fixture
def book(tmp_path):
    """A tiny book: two notebooks, a MyST notebook page and two plain pages."""
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_a\n"
        "  - file: notebooks/02_b\n  - file: book/page\n  - file: book/plain\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "book" / "plain.md").write_text("# Plain\n\nNo code.\n")
    (tmp_path / "book" / "page.md").write_text(MYST_PAGE)
    _notebook(tmp_path / "notebooks" / "01_a.ipynb", "x = 1\nprint(x)")
    _notebook(tmp_path / "notebooks" / "02_b.ipynb", "y = 2")
    return tmp_path


def _cache(book: Path, entry: str, seconds: float):
    """Record ``entry`` as executed, the way myst-nb's cache mode does."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    path = status_page.source_of(book, entry)
    cache = get_cache(str(book / "_build" / ".jupyter_cache"))
    return cache.cache_notebook_bundle(
        CacheBundleIn(status_page.read_notebook(path), str(path),
                      data={"execution_seconds": seconds}),
        check_validity=False, overwrite=True)


def _tiny_grid():
    from prunelib.config import SweepConfig, TrainSpec

    base = dict(study="moons", profile="smoke", dataset="moons", model="mlp",
                model_kwargs={"in_features": 2, "hidden": [4], "n_classes": 2},
                data_kwargs={"n_train": 32, "n_val": 16, "n_test": 32, "noise": 0.2},
                train=TrainSpec(lr=0.05, max_iters=10, eval_every=5, patience=2))
    return SweepConfig(base=base, techniques=("oneshot_reset",), ratios=(0.0, 0.5),
                       seeds=(0, 1))


def test_status_page_from_a_fake_cache(book, monkeypatch):
    from prunelib.store import ResultsStore
    from prunelib.sweep import bind_data

    out = book / "_build" / "status" / "execution.md"
    _cache(book, "book/page", 1.0)  # executed by an earlier build, before any --begin
    assert status_page.main(["--root", str(book), "--begin"]) == 0
    assert out.read_text() == status_page.PLACEHOLDER
    _cache(book, "notebooks/01_a", 2.5)  # executed by this build

    # a store holding 3 of the tiny grid's runs
    grid = _tiny_grid()
    n = len(grid.runs())
    assert n > 3
    store = ResultsStore(book / "results")
    for cfg in bind_data(grid, source="data").runs()[:3]:
        store.save(cfg, {"metrics": {"accuracy": 0.9, "ece": 0.05}},
                   {"test_labels": np.zeros(4, dtype=np.int64)})
    stamps = status_page.load_stamps(book / "_build" / "status" / "executions.json")
    rows = status_page.collect(book, book / "_build" / ".jupyter_cache", stamps,
                               store=book / "results", studies={"notebooks/01_a": "moons"},
                               grid_for=lambda study: grid)
    assert [r.entry for r in rows] == ["notebooks/01_a", "notebooks/02_b", "book/page"]
    a, b, page = rows
    assert a.seconds == 2.5 and a.executed is not None and a.runs == (3, n)
    assert a.env["machine"] and a.env["prunelib"] and a.env["python"].startswith("3.")
    assert b.executed is None and "not executed" in b.note and b.runs is None
    assert page.seconds == 1.0 and page.env == {} and "before the machine" in page.note
    text = status_page.render(rows)
    assert "{doc}`/notebooks/01_a`" in text and "2.5 s" in text and f"3 of {n}" in text
    assert a.env["machine"] in text and f"torch {a.env['torch']}" in text
    assert "2 of 3 executed pages" in text
    assert text.count("\n| ") == 4  # the header's rule and three pages: plain pages are left out

    # the build's last step: stamps and writes the table, and says that it changed
    assert status_page.main(["--root", str(book), "--exit-code-if-changed", "10"]) == 10
    table = out.read_text()
    assert "2.5 s" in table and "executed before the machine was recorded" in table
    assert status_page.main(["--root", str(book), "--exit-code-if-changed", "10"]) == 0
    # a stamp is kept: a later run on another machine does not claim the execution
    monkeypatch.setattr(status_page, "environment", lambda root=None: {"machine": "elsewhere"})
    assert status_page.main(["--root", str(book), "--exit-code-if-changed", "10"]) == 0
    assert "elsewhere" not in out.read_text()


def test_status_page_without_cache_or_store(book):
    """A fresh clone: nothing executed yet, no results store; nothing is loaded."""
    stamps = status_page.load_stamps(book / "missing.json")
    rows = status_page.collect(book, book / "_build" / ".jupyter_cache", stamps,
                               store=book / "results", studies={"notebooks/01_a": "moons"},
                               grid_for=lambda study: _tiny_grid())
    assert all(r.executed is None for r in rows)
    assert rows[0].runs == (0, len(_tiny_grid().runs()))
    assert not (book / "_build" / ".jupyter_cache").exists()  # not created by reading
    assert "0 of 3 executed pages" in status_page.render(rows)


def test_status_page_is_in_the_toc_and_includes_the_table():
    toc = status_page.toc_entries(ROOT)
    assert "book/status" in toc
    text = (ROOT / "book" / "status.md").read_text()
    assert "{include} ../_build/status/execution.md" in text
    assert set(status_page.CHAPTER_STUDIES) <= set(toc)
    assert set(status_page.CHAPTER_STUDIES.values()) == {"moons", "cifar10", "ood"}


# --------------------------------------------------------------------------------------------
# The README's Python examples
# --------------------------------------------------------------------------------------------


def _readme_blocks() -> list[tuple[str, str]]:
    """``(section heading, code)`` of every ```python block of README.md."""
    text = (ROOT / "README.md").read_text()
    out = []
    for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.DOTALL | re.MULTILINE):
        headings = re.findall(r"^## (.+)$", text[:m.start()], re.MULTILINE)
        out.append((headings[-1] if headings else "README", m.group(1)))
    return out


README_BLOCKS = _readme_blocks()


def test_readme_has_the_python_quick_start():
    assert any(h == "Quick start (Python)" for h, _ in README_BLOCKS)


@pytest.mark.parametrize("heading, code", README_BLOCKS,
                         ids=[f"{i}-{h}" for i, (h, _) in enumerate(README_BLOCKS)])
def test_readme_python_block_runs(heading, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = compile(code, f"README.md ({heading})", "exec")
        exec(code, {"__name__": "__readme__"})  # noqa: S102  (the README's own example)
    if heading == "Quick start (Python)":
        lines = stdout.getvalue().splitlines()
        assert [ln.split()[0] for ln in lines] == ["dense", "structured", "masked"]
        assert all("ECE" in ln and "NLL" in ln and "T =" in ln for ln in lines)
