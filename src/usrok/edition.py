"""Sphinx side of the in-browser edition (listed in ``_config.yml``; build-only, not shipped).

- After a successful HTML build, the edition is (re)built into ``<outdir>/lite`` by
  ``lite/build.py`` (incremental: nothing to do when none of its inputs changed; only the
  notebooks when only a chapter or its numbers changed), with the numbers the book pasted
  into each chapter's prose stored in its notebook. A failure fails the book's build with its
  message.
- Every chapter page that the edition holds gets a "Run in the browser" button in the
  launch menu, beside Binder, opening that page's notebook in the edition.
- :func:`edition_url` is the link from a page to a notebook in the edition (used by the
  ``exercise-links`` directive in :mod:`usrok.book`).
"""

from __future__ import annotations

import importlib.util
import posixpath
from pathlib import Path
from urllib.parse import quote

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

EDITION_DIR = "lite"  # inside the built book
LAB_PAGE = f"{EDITION_DIR}/lab/index.html"
BUTTON_TEXT = "Run in the browser"


def edition_url(docname: str, notebook: str) -> str:
    """Link from the page ``docname`` to ``notebook`` (repository path) opened in the edition."""
    start = posixpath.dirname(docname) or "."
    return f"{posixpath.relpath(LAB_PAGE, start)}?path={quote(notebook)}"


def _builder(app):
    """lite/build.py of the book being built, loaded as a module (None outside this course)."""
    if not hasattr(app, "usrok_edition_builder"):
        path = Path(app.srcdir) / "lite" / "build.py"
        module = None
        if path.is_file():
            spec = importlib.util.spec_from_file_location("usrok_lite_build", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        app.usrok_edition_builder = module
    return app.usrok_edition_builder


def _edition_pages(app) -> set[str]:
    if not hasattr(app, "usrok_edition_pages"):
        builder = _builder(app)
        app.usrok_edition_pages = set(builder.edition_pages()) if builder else set()
    return app.usrok_edition_pages


def _add_button(app, pagename, templatename, context, doctree) -> None:
    """"Run in the browser" in the page's launch menu (after sphinx-book-theme filled it)."""
    if pagename not in _edition_pages(app):
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "launch-buttons":
            group["buttons"].append({
                "type": "link",
                "text": BUTTON_TEXT,
                "tooltip": "Run this page's notebook in your browser: nothing to install, no server",
                "icon": "_static/images/logo_jupyterlite.svg",
                "url": edition_url(pagename, f"{pagename}.ipynb"),
                "label": "launch-browser-button",
            })
            return


def _build_edition(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    builder = _builder(app)
    if builder is None:
        return
    try:
        # myst-nb wrote the pages it executed beside the output folder: their glued numbers
        # fill in the chapters' prose in the edition (lite/build.py, "numbers in the prose").
        builder.build(Path(app.outdir) / EDITION_DIR, executed=Path(app.outdir).parent / "jupyter_execute")
    except builder.EditionError as error:
        raise ExtensionError(f"the in-browser edition could not be built: {error}") from None


def setup(app):
    app.connect("html-page-context", _add_button, priority=510)
    app.connect("build-finished", _build_edition)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
