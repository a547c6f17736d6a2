"""The graded exercises grade fairly, and the batch grader survives bad submissions.

For every assignment (built by ``exercises/build_assignments.py``, which ``make book`` runs):

- the solution notebook scores full marks on the auto-graded questions;
- the blank student notebook scores zero on them;
- for every auto-graded question, at least one plausible wrong answer (an off-by-one year,
  a wrong sign, the planned figure instead of the observed one, a chart with the wrong mark
  or field, the wrong choice) loses that question's points, and only that question's: the
  wrong submissions are the solution notebook with answers overridden by cells inserted
  around the questions' ``grader.check`` cells (several questions per submission, each
  isolated, to keep the number of notebooks to grade small);
- broken submissions (invalid JSON, not a notebook, a missing answer variable, a cell that
  raises, an endless loop, a loop that ignores interrupts, a notebook that kills its kernel)
  each get a row with a clear status and reason, and the batch finishes;
- student notebooks run anywhere: each is executed once per run, blank, from the repository
  root (the data load, ``grader.check`` works, Run All reaches the end); its solution once from
  the student folder, where Binder opens it (every public test passes). The two notebooks
  share every code cell but the answers (checked), so between them every cell runs from both
  folders.

Everything is graded in two batches through ``usrok.grading``, as an instructor would grade a
class: the class with two workers, the broken submissions with three.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from usrok import assignments as course
from usrok.assignments import read_autograder
from usrok.grading import grade_submissions

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# Every assignment, and its plausible wrong answers, come from the masters (their header's
# ``usrok: wrong:`` list): a new assignment or question cannot escape these tests.
ASSIGNMENTS = {a["name"]: a for a in course.assignments(ROOT)}
NAMES = list(ASSIGNMENTS)


# The broken-submissions batch: per-submission limit and per-cell limit (seconds). The
# submission that ignores interrupts runs into the first; an endless loop into the second.
BATCH_LIMIT = 60
CELL_LIMIT = 12

STUBBORN_LOOP = """import time
while True:  # ignores the interrupt: only the hard time limit stops it
    try:
        time.sleep(0.2)
    except KeyboardInterrupt:
        pass
"""

# ---------------------------------------------------------------------------------- helpers


def autograder(name: str) -> Path:
    return course.autograder_zip(name, ROOT)


def solution(name: str) -> nbformat.NotebookNode:
    return nbformat.read(course.solution_notebook(name, ROOT), as_version=4)


def student(name: str) -> Path:
    return ROOT / course.student_notebook(name)


def check_index(nb, question: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and f'grader.check("{question}")' in cell.source:
            return i
    raise AssertionError(f"no grader.check cell for {question}")


def insert_before_check(nb, question: str, code: str):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells.insert(check_index(nb, question), nbformat.v4.new_code_cell(code))
    return nb


def insert_after_setup(nb, code: str):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(code))
    return nb


def answer_cell(nb, question: str):
    i = check_index(nb, question)
    return next(c for c in reversed(nb.cells[:i]) if c.cell_type == "code")


def write(nb, path: Path) -> Path:
    for c in nb.cells:  # new cells need ids in nbformat 4.5
        c.setdefault("id", nbformat.v4.new_code_cell().id)
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def built():
    """The assignments (a no-op when `make book` / `make assignments` just ran)."""
    run = subprocess.run([PYTHON, str(ROOT / "exercises" / "build_assignments.py")], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {n: read_autograder(autograder(n)) for n in NAMES}


def assigned_names(code: str) -> set[str]:
    """Variables a line of code assigns or changes in place (``x = ...``, ``x[...] = ...``)."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                while isinstance(t, (ast.Subscript, ast.Attribute)):
                    t = t.value
                if isinstance(t, ast.Name):
                    names.add(t.id)
    return names


def with_wrong_answers(nb, items, variables):
    """The solution with several wrong answers, each isolated to its own question.

    Before a question's ``grader.check`` cell: save the variables its tests read, then
    override the answer; after the check: restore them, so later questions are computed
    from correct values. The final ``grader.check_all()`` cell is dropped, so each
    question keeps the result of its own in-place check (otter grades the last check of
    each question, then runs the tests not yet checked).
    """
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells = [c for c in nb.cells if "grader.check_all()" not in c.source]
    for q, code, _ in items:
        keep = sorted(set(variables[q]) | assigned_names(code))
        save = (f"import copy as _copy\n_saved_{q} = {{}}\n"
                f"for _n in {keep!r}:\n"
                f"    if _n in globals():\n"
                f"        try:\n            _saved_{q}[_n] = _copy.deepcopy(globals()[_n])\n"
                f"        except Exception:\n            _saved_{q}[_n] = globals()[_n]\n")
        i = check_index(nb, q)
        nb.cells.insert(i, nbformat.v4.new_code_cell(save + code))
        nb.cells.insert(i + 2, nbformat.v4.new_code_cell(f"globals().update(_saved_{q})"))
    return nb


def rounds(name: str) -> list[list[tuple[str, str, str]]]:
    """The master's wrong answers grouped so that each round has at most one per question."""
    by_q: dict[str, list] = {}
    for w in ASSIGNMENTS[name]["wrong"]:
        by_q.setdefault(w["question"], []).append((w["question"], w["code"], w["why"]))
    return [[v[k] for v in by_q.values() if k < len(v)] for k in range(max(map(len, by_q.values())))]


@pytest.fixture(scope="session")
def graded(built, tmp_path_factory):
    """Every solution, blank and wrong-answer submission, graded in one batch with two workers."""
    base = tmp_path_factory.mktemp("submissions")
    jobs, labels, meta = [], [], []
    for name in NAMES:
        folder = base / name
        folder.mkdir()
        sol = solution(name)
        subs = [("solution", None, write(sol, folder / "solution.ipynb")),
                ("blank", None, write(nbformat.read(student(name), 4),
                                      folder / "blank.ipynb"))]
        for k, items in enumerate(rounds(name)):
            nb = with_wrong_answers(sol, items, built[name]["variables"])
            subs.append(("wrong", items, write(nb, folder / f"wrong-round-{k + 1}.ipynb")))
        for kind, detail, path in subs:
            jobs.append((autograder(name), path))
            labels.append(f"{name}/{path.name}")
            meta.append((name, kind, detail))
    rows = grade_submissions(jobs, workers=2, timeout=180, cell_timeout=90, labels=labels)
    for row, (_, path) in zip(rows, jobs):
        row["path"] = path
    return [(m, r) for m, r in zip(meta, rows)]


def sandbox_processes(token: str = "usrok_grader", settle: float = 0) -> list[str]:
    """Processes of a sandbox still alive (by the sandbox users' ids, or ``token`` in their command
    line). With ``settle``, look again for up to that many seconds while any is found: a sandbox
    that was just ended takes a moment to go (the kernel tears its PID namespace down after bwrap
    has exited), while a process that escaped it stays."""
    from usrok.sandbox import SANDBOX_UID

    deadline = time.monotonic() + settle
    while True:
        found = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                uid = d.stat().st_uid
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if SANDBOX_UID <= uid < SANDBOX_UID + 16 or token in cmd:
                found.append(f"{d.name} ({state}): {cmd[:120]}")
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def v3(nb) -> str:
    """The notebook in nbformat 3 (as old Jupyter wrote it)."""
    return nbformat.writes(nbformat.convert(nbformat.from_dict(json.loads(json.dumps(nb))), 3), version=3)


@pytest.fixture(scope="session")
def broken(built, tmp_path_factory):
    """Broken and unusual submissions to ex03_easi, graded in one batch with a short time limit."""
    import zipfile

    name = "ex03_easi"
    folder = tmp_path_factory.mktemp("broken")
    sol = solution(name)
    (folder / "invalid-json.ipynb").write_text('{"cells": [', encoding="utf-8")
    (folder / "not-a-notebook.ipynb").write_text('{"hello": "world"}', encoding="utf-8")
    (folder / "deep-json.ipynb").write_text('{"cells": ' + "[" * 20000 + "]" * 20000 + "}", encoding="utf-8")
    missing = nbformat.from_dict(json.loads(json.dumps(sol)))
    cell = answer_cell(missing, "q2")
    cell.source = "\n".join(l for l in cell.source.splitlines() if not l.startswith("observed_change ="))
    write(missing, folder / "missing-variable.ipynb")
    raising = nbformat.from_dict(json.loads(json.dumps(sol)))
    cell = answer_cell(raising, "q5")
    cell.source = 'raise ValueError("a bug in my answer")\n' + cell.source
    write(raising, folder / "raises.ipynb")
    write(insert_after_setup(sol, "while True:\n    pass"), folder / "endless-loop.ipynb")
    write(insert_after_setup(sol, STUBBORN_LOOP), folder / "loop-ignores-interrupt.ipynb")
    write(insert_after_setup(sol, "import os\nos._exit(1)"), folder / "kills-kernel.ipynb")
    (folder / "nbformat-3.ipynb").write_text(v3(sol), encoding="utf-8")
    # Every answer given, then more stuck cells than the time limit allows: the runner skips the
    # rest before the sandbox is ended, and the answers recorded are graded.
    stuck = nbformat.from_dict(json.loads(json.dumps(sol)))
    stuck.cells += [nbformat.v4.new_code_cell("import time\ntime.sleep(600)") for _ in range(9)]
    write(stuck, folder / "stuck-cells-at-the-end.ipynb")
    with zipfile.ZipFile(folder / "in-a-zip.zip", "w") as zf:  # a name that climbs out of any folder
        zf.writestr("../../../escaped/ex03_easi.ipynb", nbformat.writes(sol))
        zf.writestr("notes.txt", "my notes")
    with zipfile.ZipFile(folder / "two-notebooks.zip", "w") as zf:
        zf.writestr("a.ipynb", nbformat.writes(sol))
        zf.writestr("b.ipynb", nbformat.writes(sol))
    files = sorted(folder.iterdir())
    # The limit leaves a loaded CI machine room to finish the other submissions. Three workers:
    # the two submissions that use up their time (asleep, mostly) leave one to the others.
    rows = grade_submissions([(autograder(name), f) for f in files], workers=3, timeout=BATCH_LIMIT,
                             cell_timeout=CELL_LIMIT, labels=[f.name for f in files])
    return {r["file"]: r for r in rows}, built[name]["questions"], sandbox_processes(settle=10), folder


@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks(graded, built, name):
    (row,) = [r for (n, kind, _), r in graded if n == name and kind == "solution"]
    questions = built[name]["questions"]
    assert row["status"] == "graded", row
    assert row["total"] == row["max"] == sum(questions.values()), row
    assert all(row[q] == p for q, p in questions.items()), row


@pytest.mark.parametrize("name", NAMES)
def test_blank_student_notebook_scores_zero(graded, built, name):
    (row,) = [r for (n, kind, _), r in graded if n == name and kind == "blank"]
    assert row["status"] in ("graded", "graded-with-errors"), row
    assert row["total"] == 0, row
    assert all(row[q] == 0 for q in built[name]["questions"]), row
    assert "missing answer" in row["reason"], row


@pytest.mark.parametrize("name", NAMES)
def test_every_wrong_answer_loses_points(graded, built, name):
    questions = built[name]["questions"]
    covered = set()
    for (n, kind, items), row in graded:
        if n != name or kind != "wrong":
            continue
        assert row["status"] in ("graded", "graded-with-errors"), row
        targeted = {q for q, _, _ in items}
        for q, code, why in items:
            assert row[q] < questions[q], f"{name} {q}: a wrong answer ({why}: {code}) kept full marks"
            covered.add(q)
        # Each wrong answer costs only its own question.
        assert all(row[q] == p for q, p in questions.items() if q not in targeted), row
    assert covered == set(questions), f"{name}: no wrong answer tried for {set(questions) - covered}"


OTTER_RUN = """
import json, sys
import otter.run
results = otter.run.main(sys.argv[1], autograder=sys.argv[2], output_dir=None, no_logo=True)
print(json.dumps({name: float(tf.score) for name, tf in results.results.items()}))
"""


@pytest.mark.parametrize("name", ["ex03_easi", "ex09_principles_assessment"])
def test_scores_equal_otters_own_runner(graded, built, name, tmp_path):
    """Our scores (answers recorded as data, tests run outside the sandbox) equal otter's own
    (``otter run``: tests inside the kernel) for the solution, the blank notebook and every
    wrong-answer round, question by question."""
    rows = [(kind, r) for (n, kind, _), r in graded if n == name]

    def otter_scores(path):
        p = subprocess.run([PYTHON, "-c", OTTER_RUN, str(path), str(autograder(name))], capture_output=True,
                           text=True, cwd=tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = list(pool.map(otter_scores, [r["path"] for _, r in rows]))
    for (kind, ours), scores in zip(rows, theirs):
        assert {q: ours[q] for q in built[name]["questions"]} == scores, (kind, ours["reason"])


def test_invalid_json_gets_a_row_and_a_reason(broken):
    rows, questions, _, _ = broken
    row = rows["invalid-json.ipynb"]
    assert row["status"] == "invalid-notebook" and row["reason"].startswith("not valid notebook JSON")
    assert row["total"] == 0 and all(row[q] == 0 for q in questions)
    assert rows["not-a-notebook.ipynb"]["status"] == "invalid-notebook"
    assert "not a Jupyter notebook" in rows["not-a-notebook.ipynb"]["reason"]


def test_deeply_nested_json_gets_a_row(broken):
    rows, _, _, _ = broken
    row = rows["deep-json.ipynb"]
    assert row["status"] == "invalid-notebook" and "nested too deeply" in row["reason"], row


def test_nbformat_3_is_upgraded_and_graded(broken):
    rows, questions, _, _ = broken
    row = rows["nbformat-3.ipynb"]
    assert row["status"] == "graded" and row["total"] == sum(questions.values()), row


def test_zip_submission_yields_only_its_notebook(broken):
    rows, questions, _, folder = broken
    row = rows["in-a-zip.zip"]
    assert row["status"] == "graded" and row["total"] == sum(questions.values()), row
    # The member's name ("../../../escaped/...") was never used as a path.
    assert not any(Path(p, "escaped").exists() for p in (folder, folder.parent, folder.parent.parent, "/tmp"))
    two = rows["two-notebooks.zip"]
    assert two["status"] == "invalid-notebook" and "holds 2 notebooks" in two["reason"], two


def test_missing_variable_is_named(broken):
    rows, questions, _, _ = broken
    row = rows["missing-variable.ipynb"]
    assert row["status"] in ("graded", "graded-with-errors"), row
    assert row["q2"] == 0 and row["q1"] == questions["q1"], row
    assert "observed_change (never assigned)" in row["reason"], row


def test_raising_cell_costs_only_its_question(broken):
    rows, questions, _, _ = broken
    row = rows["raises.ipynb"]
    assert row["status"] == "graded-with-errors", row
    assert "ValueError: a bug in my answer" in row["reason"], row
    assert row["q5"] == 0 and row["total"] == sum(questions.values()) - questions["q5"], row


def test_endless_loop_is_interrupted_and_the_rest_graded(broken):
    rows, questions, _, _ = broken
    row = rows["endless-loop.ipynb"]
    assert row["status"] == "graded-with-errors", row
    assert "ran too long" in row["reason"], row
    assert row["total"] == sum(questions.values()), row


def test_loop_that_ignores_interrupts_is_ended_with_its_sandbox(broken):
    rows, questions, left, _ = broken
    assert left == [], f"processes outlived the batch: {left}"
    row = rows["loop-ignores-interrupt.ipynb"]
    assert row["status"] == "timeout", row
    assert row["reason"].startswith(f"stopped after {BATCH_LIMIT:g} s"), row
    assert row["total"] == 0 and all(row[q] == 0 for q in questions)


def test_notebook_out_of_time_keeps_the_answers_it_recorded(broken):
    rows, questions, _, _ = broken
    row = rows["stuck-cells-at-the-end.ipynb"]
    assert row["status"] == "graded-with-errors", row
    assert "used up its time" in row["reason"] and "larger --timeout" in row["reason"], row
    assert row["total"] == sum(questions.values()), row


def test_lost_points_show_the_students_message_first():
    from usrok.grading import _lost_note

    verdict = {"score": 0, "possible": 1, "failed": [
        {"test": "test_q5_value", "hidden": True, "points": 1, "note": "test_q5_value failed"},
        {"test": "test_q5_form", "hidden": False, "points": 0,
         "note": "divergence should be one of the letters a, b, c or d (a string)."}]}
    note = _lost_note("q5", verdict)
    assert note.startswith("q5 0/1 (divergence should be one of the letters"), note
    assert "test_q5_value failed" in note, note


def test_answers_still_holding_ellipsis_count_as_missing():
    from usrok.submissions import missing_answers

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('stage_of = {"a": ..., "b": 2}\nshares = [1, ...]\ndone = {"a": 1}')])
    lacking = missing_answers(nb, {"q4": ["stage_of"], "q5": ["shares"], "q6": ["done"]})
    assert lacking == {"q4": ["stage_of (still has ...)"], "q5": ["shares (still has ...)"]}, lacking


def test_kernel_death_keeps_the_answers_checked_before_it(broken):
    rows, questions, _, _ = broken
    row = rows["kills-kernel.ipynb"]
    # It dies right after the set-up cell, before any answer: nothing to grade, and a reason.
    assert row["status"] == "graded-with-errors" and "the kernel died" in row["reason"], row
    assert row["total"] == 0, row


def test_batch_keeps_going_after_broken_submissions(broken):
    rows, _, _, folder = broken
    assert len(rows) == len(list(folder.iterdir())) == 12
    assert all(r["sha256"] and "WARNING" not in r["reason"] for r in rows.values())


def test_two_batches_at_once_never_share_a_sandbox_user():
    """Worker slots are claimed machine-wide: a second batch that asks for a slot another batch
    holds gets a different one (another unprivileged user), and so does a third."""
    from usrok import sandbox

    if os.geteuid() != 0:
        pytest.skip("only as root does each slot run as a user of its own")
    with sandbox.claimed_slot(0) as first, sandbox.claimed_slot(first) as second, \
            sandbox.claimed_slot(first) as third:
        assert len({first, second, third}) == 3, (first, second, third)


def test_kernel_that_does_not_start_is_its_own_status(built, tmp_path):
    write(solution("ex06_principles"), tmp_path / "alice.ipynb")
    (row,) = grade_submissions([(autograder("ex06_principles"), tmp_path / "alice.ipynb")], workers=1,
                               timeout=60, kernel_name="no-such-kernel")
    assert row["status"] == "kernel-did-not-start" and "NoSuchKernel" in row["reason"], row
    assert row["total"] == 0


def test_grader_refuses_without_a_sandbox_and_says_how_to_install_it(built, tmp_path):
    """With no bwrap on PATH the command refuses (exit 2) and names the package; the loud
    opt-out grades anyway, with a warning."""
    write(solution("ex06_principles"), tmp_path / "alice.ipynb")
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("prlimit", "setpriv"):  # everything but bwrap
        if shutil.which(tool):
            (bare / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": f"{Path(PYTHON).parent}:{bare}"}
    cmd = [PYTHON, "-m", "usrok.grading", "grade", str(autograder("ex06_principles")), str(tmp_path),
           "--out", str(tmp_path / "out.csv"), "--workers", "1", "--timeout", "120"]
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert refused.returncode == 2 and "apt-get install bubblewrap" in refused.stderr, refused.stderr
    assert "--unsafe-no-sandbox" in refused.stderr and not (tmp_path / "out.csv").exists()
    unsafe = subprocess.run(cmd + ["--unsafe-no-sandbox"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert unsafe.returncode == 0 and "the notebooks run as YOU" in unsafe.stderr, unsafe.stderr[-2000:]
    import csv

    (row,) = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert row["status"] == "graded" and row["auto_total"] == row["auto_possible"], row


def test_batch_command_writes_csv_and_merges_hand_grades(built, tmp_path):
    """The commands an instructor runs: a folder in, one CSV row per submission out, with a column
    for the hand-graded question; then the filled-in hand grades merged into final totals."""
    import csv

    subs = tmp_path / "subs"
    subs.mkdir()
    name = "ex06_principles"
    sol = solution(name)
    write(sol, subs / "alice.ipynb")
    wrong = ASSIGNMENTS[name]["wrong"][0]
    write(with_wrong_answers(sol, [(wrong["question"], wrong["code"], wrong["why"])],
                             built[name]["variables"]), subs / "carol.ipynb")
    (subs / "bob.ipynb").write_text("not json", encoding="utf-8")
    out = tmp_path / "grades.csv"
    run = subprocess.run([PYTHON, "-m", "usrok.grading", "grade", str(autograder(name)), str(subs),
                          "--out", str(out), "--workers", "2", "--timeout", "120"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "a minute" in run.stderr
    manual = {q["name"]: q["points"] for q in ASSIGNMENTS[name]["questions"] if q["manual"]}
    auto = [q["name"] for q in ASSIGNMENTS[name]["questions"] if not q["manual"]]
    (hand_q, hand_pts), = manual.items()
    hand_col = f"{hand_q} (by hand, 0-{hand_pts:g})"
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["file", "status", *auto, "auto_total", "auto_possible", hand_col,
                             "total_possible", "seconds", "sha256", "reason"]
    alice, bob, carol = rows
    assert [r["file"] for r in rows] == ["alice.ipynb", "bob.ipynb", "carol.ipynb"]
    full = sum(built[name]["questions"].values())
    assert alice["auto_total"] == alice["auto_possible"] == f"{full:g}" and alice[hand_col] == ""
    assert alice["total_possible"] == f"{full + hand_pts:g}" and bob["status"] == "invalid-notebook"
    # The reason names the failing part: the test's own message or name, never its code.
    assert float(carol[wrong["question"]]) < built[name]["questions"][wrong["question"]]
    assert f"lost points on {wrong['question']}" in carol["reason"] and "test_" in carol["reason"], carol
    assert "assert " not in carol["reason"] and "def " not in carol["reason"]

    def hand_csv(scores: dict) -> Path:
        path = tmp_path / "hand.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", hand_col])
            w.writerows(scores.items())
        return path

    merge = [PYTHON, "-m", "usrok.grading", "merge", str(out)]
    final = tmp_path / "final.csv"
    ok = subprocess.run(merge + [str(hand_csv({"alice.ipynb": 3, "bob.ipynb": 0, "carol.ipynb": 1.5})),
                                 "--out", str(final)], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    totals = {r["file"]: r for r in csv.DictReader(final.open())}
    assert float(totals["alice.ipynb"]["total"]) == full + 3 and float(totals["bob.ipynb"]["total"]) == 0
    assert float(totals["carol.ipynb"]["total"]) == float(carol["auto_total"]) + 1.5
    assert float(totals["alice.ipynb"]["total_possible"]) == full + hand_pts
    for bad, says in [({"alice.ipynb": 3, "bob.ipynb": 0, "carol.ipynb": hand_pts + 1}, "row 4 ('carol.ipynb')"),
                      ({"alice.ipynb": -1, "bob.ipynb": 0, "carol.ipynb": 1}, "row 2 ('alice.ipynb')"),
                      ({"alice.ipynb": 3, "bob.ipynb": 0, "carol.ipynb": 1, "dave.ipynb": 2},
                       "row 5 ('dave.ipynb'): no such file"),
                      ({"alice.ipynb": 3, "bob.ipynb": "", "carol.ipynb": 1}, "row 3 ('bob.ipynb')")]:
        refused = subprocess.run(merge + [str(hand_csv(bad)), "--out", str(tmp_path / "no.csv")],
                                 capture_output=True, text=True, cwd=ROOT)
        assert refused.returncode == 1 and says in refused.stderr, (bad, refused.stderr)
        assert not (tmp_path / "no.csv").exists()


def test_csv_cells_cannot_start_a_formula(tmp_path):
    """Text that a spreadsheet would run gets a leading quote; numbers stay numbers."""
    import csv

    from usrok import gradebook

    info = {"questions": {"q1": 1.0}, "manual": {"q2": 2.0}}
    names = ['=HYPERLINK("http://example.com","x").ipynb', "+1.ipynb", "-2.ipynb", "@SUM(A1).ipynb",
             "\tx.ipynb", "\rx.ipynb", "plain.ipynb"]
    rows = [{"file": n, "status": "graded", "total": 1.0, "q1": 1.0, "seconds": 2.5, "sha256": "ab",
             "reason": "=cmd|' /C calc'!A0"} for n in names]
    out = gradebook.write(tmp_path / "g.csv", rows, info)
    read = list(csv.reader(out.open(newline="")))
    for (file, *_rest), name in zip(read[1:], names):
        assert file == (name if name == "plain.ipynb" else "'" + name), file
    assert all(r[-1] == "'=cmd|' /C calc'!A0" for r in read[1:])
    assert read[1][2] == "1" and read[1][3] == "1" and read[1][-3] == "2.5"  # numbers unquoted


# ------------------------------------------------------------ student notebooks run anywhere
RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, sys.argv[3])
"""


@pytest.fixture(scope="session")
def executed(built, tmp_path_factory):
    """Each student notebook executed once, blank, from the repository root, and each solution
    once from the student folder (where Binder opens the notebook).

    Between them every cell but the answers runs from both working directories (the two
    notebooks share those cells: test_student_and_solution_share_every_cell_but_the_answers),
    so neither notebook is executed a second time."""
    out = tmp_path_factory.mktemp("executed")
    runs = []
    for name in NAMES:
        nb, sol = student(name), course.solution_notebook(name, ROOT)
        runs += [(name, "repo-root", nb, ROOT),
                 (name, "solution-in-student-folder", sol, nb.parent)]

    def run(item):
        name, where, nb, cwd = item
        dest = out / f"{name}-{where}.ipynb"
        p = subprocess.run([PYTHON, "-c", RUNNER, str(nb), str(cwd), str(dest)], capture_output=True,
                           text=True, cwd=cwd)
        return (name, where), (p.returncode, p.stderr[-2000:], dest)

    logs = [ROOT / ".OTTER_LOG"] + [student(n).parent / ".OTTER_LOG" for n in NAMES]
    existed = {p for p in logs if p.exists()}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(pool.map(run, runs))
    finally:  # grader.check logs to .OTTER_LOG in the working directory: leave no litter
        for p in logs:
            if p not in existed:
                p.unlink(missing_ok=True)


def _errors(nb, skip_answers: bool):
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if skip_answers and "otter_answer_cell" in cell.metadata.get("tags", []):
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                found.append(f"cell {i} ({cell.source.splitlines()[0][:40]!r}): {o['ename']}: {o['evalue'][:200]}")
    return found


def _check_outputs(nb):
    texts = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "grader.check(" in cell.source and "check_all" not in cell.source:
            texts.append("".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
                                 for o in cell.outputs))
    return texts


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


try:  # the course bundle guards the student notebook's set-up imports, not the solution's
    from usrok.bundle import unguard_setup_cell as _as_written
except ImportError:  # before usrok.bundle: nothing is guarded
    def _as_written(source: str) -> str:
        return source


@pytest.mark.parametrize("name", NAMES)
def test_student_and_solution_share_every_cell_but_the_answers(built, name):
    """What lets one run of each stand for both working directories: the solution notebook is the
    student notebook with the answer cells filled in, nothing else changed."""
    blank = _code_cells(nbformat.read(student(name), as_version=4))
    solved = _code_cells(solution(name))
    assert len(blank) == len(solved), f"{name}: {len(blank)} code cells, its solution {len(solved)}"
    differ = [i for i, (b, s) in enumerate(zip(blank, solved))
              if "otter_answer_cell" not in b.metadata.get("tags", []) and _as_written(b.source) != s.source]
    assert not differ, f"{name}: code cells {differ} differ from the solution's outside the answers"
    assert any("otter_answer_cell" in b.metadata.get("tags", []) for b in blank), f"{name}: no answer cells"


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_runs_anywhere(executed, name):
    """Blank, from the repository root: the notebook finds its data and its public tests from a
    folder that is not its own (from its own folder, the solution's run shows the same)."""
    code, err, dest = executed[(name, "repo-root")]
    assert code == 0, err
    nb = nbformat.read(dest, as_version=4)
    # Run All on a blank notebook reaches the last cell: the set-up, the data loading, every
    # grader.check and every answer cell still holding `...` run without an error (later
    # cells use tables built from the data, not earlier answers).
    assert not _errors(nb, skip_answers=False)
    checks = _check_outputs(nb)
    assert checks and all("results" in t or "passed" in t for t in checks), checks


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_public_tests_in_student_folder(executed, name):
    code, err, dest = executed[(name, "solution-in-student-folder")]
    assert code == 0, err
    nb = nbformat.read(dest, as_version=4)
    assert not _errors(nb, skip_answers=False)
    checks = _check_outputs(nb)
    assert checks and all("passed" in t and "failed" not in t.lower() for t in checks), checks


def test_instructor_guide_has_a_rubric_for_every_written_question():
    """Each manually graded question has a rubric whose criteria add up to its points."""
    guide = (ROOT / "chapters" / "instructor_guide.md").read_text(encoding="utf-8")
    for a in ASSIGNMENTS.values():
        for i, q in enumerate(a["questions"], 1):
            if not q["manual"]:
                continue
            m = re.search(rf"^### `{a['name']}` · question {i}\b.*?\((\d+) points?\)\n(.*?)(?=^#|\Z)",
                          guide, re.S | re.M)
            assert m, f"no rubric for {a['name']} question {i}"
            assert float(m.group(1)) == q["points"], f"{a['name']} q{i}: rubric says {m.group(1)} points"
            rows = re.findall(r"^\|[^|\n]+\|\s*([\d.]+)\s*\|$", m.group(2), re.M)
            assert sum(map(float, rows)) == q["points"], f"{a['name']} q{i}: criteria add up to {rows}"


@pytest.mark.parametrize("name", NAMES)
def test_master_round_trips_through_jupytext(name, tmp_path):
    """jupytext keeps otter's raw cells (and every other cell) intact: md -> ipynb -> md -> ipynb."""
    import jupytext

    first = jupytext.read(course.master_path(name, ROOT))
    jupytext.write(first, tmp_path / "a.ipynb")
    jupytext.write(jupytext.read(tmp_path / "a.ipynb"), tmp_path / "b.md")
    again = jupytext.read(tmp_path / "b.md")
    cells = lambda nb: [(c.cell_type, c.source) for c in nb.cells]
    assert cells(again) == cells(first)
    raw = [c.source.splitlines()[0] for c in first.cells if c.cell_type == "raw"]
    assert raw[0] == "# ASSIGNMENT CONFIG" and "# BEGIN QUESTION" in raw and "# BEGIN TESTS" in raw


@pytest.mark.parametrize("name", NAMES)
def test_master_names_wrong_answers_for_every_auto_graded_question(name):
    """The master's ``wrong:`` list covers every auto-graded question, and only real ones."""
    a = ASSIGNMENTS[name]
    auto = {q["name"] for q in a["questions"] if not q["manual"]}
    named = [w["question"] for w in a["wrong"]]
    assert set(named) <= auto, f"{name}: wrong answers for unknown or hand-graded questions {set(named) - auto}"
    assert auto <= set(named), f"{name}: no wrong answer for {sorted(auto - set(named))}"
    for w in a["wrong"]:
        ast.parse(w["code"])  # each is one piece of valid Python
        assert w["why"], w


def test_principles_scale_runs_from_minus_one_to_three():
    """matrix_problems accepts every whole score on the scale, -1 to 3, and nothing else."""
    import pandas as pd

    from usrok.checks import matrix_problems
    from usrok.exercise import PRINCIPLE_SCALE, principles_template

    assert sorted(PRINCIPLE_SCALE) == [-1, 0, 1, 2, 3]
    matrix = principles_template()
    matrix["justification"] = [f"Cell {i} has its own reason, specific to this area and principle."
                               for i in range(len(matrix))]
    for scores in ([0, 1, 2, 3], [-1, 3], [-1.0, 2.0]):
        matrix["score"] = pd.Series([scores[i % len(scores)] for i in range(len(matrix))], dtype="object")
        assert matrix_problems(matrix) == [], scores
    for bad in (-2, 4, 1.5, "2", None):
        m = matrix.copy()
        m["score"] = m["score"].astype("object")
        m.loc[7, "score"] = bad
        problems = matrix_problems(m)
        assert len(problems) == 1 and "from -1 to 3 (first at row 7)" in problems[0], (bad, problems)


def test_a_file_that_changes_while_graded_is_reported(built, tmp_path, monkeypatch):
    """Each file is hashed before and after grading; a difference is reported in its row."""
    from usrok import submissions

    (tmp_path / "bob.ipynb").write_text("not json", encoding="utf-8")
    real = submissions.sha256
    calls = []

    def drifting(path):  # the second look at the file sees other bytes
        calls.append(path)
        return real(path) if len(calls) == 1 else "0" * 64

    monkeypatch.setattr(submissions, "sha256", drifting)
    (row,) = grade_submissions([(autograder("ex06_principles"), tmp_path / "bob.ipynb")], workers=1)
    assert len(calls) == 2 and row["status"] == "invalid-notebook", row
    assert row["reason"].startswith("WARNING: the file changed while it was graded"), row
