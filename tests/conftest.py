"""Shared fixtures: the built book, a local web server, and headless Chromium.

The browser is Debian's `chromium`, driven by Playwright for Python; every request
that does not go to 127.0.0.1 is aborted, so a page that needs the internet fails.

The book is built (incrementally, once per run) only when a selected test needs it. Tests are
marked by what they use: ``book`` (the built site) and ``slow`` (the book, the grader, executed
notebooks, a new environment: minutes). ``pytest -m "not slow"`` runs the rest in seconds,
without building anything; ``USROK_SKIP_BUILD=1`` tests an existing ``_build`` as it is.
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def build_book() -> subprocess.CompletedProcess:
    """Build (incrementally) with warnings as errors; returns the finished process.

    One build at a time: each worker of a parallel run builds (a no-op, seconds, once the
    first has built), and two Sphinx runs must never write the same _build at once."""
    (ROOT / "_build").mkdir(exist_ok=True)
    with open(ROOT / "_build" / ".pytest-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run([str(BIN / "jupyter-book"), "build", str(ROOT), "-W", "-n", "--keep-going"],
                              capture_output=True, text=True, cwd=ROOT)


_BUILD: dict = {}
# Fixtures that need the built book; and fixtures (here and in the test files) that take minutes.
BOOK_FIXTURES = {"book_build", "site", "server", "open_page", "html_dir"}
SLOW_FIXTURES = BOOK_FIXTURES | {"built", "graded", "broken", "executed", "fresh_python", "secrets",
                                 "hostile", "guide_clone"}  # a sandboxed batch; the guide run on a clone


def pytest_configure(config):
    config.addinivalue_line("markers", "book: needs the built book (built once per run, when first needed)")
    config.addinivalue_line("markers", "slow: builds or executes notebooks, grades, or makes an environment")
    _BUILD["config"] = config


# Parallel runs (`make test`: pytest-xdist, two workers, --dist loadfile): each test file goes to
# one worker whole, so its module and session fixtures (a batch graded, a venv installed,
# JupyterLab started) are made once. The files that grade in the sandbox must never grade at the
# same time: their checks for processes left behind look at every sandbox user, so they would see
# the other batch's, and their time limits assume the batch has the machine. Each of their tests
# holds a lock, setup and teardown included. The longest file starts first, the other two last.
SANDBOX_FILES = {"test_grading.py", "test_hostile.py", "test_instructor_guide.py"}
SANDBOX_LOCK = Path(tempfile.gettempdir()) / f"usrok-pytest-sandbox-{os.getuid()}.lock"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(item.fixturenames)
        if used & BOOK_FIXTURES:
            item.add_marker("book")
        if used & SLOW_FIXTURES:
            item.add_marker("slow")
    first, last = "test_grading.py", SANDBOX_FILES - {"test_grading.py"}
    items.sort(key=lambda item: 0 if item.path.name == first else 2 if item.path.name in last else 1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.path.name not in SANDBOX_FILES:
        return (yield)
    with open(SANDBOX_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return (yield)


def _book_tests_deselected() -> bool:
    """True when the `-m` expression leaves out tests marked book (and slow)."""
    config = _BUILD.get("config")
    expression = config.getoption("markexpr", "") if config else ""
    if not expression:
        return False
    try:
        from _pytest.mark.expression import Expression

        return not Expression.compile(expression).evaluate(lambda name, **kw: name in ("book", "slow"))
    except Exception:  # pytest changed its private API: build, to be safe
        return False


def ensure_built() -> subprocess.CompletedProcess:
    """Build the book once per run (or trust the existing _build when USROK_SKIP_BUILD is set)."""
    if "result" not in _BUILD:
        if os.environ.get("USROK_SKIP_BUILD"):
            _BUILD["result"] = subprocess.CompletedProcess(["(USROK_SKIP_BUILD)"], 0, "", "")
        else:
            _BUILD["result"] = build_book()
    return _BUILD["result"]


@pytest.fixture(scope="session")
def book_build():
    """The finished build (see ensure_built). Fails on any warning."""
    return ensure_built()


@pytest.fixture(scope="session")
def site(book_build):
    assert book_build.returncode == 0, book_build.stdout[-4000:] + book_build.stderr[-4000:]
    return HTML


EDITION = HTML / "lite"  # the in-browser edition (JupyterLite): tested in tests/test_edition.py


def html_pages() -> list[Path]:
    """Every page of the built book (not Sphinx's own search/genindex pages, not the edition's).

    Test modules call this while they are collected: it builds the book first, unless the
    run leaves out the tests that need it (then there are no pages to test).
    """
    if _book_tests_deselected():
        return []
    ensure_built()
    skip = {"search.html", "genindex.html"}
    return sorted(p for p in HTML.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts
                  and not p.is_relative_to(EDITION))


def redirect_target(path: str) -> str | None:
    """The URL a built page's meta refresh sends the browser to, or None."""
    text = (HTML / path).read_text(encoding="utf-8", errors="replace")[:2000]
    match = re.search(r'http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', text, re.I)
    return match.group(1) if match else None


def executed_notebooks() -> dict:
    """Each notebook page of the last build with the outputs the book shows, by page name.

    The book executes in myst-nb's cache mode: the outputs live in the execution cache
    (_build/.jupyter_cache), not in _build/jupyter_execute. A page whose code changed since
    the last build has no match there (KeyError).
    """
    import jupytext
    from jupyter_cache import get_cache

    cache = get_cache(str(ROOT / "_build" / ".jupyter_cache"))
    notebooks = {}
    for page in [ROOT / "intro.md", *sorted((ROOT / "chapters").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        if text.startswith("---\njupytext"):
            notebooks[page.stem] = cache.merge_match_into_notebook(jupytext.reads(text, fmt="md:myst"))[1]
    return notebooks


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".ipynb": "application/x-ipynb+json", ".js": "text/javascript",
                      ".mjs": "text/javascript"}

    def log_message(self, *args):  # keep the test output readable
        pass


@pytest.fixture(scope="session")
def server(site):
    """Serve _build/html on 127.0.0.1 (a random free port)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="session")
def playwright_driver():
    """The one Playwright of the session: its sync API cannot be started twice at once, so
    every test that launches a browser of its own (e.g. with other flags) launches it here."""
    from playwright.sync_api import sync_playwright

    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is not installed: run `make browser` (apt-get install chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_driver):
    b = playwright_driver.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                          args=CHROMIUM_FLAGS)
    yield b
    b.close()


class PageVisit:
    """A page opened offline, with its console errors and blocked/failed requests recorded."""

    def __init__(self, page):
        self.page = page
        self.console_errors: list[str] = []
        self.blocked: list[str] = []
        self.failed: list[str] = []


@pytest.fixture
def open_page(browser, server):
    """open_page(path) -> PageVisit; a fresh context per page (cold cache unless reused)."""
    contexts = []

    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def _open(path: str, context=None, wait_for_charts: bool = True) -> PageVisit:
        ctx = context or browser.new_context()
        if context is None:
            contexts.append(ctx)
        page = ctx.new_page()
        visit = PageVisit(page)

        def route(r):
            if r.request.url.startswith("http://127.0.0.1:"):
                r.continue_()
            else:
                visit.blocked.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: m.type == "error" and visit.console_errors.append(m.text))
        page.on("pageerror", lambda e: visit.console_errors.append(str(e)))
        page.on("requestfailed", lambda r: visit.failed.append(f"{r.url} {r.failure}"))
        page.goto(f"{server}/{path}", wait_until="load")
        redirect = redirect_target(path)
        if redirect:  # a refresh stub (index.html): wait until the browser has moved on
            page.wait_for_url(f"{server}/{posixpath.normpath(posixpath.join(posixpath.dirname(path), redirect))}",
                              wait_until="load", timeout=10000)
        charts = page.locator(".usrok-chart")
        if wait_for_charts and charts.count():
            # Each chart draws when the reader comes near it (charts.js): scroll to each, as
            # a reader would, until it is drawn, then back to the top.
            try:
                for i in range(charts.count()):
                    charts.nth(i).scroll_into_view_if_needed(timeout=15000)
                    page.wait_for_function(
                        "e => e.dataset.drawn", arg=charts.nth(i).element_handle(), timeout=30000)
            except PlaywrightTimeout:
                pass  # the test's own assertions say which chart did not draw, and why
            page.evaluate("window.scrollTo(0, 0)")

        return visit

    yield _open
    for ctx in contexts:
        ctx.close()
