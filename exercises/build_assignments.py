"""Build every assignment: the student notebook (committed) and the autograder zip (dist/).

For each master ``exercises/<name>/<name>.md`` (jupytext Markdown with otter-grader's raw
cells) this script

1. converts the master to a notebook with jupytext in a temporary folder and adds the
   settings every assignment shares to its ``ASSIGNMENT CONFIG`` cell (the requirements
   file, the Python version, and ``autograder_files``: the data tables the master loads,
   ``datapackage.json`` and the ``usrok`` package source, so the zip grades on a machine
   without this repository, e.g. Gradescope);
2. runs ``otter assign``, which also grades the solution notebook with the new zip and
   fails if it does not score full marks;
3. copies the result to ``exercises/<name>/dist/`` (gitignored: the autograder zip and the
   solution notebook -- answer keys stay on the instructor's machine) and the student
   notebook to ``exercises/<name>/student/<name>.ipynb`` (committed: Binder opens it from
   the repository). Public tests live in the student notebook's metadata, so
   ``grader.check`` works from any folder; hidden tests exist only in the zip. The student
   notebook's first code cell gets its imports guarded (``usrok.bundle.guard_setup_cell``):
   opened where the course's packages are missing, it says what to do, not a traceback.

Incremental: an assignment whose master, data tables, ``usrok`` source, requirements and
this script are unchanged since the last build (hash stamp in ``dist/``) is skipped.
One line is printed per assignment.

    python exercises/build_assignments.py            # build what changed
    python exercises/build_assignments.py --force    # rebuild everything
    python exercises/build_assignments.py ex03_easi  # only these
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
USROK = ROOT / "src" / "usrok"
# The usrok modules a notebook or a test may import, with the modules they import (book*.py
# need Sphinx: not shipped).
USROK_FILES = ["__init__.py", "data.py", "data_package.py", "data_validation.py", "charts.py",
               "chart_theme.py", "chart_spec.py", "chart_troops.py", "chart_timeline.py",
               "chart_principles.py", "chart_map.py", "exercise.py", "checks.py", "assignments.py"]
# Packages the autograder needs on top of otter-grader (pins from requirements.txt).
GRADING_PACKAGES = {"pandas", "numpy", "altair", "frictionless", "ipykernel"}
PYTHON_VERSION = "3.11"
STAMP = ".build-stamp"

sys.path.insert(0, str(ROOT / "src"))
from usrok.assignments import MANIFEST, dist_dir, manifest, master_paths, read_master, student_notebook  # noqa: E402


class BuildError(Exception):
    """An assignment could not be built (the message says why)."""


def grading_requirements() -> str:
    """requirements.txt for the autograder: the course's pins that grading needs, no ``-e .``."""
    keep = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        name = re.split(r"[=<>!~\[ ]", line, maxsplit=1)[0].lower()
        if name in GRADING_PACKAGES:
            keep.append(line)
    return "# Written by exercises/build_assignments.py from requirements.txt\n" + "\n".join(keep) + "\n"


def inputs(master: Path, info: dict) -> list[Path]:
    """Every file whose change must rebuild this assignment."""
    pkg = json.loads((DATA / "datapackage.json").read_text(encoding="utf-8"))
    paths = {r["name"]: r["path"] for r in pkg["resources"]}
    missing = [r for r in info["resources"] if r not in paths]
    if missing:
        raise BuildError(f"{master.name}: loads unknown table(s) {missing}; see data/datapackage.json")
    files = [master, DATA / "datapackage.json", *[DATA / paths[r] for r in info["resources"]]]
    files += [USROK / f for f in USROK_FILES]
    files += [ROOT / "requirements.txt", Path(__file__).resolve(), USROK / "bundle.py"]  # bundle: first cell
    extra = master.parent / "files"
    if extra.is_dir():
        files += sorted(p for p in extra.rglob("*") if p.is_file())
    return files


def stamp_of(files: list[Path]) -> str:
    from importlib.metadata import version

    h = hashlib.sha256(f"otter-grader {version('otter-grader')}\n".encode())
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def with_shared_config(nb, info: dict) -> None:
    """Add the settings every assignment shares to the ASSIGNMENT CONFIG raw cell."""
    import yaml

    cell = next(c for c in nb.cells if c.cell_type == "raw"
                and c.source.lstrip().startswith("# ASSIGNMENT CONFIG"))
    config = yaml.safe_load(cell.source.split("\n", 1)[1]) or {}
    config.update({
        "requirements": "requirements.txt",
        "python_version": PYTHON_VERSION,
        "autograder_files": ["data", "usrok"],
    })
    config.setdefault("tests", {"files": False, "ok_format": False})
    # The wrong answers are for the course's tests, not for students or the answer key.
    (nb.metadata.get("usrok") or {}).pop("wrong", None)
    cell.source = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False).strip()


def tidy_student(path: Path, name: str) -> None:
    """Stable cell ids (readable diffs) and a check that nothing of the answer key is left."""
    import nbformat

    from usrok.bundle import guard_setup_cell

    nb = nbformat.read(path, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.source = guard_setup_cell(setup.source)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:4]}-{i:03d}"
        if cell.cell_type == "markdown" and "rerun all of the autograder tests" in cell.source:
            # otter's wording suggests this runs every test; it runs the public ones only.
            cell.source = ("---\n\nTo double-check your work, the cell below reruns all the public "
                           "tests. The hidden tests are not in this notebook: your instructor runs them.")
        if cell.cell_type == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb.metadata.pop("jupytext", None)
    nb.metadata.setdefault("language_info", {"name": "python"})
    for q, src in (nb.metadata.get("otter", {}).get("tests") or {}).items():
        try:
            compile(src, f"{name} public test {q}", "exec")
        except SyntaxError as e:  # otter does not escape quotes in test messages
            raise BuildError(f"{name}: public test {q} is not valid Python ({e.msg}, line {e.lineno}); "
                             "avoid double quotes in success/failure messages") from None
    text = nbformat.writes(nb)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "# SOLUTION", "BEGIN TESTS", "hidden=True",
                   "otter_assign_solution_cell"):
        if marker in text:
            raise BuildError(f"{name}: the student notebook still contains {marker!r}")
    path.write_text(text, encoding="utf-8")


def _pts(x) -> str:
    return f"{x:g} point{'' if x == 1 else 's'}"


def check_points_text(master: Path, info: dict) -> None:
    """The points the student reads (intro and each question) must match otter's config."""
    text = master.read_text(encoding="utf-8")
    auto = sum(q["points"] for q in info["questions"] if not q["manual"])
    manual = sum(q["points"] for q in info["questions"] if q["manual"])
    intro = f"{auto + manual:g} points: {auto:g} auto-graded, {manual:g} graded by hand"
    if intro not in text:
        raise BuildError(f"{master.stem}: the introduction should say '{intro}'")
    for i, q in enumerate(info["questions"], 1):
        if q["name"] != f"q{i}":
            raise BuildError(f"{master.stem}: questions should be named q1, q2, ... in order")
        label = (f"**Question {i}** (written, {_pts(q['points'])})" if q["manual"]
                 else f"**Question {i}** ({_pts(q['points'])})")
        if label not in text:
            raise BuildError(f"{master.stem}: question {i} should be introduced as '{label}'")


def check_zip(path: Path, name: str) -> None:
    """Every test file in the autograder zip must compile (otter writes messages unescaped)."""
    with zipfile.ZipFile(path) as zf:
        for n in zf.namelist():
            if n.startswith("tests/") and n.endswith(".py"):
                try:
                    compile(zf.read(n).decode("utf-8"), f"{name}/{n}", "exec")
                except SyntaxError as e:
                    raise BuildError(f"{name}: {n} in the autograder zip is not valid Python "
                                     f"({e.msg}, line {e.lineno}); avoid double quotes in "
                                     "success/failure messages") from None


def otter_assign(work: Path, name: str) -> None:
    """``otter assign <name>.ipynb dist`` in this process (otter is imported once per worker).

    Otter grades the solution notebook with the new autograder zip and fails unless it
    scores full marks. Its output is kept and shown only if it fails.
    """
    import contextlib
    import io

    from otter.assign import main as assign

    log = io.StringIO()
    here = os.getcwd()
    # The kernels otter starts write to the process's own stdout/stderr: catch those too.
    capture = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    try:
        os.chdir(work)
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            assign(f"{name}.ipynb", "dist")
    except Exception as e:  # otter raises plain exceptions (failed tests, bad syntax)
        capture.seek(0)
        text = log.getvalue() + capture.read().decode("utf-8", "replace")
        tail = (text.strip().splitlines() + [f"{type(e).__name__}: {e}"])[-25:]
        raise BuildError(f"{name}: otter assign failed\n  " + "\n  ".join(tail)) from None
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        capture.close()
        os.chdir(here)


def build(master: Path, force: bool) -> str:
    name = master.stem
    info = read_master(master)
    files = inputs(master, info)
    stamp = stamp_of(files)
    out = dist_dir(name, ROOT)
    student = ROOT / student_notebook(name)
    auto = [q for q in info["questions"] if not q["manual"]]
    manual = [q for q in info["questions"] if q["manual"]]
    summary = (f"{len(info['questions'])} questions: {len(auto)} auto "
               f"({sum(q['points'] for q in auto):g} pts) + {len(manual)} manual "
               f"({sum(q['points'] for q in manual):g} pts)")
    if not 4 <= len(info["questions"]) <= 8 or len(auto) * 2 < len(info["questions"]):
        raise BuildError(f"{name}: needs 4-8 questions, at least half auto-graded ({summary})")
    check_points_text(master, info)
    if (not force and student.is_file() and (out / STAMP).is_file()
            and (out / STAMP).read_text().strip() == stamp and list(out.glob("autograder/*.zip"))):
        return f"{name}: up to date ({summary})"

    import jupytext

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        work = Path(tmp)
        nb = jupytext.read(master)
        with_shared_config(nb, info)
        jupytext.write(nb, work / f"{name}.ipynb")
        (work / "requirements.txt").write_text(grading_requirements())
        (work / "data").mkdir()
        shutil.copy2(DATA / "datapackage.json", work / "data")
        for f in files:
            if f.parent == DATA and f.name != "datapackage.json":
                shutil.copy2(f, work / "data")
        (work / "usrok").mkdir()
        for f in USROK_FILES:
            shutil.copy2(USROK / f, work / "usrok")
        otter_assign(work, name)
        zips = list((work / "dist" / "autograder").glob("*.zip"))
        if len(zips) != 1:
            raise BuildError(f"{name}: expected one autograder zip, found {len(zips)}")
        check_zip(zips[0], name)
        with zipfile.ZipFile(zips[0], "a") as zf:  # the hand-graded questions, for the grades CSV
            zf.writestr(MANIFEST, json.dumps(manifest(info), indent=1))
        tidy_student(work / "dist" / "student" / f"{name}.ipynb", name)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(work / "dist", out)
        student.parent.mkdir(parents=True, exist_ok=True)
        # The student folder holds only the notebook (tests are in its metadata).
        for old in student.parent.iterdir():
            if old.is_file() and old.suffix == ".ipynb" and old != student:
                old.unlink()
        built = out / "student" / f"{name}.ipynb"
        if not student.is_file() or student.read_bytes() != built.read_bytes():
            shutil.copy2(built, student)  # unchanged notebooks keep their date: no page re-read
    (out / STAMP).write_text(stamp + "\n")
    return f"{name}: built in {time.monotonic() - t0:.0f} s ({summary})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="assignments to build (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="assignments built at once (default 2)")
    a = p.parse_args(argv)
    masters = master_paths(ROOT)
    if a.names:
        masters = [m for m in masters if m.stem in a.names]
        unknown = set(a.names) - {m.stem for m in masters}
        if unknown:
            p.error(f"no master for {sorted(unknown)}")
    if not masters:
        print("no assignment masters found in exercises/")
        return 0
    failed = 0
    # Processes, not threads: otter assign changes the working directory.
    with ProcessPoolExecutor(max_workers=max(1, min(a.jobs, len(masters)))) as pool:
        futures = [pool.submit(build, m, a.force) for m in masters]
        for fut in futures:
            try:
                print(fut.result(), flush=True)
            except BuildError as e:
                failed += 1
                print(f"FAILED {e}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
