"""Pages opened in a real browser (headless Chromium): a ``daskmeans report`` page moved
alone into an empty folder, and the built documentation's index, KMeans API page and a
gallery page. Each must load with no console error, no page error and no failed
request, and every image must have loaded (``naturalWidth > 0``); a screenshot of each
is kept as an artefact (in ``$DASKMEANS_ARTIFACTS`` when set, else a temporary folder;
the path is printed).

Why Playwright: it drives the system's Chromium (Debian's ``chromium`` package, given
as ``executable_path``: no browser is ever downloaded, ``playwright install`` is never
run) and gives in a few lines what the checks need: console messages, uncaught page
errors, every request and its failure, JavaScript evaluated in the page, full-page
screenshots, with its own timeouts. Speaking the Chrome DevTools Protocol directly
would mean our own WebSocket client, event plumbing and browser process handling for
the same checks. Playwright is a pip-installable dependency of the ``dev`` extra.

Where Chromium or Playwright is missing, or the docs are not built, the tests skip
naming what is missing; under CI (``$CI`` set) they fail instead, so CI cannot go
green without having looked at the pages (``.ci/run`` installs ``chromium`` and builds
the docs before the suite).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

#: Debian's chromium package; ``$DASKMEANS_CHROMIUM`` names another build
CHROMIUM = os.environ.get("DASKMEANS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
#: where ``python -m sphinx -W -b html docs docs/_build/html`` writes the docs
DOCS_HTML = Path(os.environ.get("DASKMEANS_DOCS_HTML") or ROOT / "docs" / "_build" / "html")
#: the longest a page may take to load (a file on a local disk)
TIMEOUT_MS = 15_000


def unavailable(message: str) -> None:
    """Skip, naming what is missing; under CI fail: CI must open the pages."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: the browser tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, driven by Playwright, for the module's pages."""
    if not Path(CHROMIUM).is_file():
        unavailable(f"Chromium is not installed ({CHROMIUM} is missing; Debian: apt-get "
                    "install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots are kept (printed, so a run's log says where)."""
    where = os.environ.get("DASKMEANS_ARTIFACTS")
    folder = Path(where) / "browser" if where else tmp_path_factory.mktemp("browser")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"browser screenshots in {folder}")
    return folder


def open_and_check(browser: Any, path: Path, shot: Path) -> dict[str, Any]:
    """Open ``path`` (a local file), fail on any console error, page error, failed
    request or image that did not load; keep a full-page screenshot at ``shot``.
    Returns the page's images (``src``, ``alt``, ``naturalWidth``) and the URLs it
    requested."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    requested: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} "
                                                       f"({r.failure})"))
    page.on("request", lambda r: requested.append(r.url))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        # every image decoded or failed: a lazy one is scrolled to first
        images = page.evaluate("""async () => {
            const imgs = Array.from(document.images);
            for (const img of imgs) {
                img.loading = "eager";
                img.scrollIntoView();
                if (!img.complete) {
                    await new Promise(done => { img.onload = img.onerror = done; });
                }
            }
            window.scrollTo(0, 0);
            return imgs.map(i => ({src: i.currentSrc || i.src, alt: i.alt,
                                   naturalWidth: i.naturalWidth}));
        }""")
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    broken = [f"{i['alt'] or i['src'][:80]}" for i in images if i["naturalWidth"] <= 0]
    assert not problems, f"{path}: " + "; ".join(problems)
    assert not broken, f"{path}: images that did not load: {broken}"
    assert shot.stat().st_size > 0
    return {"images": images, "requested": requested}


def test_report_page_alone_in_a_folder(browser: Any, report_html: Path,
                                       tmp_path: Path, artifacts: Path) -> None:
    """A report page moved alone into an empty folder shows all its figures."""
    staged = tmp_path / "staged.html"
    shutil.copy(report_html, staged)  # the session's page stays for the other tests
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    page_path = Path(shutil.move(staged, alone / "report.html"))
    assert [p.name for p in alone.iterdir()] == ["report.html"]
    got = open_and_check(browser, page_path, artifacts / "report.png")
    embedded = [i for i in got["images"] if i["src"].startswith("data:image/png;base64,")]
    assert len(embedded) == len(got["images"]) >= 4, [i["alt"] for i in got["images"]]
    # nothing fetched but the page itself and its data: URIs: no network, no sibling
    others = [u for u in got["requested"]
              if u != page_path.as_uri() and not u.startswith("data:")]
    assert not others, others


def docs_pages() -> dict[str, Path]:
    """The built docs' index, KMeans API page and first gallery page (skipped, or
    failed under CI, when the docs are not built)."""
    index = DOCS_HTML / "index.html"
    if not index.is_file():
        unavailable(f"the docs are not built ({index} is missing): build them with "
                    "'python -m sphinx -W -b html docs docs/_build/html', or set "
                    "DASKMEANS_DOCS_HTML to a built copy")
    pages = sorted(DOCS_HTML.rglob("*.html"))
    api = [p for p in pages if p.name in ("daskmeans.KMeans.html", "KMeans.html")]
    # sphinx-gallery ends every example page with its download buttons
    gallery = [p for p in pages if p.name != "index.html" and "sg_execution_times" not in
               p.name and "sphx-glr-download" in p.read_text(encoding="utf-8",
                                                             errors="replace")]
    assert api, f"no KMeans API page (daskmeans.KMeans.html) under {DOCS_HTML}"
    assert gallery, f"no sphinx-gallery example page under {DOCS_HTML}"
    return {"index": index, "api": api[0], "gallery": gallery[0]}


@pytest.mark.parametrize("which", ["index", "api", "gallery"])
def test_docs_page(browser: Any, which: str, artifacts: Path) -> None:
    path = docs_pages()[which]
    got = open_and_check(browser, path, artifacts / f"docs-{which}.png")
    if which == "gallery":  # an example that ran at build time drew its figures
        assert got["images"], f"{path}: a gallery page without a figure"
    if which == "api":
        text = path.read_text(encoding="utf-8")
        assert "cluster_centers_" in text, f"{path}: KMeans' attributes are not documented"
