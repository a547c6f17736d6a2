"""The course's chart theme: how every chart looks, in a notebook and in the book.

Importing this module (``usrok.charts`` does) registers and enables the Altair theme
``usrok`` (fonts, sizes, the colour-blind-safe palette) and the renderer that labels specs
for JupyterLab's Vega-Lite. The builders (``usrok.chart_*``) take their colours, dash
patterns and sizes from here.
"""

from __future__ import annotations

import altair as alt

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
# A chart drawn in a narrow column (a phone) has views about this wide. The page sets the
# parameter ``usrok_narrow`` (declared by :func:`finish`, false in a notebook) to true
# there; expressions can use it, e.g. to place or hide labels.
NARROW_VIEW_WIDTH = 230
NARROW = alt.param(name="usrok_narrow", value=False)


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
