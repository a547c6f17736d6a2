"""Text from the data that lands in a page: escaped, and a link only when it is a web address.

A data table can hold anything, e.g. ``javascript:alert(1)`` in a ``source_url`` column;
written into ``<a href>`` it would run when a reader clicks it. Chapters that turn data
into HTML links go through :func:`link_html`; the Data sources page through
:func:`http_url`.
"""

from __future__ import annotations

import html
import re

_WEB_ADDRESS = re.compile(r"^https?://[^\s<>\"'`]+$", re.I)


def http_url(address) -> str | None:
    """``address`` stripped, if it is an http(s) address without spaces or quotes; else None."""
    if address is None or not isinstance(address, str):
        return None
    address = address.strip()
    return address if _WEB_ADDRESS.match(address) else None


def link_html(address, text) -> str:
    """``text`` (escaped) as a link to ``address`` when it is an http(s) address, else as text."""
    label = html.escape(str(text))
    url = http_url(address)
    return f'<a href="{html.escape(url)}">{label}</a>' if url else label
