"""Troop-level charts: one series annotated with events and periods, and several hosts compared.

Both have a brush strip under the main chart to zoom it, dated events drawn as dashed rules
with labels placed so they do not overlap (in the book's column and on a phone's), and a
year axis without thousands separators (:func:`year_axis`).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from usrok.chart_spec import finish
from usrok.chart_theme import DASHES, HEIGHT, NARROW_VIEW_WIDTH, PALETTE


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
        # Labels of neighbouring periods take turns on two rows, so that on a phone's narrow
        # view (a few pixels a year) one label does not print over the next.
        sp_data = spans[cols].sort_values("start").assign(
            label_row=[HEIGHT - 4 - 14 * (i % 2) for i in range(len(spans))])
        sp = alt.Chart(sp_data)
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
            y=alt.Y("label_row:Q", scale=None, axis=None), text="label:N"))
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
    (``"left"`` puts the label left of its rule, for events near the right edge). Label
    rows and sides are worked out twice: for ``width`` and for a phone's narrow view
    (where a label that would run off the right edge goes left of its rule); the page
    picks one with the ``usrok_narrow`` parameter.
    """
    cols = [c for c in ("year", "label", "detail", "side") if c in events]
    ev = events[cols].sort_values("year").reset_index(drop=True)
    ev["side"] = ev["side"].fillna("right") if "side" in ev else "right"
    ev["label_y"] = _stagger(ev, view, width)
    narrow = ev.copy()
    per_year = NARROW_VIEW_WIDTH / max(1, view[1] - view[0])
    too_far = (narrow["year"] - view[0]) * per_year + _label_width(narrow["label"]) > NARROW_VIEW_WIDTH
    narrow.loc[too_far, "side"] = "left"
    ev["side_narrow"] = narrow["side"]
    ev["label_y_narrow"] = _stagger(narrow, view, NARROW_VIEW_WIDTH)
    ev_tip = [alt.Tooltip("year:Q", title="Year", format="d"), alt.Tooltip("label:N", title="Event")]
    if "detail" in cols:
        ev_tip.append(alt.Tooltip("detail:N", title="Detail"))
    evc = alt.Chart(ev).encode(x=alt.X("year:Q").scale(domain=brush, zero=False, nice=False))
    layers = [evc.mark_rule(color="#444", strokeDash=[4, 3], clip=True).encode(tooltip=ev_tip)]
    placed = evc.transform_calculate(
        row_y="usrok_narrow ? datum.label_y_narrow : datum.label_y",
        placed_side="usrok_narrow ? datum.side_narrow : datum.side")
    for side, align, dx in (("right", "left", 3), ("left", "right", -3)):
        if not ((ev["side"] == side) | (ev["side_narrow"] == side)).any():
            continue  # an empty layer makes Vega warn about an infinite extent
        # Each side's layer writes the labels placed on its side (an empty text, not a
        # filter: a layer left without data makes Vega warn).
        layers.append(placed.transform_calculate(
            side_label=f"datum.placed_side == '{side}' ? datum.label : ''").mark_text(
            align=align, dx=dx, fontSize=11, color="#222", clip=True).encode(
            y=alt.Y("row_y:Q", scale=None), text="side_label:N", tooltip=ev_tip))
    return layers


def _dodge(values: pd.Series, top: float, gap: float = 14, height: int = HEIGHT) -> list[float]:
    """Vertical offsets (px) that keep labels drawn at ``values`` at least ``gap`` apart,
    on a y axis from 0 to ``top`` rounded up the way Vega-Lite's "nice" does."""
    import math

    step = 10 ** math.floor(math.log10(top / 8)) if top > 0 else 1
    step *= next((m for m in (1, 2, 5, 10) if top / (step * m) <= 8), 10)
    axis_top = math.ceil(top / step) * step or 1
    pixel = [height * (1 - v / axis_top) for v in values]
    order = sorted(range(len(pixel)), key=lambda i: pixel[i])
    placed = {}
    previous = -1e9
    for i in order:
        placed[i] = max(pixel[i], previous + gap)
        previous = placed[i]
    shift = max(0, placed[order[-1]] - height) if order else 0  # keep the lowest on the chart
    return [placed[i] - shift - pixel[i] for i in range(len(pixel))]


def _label_width(labels) -> pd.Series:
    """Estimated pixel width of 11 px labels (~6.5 px a character)."""
    return labels.astype(str).str.len() * 6.5 + 6


def _stagger(ev: pd.DataFrame, view: tuple, width: int, rows: int = 4) -> list[int]:
    """Pixel y of each event label: the first row where it doesn't overlap an earlier label
    (label extents estimated at ~6.5 px a character in the opening view)."""
    per_year = width / max(1, view[1] - view[0])
    ends = [-1e9] * rows
    out = []
    for (_, e), w in zip(ev.iterrows(), _label_width(ev["label"])):
        x = (e["year"] - view[0]) * per_year
        left, right = (x - w, x) if e["side"] == "left" else (x, x + w)
        row = next((r for r in range(rows) if ends[r] < left), rows - 1)
        ends[row] = right
        out.append(12 + 15 * row)
    return out


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
    # A label at the end of each line, nudged apart vertically so that close end values
    # don't crowd; left out in a narrow column, where it would widen the chart (the
    # legend names the lines there).
    last = data.loc[data.groupby("host")["year"].idxmax()]
    for (_, row), dy in zip(last.iterrows(), _dodge(last["troops"], data["troops"].max())):
        layers.append(alt.Chart(last[last["host"] == row["host"]]).transform_calculate(
            end_label="usrok_narrow ? '' : datum.host").mark_text(
            align="left", dx=5, dy=dy, fontSize=11, fontWeight=600, clip=False).encode(
            x=x, y=y, text="end_label:N", opacity=fade, color=colour))
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
