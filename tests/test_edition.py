"""The in-browser edition (JupyterLite + Pyodide, built into _build/html/lite by lite/build.py).

The first tests read the built site and the build script: what the edition holds, that it
needs nothing from another host, the "Run in the browser" links, and that a missing or
altered Pyodide binary stops the build. The browser tests then use the edition as a student
would, in headless Chromium with every request to another host refused (and every other
host unresolvable): a chapter runs all its cells and draws its charts; an exercise's set-up
runs, ``grader.check`` passes a right answer and explains a wrong one; the work survives a
reload; File > Download gives a valid notebook. They share one browser (each notebook starts
its own Pyodide kernel, ~20 s on a quiet 2-core machine, much longer under load: the waits
are on conditions, with generous limits).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import nbformat
import pytest

from conftest import CHROMIUM_FLAGS, ROOT

EDITION = Path("lite")
BUDGET_MB = 80
EXERCISE = "exercises/ex03_easi/student/ex03_easi.ipynb"
ANSWER = "planned_cut = 7000\nplanned_cut"  # a right answer to its question 1


def load_build_module():
    spec = importlib.util.spec_from_file_location("lite_build_under_test", ROOT / "lite" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build_module()


@pytest.fixture(scope="module")
def edition(site) -> Path:
    path = site / EDITION
    assert (path / "lab" / "index.html").is_file(), "the book's build did not build the edition"
    return path


# ------------------------------------------------------------------------------ the built site
def test_edition_holds_every_chapter_exercise_data_and_the_course_wheel(edition):
    files = edition / "files"
    for page in build.edition_pages():
        nb = nbformat.read(files / f"{page}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert any(c.cell_type == "code" for c in nb.cells), page
    assert {"chapters/01_expanding_the_alliance", "chapters/09_assessing_the_principles"} <= set(build.edition_pages())
    students = sorted(ROOT.glob("exercises/*/student/*.ipynb"))
    assert len(students) >= 8
    for nb in students:
        assert (files / nb.relative_to(ROOT)).read_bytes() == nb.read_bytes(), nb.name
    package = json.loads((ROOT / "data" / "datapackage.json").read_text())
    for resource in package["resources"]:
        assert (files / "data" / resource["path"]).read_bytes() == (ROOT / "data" / resource["path"]).read_bytes()
    lock = json.loads((edition / build.RUNTIME_DIR / "pyodide-lock.json").read_text())
    assert lock["info"]["version"] == build.PYODIDE_VERSION
    assert lock["packages"]["usrok"]["imports"] == ["usrok"]
    # Every folder has a Contents API listing, and each listing names exactly what is there.
    for folder in [files, *[p for p in files.rglob("*") if p.is_dir()]]:
        listing = json.loads((edition / "api" / "contents" / folder.relative_to(files) / "all.json").read_text())
        assert sorted(c["name"] for c in listing["content"]) == sorted(p.name for p in folder.iterdir())


def test_edition_ships_every_byte_it_needs(edition, site):
    """The runtime is local, every package in the lock is there with its checksum, no source
    maps, no PyPI fallback, and no page (book or edition) links a web font service."""
    config = json.loads((edition / "jupyter-lite.json").read_text())["jupyter-config-data"]
    kernel = config["litePluginSettings"]["@jupyterlite/pyodide-kernel-extension:kernel"]
    assert kernel["pyodideUrl"] == f"./{build.RUNTIME_DIR}/pyodide.js" and kernel["disablePyPIFallback"] is True
    assert all(url.startswith("./") for url in kernel["pipliteUrls"])
    runtime = edition / build.RUNTIME_DIR
    lock = json.loads((runtime / "pyodide-lock.json").read_text())
    for name, entry in lock["packages"].items():
        data = (runtime / entry["file_name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert set(entry["depends"]) <= set(lock["packages"]), name
    assert {"numpy", "pandas", "altair", "otter-grader"} <= set(lock["packages"])
    assert not list(edition.rglob("*.map")), "source maps in the edition"
    fonts = [str(p.relative_to(site)) for p in site.rglob("*.html") if "fonts.googleapis" in p.read_text(errors="ignore")]
    assert not fonts, f"pages loading Google Fonts: {fonts[:5]}"
    size = sum(p.stat().st_size for p in edition.rglob("*") if p.is_file())
    assert size <= BUDGET_MB * 1e6, f"the edition is {size / 1e6:.1f} MB (budget {BUDGET_MB} MB)"


def _lite_links(html: str) -> list[str]:
    return [unquote(parse_qs(urlparse(h.replace("&amp;", "&")).query)["path"][0])
            for h in re.findall(r'href="([^"]*lite/lab/index\.html\?path=[^"]+)"', html)]


def test_run_in_the_browser_on_every_chapter_and_beside_every_exercise_binder_link(site, edition):
    for page in build.edition_pages():
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        assert "launch-browser-button" in html and "Run in the browser" in html, f"{page}: no button"
        assert f"{page}.ipynb" in _lite_links(html), f"{page}: the button does not open this page"
        for target in _lite_links(html):
            assert (edition / "files" / target).is_file(), f"{page} links to missing {target}"
        # the links are relative to the page, so the site works under any base URL
        for href in re.findall(r'href="([^"]*lite/lab/index\.html)\?', html):
            assert (site / Path(page).parent / href).resolve() == (edition / "lab" / "index.html").resolve()
    exercises = 0
    for page in (site / "chapters").glob("*.html"):
        html = page.read_text(encoding="utf-8")
        binder = {unquote(parse_qs(urlparse(u.replace("&amp;", "&")).query)["urlpath"][0]).removeprefix("lab/tree/")
                  for u in re.findall(r'href="(https://mybinder\.org/v2/gh/[^"]+)"', html)}
        for notebook in (b for b in binder if b.startswith("exercises/")):
            exercises += 1
            assert notebook in _lite_links(html), f"{page.name}: {notebook} has Binder but no browser link"
    assert exercises >= 8
    assert "launch-browser-button" not in (site / "chapters" / "instructor_guide.html").read_text(encoding="utf-8")


def _binaries_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "pyodide"
    shutil.copytree(build.BINARIES, folder)
    return folder


def test_a_missing_or_altered_binary_stops_the_build_naming_package_and_checksum(tmp_path, monkeypatch):
    npm_lock = build.npm_pyodide()
    needed = {"numpy", "ssl", "openssl", "sqlite3"}
    folder = _binaries_copy(tmp_path)
    monkeypatch.setattr(build, "BINARIES", folder)
    monkeypatch.setattr(build, "ROOT", tmp_path)
    assert set(build.verified_binaries(npm_lock, needed)) == needed  # the committed files pass

    numpy = npm_lock["packages"]["numpy"]
    (folder / numpy["file_name"]).unlink()
    with pytest.raises(build.EditionError) as missing:
        build.verified_binaries(npm_lock, needed)
    assert "package numpy 2.0.2" in str(missing.value) and numpy["sha256"] in str(missing.value)
    assert "missing" in str(missing.value)

    ssl = npm_lock["packages"]["ssl"]
    data = bytearray((folder / ssl["file_name"]).read_bytes())
    data[-100] ^= 0xFF
    (folder / ssl["file_name"]).write_bytes(bytes(data))
    with pytest.raises(build.EditionError) as altered:
        build.verified_binaries(npm_lock, needed - {"numpy"})
    message = str(altered.value)
    assert "package ssl 1.0.0" in message and ssl["sha256"] in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_a_dependency_neither_shipped_nor_explained_stops_the_build():
    with pytest.raises(build.EditionError, match="package altair requires rpds-py"):
        build.browser_depends("altair", ["rpds-py>=0.7"], {"altair"}, set())
    assert build.browser_depends("otter-grader", ["click>=8", "pandas"], {"pandas"}, set()) == ["pandas"]
    assert build.browser_depends("x", ["pexpect; sys_platform != 'emscripten'"], set(), set()) == []


def test_in_the_browser_the_package_says_what_needs_binder(monkeypatch):
    from usrok import browser, grading

    note = browser.missing_module_note("vl_convert.something")
    assert "vl_convert" in note and "PNG" in note and "Binder" in note
    assert "Binder" in browser.missing_module_note("scipy")
    monkeypatch.setattr(browser, "IN_BROWSER", True)
    with pytest.raises(browser.NotInBrowser, match="Batch grading.*Binder"):
        grading.grade_folder("x.zip", ".", "out.csv")


def test_assignment_facts_without_the_master_match_the_master():
    """Chapter 9 reads the ex09 master, which the edition does not ship: the student notebook
    gives the same questions, points and titles."""
    from usrok.browser import master_from_student_notebook
    from usrok.assignments import assignments

    for master in assignments():
        public = master_from_student_notebook(master["path"])
        for key in ("name", "title", "chapter", "minutes", "outcomes", "objectives", "questions"):
            assert public[key] == master[key], (master["name"], key)
        assert set(public["resources"]) <= set(master["resources"])


def test_every_number_in_the_prose_is_stored_as_the_book_shows_it(edition, site):
    """Each {eval} of a chapter's prose has its result stored in its Markdown cell, as the book
    pasted it: the student reads the numbers before running anything (jupyterlab-myst shows
    stored results)."""
    quoted = 0
    for page in build.edition_pages():
        nb = nbformat.read(edition / "files" / f"{page}.ipynb", as_version=4)
        html = unescape((site / f"{page}.html").read_text(encoding="utf-8"))
        for cell in (c for c in nb.cells if c.cell_type == "markdown"):
            expressions = list(dict.fromkeys(build.EVAL_ROLE.findall(cell.source)))
            stored = {e["expression"]: e["result"] for e in cell.metadata.get("user_expressions", [])}
            assert list(stored) == expressions, f"{page}: numbers not stored for {set(expressions) - set(stored)}"
            for expression, result in stored.items():
                text = result["data"]["text/plain"]
                assert result["status"] == "ok" and text.strip(), (page, expression, result)
                assert text in html, f"{page}: {expression} is {text!r} in the edition but not in the book"
                quoted += 1
    assert quoted >= 200  # about 300 numbers in chapters 1-9, the timeline and the class view


def test_the_kernel_answers_the_user_expressions_jupyterlab_myst_sends(monkeypatch):
    """jupyterlab-myst asks for a Markdown cell's {eval} results as the execute request's
    user_expressions; the Pyodide kernel (0.6) ignores them unless the course package makes it
    answer (usrok.browser.answer_user_expressions), in the format ipykernel uses."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from IPython.core.interactiveshell import InteractiveShell

    from usrok import browser, page

    monkeypatch.setitem(page._GLUED, "peak", 326863)
    shell = InteractiveShell.instance()
    monkeypatch.setitem(shell.user_ns, "glued", page.glued)

    class PyodideKernel:  # the part of pyodide_kernel.kernel.PyodideKernel the patch uses
        interpreter = shell
        _parent_header = {"content": {"code": "", "user_expressions": {"0": 'glued("peak:,d")', "1": "no_such_name"}}}

        async def run(self, code):
            return {"status": "ok", "payload": []}

    kernel = PyodideKernel()
    browser.answer_user_expressions(kernel)
    # In a thread of its own: the session's sync Playwright keeps an event loop running in
    # this one, and asyncio.run refuses to start beside it.
    with ThreadPoolExecutor(1) as pool:
        answers = pool.submit(asyncio.run, kernel.run("")).result()["user_expressions"]
    assert answers["0"] == {"status": "ok", "data": {"text/plain": "326,863"}, "metadata": {}}
    assert answers["1"]["status"] == "error" and answers["1"]["ename"] == "NameError"


# ------------------------------------------------------------------------------ in the browser
DOCUMENT_READY = "(() => { const p = window.jupyterapp && jupyterapp.shell.currentWidget; return p && p.context && p.context.path === %s && p.context.isReady && p.content.widgets.length > 0; })()"
KERNEL_READY = "(() => { const p = window.jupyterapp && jupyterapp.shell.currentWidget; return p && p.context && p.context.path === %s && p.sessionContext.session && p.sessionContext.session.kernel && p.sessionContext.session.kernel.status === 'idle'; })()"


class Lab:
    """A JupyterLab page of the edition, driven through its application object."""

    def __init__(self, page, base: str):
        self.page, self.base = page, base

    def open(self, path: str, timeout: float = 300_000, reload: bool = False, kernel: bool = True) -> None:
        """Open ``path`` (unless it is open already) and wait until its kernel is idle (or, with
        ``kernel=False``, until its contents are loaded)."""
        if reload or self.page.url.split("?path=")[-1] != path:
            self.page.goto(f"{self.base}/lite/lab/index.html?path={path}", wait_until="load")
        ready = KERNEL_READY if kernel else DOCUMENT_READY
        self.page.wait_for_function(ready % json.dumps(path), timeout=timeout, polling=500)

    def cells(self) -> list[dict]:
        return self.page.evaluate("""jupyterapp.shell.currentWidget.content.widgets.map(c => ({
            type: c.model.type, source: c.model.sharedModel.getSource(),
            count: c.model.type === 'code' ? c.model.executionCount : null,
            outputs: c.model.type === 'code' ? c.model.outputs.toJSON() : []}))""")

    def index(self, starts: str) -> int:
        return next(i for i, c in enumerate(self.cells()) if c["source"].startswith(starts))

    def set_source(self, i: int, source: str) -> None:
        self.page.evaluate("([i, s]) => jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.setSource(s)",
                           [i, source])

    def run(self, i: int, timeout: float = 300_000) -> dict:
        """Run cell i and wait until it has finished; returns the cell."""
        self.page.evaluate("""async (i) => { const p = jupyterapp.shell.currentWidget;
            p.content.activeCellIndex = i; p.content.widgets[i].model.executionCount = null;
            await jupyterapp.commands.execute('notebook:run-cell'); }""", i)
        self.page.wait_for_function(
            """(i) => { const p = jupyterapp.shell.currentWidget; const c = p.content.widgets[i];
                return c.model.executionCount !== null && p.sessionContext.session.kernel.status === 'idle'; }""",
            arg=i, timeout=timeout, polling=250)
        return self.cells()[i]

    def run_all(self, timeout: float = 900_000) -> list[dict]:
        self.page.evaluate("jupyterapp.commands.execute('notebook:run-all-cells')")
        self.page.wait_for_function(
            """() => { const p = jupyterapp.shell.currentWidget;
                const code = p.content.widgets.filter(c => c.model.type === 'code');
                return code.every(c => c.model.executionCount !== null) && p.sessionContext.session.kernel.status === 'idle'; }""",
            timeout=timeout, polling=500)
        return self.cells()


def text_of(cell: dict) -> str:
    parts = []
    for out in cell["outputs"]:
        if out["output_type"] == "stream":
            parts.append("".join(out["text"]))
        elif out["output_type"] == "error":
            parts.append(out["ename"] + ": " + out["evalue"] + "\n" + "\n".join(out["traceback"]))
        else:
            data = out.get("data", {})
            parts.append("".join(data.get("text/plain", "")) + "".join(data.get("text/html", "")))
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


def errors_in(cells: list[dict]) -> list[str]:
    return [f"cell {i}: {text_of({'outputs': [o]})[:1500]}" for i, c in enumerate(cells)
            for o in c["outputs"] if o["output_type"] == "error"]


@pytest.fixture(scope="module")
def offline(server, playwright_driver):
    """One headless Chromium for the module: only 127.0.0.1 answers, every other host is
    unresolvable and its requests are refused and recorded. The application object is exposed
    to the test (``exposeAppInBrowser``, set in the served jupyter-lite.json only)."""
    blocked: list[str] = []
    chromium = playwright_driver.chromium.launch(
        executable_path=shutil.which("chromium"), headless=True,
        args=CHROMIUM_FLAGS + ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)

    def route(r):
        url = r.request.url
        if not url.startswith(server):
            blocked.append(url)
            return r.abort()
        if urlparse(url).path == "/lite/jupyter-lite.json":
            response = r.fetch()
            config = response.json()
            config["jupyter-config-data"]["exposeAppInBrowser"] = True
            return r.fulfill(response=response, body=json.dumps(config))
        return r.continue_()

    context.route("**/*", route)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    yield {"lab": Lab(page, server), "page": page, "blocked": blocked, "problems": problems}
    context.close()
    chromium.close()


def chart_count(page) -> int:
    """Charts drawn in the open notebook (Vega output with its SVG or canvas)."""
    return page.evaluate("""[...jupyterapp.shell.currentWidget.node.querySelectorAll('.vega-embed')]
        .filter(e => e.querySelector('canvas, svg.marks')).length""")


# The rendered text of each Markdown cell (jupyterlab-myst's widget, class "myst"; the cell's
# hidden editor holds the source).
RENDERED = "(c) => [...c.node.querySelectorAll('.myst')].map(m => m.textContent).join(' ')"
PROSE = f"""(() => jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === 'markdown')
    .map(c => ({{text: ({RENDERED})(c), source: c.model.sharedModel.getSource(),
                errors: c.node.querySelectorAll('.myst [data-mime-type="application/vnd.jupyter.stderr"]').length}})))()"""


def prose_problems(page) -> list[str]:
    """Markdown cells whose rendered text shows an {eval} expression instead of its value, shows
    an error, or (with {eval} in its source) is not rendered."""
    return [f"markdown cell {i}: {c['text'][:300] or '(not rendered)'}" for i, c in enumerate(page.evaluate(PROSE))
            if "glued(" in c["text"] or c["errors"] or ("{eval}" in c["source"] and not c["text"].strip())]


def test_a_chapter_runs_every_cell_and_draws_the_book_s_charts(offline, site):
    """Chapter 1 in the edition: its prose shows the book's numbers as soon as it opens, every
    cell runs with no error, every chart of the book is drawn, the numbers are still there after
    Run All, and they are the kernel's (a number glued anew shows when its cell is run again)."""
    chapter = "chapters/01_expanding_the_alliance"
    lab, page = offline["lab"], offline["page"]
    expression = 'glued("south-korea-peak:,d")'
    number = build.expression_text(expression, build.glued_values(site.parent / "jupyter_execute", chapter))
    assert number and number in (site / f"{chapter}.html").read_text(encoding="utf-8")  # the book's "326,863"
    lab.open(f"{chapter}.ipynb")
    cell = lab.index("How to read it")
    assert expression in lab.cells()[cell]["source"]
    shows = f"([i, text]) => ({RENDERED})(jupyterapp.shell.currentWidget.content.widgets[i]).includes(text)"
    page.wait_for_function(shows, arg=[cell, number], timeout=60_000, polling=250)
    assert not prose_problems(page), prose_problems(page)[:3]

    cells = lab.run_all()
    assert not errors_in(cells), "\n".join(errors_in(cells))
    shown = (site / f"{chapter}.html").read_text(encoding="utf-8").count('class="usrok-chart"')
    assert shown >= 2
    page.wait_for_function(
        f"""[...jupyterapp.shell.currentWidget.node.querySelectorAll('.vega-embed')]
            .filter(e => e.querySelector('canvas, svg.marks')).length >= {shown}""", timeout=120_000)
    assert chart_count(page) == shown
    page.wait_for_function(shows, arg=[cell, number], timeout=60_000, polling=250)
    assert not prose_problems(page), prose_problems(page)[:3]
    # ... and kept in the notebook (what a reload shows): without the kernel's answer,
    # jupyterlab-myst deletes them from the cell's metadata when it runs.
    stored = page.evaluate("(i) => jupyterapp.shell.currentWidget.content.widgets[i].model.getMetadata('user_expressions')", cell)
    assert {"expression": expression, "result": {"status": "ok", "data": {"text/plain": number}, "metadata": {}}} in (stored or []), stored

    # The kernel answers the prose's expressions: glue another value, run the paragraph again.
    page.evaluate("jupyterapp.commands.execute('notebook:insert-cell-below')")
    extra = page.evaluate("jupyterapp.shell.currentWidget.content.activeCellIndex")
    lab.set_source(extra, 'glue("south-korea-peak", 123456789, display=False)')
    assert not errors_in([lab.run(extra)])
    page.evaluate("""async (i) => { const p = jupyterapp.shell.currentWidget; p.content.activeCellIndex = i;
        await jupyterapp.commands.execute('notebook:run-cell'); }""", cell)
    page.wait_for_function(shows, arg=[cell, "123,456,789"], timeout=120_000, polling=250)
    assert not offline["blocked"], f"requests to other hosts: {offline['blocked'][:5]}"
    assert not offline["problems"], offline["problems"][:5]


def test_an_exercise_sets_up_and_grader_check_passes_and_fails(offline):
    lab = offline["lab"]
    lab.open(EXERCISE)
    setup = lab.run(lab.index("# Run this cell first"))
    assert not errors_in([setup]), errors_in([setup])
    answer, check = lab.index("planned_cut = ..."), lab.index('grader.check("q1")')
    lab.set_source(answer, "planned_cut = -7000\nplanned_cut")
    lab.run(answer)
    failed = text_of(lab.run(check))
    assert "planned_cut should be a positive whole number of people." in failed, failed
    lab.set_source(answer, ANSWER)
    lab.run(answer)
    passed = text_of(lab.run(check))
    assert "q1 results: All test cases passed!" in passed, passed
    # An import the edition cannot satisfy says which feature needs Binder.
    lab.page.evaluate("jupyterapp.commands.execute('notebook:insert-cell-below')")
    new = lab.page.evaluate("jupyterapp.shell.currentWidget.content.activeCellIndex")
    lab.set_source(new, "import vl_convert")
    missing = text_of(lab.run(new))
    assert "ModuleNotFoundError" in missing and "charts as png" in missing.lower() and "Binder" in missing, missing
    lab.page.evaluate("jupyterapp.commands.execute('notebook:delete-cell')")
    assert not offline["blocked"], f"requests to other hosts: {offline['blocked'][:5]}"


def test_the_work_survives_a_reload(offline):
    """An answer typed into the exercise is saved to browser storage (autosave) and is there
    after a reload."""
    lab = offline["lab"]
    lab.open(EXERCISE, kernel=False)
    lab.set_source(lab.index("planned_cut = "), ANSWER)
    lab.page.wait_for_function("!jupyterapp.shell.currentWidget.context.model.dirty", timeout=120_000, polling=500)
    lab.open(EXERCISE, reload=True, kernel=False)
    assert ANSWER in [c["source"] for c in lab.cells()]


def test_the_download_is_a_valid_notebook_with_the_answers(offline, tmp_path):
    lab = offline["lab"]
    lab.open(EXERCISE, kernel=False)
    lab.set_source(lab.index("planned_cut = "), ANSWER)
    with lab.page.expect_download(timeout=60_000) as download:
        lab.page.evaluate("jupyterapp.commands.execute('docmanager:download')")
    target = tmp_path / download.value.suggested_filename
    download.value.save_as(target)
    assert target.name.endswith("ex03_easi.ipynb")  # browsers turn the folders into "exercises_..._"
    nb = nbformat.read(target, as_version=4)
    nbformat.validate(nb)
    assert any(c.source == ANSWER for c in nb.cells)
    committed = nbformat.read(ROOT / EXERCISE, as_version=4)
    assert nb.metadata["otter"] == committed.metadata["otter"]  # what otter needs to grade it
