"""The batch grader: a folder of submissions, an autograder zip, one CSV row per file.

    python -m usrok.grading grade exercises/ex03_easi/dist/autograder/ex03_easi-autograder_*.zip \\
        grading/ex03_easi/submissions --out grading/ex03_easi/grades.csv

Each submission runs in a sandbox of its own (:mod:`usrok.sandbox`), which records the
answers as data; the autograder's tests, public and hidden, then score those answers in a
separate process that never runs student code (:mod:`usrok.scoring`). The batch never
stops: any problem with one file (not a notebook, nested too deeply, a cell that raises, an
endless loop, a kernel that dies or never starts, an error in the grader itself) becomes
that file's row, with a status and a reason. Each file is hashed before and after grading.

The grades CSV, and merging in the hand-graded questions (``python -m usrok.grading
merge``), are :mod:`usrok.gradebook`'s. This module imports only the standard library at
import time.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable

from usrok import gradebook, sandbox, submissions
from usrok.assignments import read_autograder
from usrok.scoring import Autograder

__all__ = ["grade_folder", "grade_submissions", "main", "STATUSES"]

STATUS_GRADED = "graded"
STATUS_ERRORS = "graded-with-errors"
STATUS_INVALID = "invalid-notebook"
STATUS_TIMEOUT = "timeout"
STATUS_NO_KERNEL = "kernel-did-not-start"
STATUS_FAILED = "grader-error"
STATUSES = (STATUS_GRADED, STATUS_ERRORS, STATUS_INVALID, STATUS_TIMEOUT, STATUS_NO_KERNEL, STATUS_FAILED)

# --------------------------------------------------------------------------- one submission
def _row(label: str, ag: Autograder, status: str, reason: str, seconds: float = 0.0, digest: str = "") -> dict:
    questions = ag.info["questions"]
    return {"file": label, "status": status, "total": 0.0, "max": sum(questions.values()),
            **{q: 0.0 for q in questions}, "seconds": round(seconds, 2), "sha256": digest,
            "reason": reason, "manual": dict(ag.info.get("manual", {}))}


def _lost_note(q: str, verdict: dict) -> str:
    # The public tests' messages were written for students ("should be a number"): they come
    # first; then what the hidden tests that carry points say.
    failed = verdict.get("failed", [])
    notes = [f["note"] for f in failed if not f.get("hidden")] + \
            [f["note"] for f in failed if f.get("hidden") and f.get("points", 0) > 0]
    notes = list(dict.fromkeys(notes or [f["note"] for f in failed]))
    return f"{q} {verdict['score']:g}/{verdict['possible']:g} ({'; '.join(notes[:3]) or 'tests failed'})"


def _graded_row(label: str, ag: Autograder, nb, result: dict, verdicts: dict, digest: str) -> dict:
    questions = ag.info["questions"]
    row = _row(label, ag, STATUS_GRADED, "", result.get("seconds", 0.0), digest)
    reasons: list[str] = []
    for q in questions:
        row[q] = round(float((verdicts.get(q) or {}).get("score", 0.0)), 4)
    row["total"] = round(sum(row[q] for q in questions), 4)
    lacking = submissions.missing_answers(nb, ag.info["variables"])
    for q, names in lacking.items():
        reasons.append(f"{q}: missing answer {', '.join(names)}")
    if result.get("status") == "kernel-died":
        row["status"] = STATUS_ERRORS
        reasons.append(f"the kernel died (in cell {result.get('died_in', '')!r}; the notebook may exhaust "
                       "memory or end its own kernel): only the answers checked before it were graded")
    errors = [e for e in result.get("cell_errors", [])
              if not (result.get("timed_out_cells") and e.get("ename") == "KeyboardInterrupt")]
    if result.get("timed_out_cells"):
        row["status"] = STATUS_ERRORS
        cells = result["timed_out_cells"]
        reasons.append(f"{len(cells)} cell(s) ran too long and were interrupted (first: {cells[0]!r})")
    if result.get("skipped_cells"):
        row["status"] = STATUS_ERRORS
        cells = result["skipped_cells"]
        reasons.append(f"the notebook used up its time (--timeout) and {len(cells)} later cell(s) were not run "
                       f"(first: {cells[0]!r}); the answers recorded until then were graded; "
                       "grade this file again with a larger --timeout if that was the machine's fault")
    if errors:
        row["status"] = STATUS_ERRORS
        shown = [f"{e['ename']}{': ' + e['evalue'][:120] if e['evalue'] else ''} (in cell {e['cell']!r})"
                 for e in errors[:3]]
        reasons.append("; ".join(shown) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""))
    if result.get("detail"):
        reasons.append(str(result["detail"]))
    lost = [q for q in questions if row[q] < questions[q] and q not in lacking]
    if lost:
        reasons.append("lost points on " + " | ".join(_lost_note(q, verdicts.get(q) or
                                                                  {"score": row[q], "possible": questions[q]})
                                                       for q in lost))
    row["reason"] = "; ".join(reasons) if reasons else "all auto-graded questions correct"
    return row


def _grade_one(label: str, path: Path, ag: Autograder, runtime: Path, scratch: Path, limits: sandbox.Limits,
               slot: int, unsafe: bool, kernel_name: str = "python3") -> dict:
    started = time.monotonic()
    digest = submissions.sha256(path)
    try:
        nb = submissions.read(path)
    except submissions.Invalid as e:
        return _row(label, ag, STATUS_INVALID, str(e), time.monotonic() - started, digest)
    import nbformat

    scratch.mkdir(parents=True)
    inbox = scratch / "input"
    inbox.mkdir()
    (inbox / "submission.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    task = {"name": ag.info.get("assignment") or "submission", "variables": ag.info["variables"],
            "cell_timeout": math.ceil(limits.cell), "startup_timeout": math.ceil(max(10, min(60, limits.wall / 2))),
            "kernel_name": kernel_name,
            # The runner stops starting cells a little before the sandbox's wall clock, so the
            # final answers are still recorded and what ran is graded.
            "budget": max(1.0, limits.wall - max(5.0, min(15.0, limits.wall / 5)))}
    (inbox / "task.json").write_text(json.dumps(task), encoding="utf-8")
    for p in (inbox, *inbox.iterdir()):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    result = sandbox.run(runtime, ag.folder, inbox, limits, slot=slot, unsafe=unsafe)
    seconds = time.monotonic() - started
    status = result["status"]
    if status == "timeout":
        return _row(label, ag, STATUS_TIMEOUT,
                    f"stopped after {limits.wall:g} s (--timeout): the notebook did not finish, even with "
                    "its cells interrupted (a loop that ignores interrupts?); its sandbox and everything in it "
                    "were ended; nothing could be graded", seconds, digest)
    if status == "kernel-did-not-start":
        return _row(label, ag, STATUS_NO_KERNEL, "the Jupyter kernel did not start, so nothing ran "
                    f"({result.get('detail', '')}); check the environment and grade this file again",
                    seconds, digest)
    if status not in ("ok", "kernel-died"):
        return _row(label, ag, STATUS_FAILED, f"the sandbox failed: {result.get('detail', status)}",
                    seconds, digest)
    verdict = ag.score(result.get("answers", b""), scratch)
    if "error" in verdict:
        return _row(label, ag, STATUS_FAILED, f"scoring failed: {verdict['error']}", seconds, digest)
    row = _graded_row(label, ag, nb, {**result, "seconds": seconds}, verdict["scores"], digest)
    if verdict.get("answers_problem"):
        row["status"] = STATUS_FAILED
        row["reason"] = f"the recorded answers could not be read ({verdict['answers_problem']}); " + row["reason"]
    row["seconds"] = round(time.monotonic() - started, 2)
    return row


# --------------------------------------------------------------------------- a batch
def grade_submissions(jobs: list[tuple[str | os.PathLike, str | os.PathLike]], *, workers: int = 2,
                      timeout: float = 60, cell_timeout: float | None = None,
                      labels: list[str] | None = None, quiet: bool = True, unsafe_no_sandbox: bool = False,
                      limits: sandbox.Limits | None = None, kernel_name: str = "python3") -> list[dict]:
    """Grade ``(autograder zip, submission)`` pairs, ``workers`` sandboxes at a time.

    Returns one row per pair, in order (see :mod:`usrok.gradebook` for the columns); the
    notebooks run in the Jupyter kernel ``kernel_name``, whatever their metadata says. Raises
    :class:`usrok.sandbox.SandboxUnavailable` when no sandbox can be made, unless
    ``unsafe_no_sandbox`` (the notebooks then run as you, with your files and network).
    """
    from usrok.browser import require_full_python

    require_full_python("Batch grading (it starts grading processes)")
    if not unsafe_no_sandbox:
        problem = sandbox.available()
        if problem:
            raise sandbox.SandboxUnavailable(problem)
    limits = limits or sandbox.Limits(wall=timeout, cell=cell_timeout or max(5.0, timeout / 2))
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    batch = Path(tempfile.mkdtemp(prefix="usrok-grading-"))
    rows: list[dict | None] = [None] * len(jobs)
    graders: dict[Path, Autograder] = {}
    try:
        sandbox.prepare_runtime(batch)
        queue = []
        for i, (zip_path, sub) in enumerate(jobs):
            zip_path = Path(zip_path).resolve()
            if zip_path not in graders:
                graders[zip_path] = Autograder(zip_path, batch, len(graders))
            queue.append((i, graders[zip_path], Path(sub)))
        for ag in graders.values():
            ag.start()
        lock = threading.Lock()

        def slot(preferred: int) -> None:
            with sandbox.claimed_slot(preferred) as k:
                work(k)

        def work(k: int) -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    i, ag, path = queue.pop(0)
                label = labels[i] if labels else str(path)
                try:
                    row = _grade_one(label, path, ag, batch, batch / f"submission-{i}", limits, k,
                                     unsafe_no_sandbox, kernel_name)
                except Exception as e:  # a bug or a broken file must not stop the batch
                    row = _row(label, ag, STATUS_FAILED, f"{type(e).__name__}: {str(e)[:300]}")
                try:
                    after = submissions.sha256(path)
                except OSError as e:
                    after = f"unreadable ({e.strerror})"
                if row.get("sha256") and after != row["sha256"]:
                    row["reason"] = (f"WARNING: the file changed while it was graded (sha256 {row['sha256'][:12]} "
                                     f"before, {after[:12]} after); " + row["reason"])
                shutil.rmtree(batch / f"submission-{i}", ignore_errors=True)
                with lock:
                    rows[i] = row
                say(f"{label}: {row['status']} {row['total']:g}/{row['max']:g} ({row['seconds']:g} s)")

        threads = [threading.Thread(target=slot, args=(k,), daemon=True)
                   for k in range(max(1, min(workers, len(queue) or 1)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for ag in graders.values():
            ag.close()
        shutil.rmtree(batch, ignore_errors=True)
    return [r for r in rows if r is not None]


def grade_folder(autograder: str | os.PathLike, submissions_dir: str | os.PathLike, out: str | os.PathLike,
                 *, workers: int = 2, timeout: float = 60, cell_timeout: float | None = None,
                 quiet: bool = False, unsafe_no_sandbox: bool = False) -> list[dict]:
    """Grade every ``.ipynb``/``.zip`` under ``submissions_dir``; write the grades CSV ``out``."""
    from usrok.browser import require_full_python

    require_full_python("Batch grading (it starts grading processes)")
    autograder = Path(autograder).resolve()
    folder = Path(submissions_dir).resolve()
    files = submissions.find(folder)
    started = time.monotonic()
    rows = grade_submissions([(autograder, f) for f in files], workers=workers, timeout=timeout,
                             cell_timeout=cell_timeout, quiet=quiet, unsafe_no_sandbox=unsafe_no_sandbox,
                             labels=[str(f.relative_to(folder)) for f in files])
    elapsed = time.monotonic() - started
    info = read_autograder(autograder)
    gradebook.write(out, rows, info)
    ran = sum(r["status"] != STATUS_INVALID for r in rows)
    rate = ran / elapsed * 60 if elapsed > 0 and ran else 0.0
    if not quiet:
        print(f"graded {len(rows)} submission(s) ({ran} run) in {elapsed:.1f} s with {max(1, workers)} "
              f"worker(s): {rate:.1f} a minute -> {out}", file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------- the command
UNSAFE_WARNING = ("WARNING: --unsafe-no-sandbox: the notebooks run as YOU, with your files, your network and "
                  "your processes. A submission can read the hidden tests and change any grade. Use this "
                  "only for notebooks you trust.")


def main(argv: Iterable[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("grade", "merge", "-h", "--help"):
        argv.insert(0, "grade")  # `python -m usrok.grading ZIP FOLDER` still works
    p = argparse.ArgumentParser(prog="python -m usrok.grading",
                                description="Grade a folder of submissions in sandboxes, or merge hand-graded "
                                            "scores into final totals.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade every .ipynb/.zip under a folder; one CSV row per file")
    g.add_argument("autograder", help="the autograder zip (exercises/<name>/dist/autograder/*.zip)")
    g.add_argument("submissions", help="folder of submissions (searched recursively)")
    g.add_argument("--out", default=None,
                   help="CSV file to write (default grading/<assignment>/grades.csv)")
    g.add_argument("--workers", type=int, default=2, help="notebooks graded at once (default 2)")
    g.add_argument("--timeout", type=float, default=60,
                   help="seconds per submission before its sandbox is ended (default 60)")
    g.add_argument("--cell-timeout", type=float, default=None,
                   help="seconds per cell before it is interrupted (default: half of --timeout, at least 5)")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run the notebooks WITHOUT a sandbox, as you (only for trusted notebooks)")
    gradebook.add_merge_command(sub)
    a = p.parse_args(argv)
    if a.command == "merge":
        return gradebook.merge_command(a)
    autograder = a.autograder
    if any(ch in autograder for ch in "*?["):
        matches = sorted(glob.glob(autograder))
        if not matches:
            p.error(f"no autograder zip matches {autograder} (run `make assignments` first)")
        autograder = matches[-1]
    if not Path(autograder).is_file():
        p.error(f"autograder zip not found: {autograder} (run `make assignments` first)")
    if not Path(a.submissions).is_dir():
        p.error(f"submissions folder not found: {a.submissions}")
    out = a.out or str(Path("grading") / (read_autograder(autograder).get("assignment") or "grades") / "grades.csv")
    if a.unsafe_no_sandbox:
        print(UNSAFE_WARNING, file=sys.stderr, flush=True)
    try:
        grade_folder(autograder, a.submissions, out, workers=a.workers, timeout=a.timeout,
                     cell_timeout=a.cell_timeout, quiet=a.quiet, unsafe_no_sandbox=a.unsafe_no_sandbox)
    except sandbox.SandboxUnavailable as e:
        print(f"usrok.grading: refusing to grade without a sandbox: {e}.\n"
              "To grade anyway, only notebooks you trust, pass --unsafe-no-sandbox.", file=sys.stderr)
        return 2
    return 0


# Notebooks handed out before the split import their helpers from here: keep them working.
_MOVED = {**{n: "usrok.exercise" for n in ("grader_for", "principles_template", "fill_matrix", "notebook_path")},
          **{n: "usrok.checks" for n in ("is_whole", "is_number", "word_count", "chart_views", "marks",
                                          "fields", "is_finished", "matrix_problems")},
          **{n: "usrok.assignments" for n in ("read_master", "assignments", "repo_root", "read_autograder")}}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
