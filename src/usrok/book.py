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
        from usrok.charts import source_line

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


_THEBE_CONFIG = re.compile(r'<script type="text/x-thebe-config">.*?</script>'
                           r"|<script>kernelName = '[^'<]*'</script>", re.S)


def _tidy_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop duplicate scripts, and Thebe's scripts when live code is off.

    sphinx-thebe adds its inline config (which names a CDN URL) and a ``kernelName``
    script to every page even when ``launch_buttons.thebe`` is false, and can add the
    config twice ('THEBE_JS_URL has already been declared'). With live code off the book
    loads none of it.
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


class DataCatalogue(SphinxDirective):
    """``{data-catalogue}``: the Data sources page's tables, from ``data/datapackage.json``.

    A summary whose table names link to one section per table (real sections, so the
    page's "Contents" lists them), each with its CSV, sources (web addresses as links,
    raw files of the repository as downloads and repository links) and columns; see
    ``usrok.data.catalogue_markdown``. The page is read again when the data change.
    """

    def run(self):
        from docutils.statemachine import StringList

        from usrok import data

        data_dir = Path(self.env.srcdir) / "data"
        docdir = Path(self.env.doc2path(self.env.docname)).parent
        prefix = Path(os.path.relpath(data_dir, docdir)).as_posix() + "/"
        for path in [data_dir / "datapackage.json", *sorted(data_dir.glob("*.csv")), *sorted(data_dir.glob("*.geojson"))]:
            self.env.note_dependency(str(path))
        text = data.catalogue_markdown(link_prefix=prefix, data_dir=data_dir,
                                       repository_url=self.config.html_theme_options.get("repository_url"))
        # The summary, then the sections (parsed with titles allowed: a nested parse that
        # allows titles keeps nothing before the first one).
        lines = text.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("(data-"))
        source = str(data_dir / "datapackage.json")
        summary, sections = nodes.Element(), nodes.Element()
        self.state.nested_parse(StringList(lines[:first], source=source), self.content_offset, summary)
        self.state.nested_parse(StringList(lines[first:], source=source), self.content_offset, sections,
                                match_titles=True)
        return summary.children + sections.children


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


# --------------------------------------------------------------------------- security
# What the pages may load and run (a <meta> Content-Security-Policy, so it holds on any
# static host). Scripts: the site's own files, plus the inline scripts and the two
# onclick handlers of the themes, each allowed by its hash (computed per page, see
# :func:`content_security_policy`); never an inline script inside the page's content.
# Vega runs with its expression interpreter (charts.js: ``ast: true``), so no
# 'unsafe-eval'. Styles keep 'unsafe-inline': Vega, vega-embed and the themes set
# style attributes and inject <style> elements; styles cannot run code.
CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}
# sphinx-book-theme's header buttons (full screen, print to PDF). Every page's policy
# allows both: the search page parses the other pages' HTML to quote them, and the
# browser reports each handler there that its own policy does not name.
THEME_HANDLERS = ("toggleFullScreen()", "window.print()")
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", re.S | re.I)
_INLINE_HANDLER = re.compile(r'\son[a-z]+="([^"]*)"')
_CONTENT = re.compile(r'<article class="bd-article".*</article>', re.S)


def _sha256(text: str) -> str:
    import base64
    import hashlib

    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def content_security_policy(page_html: str) -> str:
    """The page's policy: CSP_DIRECTIVES plus the hashes of the theme's inline scripts and
    handler attributes, i.e. those outside the page's content (``<article class="bd-article">``),
    where text from notebooks and data lands. Handlers need 'unsafe-hashes'."""
    content = _CONTENT.search(page_html)
    chrome = page_html[:content.start()] + page_html[content.end():] if content else page_html
    scripts = sorted({_sha256(m.group(2)) for m in _INLINE_SCRIPT.finditer(chrome)
                      if "json" not in m.group(1).lower()})
    handlers = sorted({_sha256(html.unescape(m.group(1))) for m in _INLINE_HANDLER.finditer(chrome)}
                      | {_sha256(h) for h in THEME_HANDLERS})
    directives = dict(CSP_DIRECTIVES)
    directives["script-src"] = " ".join([directives["script-src"], *scripts]
                                        + (["'unsafe-hashes'", *handlers] if handlers else []))
    return "; ".join(f"{k} {v}" for k, v in directives.items())


_CHARSET = re.compile(r'<meta charset="utf-8"\s*/?>', re.I)
_OLD_CSP = re.compile(r'\s*<meta http-equiv="Content-Security-Policy"[^>]*>')


def with_csp(page_html: str) -> str:
    """The page with its Content-Security-Policy <meta> first in <head> (before any script)."""
    page_html = _OLD_CSP.sub("", page_html)
    meta = f'\n<meta http-equiv="Content-Security-Policy" content="{content_security_policy(page_html)}" />'
    match = _CHARSET.search(page_html)
    if not match:
        return page_html
    return page_html[:match.end()] + meta + page_html[match.end():]


# A glued HTML output (a styled table in a {glue:figure}) sits outside .cell_output, so
# the theme does not make it focusable when it scrolls (course.css lets wide outputs
# scroll in their own box): keyboard users could not scroll it (axe:
# scrollable-region-focusable).
_GLUED_OUTPUT = re.compile(r'(<figure\b[^>]*>\s*<div class="output text_html")>')


def _note_build_start(app) -> None:
    app.usrok_build_started = time.time()


def _fix_written_pages(app, exception) -> None:
    """Fixes the themes offer no option for, applied to the pages this build wrote.

    - The .ipynb/.md buttons become downloads (``download`` attribute) instead of
      opening JSON as text in a new tab.
    - The duplicate Font Awesome script is dropped (see ``_FONTAWESOME_JS``).
    - The bibliography's invalid list role is removed (see ``_CITATION_LIST``).
    - Glued HTML outputs can be scrolled with the keyboard (see ``_GLUED_OUTPUT``).
    - The sidebar's section toggles get an accessible name (see ``_TOC_TOGGLE``).
    - Pages other than search.html do not load the search index (see
      ``_INLINE_SEARCH_SCRIPTS``) unless search-as-you-type is switched on.
    - Every page carries its Content-Security-Policy (see :func:`with_csp`).

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
        fixed = _GLUED_OUTPUT.sub(r'\1 tabindex="0">', fixed)
        fixed = _TOC_TOGGLE.sub(r'\1<summary aria-label="Sections of \2">\3', fixed)
        if not as_you_type and page.name != "search.html":
            fixed = _INLINE_SEARCH_SCRIPTS.sub("", fixed)
        fixed = with_csp(fixed)  # last: it hashes the scripts the page ends up with
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


def _no_theme_navbar(app, config) -> None:
    """Keep pydata-sphinx-theme's top navbar off, as sphinx-book-theme designs it.

    pydata-sphinx-theme 0.17 fills ``navbar_persistent`` with a search field whenever
    the user's options don't name it, overriding sphinx-book-theme's empty default. The
    navbar then draws (an empty band with a second search box at 1280 px) and puts its
    own, CSS-hidden ☰ and "Contents" buttons first in the page; both themes' scripts
    bind ``document.querySelector(".primary-toggle")`` (and ``.secondary-toggle``), so
    the buttons the reader sees get no handler at any width (pydata-sphinx-theme issue
    2451, sphinx-book-theme PR 1000). Without the navbar each toggle exists once.
    """
    config.html_theme_options.setdefault("navbar_persistent", [])


def setup(app):
    _cache_pybtex_plugin_lookups()
    app.connect("config-inited", _no_theme_navbar)
    app.connect("builder-inited", _note_build_start)
    app.connect("builder-inited", _cache_compiled_templates)
    app.setup_extension("usrok.inputs")  # pages run again when a file they read changes
    app.add_directive("exercise-links", ExerciseLinks)
    app.add_directive("data-catalogue", DataCatalogue)
    app.connect("build-finished", _fix_written_pages)
    app.connect("builder-inited", _write_static)
    app.connect("html-page-context", _page_assets)
    app.connect("html-page-context", _tidy_scripts, priority=900)
    app.add_css_file(f"{STATIC_DIR}/course.css")
    app.setup_extension("usrok.speed")  # text first: deferred scripts, one stylesheet, Vega on demand
    app.setup_extension("usrok.bundle")  # the course bundle (zip) and its entry in every download menu
    return {"parallel_read_safe": True, "parallel_write_safe": True}
