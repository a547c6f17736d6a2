"""The book's Sphinx extension (listed in ``_config.yml``): what it registers, and the assets.

:func:`setup` writes Vega, Vega-Lite and Vega-Embed once into ``_static`` from
``vl-convert-python`` and adds them, as an async module script, only to pages that have a
chart (no CDN, nothing inlined per chart), with the course's scripts and stylesheet, and
speeds up rebuilds. The rest lives beside it:

- :mod:`usrok.book_charts` -- the myst-nb renderer (:class:`VegaLiteRenderer`, registered as
  ``usrok.book:VegaLiteRenderer`` in ``pyproject.toml``): chart blocks, pooled chart data;
- :mod:`usrok.book_directives` -- the ``exercise-links`` and ``data-catalogue`` directives;
- :mod:`usrok.book_fixes` -- what the themes offer no option for (Thebe stripped when live
  code is off, post-build HTML fixes) and :mod:`usrok.book_csp`, each page's
  Content-Security-Policy;
- :mod:`usrok.inputs` (loaded here) re-executes a page when a file its code reads changes,
  and :mod:`usrok.speed` puts text first.
"""

from __future__ import annotations

from pathlib import Path

from usrok.book_charts import VegaLiteRenderer, pool_datasets  # noqa: F401 (the myst-nb entry point)
from usrok.book_directives import DataCatalogue, ExerciseLinks, binder_url, exercise_notebook  # noqa: F401 (instructor guide)
from usrok.book_fixes import _fix_written_pages, _no_theme_navbar, _note_build_start, _tidy_scripts

VL_VERSION = "6.4"  # the bundle's Vega-Lite (compiles in the browser)
STATIC_DIR = "usrok"
HERE = Path(__file__).parent


def _bundle_name() -> str:
    import vl_convert

    return f"vega-bundle-vl{VL_VERSION}-vlc{vl_convert.__version__}.js"


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
