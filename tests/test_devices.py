"""Every reader, every device: a phone (390 px, touch) and a laptop (1280 px), light and dark.

Navigation opens, nothing scrolls sideways, every chart fits its column and follows the
page's theme, axe finds nothing serious in dark mode (colour contrast included), a tap
shows the nearest point's values, the data table has a CSV, and the Content-Security-
Policy blocks nothing the site needs.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import HTML, html_pages, redirect_target

AXE_PATH = HTML.parents[1] / "node_modules" / "axe-core" / "axe.min.js"
# Every page (built first when needed, see conftest) but index.html, which only redirects.
PAGES = [path for path in (str(p.relative_to(HTML)) for p in html_pages()) if not redirect_target(path)]
CHAPTER = "chapters/01_expanding_the_alliance.html"
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
LAPTOP = {"viewport": {"width": 1280, "height": 900}}
# A chart may be scaled down to fit (text placed in pixels can keep it wide); below this
# its text gets too small to read, so the chart needs a narrow layout of its own.
MIN_SCALE = 0.8


def _context(browser, device: dict, mode: str, bypass_csp: bool = False):
    ctx = browser.new_context(**device, bypass_csp=bypass_csp)
    ctx.add_init_script(f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');")
    return ctx


@pytest.fixture
def phone_dark(browser):
    ctx = _context(browser, PHONE, "dark", bypass_csp=True)  # bypass: axe is injected as a script
    yield ctx
    ctx.close()


FITS = """() => {
  const page = document.documentElement;
  const charts = [...document.querySelectorAll('.usrok-chart')].map((c, i) => {
    const svg = c.querySelector('svg');
    return {i, column: c.getBoundingClientRect().width,
            drawn: svg ? svg.getBoundingClientRect().width : null,
            scaled: c.dataset.scaled ? Number(c.dataset.scaled) : 1, theme: c.dataset.theme};
  });
  return {scroll: page.scrollWidth, width: page.clientWidth, charts};
}"""


def _fit_problems(path: str, fit: dict, theme: str) -> list[str]:
    problems = []
    if fit["scroll"] > fit["width"]:
        problems.append(f"{path} scrolls sideways: {fit['scroll']} px of content in {fit['width']} px")
    for c in fit["charts"]:
        if c["drawn"] is None or c["drawn"] > c["column"] + 1:
            problems.append(f"{path} chart {c['i']}: {c['drawn']} px wide in a {c['column']} px column")
        if c["scaled"] < MIN_SCALE:
            problems.append(f"{path} chart {c['i']}: scaled to {c['scaled']} to fit (text too small)")
        if c["theme"] != theme:
            problems.append(f"{path} chart {c['i']}: drawn with the {c['theme']} theme on a {theme} page")
    return problems


def _axe(page, *, wait_for_scroll_stops: bool = True) -> list[str]:
    if wait_for_scroll_stops:  # the theme makes scrollable outputs focusable, a little after changes
        page.wait_for_function("""() => [...document.querySelectorAll(
              'pre, .output, .pst-scrollable-table-container')]
            .filter(e => e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight)
            .every(e => e.tabIndex === 0)""", timeout=10000)
    page.add_script_tag(path=str(AXE_PATH))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} — e.g. {v['nodes'][0]['html'][:160]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("path", PAGES)
def test_phone_in_dark_mode_fits_reads_and_follows_the_theme(open_page, phone_dark, path):
    """390 px, touch, dark: no sideways scroll, charts fit and are dark, axe (contrast too) is clean."""
    assert AXE_PATH.exists(), "axe-core is missing: run `make browser` (npm ci)"
    page = open_page(path, context=phone_dark).page
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    problems = _fit_problems(path, page.evaluate(FITS), "dark")
    # Open a data table and answer a quiz question: their text must read in dark mode too
    # (one of each: they share their styles).
    if page.locator("details.usrok-data").count():
        page.locator("details.usrok-data > summary").first.click()
        page.locator("details.usrok-data table").first.wait_for(state="attached", timeout=5000)
    if page.locator(".usrok-quiz").count():
        page.locator(".usrok-quiz input[type=radio]").first.check()
    problems += _axe(page)
    assert problems == [], "\n".join(problems)


# ----------------------------------------------------------------------------- navigation
@pytest.mark.parametrize("how", ["touch", "keyboard"])
def test_phone_menu_and_contents_open_their_panels(browser, open_page, how):
    ctx = _context(browser, PHONE, "light")
    try:
        page = open_page(CHAPTER, context=ctx, wait_for_charts=False).page
        for toggle, dialog, link in ((".primary-toggle", "#pst-primary-sidebar-modal", "nav.bd-docs-nav a"),
                                     (".secondary-toggle", "#pst-secondary-sidebar-modal", "nav.page-toc a")):
            button = page.locator(toggle)
            assert button.count() == 1 and button.is_visible(), f"{toggle}: one visible button expected"
            if how == "touch":
                button.tap()
            else:
                button.focus()
                page.keyboard.press("Enter")
            page.wait_for_function(f"() => document.querySelector('{dialog}').open", timeout=5000)
            page.locator(f"{dialog} {link}").first.wait_for(state="visible", timeout=5000)
            page.keyboard.press("Escape")
            page.wait_for_function(f"() => !document.querySelector('{dialog}').open", timeout=5000)
    finally:
        ctx.close()


@pytest.mark.parametrize("how", ["mouse", "keyboard"])
def test_laptop_menu_hides_and_shows_the_sidebar_and_contents_are_shown(browser, open_page, how):
    ctx = _context(browser, LAPTOP, "light")
    try:
        page = open_page(CHAPTER, context=ctx, wait_for_charts=False).page
        assert page.locator("#pst-header .search-button-field").count() == 0, "second search box in a top band"
        sidebar = page.locator("#pst-primary-sidebar")
        link = sidebar.locator("nav.bd-docs-nav a").last
        assert link.is_visible() and link.bounding_box()["y"] + link.bounding_box()["height"] <= 900, \
            "the last sidebar entry is below the fold of a 900 px high window"
        heights = sidebar.locator("nav.bd-docs-nav a").evaluate_all(
            "links => links.map(a => a.getBoundingClientRect().height)")
        assert min(heights) >= 24, f"sidebar links {min(heights):.1f} px high: below the 24 px target size"
        assert page.locator("#pst-secondary-sidebar nav.page-toc a").first.is_visible(), "Contents not shown"
        button = page.locator(".primary-toggle")
        assert button.count() == 1 and button.is_visible()
        for hidden in (True, False):
            if how == "mouse":
                button.click()
            else:
                button.focus()
                page.keyboard.press("Enter")
            expected = "" if hidden else "!"
            page.wait_for_function(f"() => {expected}document.getElementById('pst-primary-sidebar')"
                                   ".classList.contains('pst-sidebar-hidden')", timeout=5000)
    finally:
        ctx.close()


# ----------------------------------------------------------------------------- charts
def test_a_tap_shows_the_nearest_points_values(browser, open_page):
    ctx = _context(browser, PHONE, "light")
    try:
        page = open_page("chapters/02_origins_and_the_cold_war.html", context=ctx).page
        chart = page.locator(".usrok-chart").first
        chart.scroll_into_view_if_needed()
        # The line's first point, and a spot 10 px left of it, where no point is.
        spot = page.evaluate("""() => {
          const svg = document.querySelector('.usrok-chart svg');
          const points = [...svg.querySelectorAll('path')].filter(
            el => el.__data__ && el.__data__.mark && el.__data__.mark.marktype === 'symbol' && el.__data__.tooltip);
          const box = (el) => el.getBoundingClientRect();
          const first = points.reduce((a, b) => (box(b).left < box(a).left ? b : a));
          const r = box(first);
          return {x: r.left + r.width / 2 - 10, y: r.top + r.height / 2, tip: first.__data__.tooltip};
        }""")
        page.touchscreen.tap(spot["x"], spot["y"])
        tooltip = page.locator("#vg-tooltip-element")
        tooltip.wait_for(state="visible", timeout=5000)
        assert "Year" in tooltip.inner_text() and spot["tip"]["Year"] in tooltip.inner_text()
    finally:
        ctx.close()


def test_a_finger_drags_the_zoom_strip(browser, open_page):
    """A horizontal swipe across the strip under a troop chart zooms the chart above it."""
    ctx = _context(browser, PHONE, "light")
    try:
        page = open_page(CHAPTER, context=ctx).page
        labels = ("() => [...document.querySelector('.usrok-chart svg').querySelectorAll('.role-axis-label text')]"
                  ".map(t => t.textContent)")
        before = page.evaluate(labels)
        strip = page.evaluate("""() => {
          const lines = [...document.querySelector('.usrok-chart svg').querySelectorAll('.mark-line')];
          const strip = lines[lines.length - 1];  // the overview's lines, in the last view
          strip.scrollIntoView({block: 'center'});
          const r = strip.getBoundingClientRect();
          return {x: r.left, y: r.top + r.height / 2, w: r.width};
        }""")
        touch = ctx.new_cdp_session(page)
        start, end = strip["x"] + 0.5 * strip["w"], strip["x"] + 0.8 * strip["w"]
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start, "y": strip["y"]}]})
        for step in range(1, 11):
            x = start + (end - start) * step / 10
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": strip["y"]}]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_function("(before) => JSON.stringify((" + labels + ")()) !== before",
                               arg=json.dumps(before, separators=(",", ":")), timeout=5000)
        years = [int(t) for t in page.evaluate(labels) if t.isdigit() and len(t) == 4]
        # All decades (1950 ... 2020) before; the zoomed axis ticks every year or two.
        assert all(int(y) % 10 == 0 for y in before if y.isdigit() and len(y) == 4)
        assert any(y % 10 for y in years), f"the chart did not zoom: {years}"
    finally:
        ctx.close()


AXIS_LABEL_FILL = """() => {
  const label = document.querySelector('.usrok-chart svg .role-axis-label text');
  return label ? getComputedStyle(label).fill || label.getAttribute('fill') : null;
}"""


def test_charts_switch_to_the_dark_theme_with_the_page(browser, open_page):
    ctx = _context(browser, LAPTOP, "light")
    try:
        page = open_page(CHAPTER, context=ctx).page
        chart = page.locator(".usrok-chart").first
        assert chart.get_attribute("data-theme") == "light"
        light_fill = page.evaluate(AXIS_LABEL_FILL)
        # The theme button cycles through its modes; press it until the page is dark.
        for _ in range(3):
            page.locator(".theme-switch-button").first.click()
            if page.evaluate("document.documentElement.dataset.theme") == "dark":
                break
        page.wait_for_function("() => document.querySelector('.usrok-chart').dataset.theme === 'dark'"
                               " && !document.querySelector('.usrok-chart').dataset.redrawing", timeout=10000)
        dark_fill = page.evaluate(AXIS_LABEL_FILL)
        assert light_fill != dark_fill, "axis labels kept their colour"
        rgb = [int(v) for v in dark_fill.strip("rgb() ").split(",")[:3]]
        assert sum(rgb) / 3 > 150, f"axis labels are not light on the dark page: {dark_fill}"
        background = page.evaluate("getComputedStyle(document.querySelector('.usrok-chart svg')).backgroundColor")
        assert background in ("rgba(0, 0, 0, 0)", "transparent"), f"the chart is a {background} panel"
    finally:
        ctx.close()


def test_data_table_shows_the_main_data_with_a_csv(browser, open_page):
    ctx = browser.new_context(**LAPTOP, accept_downloads=True)
    try:
        page = open_page(CHAPTER, context=ctx).page
        details = page.locator("details.usrok-data").first
        details.locator("summary").click()
        table = details.locator("table")
        table.wait_for(timeout=5000)
        assert details.locator("table").count() == 1, "one table per chart"
        assert "Data behind the chart" in table.locator("caption").inner_text()
        headers = table.locator("th").all_inner_texts()
        assert headers == ["Host", "Year", "US personnel"], headers
        cells = table.locator("tbody td").all_inner_texts()
        assert "326,863" in cells and "1950" in cells, "numbers formatted, years without separators"
        with page.expect_download() as download:
            details.locator("a.usrok-csv").click()
        rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
        name = download.value.suggested_filename
        # Named after the chart's title, cut at a word (the title ends "..., 1950–2023").
        assert name.endswith(".csv") and not name[:-4].endswith("-") and len(name) <= 64, name
        assert rows[0] == headers and len(rows) == 1 + 222
        assert ["South Korea", "1952", "326863"] in rows
    finally:
        ctx.close()


# ----------------------------------------------------------------------------- CSP
VIOLATIONS = """window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || e.sample) + ' ' + (e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 120) : '')));"""


def test_content_security_policy_blocks_nothing_the_site_needs(browser, open_page):
    """Charts (Vega without eval), quiz, theme switch, menu and search all work under the policy."""
    ctx = _context(browser, LAPTOP, "light")
    ctx.add_init_script(VIOLATIONS)
    try:
        visit = open_page(CHAPTER, context=ctx)  # charts, a quiz, the menus, the theme switch
        page = visit.page
        policy = page.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
        scripts = policy.split("script-src")[1].split(";")[0]
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
        assert page.locator(".usrok-chart[data-drawn=true]").count() == page.locator(".usrok-chart").count()
        page.locator(".usrok-chart summary").first.click()  # the chart menu
        page.locator(".theme-switch-button").first.click()
        if page.locator(".usrok-quiz").count():
            page.locator(".usrok-quiz input[type=radio]").first.check()
            assert page.locator(".usrok-quiz .usrok-why").first.is_visible()
        page.locator("button.search-button__button").first.click()
        box = page.locator("#pst-search-dialog input[name=q]")
        box.fill("alliance")
        box.press("Enter")
        page.wait_for_url("**/search.html?q=alliance*")
        page.locator("#search-results li a").first.wait_for(timeout=15000)
        assert page.evaluate("window.__cspViolations") == []
        assert visit.console_errors == [], visit.console_errors
    finally:
        ctx.close()


def test_every_page_carries_the_policy_before_any_script(site):
    import re

    from usrok import book_csp

    for page in html_pages():
        text = page.read_text(encoding="utf-8")
        if redirect_target(str(page.relative_to(HTML))) and "<script" not in text:
            continue  # index.html: a meta refresh to the preface, nothing to protect
        meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', text)
        assert meta, f"{page.name} has no Content-Security-Policy"
        first_script = text.find("<script")
        assert first_script == -1 or meta.start() < first_script, f"{page.name}: a script comes before the policy"
        assert meta.group(1) == book_csp.content_security_policy(text), f"{page.name}: policy out of date"


def test_the_readers_dark_setting_is_followed(browser, open_page):
    """A phone set to dark mode, on a first visit (nothing chosen on the site yet), gets the dark site."""
    ctx = browser.new_context(**PHONE, color_scheme="dark")
    try:
        page = open_page(CHAPTER, context=ctx).page
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        assert page.locator(".usrok-chart").first.get_attribute("data-theme") == "dark"
    finally:
        ctx.close()
