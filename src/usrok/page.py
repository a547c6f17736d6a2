"""Numbers and facts a chapter computes and quotes in its prose, in the book and in a notebook.

A chapter computes each number it quotes in a hidden cell and glues it::

    from usrok.page import glue, glued
    glue("south-korea-peak", int(wide["South Korea"].max()), display=False)

and its prose quotes it with the ``{eval}`` role and a ``key:format`` spec (the format is
Python's, as in myst-nb's ``{glue:text}``)::

    South Korea's count peaks at {eval}`glued("south-korea-peak:,d")` during the Korean War.

- In JupyterLab (Binder, a hub, a download, the in-browser edition) ``jupyterlab-myst``
  evaluates ``glued("south-korea-peak:,d")`` in the kernel when the cell is run and shows
  ``326,863``.
- In the book (myst-nb, ``cache`` execution mode) :func:`setup` makes ``{eval}`` paste the
  glued value exactly as ``{glue:text}`south-korea-peak:,d``` would, from the cached
  outputs, without a kernel. So the book accepts only ``glued("key[:format]")`` inside
  ``{eval}``; anything else fails the build with a message.

This module imports neither Sphinx nor myst-nb at import time: chapters import it in any
kernel, including Pyodide, where myst-nb is absent and :func:`glue` only records the value.
"""

from __future__ import annotations

import re
from ast import literal_eval

_GLUED: dict[str, object] = {}


class Quoted(str):
    """Text for the prose: its repr is the text itself, so no kernel front end shows quotes."""

    def __repr__(self) -> str:
        return str(self)


def glue(name: str, value, display: bool = True) -> None:
    """Record ``value`` under ``name`` for :func:`glued`, and glue it for the book (myst-nb)."""
    _GLUED[name] = value
    try:
        from myst_nb import glue as myst_nb_glue
    except ImportError:  # e.g. the in-browser edition: there is no book to paste into
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_nb_glue(name, value, display=display)


def format_text(value, fmt: str) -> str:
    """``value`` as myst-nb's ``{glue:text}`key:fmt``` prints it (same conversions)."""
    text = repr(value)
    try:  # myst-nb formats the text/plain output, read back as a Python literal
        value = literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if fmt == "":
        return str(value)
    kind = fmt[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, fmt)


def glued(spec: str):
    """The value glued as ``key`` in ``"key"`` or ``"key:format"``: text for the prose.

    Numbers, dates and names come back formatted (a :class:`Quoted` string); any other
    object (a chart, a table) comes back as it is, for a cell to display.
    """
    key, _, fmt = spec.rpartition(":") if ":" in spec else (spec, "", "s")
    if key not in _GLUED:
        raise LookupError(f"nothing is glued as {key!r} yet: run the cells above this one first")
    value = _GLUED[key]
    if ":" not in spec and not isinstance(value, (str, int, float)):
        return value
    return Quoted(format_text(value, fmt))


# --------------------------------------------------------------------------- the book
GLUED_CALL = re.compile(r"""^\s*glued\((?P<q>["'])(?P<spec>[^"'\\]+)(?P=q)\)\s*$""")


def _eval_role():
    from myst_nb.ext.glue.roles import PasteTextRole
    from myst_nb.ext.glue.utils import glue_warning

    class GluedEvalRole(PasteTextRole):
        """``{eval}`glued("key:fmt")``` pastes like ``{glue:text}`key:fmt```, from cached outputs."""

        def run(self):
            match = GLUED_CALL.match(self.text)
            if not match:
                return [], [glue_warning(
                    f"the book evaluates only glued(\"key[:format]\") in {{eval}}, not {self.text!r} "
                    "(compute the value in a cell, glue it, and quote it with glued)",
                    self.document, self.line)]
            self.text = match["spec"]
            return super().run()

    return GluedEvalRole()


def setup(app):
    """Sphinx extension: ``{eval}`` pastes glued values (see the module docstring)."""
    app.setup_extension("myst_nb")
    app.add_role("eval", _eval_role(), override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
