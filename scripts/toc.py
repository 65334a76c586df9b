"""The book's table of contents, read once for every script and test that walks it.

``toc_entries`` lists every ``root``/``file`` of a Jupyter Book 1 ``_toc.yml`` in reading
order (the root first), as written there (no extension); ``source_of`` finds the page's
source (``.ipynb`` or ``.md``), or ``None`` when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import yaml

NESTED = ("parts", "chapters", "sections", "subtrees", "entries")


def _walk(node) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        out += [str(node[key]) for key in ("root", "file") if key in node]
        for key in NESTED:
            for child in node.get(key) or []:
                out += _walk(child)
    elif isinstance(node, list):
        for child in node:
            out += _walk(child)
    return out


def toc_entries(root: Path) -> list[str]:
    """Every ``file`` of ``root/_toc.yml`` (the root first), in order, without extension."""
    return _walk(yaml.safe_load((Path(root) / "_toc.yml").read_text()))


def source_of(root: Path, entry: str) -> Path | None:
    """The source file of a toc entry (``.ipynb`` or ``.md``), or ``None`` if there is none."""
    base = Path(root) / entry
    if base.suffix in (".ipynb", ".md"):
        return base if base.is_file() else None
    for suffix in (".ipynb", ".md"):
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    return None
