"""The pages' Content-Security-Policy: what a page of the book may load and run."""

from __future__ import annotations

import html
import re

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
