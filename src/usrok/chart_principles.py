"""The principles-assessment heatmap (chapter 9, exercise 9, the class view)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from usrok.chart_spec import finish
from usrok.exercise import PRINCIPLE_SCALE


# The principles-assessment scale (chapter 9, exercise 9: -1 to 3, one definition in
# usrok.exercise) and its colours: orange for a score that works against a principle, white
# for no bearing, blues for growing support.
SCORE_SCALE = PRINCIPLE_SCALE
SCORE_COLOURS = ["#E69F00", "#f2f2f2", "#c6dbef", "#6baed6", "#08519c"]


def principles_heatmap(matrix: pd.DataFrame, *, title: str, description: str | None = None,
                       source: str, subtitle: str | None = None):
    """A nine-areas x five-principles assessment matrix as a heatmap (chapter 9, exercise 9).

    ``matrix`` has columns ``area``, ``principle``, ``score`` (whole numbers on the course's
    scale, -1 to 3 (:data:`SCORE_SCALE`), missing allowed) and optionally ``justification``
    (shown in the tooltip). Rows and columns keep the order in which areas and principles
    first appear (the template's order: the book's chapter order, principles 1-5). Every
    cell prints its score, so colour is never the only carrier; a missing score prints "–".
    The colours diverge at 0: orange for -1 (works against), blues for support. Row totals
    are drawn as a bar beside the matrix. Without a ``description``, one is written from
    the scores.
    """
    cols = ["area", "principle", "score"] + (["justification"] if "justification" in matrix else [])
    data = matrix[cols].copy()
    data["score"] = pd.to_numeric(data["score"], errors="coerce")
    data["label"] = data["score"].map(lambda s: "–" if pd.isna(s) else str(int(s)))
    if "justification" not in data:
        data["justification"] = ""
    data["justification"] = data["justification"].fillna("").astype(str)
    areas = list(dict.fromkeys(data["area"]))
    principles = list(dict.fromkeys(data["principle"]))
    totals = data.groupby("area", sort=False)["score"].sum(min_count=1).reindex(areas).reset_index()
    totals["total_label"] = totals["score"].map(lambda s: "–" if pd.isna(s) else str(int(s)))
    if description is None:
        scored = totals.dropna(subset=["score"])
        if len(scored):
            top = scored.loc[scored["score"].idxmax()]
            low = scored.loc[scored["score"].idxmin()]
            description = (f"Heatmap of {len(areas)} areas of cooperation scored -1 to 3 against "
                           f"{len(principles)} principles; each cell prints its score. Highest "
                           f"total: {top['area']} ({int(top['score'])}); lowest: {low['area']} "
                           f"({int(low['score'])}).")
        else:
            description = "An empty assessment matrix: no scores yet."
    low, high = min(SCORE_SCALE), max(SCORE_SCALE)
    y = alt.Y("area:N", sort=areas, title=None, axis=alt.Axis(labelLimit=250, labelFontSize=11))
    tip = [alt.Tooltip("area:N", title="Area"), alt.Tooltip("principle:N", title="Principle"),
           alt.Tooltip("label:N", title="Score (-1 to 3)"),
           alt.Tooltip("justification:N", title="Justification")]
    base = alt.Chart(data).encode(
        x=alt.X("principle:N", sort=principles, title="Principle",
                axis=alt.Axis(labelAngle=-35, labelAlign="right", labelLimit=230, labelFontSize=11,
                              orient="bottom")),
        y=y, tooltip=tip)
    cells = base.mark_rect(stroke="#fff", strokeWidth=1.5).encode(
        color=alt.Color("score:O", title="Score", scale=alt.Scale(domain=list(SCORE_SCALE),
                        range=SCORE_COLOURS),
                        legend=alt.Legend(orient="top", direction="horizontal")))
    text = base.mark_text(fontSize=13, fontWeight=600).encode(
        text="label:N",
        color=alt.condition("datum.score >= 3", alt.value("#fff"), alt.value("#111")))
    grid = (cells + text).properties(width=52 * len(principles), height=28 * len(areas))
    bars = alt.Chart(totals).encode(
        y=alt.Y("area:N", sort=areas, axis=None),
        x=alt.X("score:Q", title=f"Total ({low * len(principles)} to {high * len(principles)})",
                scale=alt.Scale(domain=[low * len(principles), high * len(principles)]),
                axis=alt.Axis(tickMinStep=1)),
        tooltip=[alt.Tooltip("area:N", title="Area"), alt.Tooltip("total_label:N", title="Total")])
    side = (bars.mark_bar(color="#6b6b6b", height=14)
            + bars.mark_text(align="left", dx=3, fontSize=11).encode(text="total_label:N")
            ).properties(width=72, height=28 * len(areas))
    chart = alt.hconcat(grid, side, spacing=8).resolve_scale(y="shared")
    order = "Rows: the book's chapter order (not a ranking)."
    return finish(chart, title=title, description=description, source=source,
                  subtitle=f"{subtitle} {order}" if subtitle else order)
