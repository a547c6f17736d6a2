"""Grading helpers for the course's otter-grader assignments.

Three kinds of helpers live here:

- **In the student notebooks** -- :func:`grader_for` (an ``otter.Notebook`` that finds the
  notebook's own public tests from any working directory) and
  :func:`principles_template` (the empty 45-cell matrix of the principles assessment).
- **In the tests** (public and hidden) -- small, forgiving checks: :func:`is_whole`,
  :func:`is_number`, the Altair spec readers :func:`chart_views`, :func:`marks`,
  :func:`fields`, :func:`is_finished`, and :func:`matrix_problems`.
- **For instructors** -- the batch grader. One command grades a folder of submissions
  with an autograder zip and writes one CSV row per submission::

      python -m usrok.grading exercises/ex03_easi/dist/autograder/ex03_easi-autograder_*.zip \\
          submissions/ --out grades.csv --workers 2 --timeout 60

  A submission that is not valid notebook JSON, lacks an answer variable, has a cell that
  raises, or loops forever gets a row with a status, a score per question and a reason;
  the batch never stops. Each worker is a long-lived Python process that grades one
  notebook at a time with ``otter run``'s own machinery (no Docker, no PDF); a cell that
  runs longer than ``--cell-timeout`` is interrupted and grading goes on, and a submission
  that exceeds ``--timeout`` is killed with its kernel and the worker is replaced.

This module imports only the standard library at import time, so notebooks and tests
pay nothing for the batch grader.
"""

from __future__ import annotations

import argparse
import ast
import csv
import glob
import json
import numbers
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable

__all__ = [
    "notebook_path", "grader_for", "principles_template", "fill_matrix", "is_whole", "is_number", "chart_views", "marks",
    "fields", "is_finished", "chart_rows", "matrix_problems", "word_count", "grade_folder",
    "read_autograder", "grade_submissions", "main", "read_master", "assignments", "repo_root",
]

# ---------------------------------------------------------------------------------------
# In the student notebooks
# ---------------------------------------------------------------------------------------


def notebook_path(name: str) -> str | None:
    """Path of the student notebook ``<name>.ipynb`` for ``otter.Notebook``.

    Jupyter starts the kernel in the notebook's folder, where ``<name>.ipynb`` is found at
    once. From another working directory (the repository root, a script) we look for
    ``exercises/<name>/student/<name>.ipynb`` upwards. Otherwise, a single ``.ipynb`` in the
    working directory (a renamed download) is used; ``None`` lets otter decide (during
    grading otter ignores the path).
    """
    here = Path.cwd()
    own = here / f"{name}.ipynb"
    if own.is_file():
        return own.name
    for base in (here, *here.parents):
        cand = base / "exercises" / name / "student" / f"{name}.ipynb"
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


def principles_template():
    """The empty assessment matrix: one row per area of cooperation x principle (9 x 5 = 45).

    Columns: ``area`` (label from ``alliance_areas``, in the book's order from traditional to
    non-traditional), ``principle`` (label from ``principles``), ``score`` (empty, to fill
    with a whole number 0-3) and ``justification`` (empty, to fill with one sentence).
    """
    import pandas as pd

    from usrok import data

    areas = data.load("alliance_areas").sort_values("order")["area"].tolist()
    principles = data.load("principles").sort_values("principle_id")["label"].tolist()
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

    from usrok import data

    areas = data.load("alliance_areas").sort_values("order")["area"].tolist()
    principles = data.load("principles").sort_values("principle_id")["label"].tolist()
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


# ---------------------------------------------------------------------------------------
# Checks used by the tests
# ---------------------------------------------------------------------------------------


def is_number(x: Any) -> bool:
    """True for an int or float (Python or NumPy), not a bool, not NaN."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    try:
        return x == x  # NaN is not equal to itself
    except Exception:  # pragma: no cover - exotic number types
        return False


def is_whole(x: Any) -> bool:
    """True for a whole number (an int, a NumPy integer, or a float such as 3.0)."""
    if not is_number(x):
        return False
    return float(x).is_integer()


def word_count(text: Any) -> int:
    """Number of words (runs of letters or digits) in ``text``; 0 for anything not a string."""
    if not isinstance(text, str):
        return 0
    return len(re.findall(r"[A-Za-z0-9À-ÿ'’-]+", text))


def _spec(chart) -> dict:
    if isinstance(chart, dict):
        return chart
    to_dict = getattr(chart, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"expected an Altair chart, got {type(chart).__name__}")
    try:
        return to_dict()
    except Exception:
        return to_dict(validate=False)


def chart_views(chart) -> list[dict]:
    """The single views inside a chart (layers and concatenations flattened).

    Each view is a dict with ``mark`` (the mark type, e.g. ``"line"``), ``encoding`` (the
    view's encodings merged over its parents') and ``data`` (the rows drawn, if inline).
    """
    spec = _spec(chart)
    datasets = spec.get("datasets", {})
    views: list[dict] = []

    def rows_of(node, inherited):
        d = node.get("data")
        if isinstance(d, dict) and "name" in d:
            return datasets.get(d["name"], [])
        if isinstance(d, dict) and "values" in d:
            return d["values"]
        return inherited

    def walk(node, enc, rows):
        rows = rows_of(node, rows)
        enc = {**enc, **(node.get("encoding") or {})}
        for key in ("layer", "vconcat", "hconcat", "concat"):
            for child in node.get(key, []) or []:
                walk(child, enc, rows)
        if "spec" in node:  # facet / repeat
            walk(node["spec"], enc, rows)
        if "mark" in node:
            mark = node["mark"]
            mark = mark.get("type") if isinstance(mark, dict) else mark
            views.append({"mark": mark, "encoding": enc, "data": rows})

    walk(spec, {}, [])
    return views


def marks(chart) -> set[str]:
    """The set of mark types a chart draws, e.g. ``{"line", "rule"}``."""
    return {v["mark"] for v in chart_views(chart)}


def fields(chart, channel: str) -> set[str]:
    """Fields encoded on ``channel`` (``"x"``, ``"y"``, ``"color"``, ``"tooltip"``, ...) in any view.

    An aggregate without a field (``count()``) is reported as ``"count()"``.
    """
    found: set[str] = set()
    for v in chart_views(chart):
        enc = v["encoding"].get(channel)
        for item in enc if isinstance(enc, list) else [enc]:
            if not isinstance(item, dict):
                continue
            if "field" in item:
                found.add(str(item["field"]))
            elif item.get("aggregate"):
                found.add(f"{item['aggregate']}()")
    return found


def chart_rows(chart) -> list[dict]:
    """Every inline data row of the chart (all views), for checking what was plotted."""
    out: list[dict] = []
    for v in chart_views(chart):
        out.extend(v["data"] or [])
    return out


def is_finished(chart) -> bool:
    """True if the chart went through ``usrok.charts.finish``: title, description, Source line."""
    try:
        from usrok.charts import check

        check(chart)
        return True
    except Exception:
        return False


def matrix_problems(matrix, min_words: int = 8) -> list[str]:
    """Problems with a principles-assessment matrix (an empty list means it is valid).

    Checks: a DataFrame with columns area, principle, score, justification; exactly the 45
    area x principle pairs of the course's tables, once each; every score a whole number
    0-3; every justification at least ``min_words`` words and not a copy of another cell's.
    """
    import pandas as pd

    if not isinstance(matrix, pd.DataFrame):
        return [f"the matrix should be a pandas DataFrame, not {type(matrix).__name__}"]
    need = ["area", "principle", "score", "justification"]
    missing = [c for c in need if c not in matrix.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    problems: list[str] = []
    template = principles_template()
    want = set(zip(template["area"], template["principle"]))
    got = list(zip(matrix["area"], matrix["principle"]))
    if len(got) != len(set(got)):
        problems.append("some area-principle pairs appear more than once")
    if set(got) != want:
        lost = len(want - set(got))
        extra = len(set(got) - want)
        problems.append(f"the matrix should have the {len(want)} area-principle pairs of the "
                        f"template ({lost} missing, {extra} not in the template)")
    bad_scores = [i for i, s in enumerate(matrix["score"].tolist())
                  if s is None or (not isinstance(s, str) and pd.isna(s)) or not is_whole(s)
                  or not 0 <= float(s) <= 3]
    if bad_scores:
        problems.append(f"{len(bad_scores)} score(s) are not whole numbers from 0 to 3 "
                        f"(first at row {bad_scores[0]})")
    texts = ["" if not isinstance(t, str) else t for t in matrix["justification"].tolist()]
    short = [i for i, t in enumerate(texts) if word_count(t) < min_words]
    if short:
        problems.append(f"{len(short)} justification(s) are shorter than {min_words} words "
                        f"(first at row {short[0]})")
    norm = [re.sub(r"\W+", " ", t).strip().lower() for t in texts]
    dupes = {t for t in norm if t and norm.count(t) > 1}
    if dupes:
        problems.append(f"{sum(norm.count(t) for t in dupes)} justifications are copies of "
                        "another cell's; write one for each cell")
    return problems


# ---------------------------------------------------------------------------------------
# The assignments (read from the masters in exercises/)
# ---------------------------------------------------------------------------------------
_RAW_BLOCK = re.compile(r"<!-- #raw -->\n(.*?)\n<!-- #endraw -->", re.S)


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The course repository's root (the folder holding ``exercises/`` and ``data/``)."""
    bases = [Path(start)] if start else []
    bases += [Path.cwd(), Path(__file__).resolve().parent]
    for base in bases:
        for d in (base.resolve(), *base.resolve().parents):
            if (d / "exercises").is_dir() and (d / "data").is_dir():
                return d
    raise FileNotFoundError("could not find the course repository (a folder with exercises/ and data/)")


def read_master(path: str | os.PathLike) -> dict:
    """What a master says about its assignment, without running it.

    Returns ``name``, ``title``, ``chapter``, ``minutes``, ``outcomes`` (from the ``usrok``
    block of the jupytext header) and ``questions`` (name, points, manual) from otter's
    ``BEGIN QUESTION`` cells, plus ``resources``: the data tables the master loads.
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
    return {"name": config.get("name", Path(path).stem), "path": str(path),
            "title": meta.get("title", ""), "chapter": meta.get("chapter"),
            "minutes": meta.get("minutes"), "outcomes": list(meta.get("outcomes", [])),
            "questions": questions, "resources": resources, "config": config}


def assignments(root: str | os.PathLike | None = None) -> list[dict]:
    """Every assignment master (``exercises/<name>/<name>.md``), in order, as :func:`read_master`."""
    base = repo_root(root) / "exercises"
    return [read_master(p) for p in sorted(base.glob("*/*.md")) if p.stem == p.parent.name]


# ---------------------------------------------------------------------------------------
# Batch grading
# ---------------------------------------------------------------------------------------
STATUS_GRADED = "graded"
STATUS_ERRORS = "graded-with-errors"
STATUS_INVALID = "invalid-notebook"
STATUS_TIMEOUT = "timeout"
STATUS_FAILED = "grader-error"


def read_autograder(zip_path: str | os.PathLike) -> dict:
    """Questions in an autograder zip: ``{"questions": {name: points}, "variables": {name: [...]},
    "assignment": name}``.

    ``variables`` lists, per question, the notebook variables its tests read (the test
    functions' parameters), used to say which answer a submission lacks.
    """
    questions: dict[str, float] = {}
    variables: dict[str, list[str]] = {}
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if re.fullmatch(r"tests/[^/]+\.py", n))
        config = json.loads(zf.read("otter_config.json")) if "otter_config.json" in zf.namelist() else {}
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
    order = sorted(questions, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])
    return {"questions": {q: questions[q] for q in order}, "variables": variables,
            "assignment": config.get("assignment_name")}


def _check_notebook(path: Path) -> tuple[bool, str, Any]:
    """Read a submission without running it: (ok, reason, notebook)."""
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                nbs = [n for n in zf.namelist() if n.endswith(".ipynb") and "checkpoint" not in n]
            if len(nbs) != 1:
                return False, f"the zip file holds {len(nbs)} notebooks (expected 1)", None
            return True, "", None
        except zipfile.BadZipFile as e:
            return False, f"not a valid zip file: {e}", None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        return False, f"not UTF-8 text ({e.reason} at byte {e.start})", None
    except OSError as e:
        return False, f"cannot read the file: {e}", None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        return False, f"not valid notebook JSON: {e.msg} at line {e.lineno}, column {e.colno}", None
    if not isinstance(raw, dict) or "cells" not in raw:
        return False, "valid JSON but not a Jupyter notebook (no 'cells')", None
    try:
        import nbformat

        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # nbformat.ValidationError and friends
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return False, f"not a valid notebook: {first[:200]}", None
    return True, "", nb


def _assigned_names(nb) -> tuple[set[str], set[str]]:
    """Top-level names a notebook assigns, and those it leaves as ``...`` (unanswered)."""
    assigned, ellipsis = set(), set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", ""))
        src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assigned.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                assigned.update((a.asname or a.name).split(".")[0] for a in node.names)
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                                and node.value.value is Ellipsis:
                            ellipsis.add(n.id)
                        else:
                            assigned.add(n.id)
    return assigned, ellipsis - assigned


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill a worker, its process group and every descendant (the kernel runs in its own session)."""
    pids: list[int] = []
    try:
        import psutil

        pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except Exception:
        # Without psutil: walk /proc for descendants (Linux).
        try:
            parent_of = {}
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open(f"/proc/{d}/stat") as fh:
                            parent_of[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, ValueError, IndexError):
                        pass
            frontier = [proc.pid]
            while frontier:
                p = frontier.pop()
                kids = [c for c, pp in parent_of.items() if pp == p]
                pids += kids
                frontier += kids
        except OSError:
            pass
    for pid in pids:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


BATCH_MARKER = "USROK_GRADING_BATCH"
LAST_SWEPT: list[int] = []  # pids :func:`grade_submissions` had to kill after its last batch


def _batch_processes(batch: str) -> list[int]:
    """Processes (any user-visible pid) whose environment carries this batch's marker."""
    needle = f"{BATCH_MARKER}={batch}".encode()
    found = []
    for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(d))
        except OSError:
            pass
    return found


def _sweep(batch: str) -> list[int]:
    """Kill anything the batch left running (should be nothing); return the pids killed."""
    pids = _batch_processes(batch)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return pids


class _Worker:
    """A long-lived grading process (``python -m usrok.grading --worker``) in its own session."""

    def __init__(self, log_dir: Path, index: int, batch: str = ""):
        self.log_path = log_dir / f"worker-{index}.log"
        self.index = index
        self.batch = batch or log_dir.name
        self.proc: subprocess.Popen | None = None
        self._buf = b""

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        # otter's temporary folders go under the batch's own folder (removed at the end, even
        # when a killed worker could not clean up), and every process of the batch, kernels
        # included, carries the batch's marker so that none can outlive it.
        tmp = self.log_path.parent / f"tmp-{self.index}"
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
        env[BATCH_MARKER] = self.batch
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "usrok.grading", "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, env=env)
        log.close()
        self._buf = b""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None:
            _kill_tree(self.proc)
            self.proc = None

    def log_tail(self, n: int = 400) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def run(self, task: dict, timeout: float) -> dict | None:
        """Send one task; the result dict, or None if the worker timed out or died."""
        if not self.alive():
            self.start()
        assert self.proc and self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write((json.dumps(task) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return {"_died": True}
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:  # the worker died
                    self.kill()
                    return {"_died": True}
                self._buf += chunk
            elif not self.alive():
                self.kill()
                return {"_died": True}
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {"_died": True}


def _worker_loop() -> None:
    """Grade tasks read from stdin, one JSON line each; answer on the original stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything otter or a library prints goes to the log, not the protocol
    sys.stdout = sys.stderr
    import logging as _logging

    _logging.getLogger("traitlets").setLevel(_logging.CRITICAL)
    import nbconvert.preprocessors as nbp
    import otter.run  # noqa: F401 - imported once per worker, not once per submission

    base = nbp.ExecutePreprocessor

    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        started = time.monotonic()

        class _Timed(base):  # a cell that runs too long is interrupted; grading goes on
            def __init__(self, *a, **kw):
                super().__init__(*a, **kw)
                self.timeout = task.get("cell_timeout") or None
                self.interrupt_on_timeout = True
                self.error_on_timeout = {"ename": "CellTimeoutError",
                                         "evalue": f"cell stopped after {self.timeout} s",
                                         "traceback": []}
                self.startup_timeout = 60
                self.shutdown_kernel = "immediate"  # no graceful wait: the notebook is done

        nbp.ExecutePreprocessor = _Timed
        try:
            answer = _grade_one(task["autograder"], task["submission"])
        except BaseException as e:  # report, never crash the worker
            answer = {"error": f"{type(e).__name__}: {str(e).strip()[:300]}"}
        finally:
            nbp.ExecutePreprocessor = base
        answer["seconds"] = round(time.monotonic() - started, 2)
        proto.write(json.dumps(answer) + "\n")
        proto.flush()


def _grade_one(autograder: str, submission: str) -> dict:
    """Grade one submission in this process with otter's runner; scores and cell errors."""
    import otter.run

    results = otter.run.main(submission, autograder=autograder, output_dir=None, no_logo=True)
    out: dict[str, Any] = {"scores": {}, "failed": {}, "cell_errors": []}
    if getattr(results, "_catastrophic_error", None) is not None:
        out["error"] = f"grading failed: {results._catastrophic_error}"
    for name, tf in results.results.items():
        out["scores"][name] = float(tf.score)
        results_ = list(getattr(tf, "test_case_results", []))
        failed = [r for r in results_ if not r.passed]
        if failed:
            # Only the tests' own messages: the CSV must not quote hidden test code.
            notes = []
            for r in failed:
                last = [l.strip() for l in str(r.message).splitlines() if l.strip()]
                m = re.match(r"^(\w*(?:Error|Exception))\b:?\s*(.*)$", last[-1]) if last else None
                if m and m.group(2):
                    notes.append(m.group(2)[:120])
                elif m and m.group(1) != "AssertionError":
                    notes.append(m.group(1))
            summary = f"{len(failed)} of {len(results_)} test(s) failed"
            notes = list(dict.fromkeys(notes))
            out["failed"][name] = summary + (": " + "; ".join(notes[:2]) if notes else "")
    nb = getattr(results, "notebook", None)
    if nb is not None:
        for i, cell in enumerate(nb.cells):
            for o in cell.get("outputs", []):
                if o.get("output_type") == "error":
                    ename, evalue = o.get("ename", "Error"), str(o.get("evalue", ""))
                    src = "".join(cell.get("source", "")).strip().splitlines()
                    if ename in ("CellTimeoutError", "KeyboardInterrupt") or evalue.startswith("cell stopped"):
                        out["cell_errors"].append(f"a cell ran too long and was interrupted "
                                                  f"(cell {src[0][:50] if src else ''!r})")
                    else:
                        out["cell_errors"].append(
                            f"{ename}: {evalue[:120]} (in cell {src[0][:50] if src else ''!r})")
    return out


def _submissions(folder: Path) -> list[Path]:
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".ipynb", ".zip")
             and ".ipynb_checkpoints" not in p.parts]
    return sorted(found)


def _missing_answers(nb, variables: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per question, the answer variables the notebook never assigns (or leaves as ``...``)."""
    if nb is None:
        return {}
    assigned, blank = _assigned_names(nb)
    lacking = {}
    for q, names in variables.items():
        gone = [n for n in names if n not in assigned]
        if gone:
            lacking[q] = [f"{n} (left as ...)" if n in blank else f"{n} (never assigned)" for n in gone]
    return lacking


def _row(label: str, info: dict, status: str, reason: str, seconds: float = 0.0) -> dict:
    questions = info["questions"]
    return {"file": label, "status": status, "total": 0.0, "max": sum(questions.values()),
            **{q: 0.0 for q in questions}, "seconds": round(seconds, 2), "reason": reason}


def _result_row(label: str, info: dict, nb, answer: dict | None, seconds: float,
                timeout: float) -> dict:
    """One CSV row from a worker's answer (None = killed after ``timeout``)."""
    questions = info["questions"]
    if answer is None:
        return _row(label, info, STATUS_TIMEOUT,
                    f"stopped after {timeout:g} s: the notebook did not finish (an endless "
                    "loop?) and its grading process and kernel were killed; nothing could be "
                    "graded", seconds)
    if answer.get("_died"):
        return _row(label, info, STATUS_FAILED, "the grading process died (the notebook may "
                    "exhaust memory or kill its own kernel)", seconds)
    row = _row(label, info, STATUS_GRADED, "", answer.get("seconds", seconds))
    scores = answer.get("scores") or {}
    for q in questions:
        row[q] = float(scores.get(q, 0.0))
    row["total"] = round(sum(row[q] for q in questions), 4)
    reasons: list[str] = []
    if answer.get("error"):
        row["status"] = STATUS_FAILED
        reasons.append(answer["error"])
    lacking = _missing_answers(nb, info["variables"])
    for q, names in lacking.items():
        reasons.append(f"{q}: missing answer {', '.join(names)}")
    if answer.get("cell_errors"):
        if row["status"] == STATUS_GRADED:
            row["status"] = STATUS_ERRORS
        errs = answer["cell_errors"]
        reasons.append("; ".join(errs[:3]) + (f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""))
    lost = [q for q in questions if row[q] < questions[q] and q not in lacking]
    if lost:
        detail = " | ".join(f"{q}: {answer.get('failed', {}).get(q, 'hidden tests failed')}"
                            for q in lost[:3])
        reasons.append("lost points on " + ", ".join(f"{q} {row[q]:g}/{questions[q]:g}" for q in lost)
                       + f" ({detail})")
    row["reason"] = "; ".join(reasons) if reasons else "all auto-graded questions correct"
    return row


def grade_submissions(jobs: list[tuple[str | os.PathLike, str | os.PathLike]], *, workers: int = 2,
                      timeout: float = 60, cell_timeout: float | None = None,
                      labels: list[str] | None = None, quiet: bool = True) -> list[dict]:
    """Grade ``(autograder zip, submission)`` pairs with ``workers`` grading processes.

    Returns one row per pair, in order (see :func:`grade_folder` for the columns; each row
    has the questions of its own autograder). Pairs may use different autograders.
    """
    from usrok.browser import require_full_python

    require_full_python("Batch grading (it starts grading processes)")
    if cell_timeout is None:
        cell_timeout = max(5.0, timeout / 2)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    infos: dict[Path, dict] = {}
    rows: list[dict | None] = [None] * len(jobs)
    queue: list[tuple[int, Path, Path, Any]] = []
    for i, (zip_path, sub) in enumerate(jobs):
        zip_path, sub = Path(zip_path).resolve(), Path(sub).resolve()
        if zip_path not in infos:
            infos[zip_path] = read_autograder(zip_path)
        label = labels[i] if labels else str(sub)
        ok, reason, nb = _check_notebook(sub)
        if ok:
            queue.append((i, zip_path, sub, nb))
        else:
            rows[i] = _row(label, infos[zip_path], STATUS_INVALID, reason)
            say(f"{label}: {STATUS_INVALID}: {reason}")
    log_dir = Path(tempfile.mkdtemp(prefix="usrok-grading-"))
    lock = threading.Lock()

    def slot(index: int) -> None:
        worker = _Worker(log_dir, index, batch=log_dir.name)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    i, zip_path, sub, nb = queue.pop(0)
                label = labels[i] if labels else str(sub)
                t0 = time.monotonic()
                answer = worker.run({"autograder": str(zip_path), "submission": str(sub),
                                     "cell_timeout": cell_timeout}, timeout)
                row = _result_row(label, infos[zip_path], nb, answer, time.monotonic() - t0, timeout)
                with lock:
                    rows[i] = row
                say(f"{label}: {row['status']} {row['total']:g}/{row['max']:g} ({row['seconds']:g} s)")
        finally:
            worker.kill()

    threads = [threading.Thread(target=slot, args=(i,), daemon=True)
               for i in range(max(1, min(workers, len(queue) or 1)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.2)
    LAST_SWEPT[:] = _sweep(log_dir.name)
    shutil.rmtree(log_dir, ignore_errors=True)
    return [r for r in rows if r is not None]


def grade_folder(autograder: str | os.PathLike, submissions: str | os.PathLike, out: str | os.PathLike,
                 *, workers: int = 2, timeout: float = 60, cell_timeout: float | None = None,
                 quiet: bool = False) -> list[dict]:
    """Grade every ``.ipynb``/``.zip`` under ``submissions``; write the CSV ``out``; return the rows.

    Columns: ``file``, ``status``, ``total``, ``max``, one per auto-graded question, ``seconds``,
    ``reason``. ``status`` is ``graded``, ``graded-with-errors`` (a cell raised or was stopped),
    ``invalid-notebook`` (not run), ``timeout`` (killed after ``timeout`` seconds) or
    ``grader-error``. Manually graded questions are not in the zip, so not in the CSV.
    """
    from usrok.browser import require_full_python

    require_full_python("Batch grading (it starts grading processes)")
    autograder = Path(autograder).resolve()
    folder = Path(submissions).resolve()
    questions = read_autograder(autograder)["questions"]
    files = _submissions(folder)
    started = time.monotonic()
    rows = grade_submissions([(autograder, f) for f in files], workers=workers, timeout=timeout,
                             cell_timeout=cell_timeout, quiet=quiet,
                             labels=[str(f.relative_to(folder)) for f in files])
    elapsed = time.monotonic() - started
    columns = ["file", "status", "total", "max", *questions, "seconds", "reason"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:g}" if isinstance(r[k], float) else r[k]) for k in columns})
    ran = sum(r["status"] != STATUS_INVALID for r in rows)
    rate = ran / elapsed * 60 if elapsed > 0 and ran else 0.0
    if not quiet:
        print(f"graded {len(rows)} submission(s) ({ran} run) in {elapsed:.1f} s with "
              f"{max(1, workers)} worker(s): {rate:.1f} a minute -> {out}", file=sys.stderr, flush=True)
    return rows


def main(argv: Iterable[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        _worker_loop()
        return 0
    p = argparse.ArgumentParser(
        prog="python -m usrok.grading",
        description="Grade a folder of submissions (.ipynb or .zip) with an otter autograder zip; "
                    "one CSV row per submission. Broken notebooks get a row and a reason.")
    p.add_argument("autograder", help="the autograder zip (exercises/<name>/dist/autograder/*.zip)")
    p.add_argument("submissions", help="folder of submissions (searched recursively)")
    p.add_argument("--out", default="grades.csv", help="CSV file to write (default grades.csv)")
    p.add_argument("--workers", type=int, default=2, help="notebooks graded at once (default 2)")
    p.add_argument("--timeout", type=float, default=60,
                   help="seconds per submission before it is killed (default 60)")
    p.add_argument("--cell-timeout", type=float, default=None,
                   help="seconds per cell before the cell is interrupted and grading goes on "
                        "(default: half of --timeout, at least 5)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    autograder = a.autograder
    if any(ch in autograder for ch in "*?["):
        matches = sorted(glob.glob(autograder))
        if not matches:
            p.error(f"no autograder zip matches {autograder}")
        autograder = matches[-1]
    if not Path(autograder).is_file():
        p.error(f"autograder zip not found: {autograder} (run `make assignments` first)")
    if not Path(a.submissions).is_dir():
        p.error(f"submissions folder not found: {a.submissions}")
    grade_folder(autograder, a.submissions, a.out, workers=a.workers, timeout=a.timeout,
                 cell_timeout=a.cell_timeout, quiet=a.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
