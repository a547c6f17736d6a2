"""The course bundle (issue 13, item 5): notebooks that run outside the course site.

- Through the page: headless Chromium opens the preface, opens the download menu, clicks
  "Course bundle (.zip)" and saves the download; the zip is unpacked in a fresh folder, set
  up with the one line the page shows, and a chapter and an exercise notebook are executed
  there (nbclient) with no error, importing the course package from the unpacked folder.
- The first cell: where the course package is missing, a chapter's and a student notebook's
  set-up cell end with the plain message (what to do), not a traceback; the same cell without
  the guard gives a traceback, and the check below says so (it bites).
- The zip is deterministic (same inputs, same bytes) and named after its inputs.

About the set-up. The page's line, ``python -m pip install --no-deps -r requirements.txt``,
installs every pinned package from PyPI: minutes, and CI may be offline. The tests run that very line (with
``--no-index --no-build-isolation`` added) in a new virtual environment that sees the course
environment's installed packages through a ``.pth`` file naming its site-packages. Python does
not read the ``.pth`` files inside a folder added that way, so the course environment's own
(editable) ``usrok`` is not importable there: pip finds every pinned package satisfied and
installs only the bundle's own package, from the unpacked ``src/``. The full install from PyPI
is what tests/test_run_anywhere.py's ``fresh_python`` does for the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT
from usrok import bundle

CHAPTER = "chapters/03_after_the_cold_war"
EXERCISE = "exercises/ex03_easi/student/ex03_easi.ipynb"


# ----------------------------------------------------------------------------- helpers
def _python_without_usrok(where: Path) -> Path:
    """A venv that sees the course environment's packages but not its ``usrok`` (see above)."""
    venv.create(where, with_pip=False)
    python = where / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "course-environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    found = subprocess.run([str(python), "-c", "import usrok"], capture_output=True, text=True, cwd=where)
    assert found.returncode != 0, "usrok is importable: the environment would not show the message"
    return python


def _env(python: Path) -> dict:
    """The environment of a shell where ``python``'s venv is activated (and nothing of ours leaks in)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "USROK_DATA", "VIRTUAL_ENV")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    return env


RUN = r"""
import json, sys
import nbclient, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.append(nbformat.v4.new_code_cell("import usrok; print(usrok.__file__)"))
if sys.argv[2] == "first":
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells = [nb.cells[first]]
client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                                 resources={"metadata": {"path": sys.argv[3]}})
client.execute()
print(json.dumps([{"source": c.source, "outputs": c.get("outputs", [])} for c in nb.cells if c.cell_type == "code"]))
"""


def _execute(python: Path, notebook: Path, only_first: bool = False) -> list[dict]:
    """Execute ``notebook`` in its own folder with ``python``'s kernel; its code cells and outputs."""
    result = subprocess.run([str(python), "-c", RUN, str(notebook), "first" if only_first else "all",
                             str(notebook.parent)], cwd=notebook.parent, env=_env(python),
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{notebook.name}: nbclient failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def _errors(cells: list[dict]) -> list[str]:
    return [f"{o['ename']}: {o['evalue'][:300]} (cell: {c['source'][:80]!r})"
            for c in cells for o in c["outputs"] if o.get("output_type") == "error"]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain_message_problems(cell: dict) -> list[str]:
    """Why a set-up cell's output is not the plain message (empty when it is)."""
    errors = [o for o in cell["outputs"] if o.get("output_type") == "error"]
    if len(errors) != 1:
        return [f"expected the set-up cell to stop with one message, got {len(errors)} error outputs"]
    shown = "\n".join(ANSI.sub("", line) for line in errors[0]["traceback"])
    problems = []
    if errors[0]["ename"] != bundle.GUARD_CLASS:
        problems.append(f"stopped with {errors[0]['ename']}, not the course's message")
    for trace in ("Traceback", "ModuleNotFoundError", 'File "', "----> "):
        if trace in shown:
            problems.append(f"the reader sees a traceback ({trace!r} in the output)")
    for needed in (bundle.SETUP_COMMAND, "course bundle", "'usrok'", "Binder", "in-browser edition"):
        if needed not in shown:
            problems.append(f"the message does not say {needed!r}")
    return problems


# ----------------------------------------------------------------------------- the first cell
@pytest.fixture(scope="module")
def python_without_usrok(tmp_path_factory) -> Path:
    return _python_without_usrok(tmp_path_factory.mktemp("no-usrok") / "venv")


@pytest.mark.slow
def test_first_cell_says_what_to_do_when_the_course_package_is_missing(python_without_usrok, tmp_path):
    chapter = tmp_path / "chapter.ipynb"
    chapter.write_bytes(bundle._chapter_notebook(ROOT / f"{CHAPTER}.md"))  # as in the bundle
    student = tmp_path / "ex03_easi.ipynb"
    shutil.copyfile(ROOT / EXERCISE, student)
    for notebook in (chapter, student):
        cell = _execute(python_without_usrok, notebook, only_first=True)[0]
        assert bundle.is_guarded(cell["source"]), f"{notebook.name}: the set-up cell is not guarded"
        assert plain_message_problems(cell) == [], f"{notebook.name}: {plain_message_problems(cell)}"

    # It bites: the same cell without the guard shows a traceback, and the check says so.
    nb = nbformat.read(student, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.source = bundle.unguard_setup_cell(setup.source)
    assert not bundle.is_guarded(setup.source)
    nbformat.write(nb, student)
    cell = _execute(python_without_usrok, student, only_first=True)[0]
    found = plain_message_problems(cell)
    assert any("traceback" in p for p in found) and any("not the course's message" in p for p in found), found


def test_every_student_notebook_and_chapter_starts_with_the_guard():
    """The generators wrote the guard (exercises/build_assignments.py, tools/notebook_form.py)."""
    unguarded = []
    for path in sorted(ROOT.glob("exercises/*/student/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        setup = next(c for c in nb.cells if c.cell_type == "code")
        if not bundle.is_guarded(setup.source) or bundle.guard_setup_cell(setup.source) != setup.source:
            unguarded.append(path.name)
    for page in bundle.notebook_pages(ROOT):
        import jupytext

        nb = jupytext.read(ROOT / f"{page}.md")
        setup = next(c for c in nb.cells if c.cell_type == "code")
        if "usrok" in setup.source and "remove-cell" in setup.metadata.get("tags", []) \
                and not bundle.is_guarded(setup.source):
            unguarded.append(page)
    assert not unguarded, f"set-up cells without the plain message: {unguarded}"


def test_guard_keeps_the_authors_cell():
    cell = "# set-up\nimport re\n\nimport pandas as pd\nfrom usrok import data\n\nx = data.load('t')"
    guarded = bundle.guard_setup_cell(cell)
    assert bundle.is_guarded(guarded) and guarded.startswith("# set-up\ntry:")
    assert bundle.guard_setup_cell(guarded) == guarded, "not idempotent"
    assert bundle.unguard_setup_cell(guarded) == cell
    compile(guarded, "cell", "exec")
    assert bundle.guard_setup_cell("import pandas as pd\nx = 1") == "import pandas as pd\nx = 1"  # no usrok


# ----------------------------------------------------------------------------- the zip
@pytest.mark.slow
def test_bundle_is_deterministic_and_named_after_its_inputs(tmp_path):
    first = bundle.write_bundle(ROOT, tmp_path / "a")
    second = bundle.write_bundle(ROOT, tmp_path / "b")
    assert first.name == second.name == bundle.bundle_name(ROOT)
    assert re.fullmatch(rf"{bundle.FOLDER}-[0-9a-f]{{12}}\.zip", first.name)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    files = bundle.contents(ROOT)
    changed = dict(files, **{"data/extra.csv": ROOT / "data" / "us_sites.csv"})
    assert bundle.input_key(ROOT, changed) != bundle.input_key(ROOT, files)
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert names == sorted(names) and all(n.startswith(f"{bundle.FOLDER}/") for n in names)
        assert {zi.date_time for zi in zf.infolist()} == {bundle.EPOCH}


def test_bundle_contents_are_what_students_need_and_no_answer_key():
    files = bundle.contents(ROOT)
    assert f"{CHAPTER}.ipynb" in files and EXERCISE in files
    for needed in ("requirements.txt", "pyproject.toml", "src/usrok/__init__.py", "src/usrok/data.py",
                   "data/datapackage.json", "data/us_troops_by_host.csv"):
        assert needed in files, f"the bundle lacks {needed}"
    assert "chapters/instructor_guide.ipynb" not in files
    bad = [rel for rel in files if "dist" in rel.split("/") or "autograder" in rel
           or (rel.startswith("exercises/") and rel.endswith(".md"))]
    assert not bad, f"answer-key files in the bundle: {bad}"
    requirements = bundle.student_requirements(ROOT).decode("utf-8").splitlines()
    assert "-e ." in requirements, "the one-line set-up would not install the course package"
    pins = {line.split("==")[0]: line for line in requirements if "==" in line and not line.startswith((" ", "#"))}
    lock = {line.split("==")[0]: line for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
            if "==" in line and not line.startswith((" ", "#"))}
    assert "playwright" not in pins and "jupyterlite-core" not in pins, "a package Binder leaves out"
    assert {"pandas", "altair", "otter-grader", "jupyterlab", "vl-convert-python"} <= set(pins)
    assert all(lock[name] == line for name, line in pins.items()), "a pin differs from the lock"


# ----------------------------------------------------------------------------- through the page
def test_download_set_up_and_run_as_the_page_says(browser, server, tmp_path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        page = ctx.new_page()
        page.goto(f"{server}/intro.html")
        setup = [t.strip() for t in page.locator("article pre").all_inner_texts() if "pip install" in t]
        assert setup == [bundle.SETUP_COMMAND], f"the preface shows the set-up as {setup}"
        page.locator(".dropdown-download-buttons > button").click()
        link = page.locator(f".dropdown-download-buttons .btn-{bundle.MENU_LABEL}")
        link.wait_for(state="visible", timeout=10_000)
        assert bundle.MENU_TEXT in link.inner_text()
        tooltip = link.get_attribute("title") or link.get_attribute("data-bs-original-title") or ""  # Bootstrap moves it
        assert bundle.SETUP_COMMAND in tooltip, "the menu entry's tooltip does not give the set-up"
        with page.expect_download(timeout=60_000) as download:
            link.click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
    finally:
        ctx.close()
    assert re.fullmatch(rf"{bundle.FOLDER}-[0-9a-f]{{12}}\.zip", saved.name), saved.name

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with zipfile.ZipFile(saved) as zf:
        zf.extractall(fresh)
    folder = fresh / bundle.FOLDER
    assert folder.is_dir() and sorted(p.name for p in fresh.iterdir()) == [bundle.FOLDER]
    assert bundle.SETUP_COMMAND in (folder / "README.md").read_text(encoding="utf-8")

    python = _python_without_usrok(tmp_path / "venv")
    command = setup[0].split()
    assert command[:4] == ["python", "-m", "pip", "install"]
    installed = subprocess.run([str(python), *command[1:], "--no-index", "--no-build-isolation", "-q",
                                "--disable-pip-version-check"], cwd=folder, env=_env(python),
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, f"set-up failed:\n{installed.stdout[-2000:]}\n{installed.stderr[-3000:]}"
    where = subprocess.run([str(python), "-c", "import usrok; print(usrok.__file__)"], cwd=fresh,
                           env=_env(python), capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(folder.resolve()), f"usrok comes from {where}"

    for notebook in (folder / f"{CHAPTER}.ipynb", folder / EXERCISE):
        cells = _execute(python, notebook)
        assert _errors(cells) == [], f"{notebook.name}: " + "\n".join(_errors(cells))
        used = "".join(o.get("text", "") for o in cells[-1]["outputs"]).strip()
        assert Path(used).resolve().is_relative_to(folder.resolve()), f"the kernel imported usrok from {used}"
        assert len(cells) > 5, f"{notebook.name}: only {len(cells)} code cells ran"


def test_every_page_offers_the_bundle(site):
    """The download menu of every page links to the one current bundle and downloads it."""
    bundles = sorted((site / bundle.BUNDLE_DIR).glob(f"{bundle.FOLDER}-*.zip"))
    assert [b.name for b in bundles] == [bundle.bundle_name(ROOT)], "one bundle, the current one"
    pages = [p for p in site.rglob("*.html") if not ({"_static", "_sources", "lite"} & set(p.relative_to(site).parts))
             and p.name not in ("search.html", "genindex.html") and "dropdown-download-buttons" in p.read_text(encoding="utf-8")]
    assert len(pages) >= 15
    for page in pages:
        html = page.read_text(encoding="utf-8")
        links = re.findall(rf'<a href="([^"]+)" download\s+class="btn btn-sm btn-{bundle.MENU_LABEL}', html)
        assert len(links) == 1, f"{page.relative_to(site)}: {len(links)} bundle links"
        assert (page.parent / links[0]).resolve() == bundles[0].resolve(), f"{page.relative_to(site)}: {links[0]}"

def test_notebook_form_check_reports_a_chapter_without_the_guard():
    """tools/notebook_form.py --check fails on a chapter whose set-up cell lost the guard, and
    converting puts the guard back."""
    sys.path.insert(0, str(ROOT / "tools"))
    import notebook_form

    path = ROOT / f"{CHAPTER}.md"
    text = path.read_text(encoding="utf-8")
    assert notebook_form.problems(text, path) == []
    start = text.index("try:  " + bundle.GUARD_COMMENT)
    end = text.index("\n```", start)
    plain = text[:start] + bundle.unguard_setup_cell(text[start:end]) + text[end:]
    assert plain != text and "CourseNotInstalled" not in plain
    assert any("set-up cell" in p for p in notebook_form.problems(plain, path))
    assert notebook_form.convert(plain, path) == text
