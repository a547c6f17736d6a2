"""Map of sites on a country outline (chapter 4's map of US military sites)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from usrok.chart_spec import finish
from usrok.chart_theme import PALETTE


def _rounded(coords, digits: int = 2):
    """GeoJSON coordinates rounded to ``digits`` decimals (0.01 degree is about 1 km),
    with points a ring repeats one after another dropped: keeps the page small."""
    if isinstance(coords[0], (int, float)):
        return [round(coords[0], digits), round(coords[1], digits)]
    out = [_rounded(c, digits) for c in coords]
    if out and isinstance(out[0][0], float):  # a ring
        out = [p for i, p in enumerate(out) if i == 0 or p != out[i - 1]]
    return out


def _mean_point(coords) -> tuple[float, float]:
    flat = []

    def walk(c):
        if isinstance(c[0], (int, float)):
            flat.append(c)
        else:
            for x in c:
                walk(x)
    walk(coords)
    return sum(p[0] for p in flat) / len(flat), sum(p[1] for p in flat) / len(flat)


def sites_map(points: pd.DataFrame, outline: dict, *, groups: list, title: str, description: str,
              source: str, subtitle: str | None = None, group: str = "region", name: str = "name",
              callouts: dict | None = None, home: str = "South Korea", corner: str | None = "North Korea",
              legend_title: str = "Group", tooltip: list | None = None, width: int = 420,
              height: int = 480):
    """Sites as points on a country outline (chapter 4's map of US military sites).

    ``points``: columns ``lat``, ``lon``, ``name``, the ``group`` column (one colour and
    shape per entry of ``groups``, clickable in the legend, titled ``legend_title``) and any ``tooltip`` columns
    (``[(column, title), ...]``; default: name and group). ``outline``: a GeoJSON
    FeatureCollection whose features have a ``name`` property; the map is framed on the
    points plus a margin. ``home`` (a feature name) is labelled at its centre and
    ``corner`` in the top-left corner (the only part of that country the frame shows).
    ``callouts``: ``{site name: (label, dx, dy)}`` writes a label beside a few sites
    (offsets in pixels). Land is drawn with plain mark colours, which the page's dark
    theme re-colours; the data table under the chart lists the points.
    """
    features = [{"type": "Feature", "properties": {"name": f["properties"]["name"]},
                 "geometry": {"type": f["geometry"]["type"],
                              "coordinates": _rounded(f["geometry"]["coordinates"])}}
                for f in outline["features"]]
    frame = {"type": "Feature", "properties": {}, "geometry": {"type": "MultiPoint", "coordinates": [
        [points["lon"].min() - 0.9, points["lat"].min() - 0.7],
        [points["lon"].max() + 0.9, points["lat"].max() + 0.8]]}}
    land_tip = alt.Tooltip("properties.name:N", title="Country")
    land = [alt.Chart(alt.Data(values=[f for f in features if (f["properties"]["name"] == home) == is_home]))
            .mark_geoshape(fill="#f3f3f3" if is_home else "#d9d9d9", stroke="#666", strokeWidth=0.8, clip=True)
            .encode(tooltip=land_tip)
            for is_home in (True, False) if any((f["properties"]["name"] == home) == is_home for f in features)]
    layers = list(land)
    home_feature = next((f for f in features if f["properties"]["name"] == home), None)
    if home_feature is not None:
        lon, lat = _mean_point(home_feature["geometry"]["coordinates"])
        layers.append(alt.Chart(pd.DataFrame({"lon": [lon], "lat": [lat], "label": [home]})).mark_text(
            fontSize=12, color="#555", fontStyle="italic").encode(longitude="lon:Q", latitude="lat:Q", text="label:N"))
    if corner:
        layers.append(alt.Chart(pd.DataFrame({"label": [corner]})).mark_text(
            align="left", fontSize=12, color="#444", fontStyle="italic").encode(
            x=alt.value(8), y=alt.value(14), text="label:N"))
    pick = alt.selection_point(fields=[group], bind="legend")
    tips = tooltip or [(name, "Site"), (group, "Group")]
    shapes = ["square", "triangle-up", "circle", "diamond", "cross", "triangle-down"]
    colours = [PALETTE[1], PALETTE[0], PALETTE[2], PALETTE[3], PALETTE[4], PALETTE[5]]
    dots = alt.Chart(points).mark_point(filled=True, size=70, stroke="white", strokeWidth=0.7).encode(
        longitude="lon:Q", latitude="lat:Q",
        color=alt.Color(f"{group}:N", title=legend_title, sort=groups,
                        scale=alt.Scale(domain=groups, range=colours[: len(groups)])),
        shape=alt.Shape(f"{group}:N", title=legend_title, sort=groups,
                        scale=alt.Scale(domain=groups, range=shapes[: len(groups)])),
        opacity=alt.when(pick).then(alt.value(0.95)).otherwise(alt.value(0.15)),
        tooltip=[alt.Tooltip(f"{c}:{'Q' if c in ('lat', 'lon') else 'N'}", title=t,
                             **({"format": ".2f"} if c in ("lat", "lon") else {})) for c, t in tips],
    ).add_params(pick)
    layers.append(dots)
    for site, (label, dx, dy) in (callouts or {}).items():
        row = points[points[name] == site]
        if row.empty:
            raise ValueError(f"callout for {site!r}: no such site in the {name!r} column")
        layers.append(alt.Chart(pd.DataFrame({"lon": row["lon"].iloc[:1], "lat": row["lat"].iloc[:1],
                                              "label": [label]})).mark_text(
            align="left" if dx > 0 else "right", dx=dx, dy=dy, fontSize=11, fontWeight="bold",
            color="#222").encode(longitude="lon:Q", latitude="lat:Q", text="label:N"))
    chart = alt.layer(*layers).project(type="mercator", fit=frame).properties(height=height)
    return finish(chart, title=title, description=description, source=source, subtitle=subtitle,
                  width=width)
