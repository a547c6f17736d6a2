"""The assignments: where their files live, what their masters say, and otter's formats.

One place for

- **the name -> path convention**: the master ``exercises/<name>/<name>.md``, the student
  notebook ``exercises/<name>/student/<name>.ipynb``, and the build's output
  ``exercises/<name>/dist/`` (the autograder zip and the solution notebook);
- **the masters**: :func:`read_master` reads a master's header and otter's question cells
  without running it; :func:`assignments` lists every master, in order;
- **otter's formats**: :func:`read_autograder` reads the questions, their points and the
  variables their tests read from an autograder zip.

Only the standard library is imported at import time (``yaml`` when a master is read).
"""

from __future__ import annotations

import ast
import json
import os
import re
import zipfile
from pathlib import Path

__all__ = ["EXERCISES", "master_path", "student_notebook", "dist_dir", "autograder_zip",
           "solution_notebook", "repo_root", "master_paths", "read_master", "assignments",
           "read_autograder", "manifest", "MANIFEST"]

EXERCISES = "exercises"


# --------------------------------------------------------------------------- name -> path
def master_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """The master ``exercises/<name>/<name>.md`` (under ``root``, default the repository)."""
    return repo_root(root) / EXERCISES / name / f"{name}.md"


def student_notebook(name: str) -> str:
    """Repository path of an assignment's student notebook (what students download or open)."""
    return f"{EXERCISES}/{name}/student/{name}.ipynb"


def dist_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The build's output for one assignment, ``exercises/<name>/dist/`` (git-ignored)."""
    return repo_root(root) / EXERCISES / name / "dist"


def autograder_zip(name: str, root: str | os.PathLike | None = None) -> Path:
    """The one autograder zip the build wrote for ``name`` (FileNotFoundError if none or several)."""
    zips = sorted((dist_dir(name, root) / "autograder").glob("*.zip"))
    if len(zips) != 1:
        raise FileNotFoundError(f"{name}: expected one autograder zip in "
                                f"{dist_dir(name, root) / 'autograder'}, found {len(zips)}; "
                                "run `make assignments`")
    return zips[0]


def solution_notebook(name: str, root: str | os.PathLike | None = None) -> Path:
    """The solution notebook the build wrote next to the autograder zip."""
    return dist_dir(name, root) / "autograder" / f"{name}.ipynb"


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The course repository's root (the folder holding ``exercises/`` and ``data/``)."""
    bases = [Path(start)] if start else []
    bases += [Path.cwd(), Path(__file__).resolve().parent]
    for base in bases:
        for d in (base.resolve(), *base.resolve().parents):
            if (d / EXERCISES).is_dir() and (d / "data").is_dir():
                return d
    raise FileNotFoundError("could not find the course repository (a folder with exercises/ and data/)")


def master_paths(root: str | os.PathLike | None = None) -> list[Path]:
    """Every master, ``exercises/<name>/<name>.md``, sorted by name."""
    base = repo_root(root) / EXERCISES
    return sorted(p for p in base.glob("*/*.md") if p.stem == p.parent.name)


# --------------------------------------------------------------------------- masters
_RAW_BLOCK = re.compile(r"<!-- #raw -->\n(.*?)\n<!-- #endraw -->", re.S)


def read_master(path: str | os.PathLike) -> dict:
    """What a master says about its assignment, without running it.

    From the ``usrok`` block of the jupytext header: ``title``, ``chapter``, ``minutes``,
    ``outcomes``, ``objectives`` and ``wrong`` (plausible wrong answers the course's tests
    grade: a list of ``{question, code, why}``). From otter's cells: ``questions`` (name,
    points, manual) and ``config`` (the ``ASSIGNMENT CONFIG``). Also ``resources``: the
    data tables the master loads.
    """
    if not Path(path).is_file():  # the in-browser edition ships no masters (they hold the answers)
        from usrok.browser import master_from_student_notebook

        public = master_from_student_notebook(path)
        if public is not None:
            return public
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    meta: dict = {}
    if text.startswith("---\n"):
        header = text.split("\n---\n", 1)[0][4:]
        meta = (yaml.safe_load(header) or {}).get("jupyter", {}).get("usrok", {}) or {}
    questions = []
    config: dict = {}
    for block in _RAW_BLOCK.findall(text):
        first, _, rest = block.partition("\n")
        if first.strip() == "# BEGIN QUESTION":
            q = yaml.safe_load(rest) or {}
            questions.append({"name": q["name"], "points": q.get("points", 1),
                              "manual": bool(q.get("manual", False))})
        elif first.strip() == "# ASSIGNMENT CONFIG":
            config = yaml.safe_load(rest) or {}
    resources = sorted(set(re.findall(r"""data\.load\(\s*["'](\w+)["']""", text)))
    if re.search(r"principles_template|matrix_problems", text):
        resources = sorted(set(resources) | {"alliance_areas", "principles"})
    wrong = [{"question": str(w["question"]), "code": str(w["code"]).strip(), "why": str(w.get("why", ""))}
             for w in meta.get("wrong") or []]
    return {"name": config.get("name", Path(path).stem), "path": str(path),
            "title": meta.get("title", ""), "chapter": meta.get("chapter"),
            "minutes": meta.get("minutes"), "outcomes": list(meta.get("outcomes", [])),
            "objectives": dict(meta.get("objectives") or {}), "wrong": wrong,
            "questions": questions, "resources": resources, "config": config}


def assignments(root: str | os.PathLike | None = None) -> list[dict]:
    """Every assignment master, in order, as :func:`read_master`."""
    return [read_master(p) for p in master_paths(root)]


# --------------------------------------------------------------------------- otter's formats
def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


MANIFEST = "usrok_assignment.json"  # added to each autograder zip by the build


def manifest(master: dict) -> dict:
    """What the build adds to an autograder zip: every question, hand-graded ones included."""
    return {"assignment": master["name"], "questions": master["questions"]}


def read_autograder(zip_path: str | os.PathLike) -> dict:
    """Questions in an autograder zip: ``{"questions": {name: points}, "variables": {name: [...]},
    "manual": {name: points}, "assignment": name}``.

    ``questions`` are the auto-graded questions (points from the test files, which score
    them); ``variables`` lists, per question, the notebook variables its tests read (the
    test functions' parameters); ``manual`` the questions graded by hand (from the build's
    manifest, :data:`MANIFEST`; empty for a zip without one).
    """
    questions: dict[str, float] = {}
    variables: dict[str, list[str]] = {}
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if re.fullmatch(r"tests/[^/]+\.py", n))
        config = json.loads(zf.read("otter_config.json")) if "otter_config.json" in zf.namelist() else {}
        extra = json.loads(zf.read(MANIFEST)) if MANIFEST in zf.namelist() else {}
        for n in names:
            src = zf.read(n).decode("utf-8")
            q = Path(n).stem
            tree = ast.parse(src)
            pts, params, case_points = None, [], []
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "points" for t in node.targets):
                    try:
                        pts = ast.literal_eval(node.value)
                    except ValueError:
                        pts = None
                if isinstance(node, ast.FunctionDef):
                    params += [a.arg for a in node.args.args if a.arg != "env" and a.arg not in params]
                    for dec in node.decorator_list:
                        for kw in getattr(dec, "keywords", []):
                            if kw.arg == "points":
                                try:
                                    case_points.append(ast.literal_eval(kw.value))
                                except ValueError:
                                    pass
            if isinstance(pts, list):
                pts = sum(p or 0 for p in pts)
            if pts is None:
                pts = sum(p for p in case_points if p) or 1
            questions[q] = float(pts)
            variables[q] = params
    order = sorted(questions, key=_natural)
    manual = {q["name"]: float(q["points"]) for q in extra.get("questions", []) if q.get("manual")}
    return {"questions": {q: questions[q] for q in order}, "variables": variables, "manual": manual,
            "assignment": config.get("assignment_name") or extra.get("assignment")}
