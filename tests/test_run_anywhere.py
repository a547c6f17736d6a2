"""Run it anywhere: launch links, downloads, and chapters that run from any working directory.

The chapters are executed in a fresh virtual environment built from requirements.txt
alone, as repo2docker (Binder) builds it, with the working directory at the notebook's
own folder (Binder, JupyterLab), at the repository root (Thebe-style), and in an empty
temporary folder with the package on PYTHONPATH. The student notebooks are executed once
per run, by tests/test_grading.py (blank from the repository root, their solutions from the
student folder, in the locked environment that tests/test_environment.py checks).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
import venv
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
    """A new venv from requirements.txt alone (pip install -r requirements.txt at the repo root)."""
    env_dir = tmp_path_factory.mktemp("binder-env")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", "requirements.txt"], cwd=ROOT, check=True)
    return python


def _execute(python: Path, source: Path, cwd: Path, extra_env: dict | None = None,
             allow_errors: bool = False) -> list[dict]:
    """Execute a notebook (.md via jupytext, or .ipynb) top to bottom in ``cwd``.

    Returns the executed cells (source + error name, if any) as plain dicts.
    """
    script = (
        "import sys, json, jupytext, nbclient\n"
        "nb = jupytext.read(sys.argv[1])\n"
        "nbclient.NotebookClient(nb, timeout=180, kernel_name='python3', allow_errors=sys.argv[3] == '1',"
        " resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "cells = [{'source': c.source, 'errors': [o.get('ename') for o in c.get('outputs', [])"
        " if o.get('output_type') == 'error']} for c in nb.cells if c.cell_type == 'code']\n"
        "print(json.dumps(cells))\n"
    )
    env = {**os.environ, **(extra_env or {})}
    env.pop("USROK_DATA", None)
    result = subprocess.run([str(python), "-c", script, str(source), str(cwd), "1" if allow_errors else "0"],
                            cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{source.name} failed with cwd={cwd}:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_chapter_runs_from_its_folder_the_root_and_a_temp_dir(fresh_python, page, tmp_path):
    source = ROOT / f"{page}.md"
    _execute(fresh_python, source, source.parent)
    _execute(fresh_python, source, ROOT)
    _execute(fresh_python, source, tmp_path, {"PYTHONPATH": str(ROOT / "src")})


def test_live_code_is_switched_off_cleanly(site):
    """Thebe is off (Binder runs the real notebook): no half-working button, no Thebe scripts."""
    assert CONFIG["launch_buttons"]["thebe"] is False
    for page in PAGES:
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        assert "thebe" not in html.lower(), f"{page} still carries Thebe (button, config or script)"
