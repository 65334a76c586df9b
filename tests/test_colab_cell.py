"""The notebooks' Colab install cells, executed as Colab would (without Colab).

Each cell runs in a fresh Python process with a stub ``google.colab`` module imported
(Colab has it imported, which is what the cells' guard tests), after the notebook's
parameters cell. The repository URL of ``_config.yml`` is pointed at a local
repository (``file://``) and Colab's ``/content/`` at a temporary folder; ``git`` runs
for real, ``pip`` is a stub that records its command instead of installing. The
checks: the cell clones the repository (once: a second run reuses the clone), would
install prunelib from it, and points ``store`` at the clone's results store, which
holds records; without ``google.colab`` the cell does nothing.

``test_colab_cell_mechanics`` uses a small repository made here (the library, its
``pyproject.toml`` and a results store with one run); ``test_colab_clone_of_this_
repository`` clones this repository's committed HEAD, which is what a Colab reader
gets from GitHub.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
COLAB_DIR = "/content/"

GIT = ["git", "-c", "user.name=prunelib tests", "-c", "user.email=tests@prunelib.invalid",
       "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]

DRIVER = r'''
import json, subprocess, sys

calls = []
_real_run = subprocess.run


def _fake(cmd, *args, **kwargs):
    cmd = [str(c) for c in (cmd if isinstance(cmd, (list, tuple)) else cmd.split())]
    calls.append(cmd)
    if cmd[1:4] == ["-m", "pip", "install"] or cmd[:2] == ["pip", "install"]:
        return subprocess.CompletedProcess(cmd, 0, "", "")   # pip: recorded, not run
    if cmd[0] != "git":
        raise AssertionError(f"the Colab cell ran an unexpected command: {cmd}")
    return _real_run(cmd, *args, **kwargs)


def _fake_call(cmd, *args, **kwargs):
    return _fake(cmd, *args, **kwargs).returncode


subprocess.run = _fake
subprocess.call = subprocess.check_call = _fake_call


class _Shell:                        # get_ipython().run_line_magic("pip", "install ...")
    def run_line_magic(self, name, line):
        calls.append([name, *line.split()] if name == "pip" else ["%" + name, line])

    def system(self, line):
        calls.append(line.split())


if sys.argv[4] == "colab":
    import google.colab  # noqa: F401  (the stub on PYTHONPATH)
ns = {"__name__": "__main__", "get_ipython": _Shell}
exec(compile(open(sys.argv[1]).read(), "parameters-cell", "exec"), ns)
exec(compile(open(sys.argv[2]).read(), "colab-cell", "exec"), ns)
out = {"calls": calls, "store": ns.get("store"), "colab": "google.colab" in sys.modules}
with open(sys.argv[3], "w") as f:
    json.dump(out, f)
'''


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _colab_cell(path: Path) -> str | None:
    cells = [s for s in _code_cells(path) if "google.colab" in s]
    return cells[0] if cells else None


CELLS = [p for p in NOTEBOOKS if _colab_cell(p) is not None]


def _parameters(path: Path) -> set[str]:
    return {t.id for node in ast.parse(_code_cells(path)[0]).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def _git(*args, cwd=None) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def run_cell(nb: Path, tmp: Path, origin: Path, colab: bool = True) -> dict:
    """Run ``nb``'s Colab cell with the repository URL -> ``file://origin`` and Colab's
    ``/content/`` -> ``tmp/content/``; returns its commands, ``store`` and the clone."""
    cell = _colab_cell(nb)
    assert REPO_URL in cell, (
        f"the Colab cell must name the repository URL of _config.yml ({REPO_URL}) so that "
        "this test can point it at a local repository")
    content = tmp / "content"
    content.mkdir(exist_ok=True)
    code = cell.replace(REPO_URL, f"file://{origin}").replace(COLAB_DIR, f"{content}/")
    (tmp / "params.py").write_text(_code_cells(nb)[0])
    (tmp / "cell.py").write_text(code)
    (tmp / "driver.py").write_text(DRIVER)
    stub = tmp / "stub" / "google" / "colab"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text('"""A stand-in for Colab\'s google.colab."""\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["PYTHONPATH"] = str(tmp / "stub")
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_TERMINAL_PROMPT"] = "0"
    out = tmp / "out.json"
    proc = subprocess.run([sys.executable, str(tmp / "driver.py"), str(tmp / "params.py"),
                           str(tmp / "cell.py"), str(out), "colab" if colab else "plain"],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, f"the Colab cell failed:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(out.read_text())
    result["content"] = content
    return result


def _pip_installs(calls) -> list[list[str]]:
    return [c for c in calls if "pip" in c[:3] and "install" in c]


def _clones(calls) -> list[list[str]]:
    return [c for c in calls if c[:2] == ["git", "clone"]]


def _pip_target(cmd: list[str]) -> str:
    args = cmd[cmd.index("install") + 1:]
    return [a for a in args if not a.startswith("-")][-1]


def _is_prunelib(folder: Path) -> bool:
    import tomllib

    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"] == "prunelib"


def check_cell(nb: Path, result: dict, origin: Path) -> Path | None:
    """The checks common to both tests; returns the store the cell points at (or None)."""
    assert result["colab"]
    installs = _pip_installs(result["calls"])
    assert len(installs) == 1, f"expected one pip install, got {result['calls']}"
    target = _pip_target(installs[0])
    clones = _clones(result["calls"])
    if clones:
        clone = Path(clones[0][-1])
        assert clones[0][-2] == f"file://{origin}"
        assert clone.is_relative_to(result["content"]), "clone outside Colab's /content/"
        assert _is_prunelib(clone), f"{clone} does not hold prunelib's pyproject.toml"
        assert Path(target) == clone, f"pip installs {target!r}, not the clone {clone}"
    else:  # pip's git+URL: it would clone the repository itself
        assert target.endswith(f"git+file://{origin}"), target
        assert _is_prunelib(origin)
    if "store" not in _parameters(nb):
        return None
    assert clones, "a chapter that reads the results store must clone the repository"
    store = Path(result["store"])
    assert store == Path(clones[0][-1]) / "results", f"store = {store}, not the clone's results"
    return store


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """A small repository: the library, its pyproject.toml and a store with one record."""
    import numpy as np

    from prunelib.config import SweepConfig, TrainSpec
    from prunelib.store import ResultsStore

    repo = tmp_path_factory.mktemp("origin")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    base = dict(study="moons", profile="smoke", dataset="moons", model="mlp",
                model_kwargs={"in_features": 2, "hidden": [4], "n_classes": 2},
                data_kwargs={"n_train": 32, "n_val": 16, "n_test": 32, "noise": 0.2},
                train=TrainSpec(lr=0.05, max_iters=10, eval_every=5, patience=2))
    cfg = SweepConfig(base=base, techniques=("oneshot_reset",), ratios=(0.0,), seeds=(0,)).runs()[0]
    ResultsStore(repo / "results").save(cfg, {"metrics": {"accuracy": 0.5}},
                                        {"test_labels": np.zeros(4, dtype=np.int64)})
    _git("init", "-q", str(repo))
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "fixture", cwd=repo)
    return repo


def test_every_chapter_has_a_colab_cell():
    assert CELLS == NOTEBOOKS


@pytest.mark.parametrize("nb", CELLS, ids=lambda p: p.stem)
def test_colab_cell_mechanics(nb, tmp_path, origin):
    from prunelib.store import ResultsStore

    result = run_cell(nb, tmp_path, origin)
    store = check_cell(nb, result, origin)
    if store is not None:
        records = ResultsStore(store).records()
        assert len(records) == 1 and records[0]["config"]["study"] == "moons"
        # run again, as a reader re-running the cell does: the clone is reused
        again = run_cell(nb, tmp_path, origin)
        assert _clones(again["calls"]) == [] and len(_pip_installs(again["calls"])) == 1
        assert again["store"] == result["store"]
    # outside Colab the cell does nothing
    (tmp_path / "plain").mkdir()
    plain = run_cell(nb, tmp_path / "plain", origin, colab=False)
    assert plain["calls"] == [] and not plain["colab"]
    if "store" in _parameters(nb):
        assert plain["store"] == "../results"


def test_colab_clone_of_this_repository(tmp_path):
    """What a Colab reader gets: a clone of the committed HEAD, with its results store."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    nb = next((p for p in CELLS if "store" in _parameters(p)), None)
    if nb is None:
        pytest.skip("no chapter reads the results store")
    result = run_cell(nb, tmp_path, ROOT)
    store = check_cell(nb, result, ROOT)
    records = sorted(store.glob("*/*.json")) if store.is_dir() else []
    assert records, (
        f"the clone of this repository's HEAD has no results store ({store} holds no record): "
        "a Colab reader's chapter has nothing to draw from; commit results/")
