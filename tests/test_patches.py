"""Every change the course makes to third-party behaviour still meets that behaviour.

Each test fails when an upstream package changes what the patch relies on, so a version bump
in the lock file (`make lock UPGRADE=1`) cannot silently turn a patch into dead code or break it:

- pybtex plugin look-ups cached (``usrok.book._cache_pybtex_plugin_lookups``);
- compiled Jinja templates kept between builds (``usrok.book._cache_compiled_templates``);
- myst-nb's execution cache: pages re-executed when a file they read changes (``usrok.inputs``);
- the post-build HTML fixes of ``usrok.book_fixes._fix_written_pages`` (download buttons, Font Awesome
  script, bibliography role, search scripts), checked against the HTML Sphinx, the themes and
  docutils write today for a small book.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from usrok import book, book_fixes, inputs


# ----------------------------------------------------------------------------- pybtex
def test_pybtex_looks_plugins_up_through_the_function_the_patch_replaces():
    import pybtex.plugin

    assert pybtex.plugin.entry_points in (importlib.metadata.entry_points,) or \
        getattr(pybtex.plugin.entry_points, "usrok_cached", False)
    # find_plugin -> _load_entry_point reads the module-level name at call time, with keywords.
    source = inspect.getsource(pybtex.plugin._load_entry_point)
    assert "entry_points(group=search_group, name=name)" in source
    assert "_load_entry_point" in inspect.getsource(pybtex.plugin.find_plugin)


def test_pybtex_plugin_lookups_are_made_once(monkeypatch):
    import pybtex.plugin

    calls = []

    def counting(**kw):
        calls.append(kw)
        return importlib.metadata.entry_points(**kw)

    monkeypatch.setattr(pybtex.plugin, "entry_points", counting)
    book._cache_pybtex_plugin_lookups()
    assert getattr(pybtex.plugin.entry_points, "usrok_cached", False), "the patch was not applied"
    first = pybtex.plugin.find_plugin("pybtex.style.formatting", "plain")
    again = pybtex.plugin.find_plugin("pybtex.style.formatting", "plain")
    assert first is again and first.__name__ == "Style"
    assert calls == [{"group": "pybtex.style.formatting", "name": "plain"}], calls


# ----------------------------------------------------------------------------- small Sphinx projects
def _sphinx(src: Path, builder: str = "html"):
    from sphinx.application import Sphinx

    return Sphinx(str(src), str(src), str(src / "_build" / "html"), str(src / "_build" / "doctrees"),
                  builder, status=None, warning=None, freshenv=True)


def test_compiled_templates_are_kept_between_builds(tmp_path):
    """Sphinx's template loader has a Jinja environment with no bytecode cache; the patch adds
    one in the doctree folder, and a build writes compiled templates there."""
    from jinja2 import FileSystemBytecodeCache

    (tmp_path / "conf.py").write_text("")
    (tmp_path / "index.rst").write_text("Title\n=====\n\nText.\n")
    app = _sphinx(tmp_path)
    environment = app.builder.templates.environment
    assert environment.bytecode_cache is None, "Sphinx now caches templates itself: drop the patch"
    book._cache_compiled_templates(app)
    assert isinstance(environment.bytecode_cache, FileSystemBytecodeCache)
    app.build()
    cached = list((tmp_path / "_build" / "doctrees" / "jinja-bytecode").iterdir())
    assert cached, "no compiled template was written to the cache"


def test_myst_nb_cache_works_as_usrok_inputs_expects():
    """usrok.inputs drops a page's cache record (found by the page's path) to re-execute it."""
    from jupyter_cache import get_cache
    from jupyter_cache.cache.db import NbCacheRecord
    from jupyter_cache.cache.main import JupyterCacheBase
    from myst_nb import sphinx_ext
    from myst_nb.core.execute import cache as myst_cache

    assert callable(get_cache)
    for method in ("list_cache_records", "remove_cache", "clear_cache"):
        assert callable(getattr(JupyterCacheBase, method)), method
    assert "uri" in NbCacheRecord.__table__.columns
    client = inspect.getsource(myst_cache.NotebookClientCache.start_client)
    assert "match_cache_notebook(self.notebook)" in client, "myst-nb no longer reuses by matching"
    assert "add_nb_to_project(str(self.path)" in client, "the cache record's uri is no longer the path"
    # The cache folder rule usrok.inputs.cache_path copies.
    assert 'joinpath(".jupyter_cache")' in inspect.getsource(sphinx_ext)
    assert "execution_cache_path" in inspect.getsource(sphinx_ext)


def test_kernels_report_the_files_they_read(tmp_path):
    """The audit hook behind page inputs sees open(), Path.read_text and pandas, and no writes."""
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.csv").write_text("x\n1\n")
    (tmp_path / "c.txt").write_text("c")
    log = tmp_path / "log.txt"
    code = ("import pathlib, pandas\n"
            f"from usrok import inputs\ninputs.record_reads({str(log)!r}, {str(tmp_path)!r})\n"
            "open('a.txt').read(); pandas.read_csv('b.csv'); pathlib.Path('c.txt').read_text()\n"
            "open('written.txt', 'w').write('x'); open('/etc/hostname').read() if pathlib.Path('/etc/hostname').exists() else None\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert log.read_text().split() == ["a.txt", "b.csv", "c.txt"]


# ----------------------------------------------------------------------------- post-build HTML fixes
NOTEBOOK = """---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
# A notebook

```{code-cell} python3
1 + 1
```
"""


@pytest.fixture(scope="module")
def upstream_html(tmp_path_factory) -> Path:
    """A small book built with the course's theme and myst-nb, without usrok.book's fixes."""
    src = tmp_path_factory.mktemp("themed")
    (src / "conf.py").write_text(
        'extensions = ["myst_nb"]\nhtml_theme = "sphinx_book_theme"\nnb_execution_mode = "off"\n'
        'html_theme_options = {"use_download_button": True, "repository_url": "https://github.com/o/r"}\n'
        'exclude_patterns = ["_build"]\n')
    (src / "index.rst").write_text("Home\n====\n\n.. toctree::\n\n   nb\n   refs\n")
    (src / "nb.md").write_text(NOTEBOOK)
    (src / "refs.rst").write_text("References\n==========\n\nSee [CIT2002]_.\n\n.. [CIT2002] A book.\n")
    _sphinx(src).build()
    return src / "_build" / "html"


def _fix(html_dir: Path, as_you_type: bool = False) -> None:
    app = types.SimpleNamespace(builder=types.SimpleNamespace(format="html"), outdir=str(html_dir),
                                config=types.SimpleNamespace(html_theme_options={"search_as_you_type": as_you_type}),
                                usrok_build_started=0)
    book_fixes._fix_written_pages(app, None)


def test_post_build_fixes_match_what_upstream_writes(upstream_html):
    nb = (upstream_html / "nb.html").read_text(encoding="utf-8")
    refs = (upstream_html / "refs.html").read_text(encoding="utf-8")
    assert book_fixes._DOWNLOAD_BUTTON.search(nb), "sphinx-book-theme's download buttons changed"
    assert book_fixes._FONTAWESOME_JS.search(nb), "pydata-sphinx-theme no longer loads fontawesome.js this way"
    assert book_fixes._CITATION_LIST in refs, "docutils no longer writes the citation list with role=list"
    assert book_fixes._INLINE_SEARCH_SCRIPTS.search(nb), "the theme no longer puts the search scripts in <head>"


def test_post_build_fixes_apply(upstream_html, tmp_path):
    import shutil

    site = tmp_path / "site"
    shutil.copytree(upstream_html, site)
    _fix(site)
    nb = (site / "nb.html").read_text(encoding="utf-8")
    refs = (site / "refs.html").read_text(encoding="utf-8")
    buttons = re.findall(r'<a href="[^"]+"\s+download\s+class="btn btn-sm btn-download-(?:notebook|source)-button', nb)
    assert buttons and not book_fixes._DOWNLOAD_BUTTON.search(nb), "download buttons still open a new tab"
    assert "fontawesome.js" not in nb
    assert book_fixes._CITATION_LIST not in refs and 'class="citation-list"' in refs
    assert "searchtools.js" not in nb
    assert "searchtools.js" in (site / "search.html").read_text(encoding="utf-8"), "search.html keeps search"


def test_inputs_module_needs_no_sphinx_to_answer_the_makefile():
    """`python -m usrok.inputs` (the Makefile's up-to-date check) imports only the standard library."""
    code = "import sys; import usrok.inputs; print(sorted(m for m in ('sphinx', 'myst_nb', 'pandas') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "[]", run.stdout + run.stderr
    assert inputs.main(["nonsense"]) == 2
