"""How a chart appears on a book page: the myst-nb renderer and the chart block's HTML.

:class:`VegaLiteRenderer` is a myst-nb mime-render plugin (registered as an entry point in
``pyproject.toml``, under :mod:`usrok.book`): it turns a Vega-Lite output into a chart
container, the spec as inert JSON, its description and source, and a collapsible data view
(filled in the browser by charts.js). :func:`pool_datasets` then moves a page's chart data
into one pool.
"""

from __future__ import annotations

import html
import json
import re

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

VEGALITE_MIME = "application/vnd.vegalite.v5+json"


def script_json(value) -> str:
    """JSON that is safe inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e`` and ``\\u0026`` (JSON.parse
    reads them back unchanged), so no text from the data can close the element or start
    a comment (``<!--<script>`` would make the parser swallow the rest of the page).
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _chart_meta(spec: dict) -> dict:
    """The chart's course metadata (``usermeta.usrok``, set by ``usrok.charts.finish``)."""
    meta = (spec.get("usermeta") or {}).get("usrok")
    return meta if isinstance(meta, dict) else {}


def _title_text(spec: dict) -> str:
    title = spec.get("title") or ""
    return str(title.get("text", "")) if isinstance(title, dict) else str(title)


def browser_spec(spec: dict) -> dict:
    """The Vega-Lite spec as the page ships it: no $schema, no drawn source line.

    The bundle compiles with Vega-Lite 6 (which runs these Altair 5 specs unchanged; the
    browser tests check every chart draws); without the v5 $schema label vega-embed does
    not warn about the version. The page prints the source under the chart, so the
    subtitle line ``charts.finish`` drew for notebooks is dropped (exactly that line).
    Datasets stay in; :func:`pool_datasets` moves them to the page's pool.
    """
    spec = dict(spec)
    spec.pop("$schema", None)
    source = _chart_meta(spec).get("source")
    title = spec.get("title")
    if source and isinstance(title, dict) and title.get("subtitle") is not None:
        from usrok.chart_spec import source_line

        lines = title["subtitle"] if isinstance(title["subtitle"], list) else [title["subtitle"]]
        kept = [line for line in lines if line != source_line(source)]
        spec["title"] = {k: v for k, v in title.items() if k != "subtitle"} | ({"subtitle": kept} if kept else {})
    return spec


def chart_html(spec: dict) -> str:
    """The HTML for one chart: container with accessible name, spec, description, source, data view.

    Description and source come from the spec's ``usermeta`` (see ``usrok.charts.finish``).
    The data table is built in the browser from the chart's own data when the reader
    opens "Data behind the chart", so the values are not sent twice.
    """
    meta = _chart_meta(spec)
    title = _title_text(spec)
    description = meta.get("description") or spec.get("description") or title
    source = meta.get("source") or ""
    if not meta:
        logger.warning(f"[usrok] chart {title!r} did not go through usrok.charts.finish "
                       "(no usermeta: no description, source or data table)")
    source_html = f' <span class="usrok-source">Source: {html.escape(source)}</span>' if source else ""
    return (
        '<div class="usrok-chart-block">'
        f'<div class="usrok-chart" data-description="{html.escape(description)}">'
        '<p class="usrok-chart-loading">Loading chart…</p></div>'
        f'<script type="application/json" class="usrok-spec">{script_json(browser_spec(spec))}</script>'
        f'<p class="usrok-chart-desc"><strong>Chart description.</strong> {html.escape(description)}'
        f'{source_html}</p>'
        f'<details class="usrok-data"><summary>Data behind the chart “{html.escape(title)}”</summary>'
        '<p class="usrok-table-note">The table appears here when JavaScript runs; every table is also '
        'a CSV on the Data sources page.</p></details>'
        "</div>"
    )


_SPEC_BLOCK = re.compile(r'(<script type="application/json" class="usrok-spec">)(.*?)(</script>)', re.S)


def pool_datasets(body: str) -> str:
    """Move the charts' inline datasets into one page-level pool, each dataset once.

    Altair names a dataset by the hash of its values, so two charts of a page drawn from
    the same table share one copy; charts.js gives every spec the pool back.
    """
    pool: dict = {}

    def strip(match):
        spec = json.loads(match.group(2))
        pool.update(spec.pop("datasets", None) or {})
        return match.group(1) + script_json(spec) + match.group(3)

    body = _SPEC_BLOCK.sub(strip, body)
    if not pool:
        return body
    return body + f'<script type="application/json" id="usrok-datasets">{script_json(pool)}</script>'


class VegaLiteRenderer:
    """myst-nb mime renderer: Vega-Lite JSON becomes an offline chart block."""

    mime_priority_overrides = [("html", VEGALITE_MIME, 1), ("dirhtml", VEGALITE_MIME, 1)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != VEGALITE_MIME:
            return None
        spec = data.content if isinstance(data.content, dict) else json.loads(data.string)
        return [nodes.raw(text=chart_html(spec), format="html", classes=["output", "usrok-vegalite"])]
