"""Accessibility: axe-core on every page, charts with names and data tables, keyboard use, colour."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from conftest import HTML, ROOT, executed_notebooks, html_pages

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PAGES = [str(p.relative_to(HTML)) for p in html_pages()]  # builds the book first when needed (conftest)


@pytest.mark.parametrize("path", PAGES)
def test_axe_finds_no_serious_or_critical_violations(open_page, path):
    assert AXE.exists(), "axe-core is missing: run `make browser` (npm ci)"
    page = open_page(path).page
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — e.g. {v['nodes'][0]['html'][:160]}"
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{path}:\n" + "\n".join(bad)


def _chart_pages():
    return [p for p in PAGES if "usrok-spec" in (HTML / p).read_text(encoding="utf-8")]


@pytest.mark.parametrize("path", _chart_pages())
def test_every_chart_has_an_accessible_name_and_a_data_table(open_page, path):
    page = open_page(path).page
    blocks = page.locator(".usrok-chart-block")
    assert blocks.count() >= 1
    for i in range(blocks.count()):
        block = blocks.nth(i)
        svg = block.locator(".usrok-chart svg").first
        name = svg.get_attribute("aria-label") or ""
        assert svg.get_attribute("role") == "img" and len(name.split()) >= 6, \
            f"chart {i} on {path} lacks a descriptive accessible name: {name!r}"
        assert name == block.locator(".usrok-chart").get_attribute("data-description")
        # The data view opens with the keyboard and holds real rows.
        summary = block.locator("details.usrok-data > summary")
        summary.focus()
        page.keyboard.press("Enter")
        table = block.locator("details.usrok-data table").first
        table.wait_for(state="visible", timeout=3000)
        assert table.locator("tbody tr").count() >= 1


def _first_quiz_page():
    for p in PAGES:
        if "usrok-quiz" in (HTML / p).read_text(encoding="utf-8"):
            return p
    return None


def test_quiz_works_with_the_keyboard_alone(open_page):
    path = _first_quiz_page()
    assert path, "no page has a quiz"
    page = open_page(path).page
    first = page.locator(".usrok-quiz fieldset").first
    # Tab from the top of the page until focus lands in the first question.
    for _ in range(400):
        page.keyboard.press("Tab")
        if page.evaluate("() => !!document.activeElement.closest('.usrok-quiz fieldset')"):
            break
    else:
        pytest.fail("Tab never reached the quiz")
    page.keyboard.press("Space")  # choose the focused answer
    chosen = page.evaluate("() => document.activeElement.id")
    why = page.locator(f"#{chosen} ~ .usrok-why")
    assert why.is_visible(), "feedback did not appear after choosing with the keyboard"
    assert why.inner_text().startswith(("Correct.", "Not quite.")), "feedback must say right/wrong in words"
    page.keyboard.press("ArrowDown")  # change the answer: its own feedback shows
    other = page.evaluate("() => document.activeElement.id")
    assert other != chosen and page.locator(f"#{other} ~ .usrok-why").is_visible()
    status = first.locator(".usrok-status")
    assert status.inner_text().strip(), "screen-reader status was not updated"


def test_download_and_launch_menus_work_with_the_keyboard(open_page):
    page = open_page("chapters/02_origins_and_the_cold_war.html").page
    for menu, item in ((".dropdown-download-buttons", ".btn-download-notebook-button"),
                       (".dropdown-launch-buttons", "a")):
        toggle = page.locator(f"{menu} > button")
        assert toggle.count() == 1, f"{menu} is missing"
        toggle.focus()
        page.keyboard.press("Enter")
        link = page.locator(f"{menu} .dropdown-menu {item}").first
        link.wait_for(state="visible", timeout=3000)
        page.keyboard.press("ArrowDown")
        focused = page.evaluate("() => document.activeElement.closest('.dropdown-menu') !== null")
        assert focused, f"arrow keys do not move into the {menu} menu"
        page.keyboard.press("Escape")


# ----------------------------------------------------------------------------- colour
# Machado, Oliveira & Fernandes (2009) simulation matrices, severity 1.0, linear RGB.
CVD = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}


def _lin(c):
    c /= 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _lab(rgb):
    r, g, b = rgb
    x = 0.4124 * r + 0.3576 * g + 0.1805 * b
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = 0.0193 * r + 0.1192 * g + 0.9505 * b
    f = [v ** (1 / 3) if v > 0.008856 else 7.787 * v + 16 / 116
         for v in (x / 0.95047, y / 1.0, z / 1.08883)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def _simulate(hex_colour, matrix):
    rgb = [_lin(int(hex_colour[i:i + 2], 16)) for i in (1, 3, 5)]
    out = [min(1.0, max(0.0, sum(m * c for m, c in zip(row, rgb)))) for row in matrix]
    return _lab(out)


def test_palette_stays_distinguishable_under_colour_vision_deficiencies():
    from usrok.charts import PALETTE

    series_colours = PALETTE[:6]  # the colours charts use for series (yellow is last, for fills)
    worst = {}
    for name, matrix in CVD.items():
        labs = [_simulate(c, matrix) for c in series_colours]
        worst[name] = min(math.dist(a, b) for a, b in itertools.combinations(labs, 2))
    # CIE76 distance of 10 is a clearly visible difference between two flat colours.
    assert all(d >= 10 for d in worst.values()), worst


def test_palette_fails_the_check_when_two_colours_collide():
    """The colour check bites: red vs green is indistinguishable for deuteranopes."""
    red_green = [_simulate(c, CVD["deuteranopia"]) for c in ("#ff0000", "#a0a000")]
    assert math.dist(*red_green) < 10


def _vegalite_specs():
    """Every Vega-Lite spec the executed pages produced (cell outputs and glued figures)."""
    def find(node, source):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "application/vnd.vegalite.v5+json" and isinstance(value, dict):
                    yield source, value
                else:
                    yield from find(value, source)
        elif isinstance(node, list):
            for item in node:
                yield from find(item, source)

    specs = []
    for name, notebook in executed_notebooks().items():  # charts are cell outputs (chapters as notebooks)
        specs += list(find(notebook, name))
    for path in (ROOT / "_build" / "jupyter_execute").rglob("*.glue.json"):
        specs += list(find(json.loads(path.read_text(encoding="utf-8")), path.name))
    return specs


def _units(spec):
    """Yield every unit/layer spec that carries an encoding."""
    if isinstance(spec, dict):
        if "encoding" in spec:
            yield spec
        for key in ("layer", "vconcat", "hconcat", "concat"):
            for sub in spec.get(key, []):
                yield from _units(sub)
        if "spec" in spec:
            yield from _units(spec["spec"])


def _determines(rows, key, value) -> bool:
    """True when every value of ``key`` in the chart's data goes with a single ``value``."""
    seen = {}
    pairs = [(r[key], r[value]) for r in rows if key in r and value in r]
    for k, v in pairs:
        if seen.setdefault(k, v) != v:
            return False
    return bool(pairs)


def _colour_problems(name, spec) -> list[str]:
    """Colour encodings of a category that no shape, dash, text or labelled position backs up.

    Labelled position counts when each axis/row label names one colour category, e.g. bars
    labelled "plan" and "observed" that are also coloured by kind.
    """
    problems = []
    redundant = {"shape", "strokeDash", "text", "y", "x", "row", "column", "facet"}
    units = list(_units(spec))
    rows = [r for values in (spec.get("datasets") or {}).values() for r in values]
    for unit in units:
        colour = unit["encoding"].get("color", {})
        field = colour.get("field") if isinstance(colour, dict) else None
        if not field or colour.get("type") not in ("nominal", "ordinal"):
            continue
        channels = [u["encoding"][ch] for u in units for ch in redundant
                    if isinstance(u["encoding"].get(ch), dict) and u["encoding"][ch].get("field")]
        carried = any(c["field"] == field for c in channels) or any(
            c.get("type") in ("nominal", "ordinal") and _determines(rows, c["field"], field)
            for c in channels)
        if not carried:
            problems.append(f"{name}: colour encodes {field!r} with no shape/dash/label/position")
    return problems


def test_no_chart_carries_information_by_colour_alone(site):
    specs = _vegalite_specs()
    assert specs, "no executed charts found"
    problems = [p for name, spec in specs for p in _colour_problems(name, spec)]
    assert problems == [], "\n".join(problems)


def test_colour_alone_check_bites():
    """Two lines told apart only by a colour legend are reported; adding a dash fixes it."""
    spec = {"datasets": {"d": [{"year": 1, "v": 2, "kind": "a"}, {"year": 1, "v": 3, "kind": "b"}]},
            "encoding": {"x": {"field": "year", "type": "quantitative"},
                         "y": {"field": "v", "type": "quantitative"},
                         "color": {"field": "kind", "type": "nominal"}}}
    assert _colour_problems("bad", spec)
    spec["encoding"]["strokeDash"] = {"field": "kind", "type": "nominal"}
    assert _colour_problems("fixed", spec) == []
