"""The book builds clean, and every page works offline in a real browser."""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest

from conftest import HTML, html_pages


def test_book_builds_with_warnings_as_errors(book_build):
    log = book_build.stdout + book_build.stderr
    assert book_build.returncode == 0, log[-6000:]
    # ipykernel's own "[IPKernelApp] WARNING | Kernel is running over TCP" note is not a book warning.
    problems = [line for line in log.splitlines()
                if re.search(r"\b(WARNING|ERROR)\b", line) and "[IPKernelApp]" not in line]
    assert problems == [], "build printed warnings:\n" + "\n".join(problems)[:6000]


def test_every_toc_page_was_built(site):
    import yaml

    toc = yaml.safe_load((HTML.parents[1] / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert (site / f"{f}.html").exists(), f"{f}.html missing from the built site"


def test_site_root_takes_the_reader_to_the_preface(open_page):
    page = open_page("index.html").page  # open_page follows the refresh stub
    assert page.url.endswith("/intro.html"), page.url
    assert "how to use this module" in page.locator("h1").first.inner_text().lower()


def _relative(path):
    return str(path.relative_to(HTML))


PAGES = [_relative(p) for p in html_pages()]  # builds the book first when needed (conftest)


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_offline_and_every_chart_draws(open_page, path):
    visit = open_page(path)
    page = visit.page
    charts = page.locator(".usrok-chart")
    for i in range(charts.count()):
        chart = charts.nth(i)
        assert chart.get_attribute("data-drawn") == "true", f"chart {i} on {path} did not draw"
        assert chart.locator("svg, canvas").count() >= 1, f"chart {i} on {path} has no svg/canvas"
        label = chart.get_attribute("data-description") or ""
        assert len(label) > 20, f"chart {i} on {path} has no real text description"
    assert visit.console_errors == [], f"console errors on {path}: {visit.console_errors}"
    assert visit.blocked == [], f"{path} tried to reach the network: {visit.blocked}"
    assert visit.failed == [], f"failed requests on {path}: {visit.failed}"


def test_search_from_a_chapter_finds_the_chapters(open_page):
    """The search box works, though chapter pages no longer load the search index."""
    page = open_page("chapters/01_expanding_the_alliance.html").page
    page.locator("button.search-button__button").first.click()
    box = page.locator("#pst-search-dialog input[name=q]")
    box.fill("OPCON")
    box.press("Enter")
    page.wait_for_url("**/search.html?q=OPCON*")
    results = page.locator("#search-results li a")
    results.first.wait_for(timeout=10000)
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert any("chapters/04_roh_bush_realignment" in h for h in hrefs), hrefs


def test_only_the_search_page_loads_the_search_index(site):
    pages = [p for p in HTML.rglob("*.html") if "_static" not in p.parts]
    loading = [str(p.relative_to(HTML)) for p in pages if "searchindex.js" in p.read_text(encoding="utf-8")]
    assert loading == ["search.html"], f"pages loading the ~120 KB search index: {loading}"


def test_vega_bundle_is_a_shared_file_not_inlined(site):
    bundles = list((site / "_static" / "usrok").glob("vega-bundle-*.js"))
    assert len(bundles) == 1
    for page in html_pages():
        text = page.read_text(encoding="utf-8")
        assert "cdn.jsdelivr" not in text and "unpkg.com" not in text, f"{page} references a CDN"
        assert len(re.findall(r"vega-bundle-[^\"']+\.js", text)) <= 1, f"{page} loads the bundle twice"
        assert "window.vegaEmbed=vegaEmbed" not in text, f"{page} inlines the Vega bundle"


class _Links(HTMLParser):
    """Collects the ids of a page and the local URLs it links to or loads."""

    def __init__(self):
        super().__init__()
        self.ids, self.urls = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            url = attrs.get(key)
            if url and not re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", url, re.I):
                self.urls.append(url)


@functools.cache
def _parse(path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_internal_links_and_anchors_resolve(site):
    """Every local link, script, stylesheet and image of every page exists, and every
    #fragment names an element of its target page (cross-references, footnotes, glossary)."""
    pages = [p for p in site.rglob("*.html") if "_static" not in p.parts
             and "lite" not in p.relative_to(site).parts]  # the edition: tests/test_edition.py
    broken, checked = [], 0
    for page in pages:
        for url in _parse(page).urls:
            path, _, fragment = url.partition("#")
            path = path.split("?")[0]
            target = (page.parent / unquote(path)).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {url} (no such file)")
            elif fragment and target.suffix == ".html" and unquote(fragment) not in _parse(target).ids:
                broken.append(f"{page.relative_to(site)}: {url} (no element with this id)")
    assert checked > 1000, f"only {checked} links checked: is the parser finding them?"
    assert broken == [], "\n".join(broken[:40])



RAW_TABLE = re.compile(r"<p>\|[^<\n]*\|\s*\n\|")  # a paragraph of lines that start and end with |


def test_no_page_shows_a_markdown_table_as_text(site):
    """A table made by code (Markdown output) renders as a table: myst-nb renders output
    Markdown as CommonMark unless the cell asks for gfm, which leaves the pipes as text."""
    shown = [p.name for p in html_pages() if RAW_TABLE.search(p.read_text(encoding="utf-8"))]
    assert shown == [], f"pages showing a Markdown table as text: {shown}"


def test_raw_table_check_bites():
    assert RAW_TABLE.search("<p>| A | B |\n| --- | --- |\n| 1 | 2 |</p>")
    assert not RAW_TABLE.search("<table><tr><td>| not a table</td></tr></table>")
