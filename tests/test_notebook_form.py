"""Chapters are written in the form students run as notebooks (tools/notebook_form.py).

No build needed: these read the sources. The student test in JupyterLab
(test_student_jupyterlab.py) checks what the form gives a student.
"""

from __future__ import annotations

import sys

import pytest
from myst_nb.core.variables import format_plain_text

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import notebook_form  # noqa: E402

from usrok import page  # noqa: E402

PAGES = notebook_form.notebook_pages()

OLD_STYLE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A page

```{code-cell} ipython3
:tags: [remove-cell]
from myst_nb import glue
glue("peak", 326863, display=False)
chart = make_chart()
glue("fig-peak", chart, display=False)
```

The count peaks at {glue:text}`peak:,d`.

```{glue:figure} fig-peak
:name: fig-peak

The peak, {glue:text}`peak:,d`, and after {footcite:p}`kane2006troops`.
```

## References

```{footbibliography}
```
"""


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.stem)
def test_page_is_in_notebook_form(path):
    found = notebook_form.problems(path.read_text(encoding="utf-8"), path)
    assert found == [], f"{path.name}: {'; '.join(found)}\nfix: .venv/bin/python tools/notebook_form.py {path.relative_to(ROOT)}"


def test_form_check_bites_and_the_conversion_fixes_it(tmp_path):
    """The old form (glue roles and directives) is reported; converting it gives a page that passes, once."""
    old = tmp_path / "chapters" / "page.md"
    old.parent.mkdir()
    old.write_text(OLD_STYLE, encoding="utf-8")
    found = notebook_form.problems(OLD_STYLE, old)
    assert any("{glue:text}" in f for f in found) and any("{glue:figure}" in f for f in found)
    assert any("footbibliography" in f for f in found) and any("note" in f for f in found)
    new = notebook_form.convert(OLD_STYLE, old)
    assert notebook_form.problems(new, old) == []
    assert notebook_form.convert(new, old) == new, "converting twice changes the page"
    assert '{eval}`glued("peak:,d")`' in new and 'glue("fig-peak"' not in new
    assert "    name: fig-peak\n" in new and "\nchart\n```" in new  # the figure cell shows the chart
    assert "display_name: Python 3 (ipykernel)" in new


def test_a_page_saved_by_jupyterlab_without_the_settings_is_reported():
    """JupyterLab's jupytext adds its version to the header unless jupytext.toml says not to."""
    path = PAGES[0]
    text = path.read_text(encoding="utf-8")
    saved = text.replace("    format_version: 0.13\n", "    format_version: 0.13\n    jupytext_version: 1.19.6\n", 1)
    assert saved != text
    assert any("jupytext writes" in f for f in notebook_form.problems(saved, path))


@pytest.mark.parametrize("value, fmt", [(326863, ",d"), (1951, ""), (1951, "s"), (57.9, ".0f"), (2.5, ".1f"),
                                        ("16 June 2009", "s"), ("Space", ""), (0.4567, ".2f"), (1234.5, ",.0f")])
def test_glued_prints_what_the_book_pastes(value, fmt):
    """The notebook's {eval}`glued("key:fmt")` and the book's pasted text are the same string."""
    page.glue("k", value, display=False)
    spec = f"k:{fmt}" if fmt else "k"
    shown = page.glued(spec)
    book = format_plain_text(repr(value), fmt if fmt else "s")
    assert shown == book and repr(shown) == book  # no quotes in any front end


def test_glued_names_what_is_missing():
    with pytest.raises(LookupError, match="run the cells above"):
        page.glued("nothing-glued-under-this-key:,d")


def test_the_book_accepts_only_glued_calls_in_eval():
    assert page.GLUED_CALL.match('glued("south-korea-peak:,d")')["spec"] == "south-korea-peak:,d"
    assert page.GLUED_CALL.match("glued('jvs-date')")["spec"] == "jvs-date"
    for other in ("1 + 1", "peak", 'glued("a") + 1', 'glued(key)', 'glued("a\\"b")'):
        assert not page.GLUED_CALL.match(other), other
