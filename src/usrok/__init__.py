"""Shared helpers for the US-ROK alliance course.

Every chapter, exercise and test imports from here, so no loader, chart or quiz
code is copied between notebooks:

- ``usrok.data``   -- find ``data/`` and load validated tables
- ``usrok.charts`` -- the chart theme, the offline renderer and chart builders
- ``usrok.quiz``   -- static self-check quizzes
"""
