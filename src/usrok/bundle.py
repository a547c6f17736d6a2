"""The course bundle: the notebooks, exercises, data and course package as one zip.

Readers who want to run the course on their own computer download the bundle from the
download menu at the top of any page ("Course bundle (.zip)"), unzip it and run one line
in the ``us-rok-course`` folder it holds (:data:`SETUP_COMMAND`)::

    python -m pip install --no-deps -r requirements.txt

The bundle's ``requirements.txt`` is the course's lock file less what Binder leaves out too
(:func:`student_requirements`: otter's PDF extra, the site build), installed as pinned without
resolving (a resolving install would bring the PDF extra, Playwright, back). Its ``-e .`` line
installs the course package from the bundle's own ``src/usrok`` (with ``pyproject.toml``), so
the notebooks find the bundle's ``data/`` wherever they are opened.

What the zip holds (:func:`contents`): the book's notebook pages as unexecuted ``.ipynb``
(converted from their MyST sources; not the instructor guide, which reads the answer keys),
the student exercise notebooks exactly as committed, the exercises' example tables, the data
tables of ``data/datapackage.json``, the course package source, the lock file and a README.
Never masters, solutions, autograder zips or hidden tests (``tests/test_leakage.py``).

The zip is named after its inputs (``us-rok-course-<12 hex digits>.zip``: the sources, this
module and the converters' versions) and written with fixed dates, order and permissions, so
the same inputs give a byte-identical file. The book's build (:func:`setup`, hooked in by
:mod:`usrok.book`) writes it into ``<outdir>/bundle/`` only when no file of that name exists
(an unchanged course costs one hash of its sources, well under a second), removes older
bundles, and points every page's menu entry at the current one.

:func:`guard_setup_cell` writes a notebook's set-up cell so that, without the course's
packages, it prints what to do in plain words instead of a traceback (used by
``tools/notebook_form.py`` for chapters and ``exercises/build_assignments.py`` for student
notebooks). Only the standard library is imported at import time.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import textwrap
import zipfile
from pathlib import Path

__all__ = ["SETUP_COMMAND", "FOLDER", "BUNDLE_DIR", "contents", "bundle_name", "write_bundle",
           "guard_setup_cell", "unguard_setup_cell", "is_guarded", "missing_message"]

SETUP_COMMAND = "python -m pip install --no-deps -r requirements.txt"
FOLDER = "us-rok-course"  # the one folder inside the zip
BUNDLE_DIR = "bundle"  # inside the built book
MENU_TEXT = "Course bundle (.zip)"
MENU_LABEL = "download-bundle-button"  # the theme makes it the class btn-download-bundle-button
# Pages that are not in the bundle, and why.
NOT_IN_BUNDLE = {"chapters/instructor_guide": "for teachers; builds tables from the answer keys "
                                              "and uses the book's Sphinx helpers"}
PACKAGE_SUFFIXES = (".py", ".css", ".js", ".svg")  # the package's files (pyproject: package-data)
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: the same for every build
FORMAT_VERSION = "1"  # change to rebuild every bundle (e.g. a new layout)
INSTALLER = "tools/install_lock.sh"  # names the packages the student's set-up leaves out


# --------------------------------------------------------------------------- what goes in
def notebook_pages(root: Path) -> list[str]:
    """The book's MyST notebook pages listed in ``_toc.yml`` (docnames), minus NOT_IN_BUNDLE."""
    import yaml

    def files(entries):
        for entry in entries or []:
            if "file" in entry:
                yield entry["file"]
            yield from files(entry.get("sections"))

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]] + [f for part in toc.get("parts", []) for f in files(part["chapters"])]
    return [p for p in pages if p not in NOT_IN_BUNDLE and (root / f"{p}.md").is_file()
            and (root / f"{p}.md").read_text(encoding="utf-8").startswith("---\njupytext")]


def contents(root: Path) -> dict[str, Path]:
    """{path inside the bundle folder: source file}. A ``.ipynb`` from a ``.md`` is converted."""
    out = {f"{page}.ipynb": root / f"{page}.md" for page in notebook_pages(root)}
    for path in sorted(root.glob("exercises/*/student/*.ipynb")) + sorted(root.glob("exercises/*/*.csv")):
        out[path.relative_to(root).as_posix()] = path
    package = json.loads((root / "data" / "datapackage.json").read_text(encoding="utf-8"))
    data = ["datapackage.json", "README.md"] + [r["path"] for r in package["resources"]]
    for name in data:
        if (root / "data" / name).is_file():
            out[f"data/{name}"] = root / "data" / name
    for path in sorted((root / "src" / "usrok").rglob("*")):
        if path.is_file() and path.suffix in PACKAGE_SUFFIXES and "__pycache__" not in path.parts:
            out[path.relative_to(root).as_posix()] = path
    for name in ("pyproject.toml", "requirements.txt"):
        out[name] = root / name
    out["runtime.txt"] = root / "binder" / "runtime.txt"  # the Python version the lock is for
    return out


def _versions() -> str:
    from importlib.metadata import version

    return f"jupytext {version('jupytext')}, nbformat {version('nbformat')}"


def installer_group(root: Path, group: str) -> list[str]:
    """The packages tools/install_lock.sh names in one of its groups (PDF_EXPORT_ONLY: never
    installed; SITE_BUILD_ONLY: not on Binder), as the lock spells them."""
    match = re.search(rf'^{group}="(.*)"$', (root / INSTALLER).read_text(encoding="utf-8"), re.M)
    if not match:
        raise ValueError(f"{INSTALLER} names no group {group}")
    return match.group(1).split()


def student_requirements(root: Path) -> bytes:
    """The lock less the packages Binder leaves out (the groups named in tools/install_lock.sh)."""
    left_out = set(installer_group(root, "PDF_EXPORT_ONLY")) | set(installer_group(root, "SITE_BUILD_ONLY"))
    lines = [f"# The course's lock ({INSTALLER.removeprefix('tools/')} leaves out: {' '.join(sorted(left_out))}).",
             f"# Install as pinned, without resolving: {SETUP_COMMAND}"]
    keep = True
    for line in (root / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            keep = re.split(r"[=; ]", line, maxsplit=1)[0] not in left_out
        if keep and not line.startswith("#"):
            lines.append(line)
    return ("\n".join(lines) + "\n").encode("utf-8")


def input_key(root: Path, files: dict[str, Path] | None = None) -> str:
    """A digest of everything the bundle is made from (sources, this module, converters)."""
    files = contents(root) if files is None else files
    digest = hashlib.sha256(f"usrok bundle {FORMAT_VERSION}\n{_versions()}\n".encode())
    digest.update(Path(__file__).read_bytes())
    digest.update((root / INSTALLER).read_bytes())
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel].read_bytes() + b"\0")
    return digest.hexdigest()


def bundle_name(root: Path) -> str:
    return f"{FOLDER}-{input_key(root)[:12]}.zip"


def _chapter_notebook(source: Path) -> bytes:
    """A MyST page as the unexecuted notebook students open (stable cell ids: same bytes)."""
    import jupytext
    import nbformat

    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nbformat.writes(nb).encode("utf-8")


def readme(key: str) -> str:
    return textwrap.dedent(f"""\
        # The US–South Korea Alliance: course bundle

        Everything to run the course's notebooks on your own computer:

        - `chapters/`: the chapters of the book as notebooks (open one and choose
          *Run › Run All Cells* to draw its charts and fill in its numbers);
        - `exercises/<name>/student/`: the graded exercises, as students get them (check each
          answer with `grader.check("q1")`; your instructor grades the hand-in);
        - `data/`: the tables the notebooks read, with their sources (`datapackage.json`);
        - `src/usrok/` and `pyproject.toml`: the course's Python package;
        - `requirements.txt`: every package the notebooks use, pinned (the course's lock file).

        ## Set-up (once)

        With Python 3.11 (the version the packages are pinned for), in this folder run:

            {SETUP_COMMAND}

        It installs the pinned packages as they are (no dependency resolution: the list is
        complete) and the course package (from `src/`). To keep them
        apart from your other projects, make and activate a virtual environment first
        (`python -m venv .venv`, then `source .venv/bin/activate`, or
        `.venv\\Scripts\\activate` on Windows).

        ## Run

            python -m jupyterlab

        opens JupyterLab in this folder. If a notebook's first cell says the course's packages
        are missing, the set-up above has not run in the Python that notebook uses.

        Bundle {key[:12]}, built with the course book.
        """)


def write_bundle(root: Path, out_dir: Path) -> Path:
    """Write the bundle into ``out_dir`` unless it is there already; remove older bundles."""
    files = contents(root)
    key = input_key(root, files)
    target = out_dir / f"{FOLDER}-{key[:12]}.zip"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{FOLDER}-*.zip"):
        if old != target:
            old.unlink()
    if target.is_file():
        return target
    members = {rel: (_chapter_notebook(src) if rel.endswith(".ipynb") and src.suffix == ".md"
                     else src.read_bytes()) for rel, src in files.items()}
    members["README.md"] = readme(key).encode("utf-8")
    members["requirements.txt"] = student_requirements(root)
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w") as zf:
        for rel in sorted(members):
            info = zipfile.ZipInfo(f"{FOLDER}/{rel}", date_time=EPOCH)
            info.create_system = 3  # Unix, so the permissions below apply everywhere
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, members[rel], compresslevel=9)
    partial.replace(target)
    return target


# --------------------------------------------------------------------------- the first cell
GUARD_CLASS = "CourseNotInstalled"
GUARD_COMMENT = "# the course's packages; without them, say what to do (not a traceback)"


def missing_message() -> list[str]:
    """What a notebook says when the course's packages are missing (lines; {missing.name} filled in)."""
    return [
        "This notebook needs the course's Python packages, and {missing.name!r} is not installed "
        "in the Python it runs in.",
        "To run it on your computer: download the course bundle (the download menu at the top of "
        "any page of the course book, 'Course bundle'), unzip it, and in the us-rok-course folder "
        "it holds run this one line:",
        f"    {SETUP_COMMAND}",
        "Then restart the kernel (Kernel > Restart Kernel) and run the notebook again.",
        "Nothing to install: open the notebook on Binder or in the in-browser edition instead "
        "(the launch menu at the top of the book's page).",
    ]


def _guard_lines(imports: list[str]) -> list[str]:
    body = [("    " + line) if line.strip() else "" for line in imports]
    message = []
    for i, line in enumerate(missing_message()):
        end = "\\n" if i < len(missing_message()) - 1 else ""
        chunks = textwrap.wrap(line, 76) if not line.startswith(" ") else [line]
        for j, chunk in enumerate(chunks):
            text = (chunk + end if j == len(chunks) - 1 else chunk + " ").replace('"', '\\"')
            prefix = "f" if "{" in chunk else ""
            message.append(f'        {prefix}"{text}"')
    return [f"try:  {GUARD_COMMENT}", *body,
            "except ModuleNotFoundError as missing:",
            f"    class {GUARD_CLASS}(Exception):",
            "        def _render_traceback_(self):  # Jupyter shows these lines instead of a traceback",
            "            return str(self).splitlines()",
            "",
            f"    raise {GUARD_CLASS}(",
            *message,
            "    ) from None"]


def _leading_imports(tree: ast.Module) -> int:
    """How many top-level statements at the start of the cell are imports."""
    count = 0
    for stmt in tree.body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            break
        count += 1
    return count


def _guard_node(tree: ast.Module) -> ast.Try | None:
    """The guard at the start of the cell, or None."""
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Try) and first.handlers and any(
            isinstance(n, ast.ClassDef) and n.name == GUARD_CLASS for n in first.handlers[0].body):
        return first
    return None


def is_guarded(source: str) -> bool:
    """True when the cell starts with the guard (written by :func:`guard_setup_cell`)."""
    try:
        return _guard_node(ast.parse(source)) is not None
    except SyntaxError:
        return False


def unguard_setup_cell(source: str) -> str:
    """The cell as its author wrote it: the guard's imports back at top level."""
    tree = ast.parse(source)
    node = _guard_node(tree)
    if node is None:
        return source
    lines = source.split("\n")
    start = node.lineno - 1
    body = lines[node.body[0].lineno - 1:node.handlers[0].lineno - 1]
    imports = [line[4:] if line.startswith("    ") else line for line in body]
    while imports and not imports[-1].strip():
        imports.pop()
    return "\n".join(lines[:start] + imports + lines[node.end_lineno:])


def guard_setup_cell(source: str) -> str:
    """The set-up cell with its leading imports inside the guard (idempotent).

    Comment lines before the first import stay above it. A cell that does not start with
    imports, or does not import the course package ``usrok``, is returned unchanged.
    """
    source = unguard_setup_cell(source)
    tree = ast.parse(source)
    count = _leading_imports(tree)
    if not count:
        return source
    names = [a.name for stmt in tree.body[:count] for a in stmt.names] + \
            [stmt.module or "" for stmt in tree.body[:count] if isinstance(stmt, ast.ImportFrom)]
    if not any(n == "usrok" or n.startswith("usrok.") for n in names):
        return source
    lines = source.split("\n")
    first, last = tree.body[0].lineno - 1, tree.body[count - 1].end_lineno
    return "\n".join(lines[:first] + _guard_lines(lines[first:last]) + lines[last:])


# --------------------------------------------------------------------------- sphinx
_MENU_LINK = re.compile(r'<a href="[^"]*"(?: target="_blank"| download)(\s+class="btn btn-sm btn-' + MENU_LABEL + ')')


def _plan(app) -> None:
    """The bundle's name, from its inputs (the zip is written when the build has finished)."""
    course = (Path(app.srcdir) / "data" / "datapackage.json").is_file()  # not e.g. a test's one-page book
    app.usrok_bundle = bundle_name(Path(app.srcdir)) if app.builder.format == "html" and course else None


def _add_menu_entry(app, pagename, templatename, context, doctree) -> None:
    """"Course bundle (.zip)" in the page's download menu (after sphinx-book-theme filled it)."""
    name = getattr(app, "usrok_bundle", None)
    if not name:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].append({
                "type": "link",
                "text": MENU_TEXT,
                "tooltip": ("Every notebook, exercise and table with the course package, to run on your "
                            f"computer. Set-up: unzip, then in the {FOLDER} folder run {SETUP_COMMAND}"),
                "icon": "fas fa-file-zipper",
                "url": context["pathto"](f"{BUNDLE_DIR}/{name}", 1),
                "label": MENU_LABEL,
            })
            return


def point_pages_at(html_dir: Path, bundle: Path) -> int:
    """Every page's menu entry links to ``bundle`` and downloads it (not a new tab); returns
    the number of pages changed. Pages this build did not write carry the older name."""
    changed = 0
    for page in html_dir.rglob("*.html"):
        if {"_static", "_sources", "lite"} & set(page.relative_to(html_dir).parts[:1]):
            continue
        text = page.read_text(encoding="utf-8")
        if MENU_LABEL not in text:
            continue
        href = os.path.relpath(bundle, page.parent).replace(os.sep, "/")
        fixed = _MENU_LINK.sub(lambda m, href=href: f'<a href="{href}" download{m.group(1)}', text)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")
            changed += 1
    return changed


def _write(app, exception) -> None:
    if exception is not None or not getattr(app, "usrok_bundle", None):
        return
    bundle = write_bundle(Path(app.srcdir), Path(app.outdir) / BUNDLE_DIR)
    point_pages_at(Path(app.outdir), bundle)


def setup(app):
    # A config value of the "html" kind: when it changes (or first appears), Sphinx rewrites every
    # page, so pages written before the menu entry existed get it (point_pages_at only updates links).
    app.add_config_value("usrok_bundle_menu", f"{MENU_LABEL} {FORMAT_VERSION}", "html")
    app.connect("builder-inited", _plan)
    app.connect("html-page-context", _add_menu_entry, priority=510)
    # Before usrok.speed (800), which keeps the CSS rules of the classes the pages use.
    app.connect("build-finished", _write, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
