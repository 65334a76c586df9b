"""Check the built book as a reader sees it, in headless Chromium.

For every page in ``_toc.yml`` this loads ``_build/html/<page>.html`` in headless
Chromium (Debian's ``chromium`` package), takes the DOM the browser built and a
screenshot (``_build/screenshots/<page>.png``, never committed), and checks:

* the page loaded: the theme's article and a first-level heading are there;
* no executed cell shows a Python traceback;
* every image in the article is a file that decodes to a non-empty picture, and
  every numbered figure holds one;
* chapter pages (``notebooks/``) carry the Colab launch button.

Exit status 1 lists every failure; 2 if Chromium is missing.

    python scripts/check_book.py [--html _build/html] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toc import toc_entries  # the scripts' shared toc reader

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]
COLAB = "https://colab.research.google.com/github/"


def toc_pages(root: Path = ROOT) -> list[str]:
    """Every file of ``_toc.yml`` (the root first), without extension."""
    return toc_entries(root)


class PageFacts(HTMLParser):
    """What the checks need from a page's DOM: images, figures, links, headings, text."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []        # img src inside the article
        self.figures = 0                   # <figure> elements in the article
        self.figures_with_image = 0
        self.links: list[str] = []
        self.h1 = 0
        self.article = False
        self.text: list[str] = []
        self._depth = 0                    # > 0 while inside <article>
        self._figure_has_img: list[bool] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article":
            self.article = True
            self._depth += 1
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "h1":
            self.h1 += 1
        elif tag == "figure" and self._depth:
            self.figures += 1
            self._figure_has_img.append(False)
        elif tag == "img" and self._depth and a.get("src"):
            self.images.append(a["src"])
            if self._figure_has_img:
                self._figure_has_img[-1] = True

    def handle_endtag(self, tag):
        if tag == "article" and self._depth:
            self._depth -= 1
        elif tag == "figure" and self._figure_has_img:
            self.figures_with_image += self._figure_has_img.pop()

    def handle_data(self, data):
        if self._depth:
            self.text.append(data)


def page_problems(page: str, dom: str, html_file: Path) -> list[str]:
    """The failed checks of one page, given the DOM Chromium built for it."""
    from PIL import Image

    facts = PageFacts()
    facts.feed(dom)
    problems = []
    if not facts.article or facts.h1 < 1:
        problems.append("page did not render (no article or no heading)")
    if "Traceback (most recent call last)" in "".join(facts.text):
        problems.append("an executed cell shows a traceback")
    for src in facts.images:
        if src.startswith(("http:", "https:")):
            continue
        if src.startswith("data:image"):
            continue
        path = (html_file.parent / src.split("#")[0].split("?")[0]).resolve()
        try:
            with Image.open(path) as im:
                im.load()
                if min(im.size) < 10:
                    problems.append(f"image {src} is only {im.size}")
        except (OSError, ValueError) as e:
            problems.append(f"image {src} does not render: {e.__class__.__name__}")
    if facts.figures != facts.figures_with_image:
        problems.append(f"{facts.figures - facts.figures_with_image} figure(s) without an image")
    if page.startswith("notebooks/") and not any(h.startswith(COLAB) for h in facts.links):
        problems.append("no Colab launch button")
    return problems


def chromium_dom(chromium: str, url: str, profile: str, screenshot: Path | None) -> str:
    base = [chromium, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
    out = subprocess.run([*base, "--dump-dom", url], check=False, capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"chromium failed on {url}: {out.stderr[-500:]}")
    if screenshot is not None:
        subprocess.run([*base, "--window-size=1280,1800", f"--screenshot={screenshot}", url],
                       capture_output=True, timeout=120, check=True)
    return out.stdout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    p.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    p.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = p.parse_args(argv)
    if not args.chromium:
        print("check_book: no chromium found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    args.screenshots.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory() as profile:
        for page in toc_pages():
            html_file = (args.html / f"{page}.html").resolve()
            if not html_file.exists():
                print(f"FAIL {page}: {html_file} was not built")
                failures += 1
                continue
            shot = args.screenshots / f"{page.replace('/', '_')}.png"
            dom = chromium_dom(args.chromium, html_file.as_uri(), profile, shot)
            problems = page_problems(page, dom, html_file)
            facts = PageFacts()
            facts.feed(dom)
            status = "FAIL" if problems else "ok  "
            print(f"{status} {page}: {len(facts.images)} image(s), {facts.figures} figure(s), "
                  f"screenshot {shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}")
            for prob in problems:
                print(f"     - {prob}")
            failures += bool(problems)
    print(f"{len(toc_pages())} pages checked, {failures} with problems")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
