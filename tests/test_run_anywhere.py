"""Run it anywhere: launch links, downloads, and chapters that run from any working directory.

The chapters are executed in a fresh virtual environment installed from the lock as Binder
installs it (binder/postBuild: tools/install_lock.sh --without-site-build), every chapter with
the working directory at its own folder (Binder, JupyterLab). The pages that read files other
than the data tables also run from the repository root and from an empty temporary folder with
the package on PYTHONPATH (loading the tables from any folder is test_data.py's
test_load_from_any_working_directory). The student notebooks are executed once per run, by
tests/test_grading.py (blank from the repository root, their solutions from the student folder,
in the locked environment that tests/test_environment.py checks).
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import urllib.request
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import nbformat
import pytest
import yaml

from conftest import ROOT

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [c["file"] for part in TOC["parts"] for c in part["chapters"]]
NOTEBOOK_PAGES = [p for p in PAGES if (ROOT / f"{p}.md").read_text(encoding="utf-8").startswith("---\njupytext")]


def _repo_slug() -> str:
    return CONFIG["repository"]["url"].rstrip("/").removeprefix("https://github.com/")


# ----------------------------------------------------------------------------- links
@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_binder_launch_button_opens_this_page_in_jupyterlab(site, page):
    html = (site / f"{page}.html").read_text(encoding="utf-8")
    links = re.findall(r'href="(https://mybinder\.org/v2/gh/[^"]+)"', html)
    launch = [u for u in links if "chapters/" in u or page in u]
    assert launch, f"{page}: no Binder launch link"
    url = urlparse(launch[0].replace("&amp;", "&"))
    expected_prefix = f"/v2/gh/{_repo_slug()}/{CONFIG['repository']['branch']}"
    assert url.path == expected_prefix, url.path
    target = parse_qs(url.query)["urlpath"][0]
    assert target.startswith("lab/tree/"), target
    path = target.removeprefix("lab/tree/")
    assert path == f"{page}.md" and (ROOT / path).exists(), f"{page}: launch opens {path}"


def test_exercise_binder_links_point_at_committed_student_notebooks(site):
    found = 0
    for page in (site / "chapters").glob("*.html"):
        for url in re.findall(r'href="(https://mybinder\.org/v2/gh/[^"]+)"', page.read_text(encoding="utf-8")):
            target = parse_qs(urlparse(url.replace("&amp;", "&")).query)["urlpath"][0]
            if "exercises/" in target:
                found += 1
                path = target.removeprefix("lab/tree/")
                assert (ROOT / path).exists(), f"{page.name} links to missing {path}"
                tracked = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT,
                                         capture_output=True)
                assert tracked.returncode == 0, f"{path} is not committed: Binder could not open it"
    assert found >= 1, "no chapter links to an exercise on Binder"


def _fetch(server, href, page_url):
    from urllib.parse import urljoin

    with urllib.request.urlopen(urljoin(page_url, href)) as response:
        return response.read()


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_download_buttons_give_real_notebook_and_markdown_files(server, page):
    page_url = f"{server}/{page}.html"
    html = urllib.request.urlopen(page_url).read().decode()
    ipynb = re.search(r'<a href="([^"]+\.ipynb)" download\s+class="[^"]*btn-download-notebook-button', html)
    md = re.search(r'<a href="([^"]+\.md)" download\s+class="[^"]*btn-download-source-button', html)
    assert ipynb and md, f"{page}: .ipynb/.md download buttons missing or lack the download attribute"
    notebook = nbformat.reads(_fetch(server, ipynb.group(1), page_url).decode(), as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells, f"{page}: the downloaded notebook is empty"
    assert _fetch(server, md.group(1), page_url).decode().startswith("---\njupytext")


def test_student_notebook_downloads_are_notebooks(server, site):
    links = set()
    for page in (site / "chapters").glob("*.html"):
        links.update(re.findall(r'href="\.\./(_downloads/[^"]+\.ipynb)"', page.read_text(encoding="utf-8")))
    assert links, "no student notebook is offered for download"
    for href in links:
        nb = nbformat.reads(urllib.request.urlopen(f"{server}/{href}").read().decode(), as_version=4)
        nbformat.validate(nb)


# ----------------------------------------------------------------------------- fresh environment
@pytest.fixture(scope="session")
def fresh_python(tmp_path_factory):
    """A new venv with the lock installed as Binder installs it (no site-build packages)."""
    env_dir = tmp_path_factory.mktemp("binder-env")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(["bash", str(ROOT / "tools" / "install_lock.sh"), str(python), "--without-site-build"],
                   cwd=ROOT, check=True)
    return python


def _execute(python: Path, source: Path, cwd: Path, extra_env: dict | None = None) -> str:
    """Execute a notebook (.md via jupytext) top to bottom in ``cwd``: "" or what went wrong."""
    script = (
        "import sys, jupytext, nbclient\n"
        "nb = jupytext.read(sys.argv[1])\n"
        "nbclient.NotebookClient(nb, timeout=180, kernel_name='python3',"
        " resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
    )
    env = {**os.environ, **(extra_env or {})}
    env.pop("USROK_DATA", None)
    result = subprocess.run([str(python), "-c", script, str(source), str(cwd)],
                            cwd=cwd, env=env, capture_output=True, text=True)
    return "" if result.returncode == 0 else f"{source.name} failed with cwd={cwd}:\n{result.stderr[-3000:]}"


# Pages that read files other than the data tables: the map's GeoJSON (chapter 4), the exercise
# masters and a class's matrices (chapter 9, the guide). Chapter 1 stands for the rest.
ELSEWHERE = ["chapters/01_expanding_the_alliance", "chapters/04_roh_bush_realignment",
             "chapters/09_assessing_the_principles", "chapters/instructor_guide"]
RUNS = [(page, "its folder") for page in NOTEBOOK_PAGES] + \
       [(page, where) for page in ELSEWHERE for where in ("the repository root", "an empty folder")]


@pytest.fixture(scope="session")
def chapter_runs(fresh_python, tmp_path_factory) -> dict:
    """Every run of RUNS, two at a time: {(page, where): "" or the failure}."""
    def run(item):
        page, where = item
        source = ROOT / f"{page}.md"
        if where == "its folder":
            return item, _execute(fresh_python, source, source.parent)
        if where == "the repository root":
            return item, _execute(fresh_python, source, ROOT)
        return item, _execute(fresh_python, source, tmp_path_factory.mktemp("anywhere"),
                              {"PYTHONPATH": str(ROOT / "src")})

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, RUNS))


def test_every_page_that_reads_other_files_runs_from_everywhere(book_build):
    """The pages whose code read a file other than a data table or the package (as the build
    recorded it: usrok.inputs) are all in ELSEWHERE, so a new kind of read is run from everywhere."""
    assert book_build.returncode == 0, book_build.stderr[-3000:]
    with open(ROOT / "_build" / ".doctrees" / "environment.pickle", "rb") as fh:
        recorded = pickle.load(fh).usrok_page_inputs
    ordinary = re.compile(r"data/[\w-]+\.csv|data/datapackage\.json|src/usrok/.*")
    others = {page for page, files in recorded.items() if any(not ordinary.fullmatch(f) for f in files)}
    assert {"chapters/04_roh_bush_realignment", "chapters/instructor_guide"} <= others, others  # the check sees them
    assert others <= set(ELSEWHERE), f"run these from everywhere too: {others - set(ELSEWHERE)}"


@pytest.mark.parametrize("page,where", RUNS)
def test_chapter_runs_from_its_folder_the_root_and_a_temp_dir(chapter_runs, page, where):
    assert chapter_runs[(page, where)] == ""


def test_live_code_is_switched_off_cleanly(site):
    """Thebe is off (Binder runs the real notebook): no half-working button, no Thebe scripts."""
    assert CONFIG["launch_buttons"]["thebe"] is False
    for page in PAGES:
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        assert "thebe" not in html.lower(), f"{page} still carries Thebe (button, config or script)"
