"""Fixes for what the themes offer no option for: while pages are written, and after the build.

- :func:`_no_theme_navbar` keeps pydata-sphinx-theme's top navbar off;
- :func:`_tidy_scripts` drops duplicate scripts, and Thebe's when live code is off;
- :func:`_fix_written_pages` rewrites the pages a build wrote (download buttons, scripts,
  ARIA, keyboard scrolling) and gives each its Content-Security-Policy (:mod:`usrok.book_csp`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from usrok.book_csp import with_csp

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
