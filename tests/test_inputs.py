"""Pages run again exactly when a file their code reads changes (usrok.inputs).

Two levels:

- on the real book (after the build): each page recorded the files its code read, and the model
  says which pages a change re-executes: a master -> chapter 9 and the instructor guide, the
  GeoJSON -> chapter 4 only;
- on a three-page book built for the test with myst-nb's cache, as the real one: changing a
  data file re-executes the page that reads it (its output shows the new contents) and no other;
  editing a page's prose re-executes nothing, not even that page.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from usrok import inputs

MASTER = "exercises/ex09_principles_assessment/ex09_principles_assessment.md"
GEOJSON = "data/korean_peninsula_50m.geojson"


@pytest.fixture(scope="session")
def env(book_build):
    assert book_build.returncode == 0, book_build.stdout[-3000:] + book_build.stderr[-3000:]
    with open(ROOT / "_build" / ".doctrees" / "environment.pickle", "rb") as fh:
        return pickle.load(fh)


def test_pages_record_the_files_their_code_reads(env):
    recorded = env.usrok_page_inputs
    assert MASTER in recorded["chapters/09_assessing_the_principles"]
    assert "exercises/ex09_principles_assessment/example_learner_matrix.csv" in \
        recorded["chapters/09_assessing_the_principles"]
    masters = {str(p.relative_to(ROOT)) for p in ROOT.glob("exercises/*/*.md") if p.stem == p.parent.name}
    assert masters <= set(recorded["chapters/instructor_guide"])
    assert GEOJSON in recorded["chapters/04_roh_bush_realignment"]
    # The package every page runs is always an input; the pages' recorded digests are current.
    assert "src/usrok/charts.py" in recorded["chapters/01_expanding_the_alliance"]
    # ... with the modules its public faces import (charts -> the builders, data -> validation).
    assert {"src/usrok/chart_troops.py", "src/usrok/chart_theme.py", "src/usrok/data_validation.py"} <= \
        set(recorded["chapters/01_expanding_the_alliance"])
    assert inputs.stale_pages(env, ROOT) == {}


def test_editing_a_module_re_executes_the_pages_that_import_it(env):
    chart_pages = set(inputs.stale_pages(env, ROOT, changed={"src/usrok/chart_troops.py"}))
    assert {"chapters/01_expanding_the_alliance", "chapters/03_after_the_cold_war"} <= chart_pages
    assert "chapters/data_sources" not in chart_pages  # it loads tables, draws no chart
    # The Sphinx extension runs in the build, not in a page's kernel: its modules are inputs only
    # of the instructor guide, which imports two helpers from usrok.book.
    assert set(inputs.stale_pages(env, ROOT, changed={"src/usrok/book_fixes.py", "src/usrok/book_csp.py"})) \
        == {"chapters/instructor_guide"}


def test_a_change_re_executes_exactly_the_pages_that_read_it(env):
    assert set(inputs.stale_pages(env, ROOT, changed={MASTER})) == {
        "chapters/09_assessing_the_principles", "chapters/instructor_guide"}
    assert set(inputs.stale_pages(env, ROOT, changed={GEOJSON})) == {"chapters/04_roh_bush_realignment"}
    data_pages = set(inputs.stale_pages(env, ROOT, changed={"data/rok_oda.csv"}))
    assert data_pages == {"chapters/08_nine_areas_of_cooperation", "chapters/08_1_evidence_briefs"}
    # The Data sources page runs no code: its {data-catalogue} directive (usrok.book) names the
    # data files as Sphinx dependencies, so Sphinx reads the page again when one changes.
    assert any(str(dep).endswith("data/rok_oda.csv") for dep in env.dependencies["chapters/data_sources"])
    # The prose (and code) of a page is Sphinx's and myst-nb's business: not an input of others.
    assert inputs.stale_pages(env, ROOT, changed={"chapters/03_after_the_cold_war.md"}) == {}


# ----------------------------------------------------------------------------- a small book
PAGE = """---
jupytext:
  text_representation: {{extension: .md, format_name: myst}}
kernelspec: {{display_name: Python 3, language: python, name: python3}}
---
# {title}

{prose}

```{{code-cell}} python3
import usrok, pathlib, uuid
{code}
print("run", uuid.uuid4().hex)
```
"""


def _write_book(root: Path) -> None:
    (root / "conf.py").write_text('extensions = ["myst_nb", "usrok.inputs"]\n'
                                  'nb_execution_mode = "cache"\nexclude_patterns = ["_build"]\n')
    (root / "index.md").write_text("# Test\n\n```{toctree}\na\nb\nc\n```\n")
    (root / "x.txt").write_text("x-one")
    (root / "y.txt").write_text("y-one")
    for name, code in (("a", 'print("read", pathlib.Path("x.txt").read_text())'),
                       ("b", 'print("read", open("y.txt").read())'), ("c", "")):
        (root / f"{name}.md").write_text(PAGE.format(title=name.upper(), prose="Some prose.", code=code))


def _build_pages(root: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", str(root), str(root / "_build" / "html"),
                          "-d", str(root / "_build" / ".doctrees")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def _build(root: Path) -> dict[str, tuple[str, str]]:
    """Build; return each page's (file contents it printed, run token)."""
    _build_pages(root)
    out = {}
    for name in "abc":
        html = (root / "_build" / "html" / f"{name}.html").read_text(encoding="utf-8")
        read = re.search(r"read (\S+)", html)
        out[name] = (read.group(1) if read else "", re.search(r"run ([0-9a-f]{32})", html).group(1))
    return out


@pytest.mark.slow
def test_a_changed_input_re_executes_its_page_and_no_other(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    _write_book(book)
    first = _build(book)
    assert first["a"][0] == "x-one" and first["b"][0] == "y-one"

    (book / "x.txt").write_text("x-two")
    second = _build(book)
    assert second["a"][0] == "x-two", "the page that reads x.txt kept its stale output"
    assert second["a"][1] != first["a"][1]
    assert second["b"] == first["b"] and second["c"] == first["c"], "pages that do not read x.txt ran again"

    page = book / "c.md"
    page.write_text(page.read_text().replace("Some prose.", "Other prose."))
    third = _build(book)
    assert "Other prose." in (book / "_build" / "html" / "c.html").read_text(encoding="utf-8")
    assert third == second, "a prose edit executed a page"

    # A page that no longer runs code reads nothing: its old record goes (else it stays stale for
    # ever and is read again at every build).
    (book / "a.md").write_text("# A\n\nNo code any more.\n")
    _build_pages(book)
    (book / "x.txt").write_text("x-three")
    with open(book / "_build" / ".doctrees" / "environment.pickle", "rb") as fh:
        env = pickle.load(fh)
    assert "a" not in env.usrok_page_inputs and "b" in env.usrok_page_inputs
    assert inputs.stale_pages(env, book) == {}
