"""Shared helpers for the US-ROK alliance course.

Every chapter, exercise and test imports from here, so no loader, chart or quiz
code is copied between notebooks:

- ``usrok.data``   -- find ``data/`` and load validated tables
- ``usrok.charts`` -- the chart theme, the offline renderer and chart builders
- ``usrok.quiz``   -- static self-check quizzes
"""

import sys as _sys

if _sys.platform == "emscripten":  # the in-browser edition (Pyodide): explain what needs Binder
    from . import browser as _browser

    _browser.install()
