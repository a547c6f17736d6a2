"""The course's chart theme and chart builders (Altair).

Every chart in the book goes through :func:`finish`, which refuses a chart
without a title, a text description (used as the accessible name) or a source
line. Charts are ordinary Altair objects: JupyterLab draws them natively, and the
book's Sphinx extension (:mod:`usrok.book`) turns the same Vega-Lite output into
an offline chart with a data table.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from usrok.exercise import PRINCIPLE_SCALE

# Emit the Vega-Lite mimetype: JupyterLab draws it natively (no CDN), and the book's
# myst-nb plugin (usrok.book) turns it into an offline chart. Colab only draws HTML.
#
# JupyterLab (4.4 to 4.6, and so the in-browser edition) draws with its own Vega-Lite 5.6.1
# and warns about every spec labelled with Altair's newer schema (v5.20.1). The specs are
# labelled with the version that draws them there; tests/test_student_jupyterlab.py draws
# every chapter's charts in JupyterLab and fails on any Vega error or warning. (The book's
# renderer drops the label and draws with its own bundle.)
JUPYTERLAB_VEGALITE = "5.6.1"


def jupyterlab_renderer(spec: dict, **metadata):
    """Altair's mimetype renderer, with the spec labelled for JupyterLab's Vega-Lite."""
    from altair.vegalite.v5.display import mimetype_renderer

    schema = f"https://vega.github.io/schema/vega-lite/v{JUPYTERLAB_VEGALITE}.json"
    return mimetype_renderer({**spec, "$schema": schema}, **metadata)


alt.renderers.register("usrok", jupyterlab_renderer)
try:
    import google.colab  # noqa: F401
    alt.renderers.enable("colab")
except ImportError:
    alt.renderers.enable("usrok")

# Okabe-Ito: distinguishable under the common colour-vision deficiencies.
PALETTE = [
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow (last: too light for lines on white)
]
# Dash patterns so that series never rely on colour alone.
DASHES = [[1, 0], [6, 3], [2, 2], [8, 2, 2, 2], [4, 4], [1, 3]]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
WIDTH = 620
HEIGHT = 300


class ChartSpecError(ValueError):
    """A chart is missing something every course chart must have."""


@alt.theme.register("usrok", enable=True)
def course_theme() -> alt.theme.ThemeConfig:
    """Fonts, sizes and the colour-blind-safe palette shared by every chart."""
    return {
        "config": {
            "font": FONT,
            "view": {"continuousWidth": WIDTH, "continuousHeight": HEIGHT, "stroke": None},
            "range": {"category": PALETTE},
            "title": {"anchor": "start", "fontSize": 16, "fontWeight": 600,
                      "subtitleFontSize": 12, "subtitleColor": "#444", "offset": 12},
            "axis": {"labelFontSize": 12, "titleFontSize": 12, "titleFontWeight": 600,
                     "labelColor": "#333", "titleColor": "#222", "gridColor": "#e6e6e6"},
            "legend": {"labelFontSize": 12, "titleFontSize": 12, "orient": "top"},
            "line": {"strokeWidth": 2.5},
            "point": {"size": 50},
        }
    }


def finish(chart, *, title: str, description: str, source: str, subtitle: str | None = None,
           width: int | None = WIDTH, height: int | None = None):
    """Give a chart its title, source line and description; refuse a chart that lacks them.

    ``description`` is the chart's alternative text: say what the chart shows and the
    one thing a reader should see in it. ``source`` names where the data come from.
    """
    for name, value in (("title", title), ("description", description), ("source", source)):
        if not isinstance(value, str) or not value.strip():
            raise ChartSpecError(f"every course chart needs a {name}; got {value!r}")
    lines = ([subtitle] if subtitle else []) + [f"Source: {source}"]
    props = {"title": alt.Title(title, subtitle=lines), "description": description}
    if width is not None and not isinstance(chart, (alt.VConcatChart, alt.HConcatChart)):
        props["width"] = width
    if height is not None:
        props["height"] = height
    return chart.properties(**props)


def check(chart) -> dict:
    """Return the chart's Vega-Lite dict after checking it has what every course chart needs."""
    spec = chart.to_dict() if hasattr(chart, "to_dict") else dict(chart)
    title = spec.get("title")
    text = title.get("text") if isinstance(title, dict) else title
    subtitle = title.get("subtitle", []) if isinstance(title, dict) else []
    subtitle = [subtitle] if isinstance(subtitle, str) else subtitle
    if not text:
        raise ChartSpecError("chart has no title")
    if not spec.get("description"):
        raise ChartSpecError(f"chart {text!r} has no description (alt text)")
    if not any(str(line).startswith("Source:") for line in subtitle):
        raise ChartSpecError(f"chart {text!r} has no source line")
    return spec


def year_axis(field: str = "year", title: str = "Year") -> alt.X:
    """A year axis without thousands separators."""
    return alt.X(f"{field}:Q", title=title, axis=alt.Axis(format="d", tickMinStep=1),
                 scale=alt.Scale(zero=False, nice=False))


def troops_annotated(df: pd.DataFrame, *, title: str, description: str, source: str,
                     subtitle: str | None = None, events: pd.DataFrame | None = None,
                     spans: pd.DataFrame | None = None, zoom_to: tuple[int, int] | None = None,
                     series_label: str = "US personnel", colour: str = PALETTE[0],
                     width: int = 560):
    """One troop series (columns ``year``, ``troops``) annotated with events and periods.

    ``events``: columns ``year`` and ``label`` (optional ``detail`` for the tooltip) drawn
    as dashed rules with staggered labels; an optional ``side`` column set to ``"left"``
    puts a label to the left of its rule (for events near the right edge). ``spans``: columns ``start``, ``end``, ``label``
    (optional ``detail``) drawn as shaded bands, e.g. a plan's years. A brush on the
    overview strip zooms the main chart, whose y axis rescales to the years shown;
    ``zoom_to=(first, last)`` opens the chart already zoomed (double-click the strip to
    see every year). ``width`` is in pixels (the default fits the book's text column).
    Keep the inputs small: only these columns are embedded.
    """
    data = df[["year", "troops"]].dropna().astype({"year": int, "troops": int})
    brush = (alt.selection_interval(encodings=["x"], value={"x": list(zoom_to)}) if zoom_to
             else alt.selection_interval(encodings=["x"]))
    x_zoomed = year_axis().scale(domain=brush, zero=False, nice=False)
    y = alt.Y("troops:Q", title="US military personnel (people)", axis=alt.Axis(format=",d"),
              scale=alt.Scale(zero=True, nice=True))
    tip = [alt.Tooltip("year:Q", title="Year", format="d"),
           alt.Tooltip("troops:Q", title=series_label, format=",d")]
    base = alt.Chart(data).transform_filter(brush).encode(x=x_zoomed, y=y)
    layers = [base.mark_line(color=colour, clip=True),
              base.mark_point(filled=True, size=28, color=colour, clip=True).encode(tooltip=tip)]
    if spans is not None and len(spans):
        cols = [c for c in ("start", "end", "label", "detail") if c in spans]
        sp = alt.Chart(spans[cols])
        sp_tip = [alt.Tooltip("label:N", title="Period"),
                  alt.Tooltip("start:Q", title="From", format="d"),
                  alt.Tooltip("end:Q", title="To", format="d")]
        if "detail" in cols:
            sp_tip.append(alt.Tooltip("detail:N", title="Detail"))
        layers.insert(0, sp.mark_rect(color=PALETTE[4], opacity=0.18, clip=True).encode(
            x=alt.X("start:Q").scale(domain=brush, zero=False, nice=False), x2="end:Q",
            tooltip=sp_tip))
        layers.append(sp.mark_text(align="left", baseline="bottom", dx=3, fontSize=11,
                                   color="#7a4d00", clip=True).encode(
            x=alt.X("start:Q").scale(domain=brush, zero=False, nice=False),
            y=alt.value(HEIGHT - 4), text="label:N"))
    if events is not None and len(events):
        layers += _event_layers(events, brush, zoom_to or (data["year"].min(), data["year"].max()), width)
    main = alt.layer(*layers).properties(width=width, height=HEIGHT)
    # Area and outline as two layers, the brush on the area: JupyterLab's Vega-Lite (5.6)
    # cannot hold a selection on a composite mark such as mark_area(line=True)
    # ("Duplicate signal name"); tests/test_student_jupyterlab.py draws every chart there.
    strip = alt.Chart(data).encode(x=year_axis(), y=alt.Y("troops:Q", axis=None))
    overview = alt.layer(strip.mark_area(color=colour, opacity=0.35).add_params(brush),
                         strip.mark_line(color=colour)).properties(
        width=width, height=55, title=alt.Title(
            "Drag across this strip to choose the years shown above (double-click to show all)",
            fontSize=11, fontWeight="normal"))
    chart = alt.vconcat(main, overview, spacing=10)
    return finish(chart, title=title, description=description, source=source, subtitle=subtitle)


def _event_layers(events: pd.DataFrame, brush, view: tuple, width: int) -> list:
    """Dashed rules with staggered labels for dated events, zoomed by ``brush``.

    ``events``: columns ``year`` and ``label``, optional ``detail`` (tooltip) and ``side``
    (``"left"`` puts the label left of its rule, for events near the right edge).
    """
    cols = [c for c in ("year", "label", "detail", "side") if c in events]
    ev = events[cols].sort_values("year").reset_index(drop=True)
    ev["side"] = ev["side"].fillna("right") if "side" in ev else "right"
    ev["label_y"] = _stagger(ev, view, width)
    ev_tip = [alt.Tooltip("year:Q", title="Year", format="d"), alt.Tooltip("label:N", title="Event")]
    if "detail" in cols:
        ev_tip.append(alt.Tooltip("detail:N", title="Detail"))
    evc = alt.Chart(ev).encode(x=alt.X("year:Q").scale(domain=brush, zero=False, nice=False))
    layers = [evc.mark_rule(color="#444", strokeDash=[4, 3], clip=True).encode(tooltip=ev_tip)]
    for side, align, dx in (("right", "left", 3), ("left", "right", -3)):
        if not (ev["side"] == side).any():
            continue  # an empty layer makes Vega warn about an infinite extent
        layers.append(evc.transform_filter(alt.datum.side == side).mark_text(
            align=align, dx=dx, fontSize=11, color="#222", clip=True).encode(
            y=alt.Y("label_y:Q", scale=None), text="label:N", tooltip=ev_tip))
    return layers


def _stagger(ev: pd.DataFrame, view: tuple, width: int, rows: int = 4) -> list[int]:
    """Pixel y of each event label: the first row where it doesn't overlap an earlier label
    (label extents estimated at ~6.5 px a character in the opening view)."""
    per_year = width / max(1, view[1] - view[0])
    ends = [-1e9] * rows
    out = []
    for _, e in ev.iterrows():
        x = (e["year"] - view[0]) * per_year
        w = 6.5 * len(str(e["label"])) + 6
        left, right = (x - w, x) if e["side"] == "left" else (x, x + w)
        row = next((r for r in range(rows) if ends[r] < left), rows - 1)
        ends[row] = right
        out.append(12 + 15 * row)
    return out


# ---------------------------------------------------------------------------
# Event timelines (chapter 7 and the back-matter timeline page)
# ---------------------------------------------------------------------------
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
            layers.append(base.transform_filter(alt.datum.label_pos == pos).mark_text(
                align=align, dx=dx, dy=dy, fontSize=10.5, color="#222", clip=True).encode(
                text="label:N", opacity=fade, tooltip=tip))
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


def troops_compare(df: pd.DataFrame, *, hosts, title: str, description: str, source: str,
                   subtitle: str | None = None, events: pd.DataFrame | None = None,
                   zoom_to: tuple[int, int] | None = None, width: int = 560):
    """US personnel in several hosts (columns ``host``, ``year``, ``troops``), one line each.

    Hosts are told apart by colour, dash pattern, point shape and a label at the end of each
    line, with a legend that highlights a host when clicked. A brush on the strip below zooms
    the main chart (``zoom_to`` opens it zoomed). ``events`` (``year``, ``label``, optional
    ``detail``) adds dashed rules with labels.
    """
    order = list(hosts)
    data = df.loc[df["host"].isin(order), ["host", "year", "troops"]]
    pick = alt.selection_point(fields=["host"], bind="legend")
    brush = (alt.selection_interval(encodings=["x"], value={"x": list(zoom_to)}) if zoom_to
             else alt.selection_interval(encodings=["x"]))
    legend = dict(title="Host country", sort=order)
    colour = alt.Color("host:N", scale=alt.Scale(domain=order, range=PALETTE[: len(order)]), **legend)
    dash = alt.StrokeDash("host:N", scale=alt.Scale(domain=order, range=DASHES[: len(order)]), **legend)
    shape = alt.Shape("host:N", scale=alt.Scale(domain=order, range=["circle", "square", "triangle-up",
                                                                    "diamond", "cross"][: len(order)]),
                      **legend)
    x = year_axis().scale(domain=brush, zero=False, nice=False)
    y = alt.Y("troops:Q", title="US military personnel (people)", axis=alt.Axis(format=",d"))
    fade = alt.when(pick).then(alt.value(1)).otherwise(alt.value(0.15))
    tip = [alt.Tooltip("host:N", title="Host"), alt.Tooltip("year:Q", title="Year", format="d"),
           alt.Tooltip("troops:Q", title="US personnel", format=",d")]
    base = alt.Chart(data).encode(x=x, y=y)
    layers = [base.mark_line(clip=True).encode(color=colour, strokeDash=dash, opacity=fade),
              base.mark_point(filled=True, size=22, clip=True).encode(
                  color=colour, shape=shape, opacity=fade, tooltip=tip)]
    last = data.loc[data.groupby("host")["year"].idxmax()]
    layers.append(alt.Chart(last).mark_text(align="left", dx=5, fontSize=11, fontWeight=600,
                                            clip=False).encode(
        x=x, y=y, text="host:N", opacity=fade, color=colour))
    if events is not None and len(events):
        layers += _event_layers(events, brush, zoom_to or (data["year"].min(), data["year"].max()), width)
    main = alt.layer(*layers).add_params(pick).properties(width=width, height=HEIGHT)
    overview = alt.Chart(data).mark_line().encode(
        # Same colour and dash encodings as above: a legend=None here would hide the
        # shared legend of the whole chart.
        x=year_axis(), y=alt.Y("troops:Q", axis=None), color=colour, strokeDash=dash,
    ).add_params(brush).properties(width=width, height=55, title=alt.Title(
        "Drag across this strip to choose the years shown above (double-click to show all)",
        fontSize=11, fontWeight="normal"))
    chart = alt.vconcat(main, overview, spacing=10)
    return finish(chart, title=title, description=description, source=source, subtitle=subtitle)
