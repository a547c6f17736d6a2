"""The course's charts, as notebooks use them: ``from usrok import charts``.

A thin public face: the code lives in modules with one reason to change each, and this
module re-exports what chapters, exercises and students call (``charts.finish``,
``charts.troops_annotated``, ``charts.PALETTE`` ...). Importing it enables the course theme.

- :mod:`usrok.chart_theme` -- the theme (fonts, sizes, palette, dash patterns) and the
  renderer that labels specs for JupyterLab;
- :mod:`usrok.chart_spec` -- what every chart must have: :func:`finish` refuses a chart
  without a title, a text description (the accessible name) or a source, :func:`check`
  checks a finished one, :func:`table_of` picks the data the page's table shows;
- the builders: :mod:`usrok.chart_troops` (troop series, hosts compared, the year axis),
  :mod:`usrok.chart_timeline` (event timelines), :mod:`usrok.chart_principles` (the
  assessment heatmap), :mod:`usrok.chart_map` (sites on a map).

Charts are ordinary Altair objects: JupyterLab draws them natively, and the book's Sphinx
extension (:mod:`usrok.book`) turns the same Vega-Lite output into an offline chart with a
data table.
"""

from __future__ import annotations

from usrok.chart_map import sites_map
from usrok.chart_principles import SCORE_COLOURS, SCORE_SCALE, principles_heatmap
from usrok.chart_spec import ChartSpecError, check, finish, metadata, source_line, table_of
from usrok.chart_theme import DASHES, HEIGHT, NARROW, PALETTE, WIDTH
from usrok.chart_timeline import event_timeline, timeline_events
from usrok.chart_troops import troops_annotated, troops_compare, year_axis

__all__ = ["ChartSpecError", "DASHES", "HEIGHT", "NARROW", "PALETTE", "SCORE_COLOURS", "SCORE_SCALE",
           "WIDTH", "check", "event_timeline", "finish", "metadata", "principles_heatmap",
           "sites_map", "source_line", "table_of", "timeline_events", "troops_annotated",
           "troops_compare", "year_axis"]
