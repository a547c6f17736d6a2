"""The batch grader: grade a folder of submissions with an autograder zip, one CSV row each.

    python -m usrok.grading exercises/ex03_easi/dist/autograder/ex03_easi-autograder_*.zip \\
        submissions/ --out grades.csv --workers 2 --timeout 60

A submission that is not valid notebook JSON, lacks an answer variable, has a cell that
raises, or loops forever gets a row with a status, a score per question and a reason; the
batch never stops. Each submission runs in a worker (:mod:`usrok.sandbox`) with otter's own
machinery (no Docker, no PDF); a cell that runs longer than ``--cell-timeout`` is interrupted
and grading goes on, and a submission that exceeds ``--timeout`` is killed with its kernel.

What student notebooks import lives in :mod:`usrok.exercise`, the tests' checks in
:mod:`usrok.checks`, and the assignments' files and otter's formats in
:mod:`usrok.assignments`. This module imports only the standard library at import time.
"""

from __future__ import annotations

import argparse
import ast
import csv
import glob
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable

from usrok.assignments import read_autograder
from usrok.sandbox import LAST_SWEPT, Worker, sweep

__all__ = ["grade_folder", "grade_submissions", "main"]

STATUS_GRADED = "graded"
STATUS_ERRORS = "graded-with-errors"
STATUS_INVALID = "invalid-notebook"
STATUS_TIMEOUT = "timeout"
STATUS_FAILED = "grader-error"


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
        worker = Worker(log_dir, index, batch=log_dir.name)
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
    LAST_SWEPT[:] = sweep(log_dir.name)
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


# Notebooks handed out before the split import their helpers from here: keep them working.
_MOVED = {**{n: "usrok.exercise" for n in ("grader_for", "principles_template", "fill_matrix", "notebook_path")},
          **{n: "usrok.checks" for n in ("is_whole", "is_number", "word_count", "chart_views", "marks",
                                          "fields", "is_finished", "matrix_problems")},
          **{n: "usrok.assignments" for n in ("read_master", "assignments", "repo_root")}}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
