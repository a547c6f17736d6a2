"""Put chapters in the form students run as notebooks (JupyterLab, Binder, the in-browser edition).

    .venv/bin/python tools/notebook_form.py            # convert every notebook page in place
    .venv/bin/python tools/notebook_form.py --check    # list what is not in notebook form (exit 1)

The book (myst-nb) and JupyterLab (jupyterlab-myst) read the same MyST notebook. What only
the book can render is rewritten into something both show (see "Chapters as notebooks" in
README.md for the authoring rules this enforces):

- ``{glue:figure} key`` + ``glue("key", chart, display=False)`` -> a code cell at the same
  place whose output is the chart, tagged ``remove-input``, with the figure's name and
  caption in ``mystnb: figure`` metadata. The book numbers and captions the output once;
  JupyterLab shows it as an ordinary output.
- ``{glue:md} key`` -> the same, with ``mystnb: markdown_format``.
- ``{glue:text}`key:fmt``` -> ``{eval}`glued("key:fmt")``` (``usrok.page``): JupyterLab
  evaluates it in the kernel; the book pastes the glued value as before.
- ``from myst_nb import glue`` -> ``from usrok.page import glue, glued``.
- ``{footbibliography}`` and ``{exercise-links}`` go in a raw cell (``format: text/markdown``,
  ``mystnb: markdown_format: myst``): myst-nb renders it as before; JupyterLab shows it
  collapsed (``jupyter: source_hidden``; Run All unfolds markdown cells, not raw ones). The
  exercise also gets a notebook-only link that opens its student notebook.
- A notebook-only note under the title (a ``remove-cell`` markdown cell: the book drops it)
  says to run all cells and what to read in the book instead.
- The first code cell, when the book hides it (the set-up cell), gets its leading imports
  wrapped by ``usrok.bundle.guard_setup_cell``: a notebook opened where the course's packages
  are missing says what to do (the course bundle's one-line set-up, Binder or the in-browser
  edition) instead of showing a traceback.
- Finally the page is written exactly as JupyterLab's jupytext writes it (the settings in
  ``jupytext.toml``), so opening and saving a chapter in JupyterLab leaves it unchanged.

Idempotent: running it on converted pages changes nothing.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"  # what JupyterLab writes back when the kernel starts

NOTE_MARK = "**Reading this as a notebook?**"
EXERCISE_MARK = "**Graded exercise:**"
FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")
GLUE_TEXT = re.compile(r"\{glue:text\}`(?P<spec>[^`]+)`")
OLD_IMPORT = re.compile(r"^from myst_nb import glue\s*$", re.M)
NEW_IMPORT = "from usrok.page import glue, glued"


class NotConvertible(ValueError):
    pass


# --------------------------------------------------------------------------- helpers
def notebook_pages(root: Path = ROOT) -> list[Path]:
    """Every page of the book that is a MyST notebook (jupytext header)."""
    pages = [root / "intro.md", *sorted((root / "chapters").glob("*.md"))]
    return [p for p in pages if p.read_text(encoding="utf-8").startswith("---\njupytext")]


def _jupytext_config(root: Path):
    from jupytext.config import load_jupytext_config

    return load_jupytext_config(str(root / "chapters"))


def canonical(text: str, root: Path = ROOT) -> str:
    """The page as JupyterLab's jupytext would save it (same jupytext, same jupytext.toml)."""
    import jupytext

    config = _jupytext_config(root)
    notebook = jupytext.reads(text, fmt="md:myst")
    notebook.metadata.setdefault("kernelspec", {})["display_name"] = KERNEL_DISPLAY_NAME
    return jupytext.writes(notebook, fmt="md:myst", config=config)


def _snake(key: str) -> str:
    name = re.sub(r"\W+", "_", key).strip("_").lower()
    return name if name.isidentifier() else f"_{name}"


def _code_cells(lines: list[str]):
    """(start, end) line indexes of each ``{code-cell}`` block's source (after its metadata)."""
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match and match["name"] == "code-cell":
            fence = match["fence"]
            j = i + 1
            if j < len(lines) and lines[j].strip() == "---":  # YAML block
                j = lines.index("---", j + 1) + 1
            while j < len(lines) and lines[j].startswith(":") and not lines[j].startswith(fence):
                j += 1
            end = j
            while not lines[end].startswith(fence):
                end += 1
            yield j, end
            i = end + 1
        else:
            i += 1


def _take_glued_object(lines: list[str], key: str) -> str:
    """Remove ``glue("key", value, display=False)`` from the code cells; return the variable to show.

    The value is an object a cell displays (chart, table, Markdown). When it is a plain
    name the call is dropped; otherwise it becomes ``<key_as_name> = value``.
    """
    for start, end in _code_cells(lines):
        source = "\n".join(lines[start:end])
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for stmt in tree.body:
            call = stmt.value if isinstance(stmt, ast.Expr) else None
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "glue"
                    and call.args and isinstance(call.args[0], ast.Constant) and call.args[0].value == key):
                continue
            value = call.args[1] if len(call.args) > 1 else next(k.value for k in call.keywords if k.arg == "value")
            first, last = start + stmt.lineno - 1, start + stmt.end_lineno - 1
            indent = re.match(r"\s*", lines[first]).group(0)
            if isinstance(value, ast.Name):
                del lines[first:last + 1]
                return value.id
            name = _snake(key)
            expr = ast.get_source_segment(source, value)
            replacement = f"{indent}{name} = {expr}".split("\n")
            lines[first:last + 1] = replacement
            return name
    raise NotConvertible(f"no glue({key!r}, ...) call found for {{glue:figure}}/{{glue:md}} {key}")


def _directive_block(lines: list[str], i: int) -> tuple[dict, list[str], int]:
    """Options, body lines and the index after the closing fence of the directive opening at i."""
    fence = FENCE.match(lines[i])["fence"]
    options, body, j = {}, [], i + 1
    while j < len(lines) and re.match(r"^:[\w-]+:", lines[j]):
        name, _, value = lines[j][1:].partition(":")
        options[name] = value.strip()
        j += 1
    while lines[j].rstrip() != fence:
        body.append(lines[j])
        j += 1
    return options, body, j + 1


def _caption(body: list[str]) -> str:
    paragraphs = "\n".join(body).strip().split("\n\n")
    if len(paragraphs) > 1:
        raise NotConvertible("a figure caption of more than one paragraph (write the legend in the text)")
    return " ".join(line.strip() for line in paragraphs[0].splitlines())


def _code_cell(source: str, metadata: dict) -> list[str]:
    import yaml

    meta = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=10_000).rstrip("\n")
    return ["```{code-cell} ipython3", "---", *meta.split("\n"), "---", source, "```"]


# --------------------------------------------------------------------------- conversion
def _convert_blocks(lines: list[str], page: Path) -> list[str]:
    """Rewrite, in place and one at a time, the directives only the book can render."""
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        name = match["name"] if match else None
        if name in ("glue:figure", "glue:md", "glue"):
            key = match["arg"].strip()
            options, body, after = _directive_block(lines, i)
            unsupported = set(options) - {"name", "figwidth", "format"}
            if unsupported:
                raise NotConvertible(f"{page.name}: {name} {key} has options {sorted(unsupported)}")
            opening = lines[i]
            variable = _take_glued_object(lines, key)  # edits the code cells above
            i = lines.index(opening)
            options, body, after = _directive_block(lines, i)
            if name == "glue:figure":
                figure = {"name": options.get("name", key)}
                if "".join(body).strip():
                    figure["caption"] = _caption(body)
                if options.get("figwidth", "100%") != "100%":
                    raise NotConvertible(f"{page.name}: figwidth {options['figwidth']} (only 100%)")
                meta = {"tags": ["remove-input"], "mystnb": {"figure": figure}}
            else:
                meta = {"tags": ["remove-input"],
                        "mystnb": {"markdown_format": options.get("format", "commonmark")}}
            cell = _code_cell(variable, meta)
            lines[i:after] = cell
            i += len(cell)
            continue
        if name in ("footbibliography", "exercise-links") and not _in_raw_cell(lines[:i]):
            _, _, after = _directive_block(lines, i)
            new = _book_only_cell(name, lines[i:after])
            if name == "exercise-links":
                exercise = match["arg"].strip()
                up = "../" if page.parent.name == "chapters" else ""
                rel = f"{up}exercises/{exercise}/student/{exercise}.ipynb"
                new += ["", '+++ {"tags": ["remove-cell"]}', "",
                        f"{EXERCISE_MARK} open the student notebook [{exercise}]({rel}) "
                        'and check each answer with `grader.check("q1")`.']
            new += _resume_markdown(lines, after)
            lines[i:after] = new
            i += len(new)
            continue
        i += 1
    return lines


BOOK_ONLY = {  # what JupyterLab shows of the collapsed cell: its first line, a MyST comment
    "footbibliography": "% The list of references is in the book edition of this chapter.",
    "exercise-links": "% Links to the graded exercise (download, Binder) are in the book edition.",
}


def _book_only_cell(name: str, block: list[str]) -> list[str]:
    """MyST only the book renders, in a raw cell: myst-nb parses it as MyST; JupyterLab shows
    the cell collapsed (and Run All, which expands collapsed markdown cells, leaves raw ones),
    as its first line: a comment that says where to read it."""
    meta = ["format: text/markdown", "jupyter:", "  source_hidden: true", "mystnb:", "  markdown_format: myst"]
    return ["", "````{raw-cell}", "---", *meta, "---", BOOK_ONLY[name], *block, "````"]


def _in_raw_cell(before: list[str]) -> bool:
    """True when the next line is inside a ``{raw-cell}`` block."""
    for line in reversed(before):
        if re.match(r"^`{3,}\{raw-cell\}", line):
            return True
        if line.startswith("+++") or line.startswith("```{code-cell}") or re.match(r"^`{3,}$", line):
            return False
    return False


def _resume_markdown(lines: list[str], i: int) -> list[str]:
    """A cell break after a special markdown cell, unless a code cell or the end comes first."""
    j = i
    while j < len(lines) and not lines[j].strip():
        j += 1
    if j >= len(lines) or lines[j].startswith("```{code-cell}") or lines[j].startswith("+++"):
        return []
    return ["", "+++"]


def _note(page: Path, text: str) -> list[str]:
    has_figure = re.search(r"^\s+figure:", text, re.M) is not None
    has_eval = "{eval}`" in text
    parts = [f"{NOTE_MARK} Run all cells (*Run › Run All Cells*)"]
    fills = [what for what, present in (("draw the charts", has_figure), ("fill in the numbers in the text", has_eval))
             if present]
    parts[0] += " to " + " and ".join(fills) + "." if fills else " to see every output."
    parts.append("Figure numbers, links to other chapters (shown as their labels), citations (shown as "
                 "keys such as *snyder2012expanding*) and the reference list appear only in the book edition "
                 "of this chapter: read them there.")
    return [" ".join(parts)]


def _insert_note(lines: list[str], page: Path, text: str) -> list[str]:
    """The notebook-only note, as its own cell right under the page title (replaced if present)."""
    start = next((n for n, line in enumerate(lines) if line.startswith(NOTE_MARK)), None)
    if start is not None:
        lines[start:start + 1] = _note(page, text)
        return lines
    title = next(n for n, line in enumerate(lines) if line.startswith("# "))
    note = ["", '+++ {"tags": ["remove-cell"]}', "", *_note(page, text)]
    return lines[:title + 1] + note + _resume_markdown(lines, title + 1) + lines[title + 1:]


HIDDEN_TAGS = {"remove-cell", "remove-input", "hide-input", "hide-cell"}


def _setup_cell(lines: list[str]) -> tuple[int, int] | None:
    """(start, end) of the first code cell's source when the book hides that cell, else None."""
    for start, end in _code_cells(lines):
        opening = max(n for n in range(start) if (m := FENCE.match(lines[n])) and m["name"] == "code-cell")
        meta = "\n".join(lines[opening + 1:start])  # the cell's options (tags)
        return (start, end) if any(tag in meta for tag in HIDDEN_TAGS) else None
    return None


def _guard_setup(lines: list[str]) -> list[str]:
    """The set-up cell's imports inside the guard (see usrok.bundle.guard_setup_cell)."""
    from usrok.bundle import guard_setup_cell

    cell = _setup_cell(lines)
    if cell is None:
        return lines
    start, end = cell
    lines[start:end] = guard_setup_cell("\n".join(lines[start:end])).split("\n")
    return lines


def convert(text: str, page: Path, root: Path = ROOT) -> str:
    if "glue" in text and not OLD_IMPORT.search(text) and NEW_IMPORT not in text:
        if re.search(r"\bglue\(", text):
            raise NotConvertible(f"{page.name}: uses glue() without `from myst_nb import glue`")
    text = OLD_IMPORT.sub(NEW_IMPORT, text)
    for match in GLUE_TEXT.finditer(text):
        if '"' in match["spec"] or "\\" in match["spec"]:
            raise NotConvertible(f"{page.name}: cannot quote glue key {match['spec']!r}")
    text = GLUE_TEXT.sub(lambda m: '{eval}`glued("' + m["spec"] + '")`', text)
    lines = _convert_blocks(text.split("\n"), page)
    lines = _insert_note(lines, page, "\n".join(lines))
    lines = _guard_setup(lines)
    return canonical("\n".join(lines), root)


def problems(text: str, page: Path, root: Path = ROOT) -> list[str]:
    """What keeps a page from being in notebook form (empty when it is)."""
    found = []
    for what, pattern in (("{glue:text}", r"\{glue:text\}"), ("{glue:figure}", r"\{glue:figure\}"),
                          ("{glue:md}", r"\{glue:md\}"), ("{glue}", r"\{glue\}"),
                          ("`from myst_nb import glue`", r"from myst_nb import glue")):
        count = len(re.findall(pattern, text))
        if count:
            found.append(f"{count} × {what}")
    if NOTE_MARK not in text:
        found.append("no notebook note under the title")
    for m in re.finditer(r"\{eval\}`([^`]*)`", text):
        from usrok.page import GLUED_CALL

        if not GLUED_CALL.match(m.group(1)):
            found.append(f"{{eval}}`{m.group(1)}` is not glued(\"key[:format]\")")
    for name in ("footbibliography", "exercise-links"):
        for m in re.finditer(r"^(`{3,}|:{3,})\{" + name + r"\}", text, re.M):
            if not _in_raw_cell(text[:m.start()].split("\n")):
                found.append(f"{{{name}}} is not in a collapsed raw cell")
    lines = text.split("\n")
    if "\n".join(_guard_setup(list(lines))) != text:
        found.append("the set-up cell does not say what to do when the course's packages are missing "
                     "(usrok.bundle.guard_setup_cell)")
    if not found and canonical(text, root) != text:
        found.append("not as jupytext writes it (JupyterLab would rewrite it on save)")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="default: every notebook page of the book")
    parser.add_argument("--check", action="store_true", help="report pages not in notebook form; change nothing")
    args = parser.parse_args(argv)
    pages = args.pages or notebook_pages()
    status = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        if args.check:
            found = problems(text, page)
            if found:
                status = 1
                print(f"{page}: " + "; ".join(found))
            continue
        try:
            new = convert(text, page)
        except NotConvertible as exc:
            print(f"{page}: NOT CONVERTED: {exc}", file=sys.stderr)
            status = 1
            continue
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"{page}: converted")
    return status


if __name__ == "__main__":
    sys.exit(main())
