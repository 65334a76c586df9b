"""Static checks of the book's notebooks and configuration (fast: nothing is executed).

- every page named in ``_toc.yml`` exists, and every notebook is in the toc;
- each chapter notebook's first code cell is a papermill ``parameters`` cell
  that sets ``profile = "paper"``;
- kernelspec ``python3``; no outputs are committed;
- the Colab install cell is valid Python, guarded by ``"google.colab" in sys.modules``,
  and installs from the repository URL set in ``_config.yml``; chapters that read the results
  store clone the repository there and read the clone's results.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent


_spec = importlib.util.spec_from_file_location("toc", ROOT / "scripts" / "toc.py")
toc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toc)


def _resolve(entry: str) -> list[Path]:
    found = toc.source_of(ROOT, entry)
    return [found] if found is not None else []


TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC_ENTRIES = toc.toc_entries(ROOT)
NOTEBOOKS = [p for e in TOC_ENTRIES for p in _resolve(e) if p.suffix == ".ipynb"]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters(path: Path) -> dict:
    """Constant assignments of the notebook's first code cell: ``{"profile": "paper", ...}``."""
    first = _code_cells(_read(path))[0]
    return {
        t.id: node.value.value
        for node in ast.parse(first.source).body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def test_toc_has_the_five_chapters_in_order():
    chapters = [e for e in TOC_ENTRIES if e.startswith("notebooks/")]
    assert chapters == [
        "notebooks/01_pruning",
        "notebooks/02_lottery_ticket",
        "notebooks/03_make_moons",
        "notebooks/04_cifar10",
        "notebooks/05_ood",
    ]
    assert TOC["root"] == "book/intro"


@pytest.mark.parametrize("entry", TOC_ENTRIES)
def test_toc_entry_exists_exactly_once(entry):
    found = _resolve(entry)
    assert len(found) == 1, f"_toc.yml entry {entry!r} resolves to {found or 'nothing'}"


def test_every_notebook_is_in_the_toc():
    on_disk = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(NOTEBOOKS) == on_disk


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_starts_with_a_title(path):
    nb = _read(path)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), (
        "the first cell must be the chapter's markdown title"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_parameters_with_paper_profile(path):
    cells = _code_cells(_read(path))
    assert cells, "notebook has no code cell"
    first = cells[0]
    assert "parameters" in first.metadata.get("tags", []), (
        "first code cell must be tagged 'parameters'"
    )
    assert _parameters(path).get("profile") == "paper", 'the parameters cell must set profile = "paper"'


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernelspec_is_python3(path):
    nb = _read(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert nb.metadata.get("language_info", {}).get("name") == "python"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_outputs_committed(path):
    for i, cell in enumerate(_code_cells(_read(path))):
        assert cell.get("outputs") == [], f"code cell {i} has outputs: clear them before committing"
        assert cell.get("execution_count") is None, f"code cell {i} has an execution count"


def _is_colab_guard(test: ast.expr) -> bool:
    """``"google.colab" in sys.modules``"""
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Constant)
        and test.left.value == "google.colab"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.In)
        and ast.unparse(test.comparators[0]) == "sys.modules"
    )


class _DropColabBlocks(ast.NodeTransformer):
    """Replace the body of every ``if "google.colab" in sys.modules:`` by ``pass``."""

    def visit_If(self, node: ast.If) -> ast.If:
        self.generic_visit(node)
        if _is_colab_guard(node.test):
            node.body = [ast.Pass()]
        return node


def _pip_outside_guard(source: str) -> bool:
    """True if ``pip`` appears in the code (comments aside) outside the Colab guard."""
    return "pip" in ast.unparse(_DropColabBlocks().visit(ast.parse(source)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_install_cell_is_guarded(path):
    cells = [c for c in _code_cells(_read(path)) if "pip" in c.source]
    assert cells, "no Colab install cell (a guarded pip install of prunelib)"
    repo_url = CONFIG["repository"]["url"].rstrip("/")
    for cell in cells:
        lines = cell.source.splitlines()
        assert not any(ln.lstrip().startswith(("!", "%")) for ln in lines), (
            "use subprocess or get_ipython().run_line_magic, not shell/magic syntax"
        )
        tree = ast.parse(cell.source)  # valid Python on a plain kernel
        assert not _pip_outside_guard(cell.source), (
            'pip may only run under `if "google.colab" in sys.modules:`'
        )
        assert any(isinstance(n, ast.If) and _is_colab_guard(n.test) for n in ast.walk(tree))
        installs = f"git+{repo_url}" in cell.source or (
            f'"git", "clone", "--depth", "1", "{repo_url}"' in cell.source
        )
        assert installs, (
            f"the Colab cell must install from the repository URL in _config.yml ({repo_url}), "
            "with pip's git+URL or from a clone"
        )
        if "store" in _parameters(path):
            # the paper profile reads the committed results: a Colab session needs the clone
            assert "git" in cell.source and "clone" in cell.source and "store =" in cell.source, (
                "a chapter that reads the results store must clone the repository in Colab and "
                "point `store` at the clone's results"
            )


def test_config_repository_url_is_set_once():
    text = (ROOT / "_config.yml").read_text()
    url = CONFIG["repository"]["url"]
    assert text.count(url) == 1
    assert CONFIG["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    assert CONFIG["html"]["use_repository_button"] is True
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["execute"]["execute_notebooks"] == "cache"


def test_bibliography_has_the_required_entries():
    bib = (ROOT / "book" / "references.bib").read_text()
    for key in (
        "blalock2020state",
        "frankle2019lottery",
        "guo2017calibration",
        "hendrycks2017baseline",
        "agrawal2023pruning",
    ):
        assert "{" + key + "," in bib, key
    assert "bibliography" in (ROOT / "book" / "references.md").read_text()
