"""No answer key on the student site or in the student notebooks.

The secrets are collected from the assignments themselves:

- solution code: every line of a solution cell in the solution notebook
  (``exercises/<name>/dist/autograder/<name>.ipynb``) that the student notebook does not
  also contain (so prompts like ``planned_cut = ...`` are not secrets);
- sample answers to written questions: the Markdown solution cells of the masters;
- hidden tests: every line of a hidden test case in the autograder zip that the student
  notebook does not also contain.

Every file of the built site (``_build/html``: pages, ``_sources``, ``_downloads``,
``_static``, notebooks, JSON) is searched -- raw, as text with HTML tags removed and
entities decoded, and for notebooks cell by cell -- with whitespace collapsed, and so are
the committed student notebooks. Neither may contain a secret line or an otter marker, and
the site may not publish masters or autograder zips. The course bundle (``usrok.bundle``, the
one zip the site offers for download) is opened and searched file by file the same way: its
exercise notebooks must be the committed student notebooks, byte for byte, and it may hold
no master, solution notebook, autograder zip or ``dist/`` folder.

The site comes from the ``site`` fixture (``tests/conftest.py``: builds ``_build/html`` if
needed). Set ``USROK_SITE_HTML`` to check another build, e.g. one made with
``jupyter-book build . --path-output /tmp/x``.
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import zipfile
from pathlib import Path

import nbformat
import pytest

from usrok import assignments as course

ROOT = Path(__file__).resolve().parents[1]
NAMES = [a["name"] for a in course.assignments(ROOT)]
MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN TESTS", "END TESTS", "# SOLUTION", "otter_hidden",
           "hidden=True", "ASSIGNMENT CONFIG", "otter_assign_solution_cell"]  # (otter itself writes
# "<!-- BEGIN QUESTION -->" comments into student notebooks: not a secret)
MIN_CHARS = 16  # shorter lines (``}``, ``easi_chart``) are not evidence of anything
# Scaffolding that any chapter may share with a solution: imports, a call opened or closed
# on its own line, a keyword argument with an empty call (``x=charts.year_axis(),``), the
# loops closing a comprehension over the 9 x 5 matrix (``for a in range(1, 10) for p in ...}``).
GENERIC = re.compile(r"^(from \S+ )?import |\($|^\)|^\w+=[\w.]+\(\),?$"
                     r"|^(for \w+ in range\(\d+, \d+\) ?)+[)}\]]*$")


def secret(code: str, given: str) -> bool:
    return len(code) >= MIN_CHARS and code not in given and not GENERIC.search(code)
SOLUTION_MARK = re.compile(r"\s*#\s*(BEGIN |END )?SOLUTION( NO PROMPT)?\s*$|\s*# SOLUTION( NO PROMPT)?\b.*$")


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def student_notebook(name: str) -> Path:
    return ROOT / course.student_notebook(name)


def student_text(name: str) -> str:
    nb = nbformat.read(student_notebook(name), as_version=4)
    parts = [c.source for c in nb.cells]
    parts += list((nb.metadata.get("otter", {}).get("tests") or {}).values())
    return norm("\n".join(parts))


def solution_lines(name: str) -> set[str]:
    """Code lines of the solution cells that the student does not get."""
    nb = nbformat.read(course.solution_notebook(name, ROOT), as_version=4)
    given = student_text(name)
    secrets = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or "otter_assign_solution_cell" not in cell.metadata.get("tags", []) \
                and "# SOLUTION" not in cell.source and "BEGIN SOLUTION" not in cell.source:
            continue
        inside = False
        for line in cell.source.splitlines():
            if "# BEGIN SOLUTION" in line:
                inside = True
                continue
            if "# END SOLUTION" in line:
                inside = False
                continue
            if inside or re.search(r"#\s*SOLUTION", line):
                code = norm(SOLUTION_MARK.sub("", line))
                if secret(code, given):
                    secrets.add(code)
    return secrets


def sample_answers(name: str) -> set[str]:
    """Sentences of the Markdown sample answers in the master."""
    text = course.master_path(name, ROOT).read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- #raw -->\n# BEGIN SOLUTION\n<!-- #endraw -->\n(.*?)<!-- #raw -->\n# END SOLUTION",
                        text, re.S)
    sentences = set()
    for b in blocks:
        if "```" in b:  # code solutions are covered by solution_lines
            continue
        for s in re.split(r"(?<=[.!?])\s+", norm(re.sub(r"[*_`]", "", b))):
            if len(s) >= 40:
                sentences.add(s)
    return sentences


def hidden_test_lines(name: str) -> set[str]:
    """Body lines of the hidden test cases in the autograder zip."""
    zips = [course.autograder_zip(name, ROOT)]
    given = student_text(name)
    secrets = set()
    with zipfile.ZipFile(zips[0]) as zf:
        for member in zf.namelist():
            if not (member.startswith("tests/") and member.endswith(".py")):
                continue
            src = zf.read(member).decode("utf-8")
            for node in ast.parse(src).body:
                if not isinstance(node, ast.FunctionDef):
                    continue
                hidden = any(kw.arg == "hidden" and getattr(kw.value, "value", False)
                             for dec in node.decorator_list for kw in getattr(dec, "keywords", []))
                if not hidden:
                    continue
                for stmt in node.body:
                    for line in ast.get_source_segment(src, stmt).splitlines():
                        code = norm(line)
                        if secret(code, given):
                            secrets.add(code)
    return secrets


@pytest.fixture(scope="session")
def secrets() -> dict[str, set[str]]:
    out = {}
    for name in NAMES:
        s = solution_lines(name) | sample_answers(name) | hidden_test_lines(name)
        out[name] = s
    return out


def texts_of(path: Path) -> list[str]:
    """The ways a file can show a secret: raw, as rendered text, notebook cell sources."""
    raw = path.read_bytes().decode("utf-8", errors="ignore")
    out = [raw]
    if path.suffix in (".html", ".htm", ".xml", ".svg"):
        out.append(html.unescape(re.sub(r"<[^>]+>", "", raw)))
    if path.suffix in (".ipynb", ".json", ".js"):
        out.append(raw.replace('\\"', '"').replace("\\n", "\n"))
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
            out.append("\n".join("".join(c.get("source", "")) for c in nb.get("cells", [])))
            out.append(json.dumps(nb.get("metadata", {})))
        except ValueError:
            pass
    return [norm(t) for t in out]


@pytest.fixture(scope="session")
def html_dir(request) -> Path:
    env = os.environ.get("USROK_SITE_HTML")
    if env:
        path = Path(env)
        assert (path / "index.html").is_file(), f"USROK_SITE_HTML={env} is not a built site"
        return path
    return request.getfixturevalue("site")


def test_secrets_were_found(secrets):
    """The collection works (a broken collector would make the other tests vacuous)."""
    for name, s in secrets.items():
        assert len(s) >= 5, f"{name}: only {len(s)} secret lines collected"
    assert any("int(korea[1992] - korea[1990])" in line for line in secrets["ex03_easi"])
    assert any("easi_stages" in line for line in secrets["ex03_easi"])  # a hidden test line


def test_detector_sees_highlighted_code(secrets, tmp_path):
    """A secret line survives syntax highlighting and HTML escaping: the search still finds it."""
    line = sorted(l for l in secrets["ex03_easi"] if "korea[1992]" in l)[0]
    spans = "".join(f'<span class="n">{html.escape(ch)}</span>' for ch in line)
    page = tmp_path / "page.html"
    page.write_text(f"<pre>{spans}</pre>", encoding="utf-8")
    assert any(line in t for t in texts_of(page))
    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [line[:10], line[10:]]}]}))
    assert any(line in t for t in texts_of(nb))


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_has_no_answers(secrets, name):
    texts = texts_of(student_notebook(name))
    leaked = sorted(s for s in secrets[name] if any(s in t for t in texts))
    assert not leaked, f"{name}: student notebook contains {leaked[:5]}"
    marks = sorted(m for m in MARKERS if any(m in t for t in texts))
    assert not marks, f"{name}: student notebook contains otter markers {marks}"
    nb = nbformat.read(student_notebook(name), as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "outputs committed"


def test_site_has_no_answers(secrets, html_dir):
    everything = {line: name for name, lines in secrets.items() for line in lines}
    leaks, marked = [], []
    files = [p for p in html_dir.rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        if path.suffix in (".png", ".jpg", ".jpeg", ".gif", ".woff", ".woff2", ".ttf", ".ico", ".pdf"):
            continue
        texts = texts_of(path)
        rel = path.relative_to(html_dir)
        for line, name in everything.items():
            if any(line in t for t in texts):
                leaks.append(f"{rel}: {name}: {line[:80]}")
        for m in MARKERS:
            if any(m in t for t in texts):
                marked.append(f"{rel}: {m}")
    assert not leaks, "answers found in the built site:\n" + "\n".join(leaks[:20])
    assert not marked, "otter markers found in the built site:\n" + "\n".join(marked[:20])


def edition_runtime(html_dir: Path) -> set[Path]:
    """The in-browser edition's Pyodide files (archives that are not autograders): those its
    pyodide-lock.json lists, and the standard library archive."""
    runtime = set()
    for lock_file in (html_dir / "lite" / "static").glob("pyodide*/pyodide-lock.json"):
        lock = json.loads(lock_file.read_text(encoding="utf-8"))
        runtime |= {lock_file.parent / p["file_name"] for p in lock["packages"].values()}
        runtime.add(lock_file.parent / "python_stdlib.zip")
    return runtime


def test_edition_archives_have_no_answers(secrets, html_dir):
    """Wheels and zips of the in-browser edition, opened: no answer in any file inside (the
    site scan above sees only their compressed bytes)."""
    everything = {line: name for name, lines in secrets.items() for line in lines}
    archives = [p for p in html_dir.rglob("*") if p.suffix in (".whl", ".zip") and p.is_file()]
    assert any(p.name.startswith("usrok-") for p in archives), "the edition's course wheel is missing"
    leaks = []
    for archive in archives:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if member.endswith((".py", ".json", ".ipynb", ".md", ".txt", ".csv", ".yml", ".yaml")):
                    text = norm(zf.read(member).decode("utf-8", errors="ignore"))
                    leaks += [f"{archive.name}/{member}: {everything[l]}: {l[:80]}" for l in everything if l in text]
    assert not leaks, "answers found in the edition's archives:\n" + "\n".join(leaks[:20])


def course_bundles(html_dir: Path) -> set[Path]:
    from usrok.bundle import BUNDLE_DIR, FOLDER

    return set((html_dir / BUNDLE_DIR).glob(f"{FOLDER}-*.zip"))


def test_course_bundle_has_no_answers(secrets, html_dir, tmp_path):
    """The course bundle, unpacked: every file searched for secrets and otter markers; no
    master, solution or autograder; the exercise notebooks are the committed student ones."""
    bundles = course_bundles(html_dir)
    assert len(bundles) == 1, f"expected one course bundle, found {sorted(p.name for p in bundles)}"
    everything = {line: name for name, lines in secrets.items() for line in lines}
    students = {student_notebook(n).read_bytes(): n for n in NAMES}
    with zipfile.ZipFile(bundles.pop()) as zf:
        zf.extractall(tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 20
    leaks, marked, bad = [], [], []
    for path in files:
        rel = path.relative_to(tmp_path)
        parts = rel.parts
        if ("dist" in parts or "autograder" in path.name or path.suffix == ".zip"
                or (path.stem in NAMES and path.suffix != ".ipynb")):
            bad.append(str(rel))
        if path.suffix == ".ipynb" and path.stem in NAMES and path.read_bytes() not in students:
            bad.append(f"{rel} (not the committed student notebook)")
        texts = texts_of(path)
        leaks += [f"{rel}: {name}: {line[:80]}" for line, name in everything.items() if any(line in t for t in texts)]
        if "src" not in parts:  # the package's code names otter's markers to read masters
            marked += [f"{rel}: {m}" for m in MARKERS if any(m in t for t in texts)]
    assert not bad, f"answer-key files in the course bundle: {bad}"
    assert not leaks, "answers found in the course bundle:\n" + "\n".join(leaks[:20])
    assert not marked, "otter markers found in the course bundle:\n" + "\n".join(marked[:20])
    assert sum(p.suffix == ".ipynb" and p.stem in NAMES for p in files) == len(NAMES), "a student notebook is missing"


def test_site_publishes_no_masters_or_autograders(html_dir):
    runtime = edition_runtime(html_dir) | course_bundles(html_dir)  # both opened and searched above
    bad = [p.relative_to(html_dir) for p in html_dir.rglob("*") if p.is_file() and p not in runtime and (
        p.suffix == ".zip" or "autograder" in p.name or "dist" in p.relative_to(html_dir).parts
        or (p.stem in NAMES and p.suffix != ".ipynb")
        or (p.name.startswith(tuple(NAMES)) and p.suffix in (".md", ".txt") ))]
    assert not bad, f"published: {bad}"


def test_published_notebooks_are_the_student_notebooks(html_dir):
    """Any exercise notebook in the site is byte-for-byte a committed student notebook."""
    students = {student_notebook(n).read_bytes(): n for n in NAMES}
    for p in html_dir.rglob("ex0*.ipynb"):
        assert p.read_bytes() in students, f"{p.relative_to(html_dir)} is not a committed student notebook"
