"""The course package in the in-browser edition (JupyterLite with a Pyodide kernel).

In the browser the package works as on Binder -- data, charts, quizzes, ``grader.check`` --
except for what needs a full Python on a server or a computer. This module says so
plainly instead of letting a traceback from deep inside a library do it:

- :data:`IN_BROWSER` is true under Pyodide (``sys.platform == "emscripten"``).
- :func:`install` (run when ``usrok`` is imported in the browser) adds a note to a
  ``ModuleNotFoundError`` that reaches the notebook: which feature needs Binder instead, and
  makes the kernel answer the ``user_expressions`` of a request (:func:`answer_user_expressions`):
  the numbers the chapters' prose quotes with ``{eval}``.
- :func:`require_full_python` stops a feature that cannot run here with that message.
- :func:`master_from_student_notebook`: what an assignment's master says publicly (its
  questions, points, title), read from the student notebook, because the edition ships
  no master (masters hold the answer key).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

IN_BROWSER = sys.platform == "emscripten"

BINDER_HINT = ("Open this notebook on Binder instead (the launch button at the top of the book's "
               "page), or on a computer with the course installed (see the README).")

# Modules a notebook might import that the edition does not have, and the feature that needs them.
NEEDS_BINDER = {
    "vl_convert": "saving charts as PNG, SVG or PDF (vl-convert)",
    "frictionless": "the full schema validation of the data (Frictionless)",
    "nbconvert": "exporting notebooks as PDF or HTML, and otter's export",
    "sphinx": "building the book", "docutils": "building the book",
    "jupyter_book": "building the book", "sphinx_book_theme": "building the book",
    "psutil": "the batch grader", "jupyter_client": "the batch grader", "nbclient": "running notebooks",
    "docker": "otter's Docker grading", "python_on_whales": "otter's Docker grading",
    "jupytext": "converting the chapters' Markdown sources", "requests": "downloads from the internet",
}


class NotInBrowser(RuntimeError):
    """A course feature that does not run in the in-browser edition."""


def unavailable(feature: str) -> NotInBrowser:
    return NotInBrowser(f"{feature} does not work in the in-browser edition. {BINDER_HINT}")


def require_full_python(feature: str) -> None:
    """Stop here with a plain message when running in the browser."""
    if IN_BROWSER:
        raise unavailable(feature)


def missing_module_note(name: str) -> str:
    top = name.split(".")[0]
    feature = NEEDS_BINDER.get(top)
    what = feature[0].upper() + feature[1:] if feature else f"Code that needs the module '{top}'"
    return (f"The in-browser edition has only the course's own packages; '{top}' is not one of them. "
            f"{what} needs Python on a server or your computer. {BINDER_HINT}")


def _explain_missing_module(shell, etype, value, tb, tb_offset=None):
    """IPython handler for ModuleNotFoundError: the usual traceback plus what to do instead."""
    name = getattr(value, "name", None) or ""
    note = missing_module_note(name) if name else BINDER_HINT
    if note not in getattr(value, "__notes__", []):
        value.add_note(note)
    stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)  # IPython leaves showing it to the handler
    return stb


def install() -> None:
    """Explain missing modules in the notebook and answer user expressions (once per kernel;
    a no-op outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - not in a notebook
        return
    shell = get_ipython()
    if shell is None:
        return
    if not getattr(shell, "_usrok_missing_modules", False):
        shell.set_custom_exc((ModuleNotFoundError,), _explain_missing_module)
        shell._usrok_missing_modules = True
    kernel = getattr(shell, "kernel", None)
    if type(kernel).__module__.startswith("pyodide_kernel"):
        answer_user_expressions(kernel)


def answer_user_expressions(kernel) -> None:
    """Make the Pyodide kernel answer the ``user_expressions`` of an execute request.

    jupyterlab-myst renders a chapter's ``{eval}`glued("key:fmt")``` by sending the expressions
    of a Markdown cell, when the cell is run, as ``user_expressions`` (the Jupyter protocol's
    field, which ipykernel answers); jupyterlite-pyodide-kernel 0.6 ignores the field, so its
    reply has none and jupyterlab-myst drops the cell's stored results: the prose then shows
    ``glued("key:fmt")`` instead of the number. The request reaches the kernel as
    ``kernel._parent_header`` (the whole message); this evaluates its expressions after the
    code, as ipykernel does, and adds them to the reply.
    """
    if getattr(kernel, "_usrok_user_expressions", False):
        return
    run_code = kernel.run

    async def run(code):
        results = await run_code(code)
        request = getattr(kernel, "_parent_header", None) or {}
        expressions = (request.get("content") or {}).get("user_expressions") or {}
        if results.get("status") == "ok":
            results["user_expressions"] = kernel.interpreter.user_expressions(dict(expressions))
        return results

    kernel.run = run
    kernel._usrok_user_expressions = True


# ------------------------------------------------------------------------------ assignments
_QUESTION = re.compile(r"\*\*Question (\d+)\*\* \((written, )?([\d.]+) points?\)")


def master_from_student_notebook(master: str | Path) -> dict | None:
    """The public facts of an assignment's master, from its student notebook.

    ``master`` is where the master would be (``exercises/<name>/<name>.md``); the student
    notebook is ``exercises/<name>/student/<name>.ipynb``. Returns what
    ``usrok.assignments.read_master`` returns -- name, title, chapter, minutes, outcomes,
    objectives, questions (name, points, manual), the tables the student notebook loads --
    without the answer key or the course's wrong-answer tests (``wrong`` is empty), or None when
    there is no student notebook either. The question labels are the ones the assignment
    build checks against otter's configuration ("**Question 3** (2 points)",
    "**Question 5** (written, 5 points)").
    """
    master = Path(master)
    notebook = master.parent / "student" / f"{master.stem}.ipynb"
    if not notebook.is_file():
        return None
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    meta = nb.get("metadata", {}).get("usrok", {}) or {}
    cells = ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
             for c in nb.get("cells", [])]
    questions, seen = [], set()
    for cell in cells:
        for number, written, points in _QUESTION.findall(cell):
            if number not in seen:
                seen.add(number)
                value = float(points)
                questions.append({"name": f"q{number}", "points": int(value) if value.is_integer() else value,
                                  "manual": bool(written)})
    code = "\n".join(cells)
    resources = sorted(set(re.findall(r"""data\.load\(\s*["'](\w+)["']""", code)))
    if re.search(r"principles_template|matrix_problems", code):
        resources = sorted(set(resources) | {"alliance_areas", "principles"})
    name = nb.get("metadata", {}).get("otter", {}).get("assignment_name") or master.stem
    return {"name": name, "path": str(master), "title": meta.get("title", ""), "chapter": meta.get("chapter"),
            "minutes": meta.get("minutes"), "outcomes": list(meta.get("outcomes", [])),
            "objectives": dict(meta.get("objectives") or {}), "wrong": [],
            "questions": sorted(questions, key=lambda q: int(q["name"][1:])), "resources": resources,
            "config": {"name": name}}
