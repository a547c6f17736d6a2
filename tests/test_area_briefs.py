"""The evidence briefs of chapter 8.1: one per area, complete, sourced and within length.

Checked on the page's source (chapters/08_1_evidence_briefs.md), no build needed:

- nine sections, headed by the nine areas of ``alliance_areas`` in the book's order;
- each 250-500 words of prose (code, figures and link addresses not counted);
- each has the five elements: the chapter, what each side brought, an episode with a year
  and another number, what made cooperation hard, a question for the assessment;
- each links at least one source beyond the source text, and every link points to an
  address in ``data/area_evidence.csv`` (so every cited fact has an excerpt on file);
- every number in a brief's prose appears in the rows it links (claim, excerpt, date, value,
  conflict note, source year) or in the source text: a typo or an unsourced figure fails;
- at least four briefs carry a chart or a table drawn from ``data/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "chapters" / "08_1_evidence_briefs.md"
SOURCE_TEXT = Path(os.environ.get(
    "USROK_SOURCE_TEXT", ROOT.parent / "shared" / "source-text" / "000_57fe028d7c869dbd.txt"))
ELEMENTS = ["**The chapter.**", "**What each side brought by 2012.**", "**An episode.**",
            "**What made it hard.**", "A question for your assessment"]


def links(markdown: str) -> list[tuple[str, str]]:
    """(text, address) of every Markdown link to the web; addresses may hold parentheses."""
    found = []
    for m in re.finditer(r"\[([^\]]+)\]\((?=https?://)", markdown):
        depth, i = 1, m.end()
        while i < len(markdown) and depth:
            depth += {"(": 1, ")": -1}.get(markdown[i], 0)
            i += 1
        found.append((m.group(1), markdown[m.end():i - 1]))
    return found


def prose(body: str) -> str:
    """The reader's text of a section: no code cells, directives, link addresses or roles."""
    text = re.sub(r"```.*?```", " ", body, flags=re.S)
    for _, address in links(text):
        text = text.replace(f"]({address})", "]")
    text = re.sub(r"\{[a-z:]+\}`[^`]*`", " ", text)
    return re.sub(r"^:::.*$", " ", text, flags=re.M)


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'’.,%–-]*", text))


def numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", re.sub(r"(?<=\d),(?=\d{3})", "", text)))


def sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", markdown, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


@pytest.fixture(scope="module")
def briefs() -> dict[str, str]:
    areas = pd.read_csv(ROOT / "data" / "alliance_areas.csv").sort_values("order")["area"].tolist()
    found = sections(PAGE.read_text(encoding="utf-8"))
    assert [t for t in found if t in areas] == areas, "one section per area, in the book's order"
    return {a: found[a] for a in areas}


@pytest.fixture(scope="module")
def evidence() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "area_evidence.csv", dtype=str)


def test_each_brief_has_the_five_elements_within_250_to_500_words(briefs):
    problems = []
    for area, body in briefs.items():
        n = words(prose(body))
        if not 250 <= n <= 500:
            problems.append(f"{area}: {n} words")
        problems += [f"{area}: no {e!r}" for e in ELEMENTS if e not in body]
        episode = re.search(r"\*\*An episode\.\*\*(.*?)(?:\n\n|\Z)", body, flags=re.S)
        nums = numbers(prose(episode.group(1))) if episode else set()
        if not (any(re.fullmatch(r"(19|20)\d\d", x) for x in nums)
                and any(not re.fullmatch(r"(19|20)\d\d", x) for x in nums)):
            problems.append(f"{area}: the episode needs a year and another number")
    assert not problems, problems


def test_every_link_is_a_source_in_area_evidence(briefs, evidence):
    known = set(evidence["address"])
    problems = []
    for area, body in briefs.items():
        found = links(body)
        if not found:
            problems.append(f"{area}: cites no source beyond the source text")
        problems += [f"{area}: {address} is not in area_evidence" for _, address in found
                     if address not in known]
    assert not problems, problems


def test_every_number_in_a_brief_comes_from_its_sources(briefs, evidence):
    source_text = SOURCE_TEXT.read_text(encoding="utf-8") if SOURCE_TEXT.exists() else ""
    allowed_everywhere = numbers(source_text) | {"2012"}  # 2012: the end of the source text
    cols = ["claim", "excerpt", "date", "value", "conflict_note", "source_year"]
    problems = []
    for area, body in briefs.items():
        cited = evidence[evidence["address"].isin({a for _, a in links(body)})]
        pool = numbers(" ".join(cited[cols].fillna("").astype(str).agg(" ".join, axis=1)))
        stray = sorted(numbers(prose(body)) - pool - allowed_everywhere, key=float)
        if stray:
            problems.append(f"{area}: {stray} not in the rows it cites (nor in the source text)")
    assert not problems, problems


def test_at_least_four_briefs_draw_a_chart_or_table_from_data(briefs):
    with_figure = [a for a, body in briefs.items()
                   if "{glue:figure}" in body or "table_html(" in body]
    assert len(with_figure) >= 4, with_figure


def test_a_planted_stray_number_and_an_unknown_link_are_caught(briefs, evidence):
    """The checks bite: a typo in a figure and a link to an uncited page both fail."""
    area = next(iter(briefs))
    body = briefs[area].replace("300 people", "3000 people")
    assert "3000" in body
    cited = evidence[evidence["address"].isin({a for _, a in links(body)})]
    pool = numbers(" ".join(cited[["claim", "excerpt", "date", "value"]].fillna("").agg(" ".join, axis=1)))
    assert "3000" in numbers(prose(body)) - pool
    planted = body + "\nSee [a blog](https://example.org/not-a-source)."
    assert "https://example.org/not-a-source" not in set(evidence["address"])
    assert ("a blog", "https://example.org/not-a-source") in links(planted)
