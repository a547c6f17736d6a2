"""What every course chart must have: :func:`finish` gives it, :func:`check` checks it.

:func:`finish` refuses a chart without a title, a text description (used as the accessible
name) or a source, and stores them in the spec's Vega-Lite ``usermeta`` with the dataset the
page's "Data behind the chart" shows (:func:`table_of`). The book's renderer
(:mod:`usrok.book_charts`) and the exercises' checks read them back from there.
"""

from __future__ import annotations

import altair as alt

from usrok.chart_theme import NARROW, WIDTH


class ChartSpecError(ValueError):
    """A chart is missing something every course chart must have."""


def finish(chart, *, title: str, description: str, source: str, subtitle: str | None = None,
           width: int | None = WIDTH, height: int | None = None, table: dict | None = None):
    """Give a chart its title, source and description; refuse a chart that lacks them.

    ``description`` is the chart's alternative text: say what the chart shows and the
    one thing a reader should see in it. ``source`` names where the data come from.
    Both travel in the spec's Vega-Lite ``usermeta`` (``usermeta["usrok"]``), with
    ``table``: which dataset the page's "Data behind the chart" shows and its columns
    (by default the largest dataset, with the columns, names and number formats of its
    tooltip; see :func:`table_of`). The source is also drawn as the last subtitle line,
    so a notebook or an exported image keeps it.
    """
    for name, value in (("title", title), ("description", description), ("source", source)):
        if not isinstance(value, str) or not value.strip():
            raise ChartSpecError(f"every course chart needs a {name}; got {value!r}")
    lines = ([subtitle] if subtitle else []) + [source_line(source)]
    props = {"title": alt.Title(title, subtitle=lines), "description": description}
    if width is not None and not isinstance(chart, (alt.VConcatChart, alt.HConcatChart)):
        props["width"] = width
    if height is not None:
        props["height"] = height
    chart = chart.properties(**props)
    params = chart.params if chart.params is not alt.Undefined else []
    if NARROW.name not in {getattr(p, "name", None) for p in params}:
        chart = chart.add_params(NARROW)
    meta = {"source": source, "description": description,
            "table": table if table is not None else table_of(chart.to_dict())}
    return chart.properties(usermeta={"usrok": meta})


def source_line(source: str) -> str:
    """The subtitle line :func:`finish` draws for a source (the book's page prints the
    source under the chart instead, so it removes exactly this line)."""
    return f"Source: {source}"


def metadata(chart) -> dict:
    """The course metadata of a finished chart (an Altair chart or its Vega-Lite dict):
    ``source``, ``description`` and ``table``; empty when the chart did not go through
    :func:`finish`."""
    spec = chart.to_dict() if hasattr(chart, "to_dict") else dict(chart)
    meta = (spec.get("usermeta") or {}).get("usrok")
    return meta if isinstance(meta, dict) else {}


def check(chart) -> dict:
    """Return the chart's Vega-Lite dict after checking it has what every course chart needs:
    a title, and in ``usermeta`` a description (alt text) and a source (see :func:`finish`)."""
    spec = chart.to_dict() if hasattr(chart, "to_dict") else dict(chart)
    title = spec.get("title")
    text = title.get("text") if isinstance(title, dict) else title
    if not text:
        raise ChartSpecError("chart has no title")
    meta = metadata(spec)
    for key, what in (("description", "description (alt text)"), ("source", "source")):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            raise ChartSpecError(f"chart {text!r} has no {what}: pass it through charts.finish")
    return spec


# --------------------------------------------------------------------------- data table
def _views(spec: dict):
    """Every unit view of a spec (layers and concatenations walked), with its data name."""
    if not isinstance(spec, dict):
        return
    name = (spec.get("data") or {}).get("name")
    for key in ("layer", "vconcat", "hconcat", "concat"):
        for sub in spec.get(key, []) or []:
            if isinstance(sub, dict) and "data" not in sub and name:
                sub = {**sub, "data": {"name": name}}
            yield from _views(sub)
    if "spec" in spec:
        yield from _views({**spec["spec"], **({"data": spec["data"]} if name else {})})
    if "mark" in spec:
        yield spec


def _column(channel: dict) -> dict | None:
    field = channel.get("field")
    if not isinstance(field, str) or channel.get("aggregate"):
        return None
    kind = channel.get("type", "nominal")
    fmt = channel.get("format")
    if fmt is None and kind == "quantitative":
        fmt = "d" if "year" in field.lower() else ","  # years without separators
    column = {"field": field, "title": str(channel.get("title") or field), "type": kind}
    if fmt is not None:
        column["format"] = fmt
    return column


def table_of(spec: dict) -> dict:
    """Which data the page's table shows for a chart: ``{"dataset", "columns"}``.

    The dataset is the largest one the chart draws (ties: the first drawn with a
    tooltip), so helper layers (labels, rules, callouts) stay out. Its columns are the
    fields of its tooltips, with their titles and formats; without a tooltip, the
    encoded fields; without those, every column.
    """
    datasets = spec.get("datasets") or {}
    views = [v for v in _views(spec) if (v.get("data") or {}).get("name") in datasets]
    if not views:
        return {"dataset": None, "columns": []}
    order = list(dict.fromkeys(v["data"]["name"] for v in views))
    tipped = {v["data"]["name"] for v in views if (v.get("encoding") or {}).get("tooltip")}
    name = max(order, key=lambda n: (len(datasets[n]), n in tipped, -order.index(n)))
    present = set().union(*(row.keys() for row in datasets[name][:50])) if datasets[name] else set()
    mine = [v for v in views if v["data"]["name"] == name]
    columns: dict[str, dict] = {}
    for source in ("tooltip", "encoding"):
        for v in mine:
            enc = v.get("encoding") or {}
            channels = enc.get("tooltip") if source == "tooltip" else [
                c for k, c in enc.items() if k != "tooltip"]
            channels = channels if isinstance(channels, list) else [channels]
            for c in channels:
                col = _column(c) if isinstance(c, dict) else None
                if col and col["field"] in present and col["field"] not in columns:
                    columns[col["field"]] = col
        if columns:
            break
    if not columns:
        columns = {f: {"field": f, "title": f, "type": "nominal"} for f in sorted(present)}
    return {"dataset": name, "columns": list(columns.values())}
