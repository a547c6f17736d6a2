"""Text first on a phone's first visit (usrok.speed): nothing in <head> blocks the first
paint, one small stylesheet, minified scripts, a favicon, the Vega bundle only where and
when a chart is about to be seen. Lighthouse itself runs in the benchmark, not here."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from usrok import speed

HEAD = re.compile(r"<head>.*?</head>", re.DOTALL)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL)


def _attrs(tag: str) -> dict:
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r'([\w:-]+)(?:="([^"]*)")?', tag)}


def _pages(site: Path) -> list[Path]:
    """The site's pages with a <head> (not the JupyterLite edition, not index.html's refresh stub)."""
    return [p for p in speed.site_pages(site) if "<head>" in p.read_text(encoding="utf-8")]


def _head(page: Path) -> str:
    return HEAD.search(page.read_text(encoding="utf-8")).group(0)


def _local(page: Path, url: str) -> Path:
    return (page.parent / url.split("?")[0].split("#")[0]).resolve()


def render_blocking_scripts(head: str) -> list[str]:
    """Scripts in <head> that stop the parser, or inline scripts that need a deferred one."""
    found = []
    for match in SCRIPT.finditer(head):
        attrs, body = _attrs(match.group(1)), match.group(2)
        if "src" in attrs and not ({"defer", "async"} & attrs.keys() or attrs.get("type") == "module"):
            found.append(attrs["src"])
        elif "src" not in attrs and attrs.get("type", "text/javascript") == "text/javascript" \
                and "DOCUMENTATION_OPTIONS" in body:
            found.append(f"inline: {body.strip()[:60]}")
    return found


# --------------------------------------------------------------------------- fast, no build
def test_head_scripts_are_deferred_and_the_colour_mode_script_stays():
    head = ('<head><script data-cfasync="false">document.documentElement.dataset.mode = "light";</script>'
            '<script src="_static/doctools.js?v=1"></script><script async src="a.js"></script>'
            "<script>DOCUMENTATION_OPTIONS.pagename = 'intro';</script>"
            "<script>let toggleHintShow = 'Click to show';</script></head>")
    assert len(render_blocking_scripts(head)) == 2  # the check bites on the theme's markup
    fixed = speed.defer_head_scripts(head)
    assert render_blocking_scripts(fixed) == []
    assert '<script data-cfasync="false">document.documentElement' in fixed  # runs before paint
    assert "<script>let toggleHintShow" in fixed  # declares a global: must stay a classic script
    assert speed.defer_head_scripts(fixed) == fixed  # idempotent


def test_purge_keeps_what_may_match_and_drops_the_rest():
    css = ('/*! licence, with a comma, (c) 2024 */.used{color:red}.unused{color:blue}'
           '.used .unused,.used:not(.unused){margin:0}a[href$=".pdf"]{x:y}'
           '@media (min-width:960px){.unused{top:0}}@media print{.used{top:1px}}'
           '@font-face{font-family:X;src:url(x.woff)}.bs-tooltip-auto{z:1}')
    out = speed.purge_css(css, {"used"})
    assert out.startswith("/*! licence, with a comma, (c) 2024 */.used{color:red}")
    assert ".unused{color:blue}" not in out and "min-width:960px" not in out
    assert ".used:not(.unused){margin:0}" in out and ".used .unused," not in out
    assert 'a[href$=".pdf"]' in out and "@media print{.used{top:1px}}" in out
    assert "@font-face" in out and ".bs-tooltip-auto" in out  # classes Bootstrap builds at run time


def test_icon_codepoints_come_from_the_stylesheet_strings():
    css = '.fa-bars{--fa:"\\f0c9"}.fa-0{--fa:"0"}.x:before{content:"\\f105 "}p{font-family:"DejaVu Sans"}'
    assert speed.icon_codepoints(css) == {0xF0C9, ord("0"), 0xF105}


def test_the_jupyterlite_edition_is_left_alone(tmp_path):
    for name in ("intro.html", "chapters/01.html", "lite/index.html", "lite/lab/index.html",
                 "_static/x.html", "_sources/a.html"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<html><head></head></html>")
    assert [str(p.relative_to(tmp_path)) for p in speed.site_pages(tmp_path)] == ["chapters/01.html", "intro.html"]


# --------------------------------------------------------------------------- the built site
def test_nothing_in_head_blocks_the_first_paint(site):
    blocking = {}
    assert len(_pages(site)) > 10
    for page in _pages(site):
        found = render_blocking_scripts(_head(page))
        if found:
            blocking[str(page.relative_to(site))] = found
    assert blocking == {}, f"render-blocking scripts in <head>: {blocking}"


def test_one_small_minified_stylesheet_named_by_content(site):
    sheets = set()
    for page in _pages(site):
        head = _head(page)
        links = [_attrs(m.group(0)) for m in re.finditer(r'<link\b[^>]*rel="stylesheet"[^>]*>', head)]
        assert len(links) == 1, f"{page.relative_to(site)} links {len(links)} stylesheets"
        assert re.search(r"_static/usrok/site\.[0-9a-f]{12}\.css$", links[0]["href"]), links[0]["href"]
        sheets.add(_local(page, links[0]["href"]))
    assert len(sheets) == 1, sheets
    sheet = sheets.pop()
    css = sheet.read_text(encoding="utf-8")
    assert len(gzip.compress(css.encode())) < 40_000, "the first paint's CSS is no longer small"
    assert speed.minify_css(css) == css, "the stylesheet is not minified"
    assert "font-display:block" not in css and "font-display:swap" in css
    for url in re.findall(r"url\(([^)\"']+)\)", css):
        if not url.startswith("data:"):
            assert _local(sheet, url).is_file(), f"the stylesheet points at a missing file: {url}"
    fonts = re.findall(r"url\((fonts/[^)]+\.woff)\)", css)
    assert len(fonts) == 3 and all(_local(sheet, f).stat().st_size < 20_000 for f in fonts), fonts


def test_every_script_the_pages_load_is_minified(site):
    scripts = set()
    for page in _pages(site):
        for match in SCRIPT.finditer(page.read_text(encoding="utf-8")):
            attrs = _attrs(match.group(1))
            for url in (attrs.get("src"), attrs.get("data-vega-bundle")):
                if url and not re.match(r"^[a-z]+:|//", url):
                    scripts.add(_local(page, url))
    assert len(scripts) > 10
    unminified = [str(s.relative_to(site)) for s in scripts
                  if not s.name.endswith(".min.js") and not speed.is_minified(s.read_text(encoding="utf-8"))]
    assert unminified == []


def test_the_vega_bundle_is_only_for_chart_pages_and_not_in_their_head_as_a_script(site):
    chart_pages = 0
    for page in _pages(site):
        text = page.read_text(encoding="utf-8")
        loaders = re.findall(r'<script\b[^>]*data-vega-bundle="([^"]+)"[^>]*>', text)
        if 'class="usrok-spec"' in text:
            chart_pages += 1
            assert len(loaders) == 1 and _local(page, loaders[0]).is_file(), page
            assert not re.search(r'<script\b[^>]*src="[^"]*vega-bundle-', text), f"{page} loads the bundle at once"
        else:
            assert loaders == [] and "vega-bundle-" not in text, f"{page} has no chart but loads Vega"
    assert chart_pages >= 5


def test_every_page_has_a_favicon(site):
    for page in _pages(site):
        icon = re.search(r'<link rel="icon" href="([^"]+)"', page.read_text(encoding="utf-8"))
        assert icon and _local(page, icon.group(1)).is_file(), f"{page.relative_to(site)}: no favicon"


@pytest.mark.parametrize("width,height", [(390, 844), (1280, 720)])
def test_charts_far_below_the_fold_draw_when_the_reader_scrolls_to_them(browser, open_page, width, height):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": height})
    visit = open_page("chapters/01_expanding_the_alliance.html", context=context, wait_for_charts=False)
    page = visit.page
    chart = page.locator(".usrok-chart").first
    assert chart.evaluate("e => e.getBoundingClientRect().top") > 2 * height, "the first chart is near the top"
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    loaded = "performance.getEntriesByType('resource').some(e => e.name.includes('vega-bundle-'))"
    assert not page.evaluate(loaded), "the Vega bundle loaded before any chart came near the screen"
    assert chart.get_attribute("data-drawn") is None
    chart.scroll_into_view_if_needed()
    expect(chart).to_have_attribute("data-drawn", "true", timeout=30_000)
    assert page.evaluate(loaded)
    assert visit.console_errors == [] and visit.failed == []
    context.close()


# ----------------------------------------------------------------------------- charts drawn one by one
def _page_with_most_charts(site: Path) -> str:
    pages = sorted((site / "chapters").glob("*.html"))
    most = max(pages, key=lambda p: (p.read_text(encoding="utf-8").count('class="usrok-spec"'), p.name))
    return str(most.relative_to(site))


# Wait until the charts the page asked for are drawn: two frames (the IntersectionObserver
# reports after a rendering update), then charts.js's drawing loop, again until it is idle
# (a chart drawn can bring another near the screen).
SETTLE = """async () => {
  const frames = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  for (;;) {
    await frames();
    const drawing = window.usrokChartsDrawing();
    if (!drawing) return;
    await drawing;
  }
}"""
# The element's box relative to the viewport, and the viewport's height.
BOX = "e => ({top: e.getBoundingClientRect().top, bottom: e.getBoundingClientRect().bottom, height: innerHeight})"


def _far_chart(page):
    """The page's last chart, which must start more than two screens below the top of the
    viewport (beyond the screen of margin within which charts draw)."""
    chart = page.locator(".usrok-chart").last
    box = chart.evaluate(BOX)
    assert box["top"] > 2 * box["height"], f"the last chart is not far below the screen: {box}"
    return chart


@pytest.mark.parametrize("width,height", [(390, 844), (1280, 720)])
def test_a_chart_far_below_the_fold_draws_when_the_reader_comes_near_it(browser, open_page, site, width, height):
    """On the page with the most charts: after load and after the reader reaches the first
    chart, the last one is not drawn; half a screen before it reaches the screen, it is,
    in the theme chosen meanwhile (the drawn charts switch too)."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=width < 600)
    context.add_init_script("localStorage.setItem('mode', 'light'); localStorage.setItem('theme', 'light');")
    visit = open_page(_page_with_most_charts(site), context=context, wait_for_charts=False)
    page = visit.page
    charts = page.locator(".usrok-chart")
    assert charts.count() >= 3
    page.evaluate(SETTLE)
    far = _far_chart(page)
    assert far.get_attribute("data-drawn") is None and far.locator("svg.marks").count() == 0
    # The reader reaches the first chart: it draws, the last one (still far) does not.
    charts.first.scroll_into_view_if_needed()
    expect(charts.first).to_have_attribute("data-drawn", "true", timeout=30_000)
    page.evaluate(SETTLE)
    far = _far_chart(page)
    assert far.get_attribute("data-drawn") is None and far.locator("svg.marks").count() == 0
    # Dark mode before the last chart is drawn: the drawn charts follow, the last one is drawn dark.
    for _ in range(3):
        page.locator(".theme-switch-button").first.click()
        if page.evaluate("document.documentElement.dataset.theme") == "dark":
            break
    expect(charts.first).to_have_attribute("data-theme", "dark", timeout=30_000)
    # Half a screen before the last chart comes into view, it draws.
    page.evaluate("e => window.scrollBy(0, e.getBoundingClientRect().top - 1.5 * innerHeight)", far.element_handle())
    assert far.evaluate(BOX)["top"] > height, "the last chart is already on the screen"
    expect(far).to_have_attribute("data-drawn", "true", timeout=30_000)
    assert far.get_attribute("data-theme") == "dark" and far.locator("svg.marks").count() == 1
    page.evaluate(SETTLE)
    themes = [c.get_attribute("data-theme") for c in charts.all() if c.get_attribute("data-drawn")]
    assert set(themes) == {"dark"}, themes
    assert visit.console_errors == [] and visit.failed == []
    context.close()


def test_printing_and_links_to_a_figure_draw_their_charts(browser, open_page, server, site):
    from playwright.sync_api import expect

    path = _page_with_most_charts(site)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    # Printing: every chart is drawn (a print laid out before they are says so, see charts.js).
    visit = open_page(path, context=context, wait_for_charts=False)
    page = visit.page
    page.evaluate(SETTLE)
    far = _far_chart(page)
    assert far.get_attribute("data-drawn") is None
    page.pdf()  # Chromium's print path (it fires beforeprint)
    page.evaluate(SETTLE)
    assert [c.get_attribute("data-drawn") for c in page.locator(".usrok-chart").all()] == \
        ["true"] * page.locator(".usrok-chart").count()
    # A link from another page to the last chart's figure: drawn, and on the screen.
    figure = far.evaluate("e => e.closest('figure[id]').id")
    assert figure.startswith("fig-")
    visit = open_page("intro.html", context=context, wait_for_charts=False)
    page = visit.page
    page.goto(f"{server}/{path}#{figure}", wait_until="load")
    target = page.locator(f"#{figure} .usrok-chart")
    expect(target).to_have_attribute("data-drawn", "true", timeout=30_000)
    page.evaluate(SETTLE)
    box = target.evaluate(BOX)
    assert box["top"] < box["height"] and box["bottom"] > 0, f"the linked chart is off the screen: {box}"
    # A link within the page (the reader at the top): drawn.
    visit = open_page(path, context=context, wait_for_charts=False)
    page = visit.page
    page.evaluate(SETTLE)
    target = page.locator(f"#{figure} .usrok-chart")
    assert target.get_attribute("data-drawn") is None
    page.evaluate("id => { location.hash = id; }", figure)
    expect(target).to_have_attribute("data-drawn", "true", timeout=30_000)
    assert visit.console_errors == [] and visit.failed == []
    context.close()
