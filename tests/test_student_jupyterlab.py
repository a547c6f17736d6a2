"""A student runs the chapters in JupyterLab, as Binder serves them.

JupyterLab starts from this environment (the lock as tools/install_lock.sh installs it, which is
what Binder installs, JupyterLab and jupyterlab-myst included) on a copy of the committed
repository, with a temporary HOME set up by `binder/postBuild`, in the repository folder, on a random port with a token, the
way repo2docker runs it. Headless Chromium (Debian's) opens the README's launch target and
chapter 9, runs all cells and checks what a student sees: no error, one drawn chart per
figure of the book, every number of the prose filled in, no raw MyST markup, nothing
requested off the machine, and the chapter file unchanged after a save. A second test draws
every chart of every chapter with JupyterLab's own Vega-Lite and fails on any Vega warning.

Screenshots: _build/student-jupyterlab/<chapter>.png.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import BIN, HTML, ROOT, executed_notebooks

SHOTS = ROOT / "_build" / "student-jupyterlab"
STARTUP_TIMEOUT = 180  # s: a loaded 2-core machine
RUN_TIMEOUT = 240_000  # ms, for Run All


def launch_target() -> str:
    """The chapter the README's Binder badge opens (urlpath=lab/tree/<path>)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    url = re.search(r"\((https://mybinder\.org/v2/gh/[^)\s]+)\)", readme).group(1)
    target = parse_qs(urlparse(url).query)["urlpath"][0]
    assert target.startswith("lab/tree/"), target
    return target.removeprefix("lab/tree/")


STUDENT_CHAPTERS = [launch_target(), "chapters/09_assessing_the_principles.md"]

# What a reader must never see in rendered markdown: MyST that JupyterLab did not render.
RAW_MYST = {
    "role or directive name": re.compile(r"\{[A-Za-z][\w:+-]*\}"),
    "directive option line": re.compile(r"(?m)^\s*:[\w-]+:"),
    "label": re.compile(r"\([\w-]+\)="),
    "fence": re.compile(r"```|:::"),
    "unknown directive or role": re.compile(r"Unknown (Directive|Role)", re.I),
    "unevaluated number": re.compile(r"glued\("),
}


def raw_myst(text: str) -> list[str]:
    found = []
    for what, pattern in RAW_MYST.items():
        for match in pattern.finditer(text):
            found.append(f"{what}: …{text[max(0, match.start() - 40):match.end() + 40]}…")
    return found


def test_raw_myst_check_bites():
    """The markup check finds each kind of leftover and passes rendered prose."""
    assert raw_myst("South Korea's count peaks at 326,863 during the Korean War (1951).") == []
    for leftover in ("see {numref}`fig-x`", ":class: tip", "(01_expanding)=", "```{admonition}",
                     "footbibliography - Unknown Directive", 'peaks at glued("south-korea-peak:,d")'):
        assert raw_myst(leftover), leftover


# --------------------------------------------------------------------------- JupyterLab
def _repository_copy(dest: Path) -> Path:
    """The committed files, as Binder clones them (plus uncommitted edits of tracked files)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab as Binder runs it: binder/postBuild, temporary HOME, cwd = repository, token, random port."""
    jupyter = BIN / "jupyter"
    if not (BIN / "jupyter-lab").exists():
        pytest.fail("JupyterLab is not installed: it is part of requirements.txt (Binder's environment)")
    base = tmp_path_factory.mktemp("binder")
    repo = _repository_copy(base / "repo")
    home = base / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("JUPYTER", "USROK_DATA", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    # This environment was installed from the lock by the same script postBuild runs first
    # (tools/install_lock.sh): run only postBuild's settings step here.
    subprocess.run(["bash", "binder/postBuild"], cwd=repo, env={**env, "USROK_SETTINGS_ONLY": "1"}, check=True)
    # Test-only setting: render every cell at once (JupyterLab renders only cells near the
    # viewport by default), so the whole chapter can be checked without scrolling.
    overrides = home / ".jupyter" / "labconfig" / "default_setting_overrides.json"
    settings = json.loads(overrides.read_text())
    settings["@jupyterlab/notebook-extension:tracker"] = {"windowingMode": "none"}
    overrides.write_text(json.dumps(settings))
    token = secrets.token_hex(16)
    args = [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", "--port=0", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", "--expose-app-in-browser"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # CI runs as root; Binder runs as a user
    log = (base / "jupyterlab.log").open("w")
    proc = subprocess.Popen(args, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    runtime = home / ".local" / "share" / "jupyter" / "runtime"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    url = None
    while time.monotonic() < deadline and url is None:
        if proc.poll() is not None:
            pytest.fail("JupyterLab exited:\n" + (base / "jupyterlab.log").read_text()[-3000:])
        for info in runtime.glob("jpserver-*.json"):
            url = json.loads(info.read_text())["url"].rstrip("/")
        time.sleep(0.2)
    if url is None:
        pytest.fail("JupyterLab did not start in time:\n" + (base / "jupyterlab.log").read_text()[-3000:])
    yield {"url": url, "token": token, "repo": repo, "log": base / "jupyterlab.log"}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture
def lab_page(browser, lab):
    """A fresh browser page that may only talk to the JupyterLab server; off-machine requests recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.offsite = []
    page.console = []

    def route(request_route):
        if request_route.request.url.startswith(lab["url"]):
            request_route.continue_()
        else:
            page.offsite.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: page.console.append((message.type, message.text)))
    yield page
    context.close()


def panel(path: str) -> str:
    """JavaScript for the notebook panel open on ``path``."""
    return f"[...jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === {json.dumps(path)})"


def kernel_idle(path: str) -> str:
    return f"() => {{ const w = {panel(path)}; return w?.sessionContext?.session?.kernel?.status === 'idle'; }}"


def all_run(path: str) -> str:
    """Every code cell has run (an execution count, no [*]) and the kernel is idle."""
    return (f"() => {{ const w = {panel(path)}; if (w?.sessionContext?.session?.kernel?.status !== 'idle') return false;"
            " return w.content.widgets.every(c => c.model.type !== 'code' || (c.model.executionCount !== null"
            " && !c.node.querySelector('.jp-InputArea-prompt').textContent.includes('*'))); }")


VEGA_DRAWN = ("el => { const g = el.querySelector('canvas, svg.marks'); if (!g) return false;"
              " const r = g.getBoundingClientRect(); return r.width > 50 && r.height > 50; }")


def open_notebook(page, lab, path: str) -> None:
    """Open a path as the Binder link does (lab/tree/<path>, fresh workspace) and wait for its kernel."""
    page.goto(f"{lab['url']}/lab/tree/{path}?reset&token={lab['token']}")
    page.wait_for_function(f"() => window.jupyterapp !== undefined && !!{panel(path)}",
                           timeout=STARTUP_TIMEOUT * 1000)
    page.wait_for_function(kernel_idle(path), timeout=STARTUP_TIMEOUT * 1000)
    page.evaluate(f"() => jupyterapp.shell.activateById({panel(path)}.id)")


def run_all(page, path: str) -> None:
    page.evaluate("() => jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(all_run(path), timeout=RUN_TIMEOUT, polling=500)


def notebook_state(page, path: str) -> list[dict]:
    """What the student sees, cell by cell."""
    return page.evaluate(f"""() => {{
        return {panel(path)}.content.widgets.map((c, i) => {{
            // Text cells as displayed: rendered markdown, a raw cell's text, or the first
            // line JupyterLab shows for a collapsed cell.
            const shown = c.node.querySelector('.jp-Cell-inputWrapper');
            return {{
                index: i, type: c.model.type, hidden: c.inputHidden,
                source: c.model.sharedModel.getSource().slice(0, 120),
                figure: ((c.model.getMetadata('mystnb') || {{}}).figure || {{}}).name || null,
                text: c.model.type !== 'code' && shown ? shown.innerText : '',
                errors: c.model.type === 'code' ? c.model.outputs.toJSON()
                    .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue) : [],
                expression_errors: [...c.node.querySelectorAll(
                    '.jp-Cell-inputWrapper [data-mime-type="application/vnd.jupyter.stderr"]')].map(e => e.innerText),
                charts: c.node.querySelectorAll('.jp-RenderedVegaCommon5').length,
            }};
        }});
    }}""")


def book_figures(chapter: str) -> tuple[dict[str, bool], list[str]]:
    """The book page's figures (name -> holds a chart) and the values its prose pastes in."""
    html = (HTML / chapter).with_suffix(".html").read_text(encoding="utf-8")
    main = html[html.find("<main"):html.find("</main>")]
    figures = {}
    for match in re.finditer(r'<figure[^>]*id="([^"]+)"[^>]*>(.*?)</figure>', main, re.S):
        figures[match.group(1)] = 'class="usrok-spec"' in match.group(2)
    prose = re.sub(r"<figcaption>.*?</figcaption>", "", main, flags=re.S)  # captions: book only
    pasted = [re.sub(r"<[^>]+>", "", v) for v in re.findall(r'<span class="pasted-text">(.*?)</span>', prose, re.S)]
    return figures, pasted


def screenshots(page, chapter: str, cells: list[dict], pasted: list[str]) -> None:
    """What the student sees: the top of the chapter, its first figure, and prose quoting numbers."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    first_figure = next((c["index"] for c in cells if c["figure"]), 0)
    numbers = next((c["index"] for c in cells if c["index"] > first_figure and any(v in c["text"] for v in pasted)),
                   first_figure)
    for name, index in (("top", 0), ("figure", first_figure), ("numbers", numbers)):
        page.evaluate(f"() => {panel(chapter)}.content.widgets[{index}].node.scrollIntoView()")
        page.wait_for_timeout(300)  # let the scroll settle before the picture (not a wait for a condition)
        page.screenshot(path=str(SHOTS / f"{Path(chapter).stem}-{name}.png"))


@pytest.mark.parametrize("chapter", STUDENT_CHAPTERS)
def test_student_runs_the_chapter_in_jupyterlab(site, lab, lab_page, chapter):
    page = lab_page
    original = (lab["repo"] / chapter).read_bytes()
    open_notebook(page, lab, chapter)
    run_all(page, chapter)
    figures, pasted = book_figures(chapter)
    charts_in_book = sum(figures.values())
    # Charts draw asynchronously after the kernel is idle.
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.jp-RenderedVegaCommon5')].filter({VEGA_DRAWN}).length"
        f" >= {charts_in_book}", timeout=60_000)
    cells = notebook_state(page, chapter)
    screenshots(page, chapter, cells, pasted)

    errors = [f"cell {c['index']}: {e}" for c in cells for e in c["errors"] + c["expression_errors"]]
    assert errors == [], "errors in the notebook:\n" + "\n".join(errors)

    shown = {c["figure"]: c["charts"] for c in cells if c["figure"]}
    assert set(shown) == set(figures), f"figures: book {sorted(figures)}, notebook {sorted(shown)}"
    wrong = {name: shown[name] for name, chart in figures.items() if shown[name] != int(chart)}
    assert wrong == {}, f"figure cells without exactly their one chart: {wrong}"
    drawn = page.locator(".jp-RenderedVegaCommon5").evaluate_all(f"els => els.filter({VEGA_DRAWN}).length")
    total = sum(c["charts"] for c in cells)
    assert drawn == total == charts_in_book, f"{drawn} drawn of {total} charts; the book has {charts_in_book}"

    text = "\n".join(c["text"] for c in cells)
    assert "Reading this as a notebook?" in text, "the notebook note under the title is missing"
    assert raw_myst(text) == [], "raw MyST in the rendered notebook:\n" + "\n".join(raw_myst(text))
    def plain(s: str) -> str:  # the book curls quotes in pasted text (Sphinx smartquotes); JupyterLab does not
        return s.translate(str.maketrans("‘’“”", "''\"\""))

    missing = sorted({value for value in pasted if plain(value) not in plain(text)})
    assert pasted and missing == [], f"numbers of the book not shown in the notebook: {missing}"

    assert page.offsite == [], f"requests off the machine: {page.offsite[:5]}"

    page.evaluate(f"() => {panel(chapter)}.context.save()")
    page.wait_for_function(f"() => !{panel(chapter)}.context.model.dirty", timeout=30_000)
    assert (lab["repo"] / chapter).read_bytes() == original, f"saving {chapter} in JupyterLab changed the file"


# Vega-Lite 5.6 (not the book's 6.4) warns when the layers of a chart disagree on showing a
# legend (`legend=None` on one layer); it merges them and draws the same chart.
HARMLESS_VEGA_WARNING = re.compile(r'^WARN Conflicting legend property "disable" \(false and true\)\. Using false\.$')


def _book_chart_specs() -> dict[str, list[dict]]:
    """Every Vega-Lite output of every chapter, as the book executed them."""
    specs = {}
    for name, notebook in executed_notebooks().items():
        found = [out["data"]["application/vnd.vegalite.v5+json"] for cell in notebook.cells
                 for out in cell.get("outputs", []) if "application/vnd.vegalite.v5+json" in out.get("data", {})]
        if found:
            specs[name] = found
    return specs


def test_every_chapter_chart_draws_in_jupyterlab(site, lab, lab_page):
    """JupyterLab draws with its own Vega-Lite (5.6.1): every chapter's charts draw there, with no Vega
    error or warning (but one harmless one), and their specs say that version."""
    specs = _book_chart_specs()
    chapters = {name for name in specs if name[:2].isdigit()}
    assert len(chapters) >= 9, f"charts found for {sorted(specs)} only"
    flat = [(chapter, spec) for chapter, chapter_specs in specs.items() for spec in chapter_specs]
    versions = {spec.get("$schema") for _, spec in flat}
    assert versions == {"https://vega.github.io/schema/vega-lite/v5.6.1.json"}, versions
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    (lab["repo"] / "chart_specs.json").write_text(json.dumps([spec for _, spec in flat]))
    # One chart per cell, as in the chapters (JupyterLab renders only the first outputs of a long output area).
    notebook.cells = [nbformat.v4.new_code_cell(
        "import json\nfrom IPython.display import display\nspecs = json.load(open('chart_specs.json'))")]
    notebook.cells += [nbformat.v4.new_code_cell(f"display({{'application/vnd.vegalite.v5+json': specs[{i}]}}, raw=True)")
                       for i in range(len(flat))]
    nbformat.write(notebook, lab["repo"] / "chart_check.ipynb")
    page = lab_page
    open_notebook(page, lab, "chart_check.ipynb")
    run_all(page, "chart_check.ipynb")
    try:
        page.wait_for_function(
            f"() => [...document.querySelectorAll('.jp-RenderedVegaCommon5')].filter({VEGA_DRAWN}).length >= {len(flat)}",
            timeout=120_000)
    except PlaywrightTimeout:
        pass  # the assertion below says which charts did not draw
    # One output per spec, in order: drawn, or what JupyterLab shows instead.
    outputs = page.locator(".jp-OutputArea-output").evaluate_all(
        f"els => els.map(e => {{ const v = e.classList.contains('jp-RenderedVegaCommon5') ? e"
        f" : e.querySelector('.jp-RenderedVegaCommon5'); return v && ({VEGA_DRAWN})(v) ? 'drawn'"
        f" : (v ? 'not drawn: ' : '') + e.innerText.slice(0, 300); }})")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "chart_check.png"))

    def title(spec):
        return spec["title"].get("text") if isinstance(spec.get("title"), dict) else spec.get("title")

    problems = [f"{chapter}: {title(spec)}: {outputs[i] if i < len(outputs) else 'no output'}"
                for i, (chapter, spec) in enumerate(flat) if i >= len(outputs) or outputs[i] != "drawn"]
    problems += [f"extra output: {extra}" for extra in outputs[len(flat):]]
    assert problems == [], "charts JupyterLab did not draw:\n" + "\n".join(problems)
    vega_messages = [text for kind, text in page.console
                     if kind in ("warning", "error") and re.search(r"vega|WARN|Infinite extent|spec", text, re.I)
                     and not HARMLESS_VEGA_WARNING.search(text)]
    assert vega_messages == [], "Vega warnings or errors in JupyterLab:\n" + "\n".join(vega_messages[:10])
    assert page.offsite == [], f"requests off the machine: {page.offsite[:5]}"
