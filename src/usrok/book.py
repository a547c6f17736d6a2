"""Sphinx/myst-nb glue that makes the book's Altair charts work offline.

- :class:`VegaLiteRenderer` is a myst-nb mime-render plugin (registered as an entry
  point in ``pyproject.toml``): it turns a Vega-Lite output into a chart container,
  the spec as inert JSON, its description and source, and a collapsible data view
  (filled in the browser by charts.js).
- :func:`setup` (a Sphinx extension, listed in ``_config.yml``) writes Vega, Vega-Lite
  and Vega-Embed once into ``_static`` from ``vl-convert-python`` and adds them, as an
  async module script, only to pages that have a chart. No CDN, nothing inlined per
  chart. It also pools each page's chart data, renders the ``exercise-links`` directive,
  strips Thebe when live code is off, and fixes what the themes offer no option for.
  It loads :mod:`usrok.inputs`, which re-executes a page when a file its code reads changes.
"""

from __future__ import annotations

import html
import json
import re
import os
import time
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

VEGALITE_MIME = "application/vnd.vegalite.v5+json"
VL_VERSION = "6.4"  # the bundle's Vega-Lite (compiles in the browser)
STATIC_DIR = "usrok"
HERE = Path(__file__).parent


def _bundle_name() -> str:
    import vl_convert

    return f"vega-bundle-vl{VL_VERSION}-vlc{vl_convert.__version__}.js"


# --------------------------------------------------------------------------- rendering
def _title(spec: dict) -> tuple[str, list[str]]:
    title = spec.get("title") or ""
    if isinstance(title, dict):
        sub = title.get("subtitle") or []
        return str(title.get("text", "")), [sub] if isinstance(sub, str) else list(sub)
    return str(title), []


def browser_spec(spec: dict) -> dict:
    """The Vega-Lite spec as the page ships it: no $schema, datasets kept for the page pool.

    The bundle compiles with Vega-Lite 6 (which runs these Altair 5 specs unchanged; the
    browser tests check every chart draws); without the v5 $schema label vega-embed does
    not warn about the version.
    """
    spec = dict(spec)
    spec.pop("$schema", None)
    return spec


def chart_html(spec: dict) -> str:
    """The HTML for one chart: container with accessible name, spec, description, source, data view.

    The data table is built in the browser from the chart's own data when the reader opens
    "Data behind the chart", so the values are not sent twice.
    """
    title, subtitle = _title(spec)
    description = spec.get("description") or title
    source = next((s for s in subtitle if str(s).startswith("Source:")), "")
    spec_json = json.dumps(browser_spec(spec), separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    return (
        '<div class="usrok-chart-block">'
        f'<div class="usrok-chart" data-description="{html.escape(description)}">'
        '<p class="usrok-chart-loading">Loading chart…</p></div>'
        f'<script type="application/json" class="usrok-spec">{spec_json}</script>'
        f'<p class="usrok-chart-desc"><strong>Chart description.</strong> {html.escape(description)}'
        f' <span class="usrok-source">{html.escape(source)}</span></p>'
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
        spec = json.loads(match.group(2).replace("<\\/", "</"))
        pool.update(spec.pop("datasets", None) or {})
        text = json.dumps(spec, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
        return match.group(1) + text + match.group(3)

    body = _SPEC_BLOCK.sub(strip, body)
    if not pool:
        return body
    pooled = json.dumps(pool, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    return body + f'<script type="application/json" id="usrok-datasets">{pooled}</script>'


class VegaLiteRenderer:
    """myst-nb mime renderer: Vega-Lite JSON becomes an offline chart block."""

    mime_priority_overrides = [("html", VEGALITE_MIME, 1), ("dirhtml", VEGALITE_MIME, 1)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != VEGALITE_MIME:
            return None
        spec = data.content if isinstance(data.content, dict) else json.loads(data.string)
        return [nodes.raw(text=chart_html(spec), format="html", classes=["output", "usrok-vegalite"])]


# --------------------------------------------------------------------------- sphinx
def _write_static(app) -> None:
    """Write the Vega bundle (once per version) and the course's JS/CSS into _static/usrok."""
    if app.builder.format != "html":
        return
    out = Path(app.outdir) / "_static" / STATIC_DIR
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / _bundle_name()
    for stale in out.glob("vega-bundle-*.js"):  # left by an older Vega-Lite or vl-convert
        if stale != bundle:
            stale.unlink()
    if not bundle.exists():
        import vl_convert

        # The bundle is an ES module; it announces itself so chart scripts can wait for it.
        snippet = ("window.vegaEmbed=vegaEmbed;window.vega=vega;"
                   "window.dispatchEvent(new Event('vega-ready'));")
        bundle.write_text(vl_convert.javascript_bundle(snippet, vl_version=VL_VERSION), encoding="utf-8")
    for name in ("charts.js", "quiz.js", "course.css"):
        src = (HERE / name).read_bytes()
        dest = out / name
        if not dest.exists() or dest.read_bytes() != src:
            dest.write_bytes(src)


def _page_assets(app, pagename, templatename, context, doctree) -> None:
    """Load the chart scripts only on pages that draw a chart (the bundle is ~0.9 MB)."""
    body = context.get("body", "")
    if "usrok-spec" in body:
        context["body"] = pool_datasets(body)
        app.add_js_file(f"{STATIC_DIR}/{_bundle_name()}", type="module", **{"async": "async"})
        app.add_js_file(f"{STATIC_DIR}/charts.js", type="module", **{"async": "async"})
    if "usrok-quiz" in body:
        app.add_js_file(f"{STATIC_DIR}/quiz.js", defer="defer")


_THEBE_CONFIG = re.compile(r'<script type="text/x-thebe-config">.*?</script>', re.S)


def _tidy_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop duplicate scripts, and Thebe's scripts when live code is off.

    sphinx-thebe adds its inline config (which names a CDN URL) to every page even when
    ``launch_buttons.thebe`` is false, and can add it twice ('THEBE_JS_URL has already
    been declared'). With live code off the book loads none of it.
    """
    thebe_on = bool(app.config.html_theme_options.get("launch_buttons", {}).get("thebe"))
    seen, unique = set(), []
    for js in context.get("script_files", []):
        filename = getattr(js, "filename", None) or ""
        body = getattr(js, "attributes", {}).get("body", "")
        if not thebe_on and ("sphinx-thebe" in filename or "THEBE_JS_URL" in body):
            continue
        if (filename, body) in seen:
            continue
        seen.add((filename, body))
        unique.append(js)
    context["script_files"] = unique
    if not thebe_on:
        context["css_files"] = [css for css in context.get("css_files", [])
                                if "sphinx-thebe" not in (getattr(css, "filename", None) or str(css))]
        if "body" in context:
            context["body"] = _THEBE_CONFIG.sub("", context["body"])


# --------------------------------------------------------------------------- exercise links
from usrok.assignments import student_notebook as exercise_notebook  # noqa: E402 (one convention)


def binder_url(theme_options: dict, path: str) -> str:
    """A Binder link that opens ``path`` of the book's repository in JupyterLab.

    Uses the same settings as Jupyter Book's launch buttons (``repository`` and
    ``launch_buttons`` in _config.yml, passed to Sphinx as html_theme_options).
    """
    from urllib.parse import quote

    repo = theme_options["repository_url"].rstrip("/").removeprefix("https://github.com/")
    branch = theme_options.get("repository_branch") or "main"
    hub = (theme_options.get("launch_buttons", {}).get("binderhub_url") or "https://mybinder.org").rstrip("/")
    return f"{hub}/v2/gh/{repo}/{branch}?urlpath={quote('lab/tree/' + path, safe='')}"


class ExerciseLinks(SphinxDirective):
    """``{exercise-links} ex03_easi``: download + Binder links to an assignment's student notebook."""

    required_arguments = 1

    def run(self):
        name = self.arguments[0]
        root = Path(self.env.srcdir)
        notebook = exercise_notebook(name)
        if not (root / notebook).exists():
            # The test suite fails on a missing notebook; while drafting, say so in the page.
            logger.info(f"[usrok] student notebook {notebook} not built yet")
            para = nodes.paragraph(text=f"(The exercise notebook {name} is not built yet.)")
            return [para]
        docdir = Path(self.env.doc2path(self.env.docname)).parent
        rel = os.path.relpath(root / notebook, docdir)
        download = addnodes.download_reference(
            "", "", nodes.inline(text="download the student notebook"),
            refdoc=self.env.docname, reftarget=rel, refexplicit=True, reftype="download", refdomain="")
        binder = nodes.reference("", "open it on Binder",
                                 refuri=binder_url(self.config.html_theme_options, notebook))
        from usrok.edition import edition_url  # the in-browser edition (lite/, usrok.edition)

        lite = nodes.reference("", "run it in your browser", refuri=edition_url(self.env.docname, notebook))
        para = nodes.paragraph(classes=["usrok-exercise"])
        para += [nodes.strong(text=f"Graded exercise {name}: "), download, nodes.Text(", "), binder,
                 nodes.Text(" or "), lite, nodes.Text(" (no install; check each answer with "),
                 nodes.literal(text='grader.check("q1")'), nodes.Text(").")]
        return [para]


# pydata-sphinx-theme's template hard-codes this 1.5 MB script. The icons also come from
# the theme's CSS web font, so the script only re-draws them as SVG, and on a first
# visit it delays every chart (deferred scripts run in order).
_FONTAWESOME_JS = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')
# docutils marks the bibliography as role="list" but its entries as doc-biblioentry, which
# ARIA does not allow inside a list (axe: aria-required-children, critical).
_CITATION_LIST = '<div role="list" class="citation-list">'
# pydata-sphinx-theme's sidebar toggle for a chapter with sections is a <summary> holding only
# an icon (axe: summary-name, serious); it gets the chapter's name as its accessible name.
_TOC_TOGGLE = re.compile(r'(>([^<>]+)</a><details(?: open="open")?>)<summary>(<span class="toctree-toggle")')
_DOWNLOAD_BUTTON = re.compile(
    r'<a href="([^"]+)" target="_blank"(\s+class="btn btn-sm btn-download-(?:notebook|source)-button)')


# pydata-sphinx-theme puts Sphinx's search scripts and the whole search index (~120 KB) in
# every page's <head>, parser-blocking, for search-as-you-type, which this book leaves off
# (the search box opens search.html, which loads them itself).
_INLINE_SEARCH_SCRIPTS = re.compile(
    r'\s*<script src="[^"]*_static/searchtools\.js"></script>'
    r'\s*<script src="[^"]*_static/language_data\.js"></script>'
    r'\s*<script src="[^"]*searchindex\.js"></script>')


def _note_build_start(app) -> None:
    app.usrok_build_started = time.time()


def _fix_written_pages(app, exception) -> None:
    """Fixes the themes offer no option for, applied to the pages this build wrote.

    - The .ipynb/.md buttons become downloads (``download`` attribute) instead of
      opening JSON as text in a new tab.
    - The duplicate Font Awesome script is dropped (see ``_FONTAWESOME_JS``).
    - The bibliography's invalid list role is removed (see ``_CITATION_LIST``).
    - The sidebar's section toggles get an accessible name (see ``_TOC_TOGGLE``).
    - Pages other than search.html do not load the search index (see
      ``_INLINE_SEARCH_SCRIPTS``) unless search-as-you-type is switched on.

    Pages are picked by date, which also covers parallel writing and a build that failed
    half-way (Sphinx will not rewrite the pages it wrote before failing).
    """
    if app.builder.format != "html":
        return
    as_you_type = bool(app.config.html_theme_options.get("search_as_you_type"))
    for page in Path(app.outdir).rglob("*.html"):
        if page.stat().st_mtime < getattr(app, "usrok_build_started", 0):
            continue
        text = page.read_text(encoding="utf-8")
        fixed = _FONTAWESOME_JS.sub("", _DOWNLOAD_BUTTON.sub(r'<a href="\1" download\2', text))
        fixed = fixed.replace(_CITATION_LIST, '<div class="citation-list">')
        fixed = _TOC_TOGGLE.sub(r'\1<summary aria-label="Sections of \2">\3', fixed)
        if not as_you_type and page.name != "search.html":
            fixed = _INLINE_SEARCH_SCRIPTS.sub("", fixed)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


# --------------------------------------------------------------------------- speed
def _cache_pybtex_plugin_lookups() -> None:
    """Look each pybtex plugin up once per build, not once per citation.

    sphinxcontrib-bibtex builds a pybtex style for every ``{footcite}``, and pybtex finds
    each of the style's plugins with ``importlib.metadata.entry_points(...)``, which scans
    every installed distribution: about 0.1 s per citation, most of a one-page rebuild.
    Plugins registered at run time are still looked up first by pybtex itself.
    """
    import functools

    import pybtex.plugin

    lookup = pybtex.plugin.entry_points
    if getattr(lookup, "usrok_cached", False):
        return

    @functools.cache
    def cached(group: str, name: str | None) -> tuple:
        return tuple(lookup(group=group) if name is None else lookup(group=group, name=name))

    def entry_points(*, group: str, name: str | None = None) -> tuple:
        return cached(group, name)

    entry_points.usrok_cached = True
    pybtex.plugin.entry_points = entry_points


def _cache_compiled_templates(app) -> None:
    """Keep the theme's compiled Jinja templates between builds (a rebuild compiles ~40)."""
    environment = getattr(getattr(app.builder, "templates", None), "environment", None)
    if environment is not None and environment.bytecode_cache is None:
        from jinja2 import FileSystemBytecodeCache

        cache = Path(app.doctreedir) / "jinja-bytecode"
        cache.mkdir(parents=True, exist_ok=True)
        environment.bytecode_cache = FileSystemBytecodeCache(str(cache))


def setup(app):
    _cache_pybtex_plugin_lookups()
    app.connect("builder-inited", _note_build_start)
    app.connect("builder-inited", _cache_compiled_templates)
    app.setup_extension("usrok.inputs")  # pages run again when a file they read changes
    app.add_directive("exercise-links", ExerciseLinks)
    app.connect("build-finished", _fix_written_pages)
    app.connect("builder-inited", _write_static)
    app.connect("html-page-context", _page_assets)
    app.connect("html-page-context", _tidy_scripts, priority=900)
    app.add_css_file(f"{STATIC_DIR}/course.css")
    app.setup_extension("usrok.speed")  # text first: deferred scripts, one stylesheet, Vega on demand
    return {"parallel_read_safe": True, "parallel_write_safe": True}
