"""Shared helpers for the US-ROK alliance course.

Every chapter, exercise and test imports from here, so no loader, chart or quiz
code is copied between notebooks:

- ``usrok.data``   -- find ``data/`` and load validated tables
- ``usrok.charts`` -- the chart theme, the offline renderer and chart builders
- ``usrok.quiz``   -- static self-check quizzes
- ``usrok.exercise`` -- what a student notebook imports (its grader, the assessment matrix)
- ``usrok.checks`` -- the small checks the exercises' tests use
- ``usrok.assignments`` -- where each assignment's files live, its master, otter's formats
- ``usrok.grading`` -- the batch grader (``python -m usrok.grading``): ``usrok.submissions``
  (reading a file without running it), ``usrok.sandbox`` (bubblewrap) with ``usrok.runner``
  (inside it) and ``usrok.answers`` (answers as data), ``usrok.scoring`` (the tests, outside
  the sandbox) and ``usrok.gradebook`` (the grades CSV and hand-graded merge)
"""

import os as _os

# While the book is built, each page's kernel lists the repository files its code reads, so the
# page runs again when one of them changes (see usrok.inputs).
if _os.environ.get("USROK_READS_LOG"):
    from .inputs import record_reads as _record_reads

    _record_reads(_os.environ["USROK_READS_LOG"], _os.environ.get("USROK_READS_ROOT"))

import sys as _sys

if _sys.platform == "emscripten":  # the in-browser edition (Pyodide): explain what needs Binder
    from . import browser as _browser

    _browser.install()
