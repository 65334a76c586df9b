"""The book checker's page checks, on hand-written DOMs (the browser itself runs in CI)."""

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

spec = importlib.util.spec_from_file_location(
    "check_book", Path(__file__).parent.parent / "scripts" / "check_book.py")
check_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_book)

COLAB = "https://colab.research.google.com/github/o/r/blob/main/notebooks/x.ipynb"


def page(body, colab=True):
    link = f'<a href="{COLAB}">Colab</a>' if colab else ""
    return f"<html><body>{link}<article><h1>Title</h1>{body}</article></body></html>"


@pytest.fixture
def html_file(tmp_path):
    Image.new("RGB", (40, 30), "red").save(tmp_path / "fig.png")
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path / "notebooks" / ".." / "page.html"


def test_a_good_chapter_passes(html_file):
    dom = page('<figure><img src="fig.png"><figcaption>Fig</figcaption></figure>')
    assert check_book.page_problems("notebooks/03_make_moons", dom, html_file) == []


@pytest.mark.parametrize("dom, colab, expected", [
    ('<figure><img src="empty.png"></figure>', True, "does not render"),
    ('<figure><img src="missing.png"></figure>', True, "does not render"),
    ('<figure><figcaption>no picture</figcaption></figure>', True, "without an image"),
    ('<pre>Traceback (most recent call last):</pre>', True, "traceback"),
    ('<p>fine</p>', False, "Colab"),
])
def test_problems_are_found(html_file, dom, colab, expected):
    problems = check_book.page_problems("notebooks/04_cifar10", page(dom, colab), html_file)
    assert any(expected in p for p in problems), problems


def test_unrendered_page_and_toc():
    assert check_book.page_problems("book/intro", "<html></html>", Path("/tmp/x.html"))
    pages = check_book.toc_pages()
    assert pages[0] == "book/intro" and "notebooks/01_pruning" in pages
