"""Stand-in for ``myst_nb`` in the in-browser edition (myst-nb builds the book; it does not run here).

The chapters compute their numbers and figures in code cells and hand them to the book with
``glue(name, value, display=False)``; the book then places each one in the text. In a
notebook nothing places them, so this ``glue`` shows each figure (an Altair chart) where it
is computed, and otherwise does what myst-nb's does: shows the value when ``display`` is true.
"""

from __future__ import annotations

__version__ = "0+usrok.standin"

GLUED: dict = {}  # name -> value, for a reader who wants a number the text quotes


def _is_chart(value) -> bool:
    return hasattr(value, "to_dict") and type(value).__module__.startswith("altair")


def glue(name: str, variable, display: bool = True) -> None:
    """Keep ``variable`` under ``name``; show it if ``display`` or if a notebook glues a chart.

    Called on behalf of another module (e.g. ``usrok.page``, whose chapters show their
    figures as cell outputs already), it only does what myst-nb's ``glue`` would.
    """
    import sys

    from IPython.display import display as show

    GLUED[name] = variable
    from_notebook = sys._getframe(1).f_globals.get("__name__") == "__main__"
    if display or (from_notebook and _is_chart(variable)):
        show(variable)
