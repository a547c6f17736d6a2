"""Small, forgiving checks for the exercises' tests (public and hidden).

    def test_q6_marks(easi_chart):
        from usrok.checks import marks, fields
        assert {"line", "rule"} <= marks(easi_chart)

Charts may be Altair objects or their Vega-Lite spec as a dict (the batch grader hands the
tests a chart's spec, never the student's object). Only the standard library is imported at
import time.
"""

from __future__ import annotations

import numbers
import re
from typing import Any

__all__ = ["is_number", "is_whole", "word_count", "chart_views", "marks", "fields", "is_finished",
           "matrix_problems"]


def is_number(x: Any) -> bool:
    """True for an int or float (Python or NumPy), not a bool, not NaN."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    try:
        return x == x  # NaN is not equal to itself
    except Exception:  # pragma: no cover - exotic number types
        return False


def is_whole(x: Any) -> bool:
    """True for a whole number (an int, a NumPy integer, or a float such as 3.0)."""
    if not is_number(x):
        return False
    return float(x).is_integer()


def word_count(text: Any) -> int:
    """Number of words (runs of letters or digits) in ``text``; 0 for anything not a string."""
    if not isinstance(text, str):
        return 0
    return len(re.findall(r"[A-Za-z0-9À-ÿ'’-]+", text))


def _spec(chart) -> dict:
    if isinstance(chart, dict):
        return chart
    to_dict = getattr(chart, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"expected an Altair chart, got {type(chart).__name__}")
    try:
        return to_dict()
    except Exception:
        return to_dict(validate=False)


def chart_views(chart) -> list[dict]:
    """The single views inside a chart (layers and concatenations flattened).

    Each view is a dict with ``mark`` (the mark type, e.g. ``"line"``), ``encoding`` (the
    view's encodings merged over its parents') and ``data`` (the rows drawn, if inline).
    """
    spec = _spec(chart)
    datasets = spec.get("datasets", {})
    views: list[dict] = []

    def rows_of(node, inherited):
        d = node.get("data")
        if isinstance(d, dict) and "name" in d:
            return datasets.get(d["name"], [])
        if isinstance(d, dict) and "values" in d:
            return d["values"]
        return inherited

    def walk(node, enc, rows):
        rows = rows_of(node, rows)
        enc = {**enc, **(node.get("encoding") or {})}
        for key in ("layer", "vconcat", "hconcat", "concat"):
            for child in node.get(key, []) or []:
                walk(child, enc, rows)
        if "spec" in node:  # facet / repeat
            walk(node["spec"], enc, rows)
        if "mark" in node:
            mark = node["mark"]
            mark = mark.get("type") if isinstance(mark, dict) else mark
            views.append({"mark": mark, "encoding": enc, "data": rows})

    walk(spec, {}, [])
    return views


def marks(chart) -> set[str]:
    """The set of mark types a chart draws, e.g. ``{"line", "rule"}``."""
    return {v["mark"] for v in chart_views(chart)}


def fields(chart, channel: str) -> set[str]:
    """Fields encoded on ``channel`` (``"x"``, ``"y"``, ``"color"``, ``"tooltip"``, ...) in any view.

    An aggregate without a field (``count()``) is reported as ``"count()"``.
    """
    found: set[str] = set()
    for v in chart_views(chart):
        enc = v["encoding"].get(channel)
        for item in enc if isinstance(enc, list) else [enc]:
            if not isinstance(item, dict):
                continue
            if "field" in item:
                found.add(str(item["field"]))
            elif item.get("aggregate"):
                found.add(f"{item['aggregate']}()")
    return found


def is_finished(chart) -> bool:
    """True if the chart went through ``usrok.charts.finish``: a title, and a description and a
    source in the spec's ``usermeta`` (see ``usrok.charts.check``)."""
    try:
        from usrok.chart_spec import check

        check(chart)
        return True
    except Exception:
        return False


def matrix_problems(matrix, min_words: int = 8) -> list[str]:
    """Problems with a principles-assessment matrix (an empty list means it is valid).

    Checks: a DataFrame with columns area, principle, score, justification; exactly the 45
    area x principle pairs of the course's tables, once each; every score a whole number on
    the scale :data:`usrok.exercise.PRINCIPLE_SCALE` (-1 to 3); every justification at least
    ``min_words`` words and not a copy of another cell's.
    """
    import pandas as pd

    from usrok.exercise import PRINCIPLE_SCALE, principles_template

    if not isinstance(matrix, pd.DataFrame):
        return [f"the matrix should be a pandas DataFrame, not {type(matrix).__name__}"]
    need = ["area", "principle", "score", "justification"]
    missing = [c for c in need if c not in matrix.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    problems: list[str] = []
    template = principles_template()
    want = set(zip(template["area"], template["principle"]))
    got = list(zip(matrix["area"], matrix["principle"]))
    if len(got) != len(set(got)):
        problems.append("some area-principle pairs appear more than once")
    if set(got) != want:
        lost = len(want - set(got))
        extra = len(set(got) - want)
        problems.append(f"the matrix should have the {len(want)} area-principle pairs of the "
                        f"template ({lost} missing, {extra} not in the template)")
    low, high = min(PRINCIPLE_SCALE), max(PRINCIPLE_SCALE)
    bad_scores = [i for i, s in enumerate(matrix["score"].tolist())
                  if s is None or (not isinstance(s, str) and pd.isna(s)) or not is_whole(s)
                  or int(float(s)) not in PRINCIPLE_SCALE]
    if bad_scores:
        problems.append(f"{len(bad_scores)} score(s) are not whole numbers from {low} to {high} "
                        f"(first at row {bad_scores[0]})")
    texts = ["" if not isinstance(t, str) else t for t in matrix["justification"].tolist()]
    short = [i for i, t in enumerate(texts) if word_count(t) < min_words]
    if short:
        problems.append(f"{len(short)} justification(s) are shorter than {min_words} words "
                        f"(first at row {short[0]})")
    norm = [re.sub(r"\W+", " ", t).strip().lower() for t in texts]
    dupes = {t for t in norm if t and norm.count(t) > 1}
    if dupes:
        problems.append(f"{sum(norm.count(t) for t in dupes)} justifications are copies of "
                        "another cell's; write one for each cell")
    return problems
