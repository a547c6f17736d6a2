"""Event timelines (chapter 7 and the back-matter timeline page).

:func:`timeline_events` turns rows of the ``alliance_timeline`` table into dated events
(imprecise dates become the span they could mean); :func:`event_timeline` draws them, one
lane per category, with a brush strip to zoom and a clickable legend.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from usrok.chart_spec import finish
from usrok.chart_theme import PALETTE


EVENT_SHAPES = ["circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "triangle-right"]
# Legend labels for the two periods of an event timeline (filled and hollow points).
BEFORE = "Up to 2012 (filled)"
AFTER = "After 2012, beyond the source (hollow)"


def _period(text: str | None, year) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """First and last day of a date given as YYYY-MM-DD, YYYY-MM or YYYY (else of ``year``)."""
    if text is not None and not pd.isna(text):
        t = str(text)
        if len(t) == 10 and t[4] == "-":
            return pd.Timestamp(t), pd.Timestamp(t)
        if len(t) == 7 and t[4] == "-":
            first = pd.Timestamp(t + "-01")
            return first, first + pd.offsets.MonthEnd(0)
        if len(t) == 4 and t.isdigit():
            return pd.Timestamp(f"{t}-01-01"), pd.Timestamp(f"{t}-12-31")
    if year is None or pd.isna(year):
        return None, None
    return pd.Timestamp(f"{int(year)}-01-01"), pd.Timestamp(f"{int(year)}-12-31")


def timeline_events(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``alliance_timeline`` turned into what :func:`event_timeline` draws.

    ``start``: the first day the date could mean ("1970s" -> 1970-01-01, "2010-03" ->
    2010-03-01); ``end``: the ``end_date`` if there is one, else the last day an imprecise
    date could mean ("1970s" -> 1979-12-31), else empty. ``when`` is the date as the source
    gives it; ``source`` a short source name; ``disputed`` marks rows whose course note
    records a disagreement between sources (e.g. the same event a day apart); ``beyond``
    marks events after the source text's last year (the table's ``beyond_source``).
    """
    out = []
    for _, r in df.iterrows():
        start = _period(r["date"], r["year"])[0]
        if not pd.isna(r["end_date"]):
            end = _period(r["end_date"], r["end_year"])[1]
        elif r["date_precision"] != "day":
            end = _period(None if r["date_precision"] in ("decade", "decade part") else r["date"],
                          r["end_year"] if not pd.isna(r["end_year"]) else r["year"])[1]
        else:
            end = None
        title = str(r["source_title"])
        if bool(r["from_source_text"]):
            section = title.split("section '")[-1].rstrip("'") if "section '" in title else ""
            source = "Snyder (2012), introduction" + (f", section '{section}'" if section else "")
        else:
            source = title
        note = r["course_note"] if not pd.isna(r["course_note"]) else r["note"]
        disputed = not pd.isna(r["course_note"]) and any(
            k in str(r["course_note"]).lower() for k in ("disagree", "one day"))
        out.append({
            "event_id": r["event_id"], "start": start, "end": end, "when": str(r["date"])
            + ("" if pd.isna(r["end_date"]) else f" to {r['end_date']}"),
            "category": r["category"], "event": r["event"],
            "kind": "Snyder's text" if bool(r["from_source_text"]) else "Other sources",
            "source": source, "disputed": disputed,
            "beyond": bool(r["beyond_source"]) if "beyond_source" in r.index else False,
            "note": "" if pd.isna(note) else str(note),
        })
    return pd.DataFrame(out)


def event_timeline(events: pd.DataFrame, *, title: str, description: str, source: str,
                   category: str = "category", categories: list | None = None,
                   category_title: str = "Category", subtitle: str | None = None,
                   width: int = 560, height: int | None = None, zoom: tuple | None = None):
    """An interactive timeline: one lane per category, a brush strip to zoom, legend filter.

    ``events`` has the columns made by :func:`timeline_events` (``start``, ``end``, ``when``,
    ``event``, ``kind``, ``source``, ``disputed``, ``note``) plus the ``category`` column.
    Each lane has two rows: events dated in Snyder's text above, events from other sources
    below. Points mark the start of an event (shape and colour by category, with the lane
    label too); a thin line runs to its end or target date, or across the span an imprecise
    date could mean. A black ring marks rows whose sources disagree. Click the legend to
    pick categories (shift-click for several); drag across the bottom strip to zoom.
    Events after the source text (column ``beyond`` true) are hollow points, with a legend
    entry saying so. Optional columns: ``label`` (short text drawn beside a point) and ``label_pos``
    ("above", "below", "above-left" or "below-left" of the point, to keep labels apart). ``zoom`` is an opening
    (start, end) date range for the brush; without it the whole timeline shows.
    """
    cats = list(categories) if categories is not None else sorted(events[category].unique())
    cols = [category, "start", "end", "when", "event", "kind", "source", "disputed", "note"]
    cols += [c for c in ("label", "label_pos") if c in events.columns]
    data = events[cols].copy()
    beyond = events["beyond"].fillna(False).astype(bool) if "beyond" in events.columns else None
    if beyond is not None and beyond.any():
        data["period"] = beyond.map({False: BEFORE, True: AFTER}).values
    if "label" in data.columns:
        data["label"] = data["label"].fillna("")
        data["label_pos"] = data["label_pos"].fillna("above") if "label_pos" in data.columns else "above"
    data["end"] = data["end"].where(data["end"].notna(), None)
    pick = alt.selection_point(fields=[category], bind="legend")
    opening = None
    if zoom is not None:
        lo, hi = (pd.Timestamp(d) for d in zoom)
        opening = {"x": [alt.DateTime(year=lo.year, month=lo.month, date=lo.day),
                         alt.DateTime(year=hi.year, month=hi.month, date=hi.day)]}
    brush = alt.selection_interval(encodings=["x"], value=opening) if opening else \
        alt.selection_interval(encodings=["x"])
    colour = alt.Color(f"{category}:N", title=category_title, sort=cats,
                       scale=alt.Scale(domain=cats, range=PALETTE[: len(cats)]),
                       legend=alt.Legend(orient="bottom", columns=min(4, len(cats)), labelLimit=0))
    shape = alt.Shape(f"{category}:N", sort=cats, title=category_title,
                      scale=alt.Scale(domain=cats, range=EVENT_SHAPES[: len(cats)]))
    y = alt.Y(f"{category}:N", sort=cats, title=None, axis=alt.Axis(labelLimit=220, grid=True))
    yoff = alt.YOffset("kind:N", sort=["Snyder's text", "Other sources"],
                       scale=alt.Scale(domain=["Snyder's text", "Other sources"], paddingOuter=0.5))
    # padding: the first and last points sit inside the frame, not half cut off at its edge.
    x = alt.X("start:T", title="Date", scale=alt.Scale(domain=brush, padding=8), axis=alt.Axis(labelOverlap=True))
    fade = alt.when(pick).then(alt.value(1)).otherwise(alt.value(0.12))
    tip = [alt.Tooltip("when:N", title="Date (as given)"), alt.Tooltip("event:N", title="Event"),
           alt.Tooltip(f"{category}:N", title=category_title), alt.Tooltip("kind:N", title="Dated by"),
           alt.Tooltip("source:N", title="Source"), alt.Tooltip("note:N", title="Note")]
    base = alt.Chart(data).encode(x=x, y=y, yOffset=yoff)
    spans = base.transform_filter("isValid(datum.end)").mark_rule(strokeWidth=2, clip=True).encode(
        x2="end:T", color=colour, opacity=fade, tooltip=tip)
    if "period" in data.columns:
        # Hollow points for events beyond the source: the fill fades out, the outline keeps the
        # category colour; the legend names the two periods.
        tip.insert(1, alt.Tooltip("period:N", title="Period"))
        outline = alt.Stroke(f"{category}:N", sort=cats, legend=None,
                             scale=alt.Scale(domain=cats, range=PALETTE[: len(cats)]))
        hollow = alt.FillOpacity("period:N", sort=[BEFORE, AFTER], legend=None,
                                 scale=alt.Scale(domain=[BEFORE, AFTER], range=[1, 0]))
        dots = base.mark_point(filled=True, size=80, strokeWidth=2, clip=True).encode(
            color=colour, stroke=outline, fillOpacity=hollow, shape=shape, opacity=fade,
            tooltip=tip).add_params(pick)
        # Vega-Lite draws no legend for fillOpacity: an invisible layer (inline data, so the
        # page's data table skips it) carries the legend of the two periods.
        key = alt.Chart(alt.Data(values=[{"period": BEFORE}, {"period": AFTER}])).mark_point(
            filled=True, size=0).encode(fill=alt.Fill(
                "period:N", title=None, sort=[BEFORE, AFTER],
                scale=alt.Scale(domain=[BEFORE, AFTER], range=["#444", "transparent"]),
                legend=alt.Legend(orient="top", direction="vertical", symbolType="circle",
                                  symbolStrokeColor="#444", symbolStrokeWidth=2, labelLimit=0)))
    else:
        dots = base.mark_point(filled=True, size=80, stroke="#fff", strokeWidth=0.7, clip=True).encode(
            color=colour, shape=shape, opacity=fade, tooltip=tip).add_params(pick)
    rings = base.transform_filter("datum.disputed").mark_point(
        size=260, color="#000", strokeWidth=1.6, clip=True).encode(opacity=fade, tooltip=tip)
    lanes = len(cats)
    # Only layers that have data: an empty layer makes Vega warn about an infinite extent.
    layers = ([spans] if data["end"].notna().any() else []) + [dots] + ([rings] if data["disputed"].any() else [])
    if "period" in data.columns:
        layers.append(key)
    if "label" in data.columns:
        used = set(data.loc[data["label"] != "", "label_pos"])
        for pos, align, dx, dy in (("above", "left", 6, -10), ("below", "left", 6, 12),
                                   ("above-left", "right", -6, -10), ("below-left", "right", -6, 12)):
            if pos not in used:
                continue
            # Labels are left out in a narrow column, where they would collide (tap a
            # point for its tooltip; the table lists every event).
            layers.append(base.transform_filter(alt.datum.label_pos == pos).transform_calculate(
                shown_label="usrok_narrow ? '' : datum.label").mark_text(
                align=align, dx=dx, dy=dy, fontSize=10.5, color="#222", clip=True).encode(
                text="shown_label:N", opacity=fade, tooltip=tip))
    main = alt.layer(*layers).properties(width=width, height=height or max(160, 46 * lanes))
    overview = alt.Chart(data).mark_tick(thickness=2, size=10).encode(
        x=alt.X("start:T", title=None, axis=alt.Axis(format="%Y")),
        color=alt.Color(f"{category}:N", sort=cats, legend=None,
                        scale=alt.Scale(domain=cats, range=PALETTE[: len(cats)])),
    ).add_params(brush).properties(width=width, height=28, title=alt.Title(
        "Drag across this strip to zoom the timeline above (double-click to reset)",
        fontSize=11, fontWeight="normal"))
    chart = alt.vconcat(main, overview, spacing=8)
    return finish(chart, title=title, description=description, source=source, subtitle=subtitle)
