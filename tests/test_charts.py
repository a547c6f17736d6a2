"""The chart helper, the offline renderer and the quiz helper, tested without a browser."""

from __future__ import annotations

import json
import re

import altair as alt
import pandas as pd
import pytest

from usrok import book_charts, book_csp, book_fixes, chart_troops, charts, data_catalogue, quiz, safe

DATA = pd.DataFrame({"year": [1990, 1991, 1992], "troops": [41344, 40062, 35743]})


def _chart(**kw):
    args = {"title": "US personnel", "description": "A line of US personnel by year, falling after 1990.",
            "source": "Kane (2006)"} | kw
    return charts.finish(alt.Chart(DATA).mark_line().encode(x="year:Q", y="troops:Q"), **args)


@pytest.mark.parametrize("missing", ["title", "description", "source"])
@pytest.mark.parametrize("empty", ["", "   ", None])
def test_finish_refuses_a_chart_without_title_description_or_source(missing, empty):
    with pytest.raises(charts.ChartSpecError, match=missing):
        _chart(**{missing: empty})


def test_finished_chart_carries_title_source_line_and_description():
    spec = charts.check(_chart())
    assert spec["title"]["text"] == "US personnel"
    assert "Source: Kane (2006)" in spec["title"]["subtitle"]  # drawn in notebooks
    assert spec["description"].startswith("A line of US personnel")
    meta = spec["usermeta"]["usrok"]
    assert meta["source"] == "Kane (2006)" and meta["description"].startswith("A line of US personnel")


def test_check_rejects_a_chart_built_without_the_helper():
    bare = alt.Chart(DATA).mark_line().encode(x="year:Q", y="troops:Q").properties(title="t")
    with pytest.raises(charts.ChartSpecError):
        charts.check(bare)


def test_check_reads_usermeta_not_a_source_subtitle():
    """A hand-written "Source:" subtitle is not metadata; usermeta without a source is refused."""
    faked = alt.Chart(DATA).mark_line().encode(x="year:Q", y="troops:Q").properties(
        title=alt.Title("t", subtitle=["Source: somewhere"]), description="a description of the chart")
    with pytest.raises(charts.ChartSpecError, match="charts.finish"):
        charts.check(faked)
    spec = _chart().to_dict()
    spec["usermeta"]["usrok"]["source"] = " "
    with pytest.raises(charts.ChartSpecError, match="source"):
        charts.check(spec)
    spec["usermeta"]["usrok"]["source"], spec["usermeta"]["usrok"]["description"] = "s", ""
    with pytest.raises(charts.ChartSpecError, match="description"):
        charts.check(spec)


def test_table_shows_the_main_data_with_tooltip_names_and_formats():
    events = pd.DataFrame({"year": [1991], "label": ["an event"]})
    spans = pd.DataFrame({"start": [1990], "end": [1991], "label": ["a plan"]})
    chart = charts.troops_annotated(DATA, title="t", description="d", source="s", events=events, spans=spans)
    spec = charts.check(chart)
    table = spec["usermeta"]["usrok"]["table"]
    assert spec["datasets"][table["dataset"]] == DATA.to_dict("records")  # not the events or spans
    assert [(c["field"], c["title"], c.get("format")) for c in table["columns"]] == [
        ("year", "Year", "d"), ("troops", "US personnel", ",d")]
    assert not any(c["field"] in ("label_y", "side", "label_y_narrow") for c in table["columns"])


def test_table_without_tooltips_uses_the_encoded_fields():
    chart = charts.finish(alt.Chart(DATA).mark_line().encode(x="year:Q", y=alt.Y("troops:Q", title="People")),
                          title="t", description="d", source="s")
    table = charts.metadata(chart)["table"]
    assert [(c["field"], c["title"], c.get("format")) for c in table["columns"]] == [
        ("year", "year", "d"), ("troops", "People", ",")]


def test_a_chart_can_name_its_table():
    table = {"dataset": "data-x", "columns": [{"field": "year", "title": "Year", "type": "quantitative"}]}
    assert charts.metadata(_chart(table=table))["table"] == table


def test_finish_declares_the_narrow_column_parameter_once():
    spec = charts.finish(_chart(), title="again", description="d", source="s").to_dict()
    assert [p for p in spec["params"] if p["name"] == "usrok_narrow"] == [{"name": "usrok_narrow", "value": False}]


def test_end_labels_of_close_lines_are_pushed_apart():
    values = pd.Series([53246, 35188, 24159])  # Japan, Germany, South Korea in 2023
    top = 326863
    offsets = chart_troops._dodge(values, top)
    pixel = [charts.HEIGHT * (1 - v / 350000) + dy for v, dy in zip(values, offsets)]
    gaps = sorted(pixel)
    assert min(b - a for a, b in zip(gaps, gaps[1:])) >= 14 - 1e-9
    assert chart_troops._dodge(pd.Series([100000, 20000]), top) == [0, 0]  # far apart: untouched


def test_sites_map_builder_draws_points_on_an_outline_with_the_points_as_its_table():
    square = {"type": "Polygon", "coordinates": [[[126.0, 35.0], [129.0, 35.0], [129.0, 38.0], [126.0, 35.0]]]}
    outline = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "South Korea"}, "geometry": square},
        {"type": "Feature", "properties": {"name": "North Korea"}, "geometry": square}]}
    points = pd.DataFrame({"name": ["A", "B", "C"], "lat": [37.5, 36.0, 35.5], "lon": [127.0, 127.5, 128.9],
                           "region": ["Seoul", "south of Seoul", "south of Seoul"]})
    chart = charts.sites_map(points, outline, groups=["Seoul", "south of Seoul"], title="Sites",
                             description="Three sites on a map", source="test", callouts={"A": ("Site A", 9, 0)})
    spec = charts.check(chart)
    table = spec["usermeta"]["usrok"]["table"]
    assert [r["name"] for r in spec["datasets"][table["dataset"]]] == ["A", "B", "C"]
    assert spec["projection"]["type"] == "mercator"
    with pytest.raises(ValueError, match="no such site"):
        charts.sites_map(points, outline, groups=["Seoul"], title="t", description="d", source="s",
                         callouts={"Z": ("Z", 9, 0)})


def test_course_theme_uses_the_colour_blind_safe_palette():
    assert alt.theme.active == "usrok"
    spec = _chart().to_dict()
    assert spec["config"]["range"]["category"] == charts.PALETTE


def test_notebook_output_is_vegalite_mimetype_not_cdn_html():
    bundle = _chart()._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.vegalite.v5+json" in bundle
    assert "text/html" not in bundle  # Altair's html renderer would load Vega from a CDN


def test_book_renderer_writes_spec_description_source_and_data_view():
    html = book_charts.chart_html(_chart(subtitle="Hover for values").to_dict())
    spec = json.loads(re.search(r'class="usrok-spec">(.*?)</script>', html, re.S).group(1))
    assert spec["mark"]["type"] == "line" if isinstance(spec["mark"], dict) else spec["mark"] == "line"
    assert "$schema" not in spec  # the bundle's Vega-Lite 6 would warn about a v5 label
    assert 'data-description="A line of US personnel by year' in html
    assert '<span class="usrok-source">Source: Kane (2006)</span>' in html
    assert spec["title"]["subtitle"] == ["Hover for values"]  # the page prints the source, not the chart
    assert '<details class="usrok-data">' in html


def test_book_renderer_takes_description_and_source_from_usermeta():
    spec = _chart().to_dict()
    spec["usermeta"]["usrok"].update(source="Meta source", description="Meta description of the chart")
    html = book_charts.chart_html(spec)
    assert "Meta source" in html and 'data-description="Meta description of the chart"' in html
    assert "Kane (2006)" not in html.split('class="usrok-spec"')[0]


def test_script_json_cannot_end_its_script_element():
    text = book_charts.script_json({"a": "<!--<script></script>&amp;"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "<!--<script></script>&amp;"}


def test_charts_of_a_page_share_one_copy_of_their_data():
    one, two = _chart(), _chart(title="Same data, second chart")
    body = book_charts.chart_html(one.to_dict()) + "<p>text</p>" + book_charts.chart_html(two.to_dict())
    pooled = book_charts.pool_datasets(body)
    specs = [json.loads(m) for m in re.findall(r'class="usrok-spec">(.*?)</script>', pooled, re.S)]
    assert len(specs) == 2 and all("datasets" not in s for s in specs)
    pool = json.loads(re.search(r'id="usrok-datasets">(.*?)</script>', pooled, re.S).group(1))
    assert len(pool) == 1
    assert list(pool.values())[0] == [{"year": 1990, "troops": 41344}, {"year": 1991, "troops": 40062},
                                      {"year": 1992, "troops": 35743}]
    assert specs[0]["data"]["name"] in pool and specs[1]["data"]["name"] in pool


@pytest.mark.parametrize("payload", ["</script><script>alert(1)</script>", "<!--<script>", "a & b > c"])
def test_renderer_escapes_markup_in_data(payload):
    evil = pd.DataFrame({"year": [1], "label": [payload]})
    chart = charts.finish(alt.Chart(evil).mark_point().encode(x="year:Q", tooltip="label:N"),
                          title=payload, description="d d d d d d", source=payload)
    html = book_charts.pool_datasets(book_charts.chart_html(chart.to_dict()))
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S):
        assert "<" not in block and ">" not in block and "&" not in block
    pool = re.search(r'id="usrok-datasets">(.*?)</script>', html, re.S).group(1)
    assert list(json.loads(pool).values()) == [[{"year": 1, "label": payload}]]  # the value survives
    assert payload not in html.replace(html_escape(payload), "")  # elsewhere only escaped


def html_escape(text):
    import html

    return html.escape(text)


@pytest.mark.parametrize("address,link", [
    ("https://example.org/a?b=1&c=2", True), ("HTTP://EXAMPLE.ORG", True), (" https://x.org ", True),
    ("javascript:alert(1)", False), (" JavaScript:alert(1)", False), ("data:text/html,<b>", False),
    ("//evil.example", False), ("https://x.org/\"onmouseover=alert(1)", False), ("", False), (None, False)])
def test_addresses_from_data_become_links_only_when_http(address, link):
    html = safe.link_html(address, "<the source>")
    assert ("<a href=" in html) is link
    assert "&lt;the source&gt;" in html and "javascript" not in html.lower()


def test_catalogue_links_web_addresses_and_repository_files_only(tmp_path):
    folder = tmp_path / "data"
    (folder / "raw").mkdir(parents=True)
    (folder / "raw" / "extract.csv").write_text("a\n1\n")
    (folder / "t.csv").write_text("a\n1\n")
    package = {"name": "p", "resources": [{"name": "t", "path": "t.csv", "format": "csv", "sources": [
        {"title": "Web", "path": "https://example.org/data"},
        {"title": "Evil", "path": "javascript:alert(1)"},
        {"title": "Raw extract", "path": "raw/extract.csv"},
        {"title": "Elsewhere", "path": "shared/data-sources/gone.csv"}]}]}
    (folder / "datapackage.json").write_text(json.dumps(package))
    text = data_catalogue.catalogue_markdown(data_dir=folder, repository_url="https://github.com/o/r")
    assert "[Web](<https://example.org/data>)" in text
    assert "](javascript" not in text and "<javascript" not in text
    assert "{download}`data/raw/extract.csv <../data/raw/extract.csv>`" in text  # in the repository
    assert "([in the repository](<https://github.com/o/r/blob/main/data/raw/extract.csv>))" in text
    assert "gone.csv`, not in this repository" in text
    assert "{ref}`t <data-t>`" in text and "(data-t)=\n## t" in text  # linked name, labelled section


def test_page_policy_allows_the_themes_scripts_but_not_content_scripts():
    page = ("<html><head><meta charset=\"utf-8\" /><script>var theme = 1;</script>"
            "<script src=\"x.js\"></script></head><body><button onclick=\"window.print()\">p</button>"
            "<article class=\"bd-article\"><script>alert(1)</script><p onclick=\"alert(2)\">x</p>"
            "<script type=\"application/json\">{}</script></article></body></html>")
    policy = book_csp.content_security_policy(page)
    scripts = policy.split("script-src ")[1].split(";")[0]
    assert book_csp._sha256("var theme = 1;") in scripts and book_csp._sha256("window.print()") in scripts
    assert book_csp._sha256("alert(1)") not in scripts and book_csp._sha256("alert(2)") not in scripts
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    fixed = book_csp.with_csp(page)
    assert fixed.index("Content-Security-Policy") < fixed.index("<script")
    assert book_csp.with_csp(fixed).count("Content-Security-Policy") == 1  # idempotent


def test_theme_navbar_is_switched_off_unless_configured():
    class Config:
        html_theme_options: dict = {}

    config = Config()
    config.html_theme_options = {}
    book_fixes._no_theme_navbar(None, config)
    assert config.html_theme_options["navbar_persistent"] == []
    config.html_theme_options = {"navbar_persistent": ["search-button-field"]}
    book_fixes._no_theme_navbar(None, config)
    assert config.html_theme_options["navbar_persistent"] == ["search-button-field"]


def _question(correct_count=1, why=True):
    answers = [{"text": f"answer {i}", "correct": i < correct_count, "why": "because" if why else ""}
               for i in range(3)]
    return [{"question": "Which?", "answers": answers}]


def test_quiz_renders_one_radio_group_per_question_with_feedback():
    html = quiz.quiz_html("demo", _question() * 2)
    assert html.count("<fieldset>") == 2
    assert len(re.findall(r'type="radio" name="demo-q1"', html)) == 3
    assert html.count("Correct.") == 2 and html.count("Not quite.") == 4


def test_quiz_needs_no_inline_script_and_ignores_unknown_keys():
    questions = [q | {"objective": "3.2"} for q in _question()]
    html = quiz.quiz_html("demo", questions)
    assert "<form" not in html and not re.search(r"\son[a-z]+=", html)  # nothing for the CSP to block
    assert "3.2" not in html


@pytest.mark.parametrize("bad", [_question(correct_count=0), _question(correct_count=2), _question(why=False)])
def test_quiz_refuses_questions_without_exactly_one_answer_and_explanations(bad):
    with pytest.raises(ValueError):
        quiz.quiz_html("demo", bad)
