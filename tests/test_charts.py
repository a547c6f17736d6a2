"""The chart helper, the offline renderer and the quiz helper, tested without a browser."""

from __future__ import annotations

import json
import re

import altair as alt
import pandas as pd
import pytest

from usrok import book, charts, quiz

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
    assert "Source: Kane (2006)" in spec["title"]["subtitle"]
    assert spec["description"].startswith("A line of US personnel")


def test_check_rejects_a_chart_built_without_the_helper():
    bare = alt.Chart(DATA).mark_line().encode(x="year:Q", y="troops:Q").properties(title="t")
    with pytest.raises(charts.ChartSpecError):
        charts.check(bare)


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
    html = book.chart_html(_chart().to_dict())
    spec = json.loads(re.search(r'class="usrok-spec">(.*?)</script>', html, re.S).group(1))
    assert spec["mark"]["type"] == "line" if isinstance(spec["mark"], dict) else spec["mark"] == "line"
    assert "$schema" not in spec  # the bundle's Vega-Lite 6 would warn about a v5 label
    assert 'data-description="A line of US personnel by year' in html
    assert "Source: Kane (2006)" in html
    assert '<details class="usrok-data">' in html


def test_charts_of_a_page_share_one_copy_of_their_data():
    one, two = _chart(), _chart(title="Same data, second chart")
    body = book.chart_html(one.to_dict()) + "<p>text</p>" + book.chart_html(two.to_dict())
    pooled = book.pool_datasets(body)
    specs = [json.loads(m) for m in re.findall(r'class="usrok-spec">(.*?)</script>', pooled, re.S)]
    assert len(specs) == 2 and all("datasets" not in s for s in specs)
    pool = json.loads(re.search(r'id="usrok-datasets">(.*?)</script>', pooled, re.S).group(1))
    assert len(pool) == 1
    assert list(pool.values())[0] == [{"year": 1990, "troops": 41344}, {"year": 1991, "troops": 40062},
                                      {"year": 1992, "troops": 35743}]
    assert specs[0]["data"]["name"] in pool and specs[1]["data"]["name"] in pool


def test_renderer_escapes_script_end_tags_in_data():
    evil = pd.DataFrame({"year": [1], "label": ["</script><script>alert(1)</script>"]})
    chart = charts.finish(alt.Chart(evil).mark_point().encode(x="year:Q", tooltip="label:N"),
                          title="t", description="d d d d d d", source="s")
    html = book.pool_datasets(book.chart_html(chart.to_dict()))
    assert "</script><script>alert" not in html
    pool = re.search(r'id="usrok-datasets">(.*?)</script>', html, re.S).group(1)
    assert "alert(1)" in json.dumps(json.loads(pool))  # the value survives, escaped


def _question(correct_count=1, why=True):
    answers = [{"text": f"answer {i}", "correct": i < correct_count, "why": "because" if why else ""}
               for i in range(3)]
    return [{"question": "Which?", "answers": answers}]


def test_quiz_renders_one_radio_group_per_question_with_feedback():
    html = quiz.quiz_html("demo", _question() * 2)
    assert html.count("<fieldset>") == 2
    assert len(re.findall(r'type="radio" name="demo-q1"', html)) == 3
    assert html.count("Correct.") == 2 and html.count("Not quite.") == 4


@pytest.mark.parametrize("bad", [_question(correct_count=0), _question(correct_count=2), _question(why=False)])
def test_quiz_refuses_questions_without_exactly_one_answer_and_explanations(bad):
    with pytest.raises(ValueError):
        quiz.quiz_html("demo", bad)
