"""What a student notebook imports: its grader and the principles-assessment helpers.

    from usrok.exercise import grader_for
    grader = grader_for("ex03_easi")

This module imports only the standard library at import time (pandas and otter are
imported when a helper is called), so a notebook's first cell stays fast.
"""

from __future__ import annotations

import glob
from pathlib import Path

from usrok.assignments import student_notebook

__all__ = ["PRINCIPLE_SCALE", "notebook_path", "grader_for", "principles_template", "fill_matrix"]

# The principles-assessment scale: a whole number per area x principle cell.
PRINCIPLE_SCALE = {
    -1: "works against the principle",
    0: "no bearing on it",
    1: "weak support",
    2: "clear support",
    3: "strong, central support",
}


def notebook_path(name: str) -> str | None:
    """Path of the student notebook ``<name>.ipynb`` for ``otter.Notebook``.

    Jupyter starts the kernel in the notebook's folder, where ``<name>.ipynb`` is found at
    once. From another working directory (the repository root, a script) we look for the
    student notebook (:func:`usrok.assignments.student_notebook`) upwards. Otherwise, a
    single ``.ipynb`` in the working directory (a renamed download) is used; ``None`` lets
    otter decide (during grading otter ignores the path).
    """
    here = Path.cwd()
    own = here / f"{name}.ipynb"
    if own.is_file():
        return own.name
    for base in (here, *here.parents):
        cand = base / student_notebook(name)
        if cand.is_file():
            return str(cand)
    found = sorted(glob.glob("*.ipynb"))
    return found[0] if len(found) == 1 else None


def grader_for(name: str):
    """``otter.Notebook`` for the student notebook ``<name>``, from any working directory.

    The public tests live in the notebook's metadata. ``tests_dir`` points next to the
    notebook (where there is no ``tests/`` folder), so otter reads them from the metadata
    even when the working directory has an unrelated ``tests/`` folder (the repository
    root has the course's pytest suite there). During grading otter overrides both.
    """
    import otter

    path = notebook_path(name)
    tests = str(Path(path).parent / "tests") if path else "./tests"
    return otter.Notebook(path, tests_dir=tests)


def _areas_and_principles() -> tuple[list[str], list[str]]:
    from usrok import data

    areas = data.load("alliance_areas").sort_values("order")["area"].tolist()
    principles = data.load("principles").sort_values("principle_id")["label"].tolist()
    return areas, principles


def principles_template():
    """The empty assessment matrix: one row per area of cooperation x principle (9 x 5 = 45).

    Columns: ``area`` (label from ``alliance_areas``, in the book's order from traditional to
    non-traditional), ``principle`` (label from ``principles``), ``score`` (empty, to fill
    with a whole number from :data:`PRINCIPLE_SCALE`, -1 to 3) and ``justification``
    (empty, to fill with one sentence).
    """
    import pandas as pd

    areas, principles = _areas_and_principles()
    rows = [{"area": a, "principle": p} for a in areas for p in principles]
    frame = pd.DataFrame(rows)
    frame["score"] = pd.Series([pd.NA] * len(frame), dtype="Int64")
    frame["justification"] = ""
    return frame


def fill_matrix(template, answers: dict):
    """Fill the assessment template from ``{(area number, principle number): (score, text)}``.

    Area numbers follow ``alliance_areas.order`` (1 = most traditional ... 9); principle
    numbers are ``principles.principle_id`` (1-5). A score or text left as ``...`` stays
    empty. Returns a new DataFrame; an unknown key raises ``KeyError`` naming it.
    """
    import pandas as pd

    areas, principles = _areas_and_principles()
    out = template.copy()
    out["score"] = out["score"].astype("object")
    for key, value in answers.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, int) for k in key)):
            raise KeyError(f"{key!r}: keys are (area number, principle number), e.g. (1, 2)")
        a, p = key
        if not (1 <= a <= len(areas) and 1 <= p <= len(principles)):
            raise KeyError(f"{key!r}: areas are numbered 1-{len(areas)}, principles 1-{len(principles)}")
        score, text = value if isinstance(value, tuple) and len(value) == 2 else (value, "")
        row = (out["area"] == areas[a - 1]) & (out["principle"] == principles[p - 1])
        out.loc[row, "score"] = pd.NA if score is Ellipsis else score
        out.loc[row, "justification"] = "" if text in (Ellipsis, "...") else text
    return out
