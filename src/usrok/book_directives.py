"""The book's directives: ``{exercise-links}`` (an exercise's notebook: download, Binder, the
browser edition) and ``{data-catalogue}`` (the Data sources page's tables)."""

from __future__ import annotations

import os
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from usrok.assignments import student_notebook as exercise_notebook  # one convention

logger = logging.getLogger(__name__)


def binder_url(theme_options: dict, path: str) -> str:
    """A Binder link that opens ``path`` of the book's repository in JupyterLab.

    Uses the same settings as Jupyter Book's launch buttons (``repository`` and
    ``launch_buttons`` in _config.yml, passed to Sphinx as html_theme_options).
    """
    from urllib.parse import quote

    repo = theme_options["repository_url"].rstrip("/").removeprefix("https://github.com/")
    branch = theme_options.get("repository_branch") or "main"
    hub = (theme_options.get("launch_buttons", {}).get("binderhub_url") or "https://mybinder.org").rstrip("/")
    return f"{hub}/v2/gh/{repo}/{branch}?urlpath={quote('lab/tree/' + path, safe='')}"


class ExerciseLinks(SphinxDirective):
    """``{exercise-links} ex03_easi``: download + Binder links to an assignment's student notebook."""

    required_arguments = 1

    def run(self):
        name = self.arguments[0]
        root = Path(self.env.srcdir)
        notebook = exercise_notebook(name)
        if not (root / notebook).exists():
            # The test suite fails on a missing notebook; while drafting, say so in the page.
            logger.info(f"[usrok] student notebook {notebook} not built yet")
            para = nodes.paragraph(text=f"(The exercise notebook {name} is not built yet.)")
            return [para]
        docdir = Path(self.env.doc2path(self.env.docname)).parent
        rel = os.path.relpath(root / notebook, docdir)
        download = addnodes.download_reference(
            "", "", nodes.inline(text="download the student notebook"),
            refdoc=self.env.docname, reftarget=rel, refexplicit=True, reftype="download", refdomain="")
        binder = nodes.reference("", "open it on Binder",
                                 refuri=binder_url(self.config.html_theme_options, notebook))
        from usrok.edition import edition_url  # the in-browser edition (lite/, usrok.edition)

        lite = nodes.reference("", "run it in your browser", refuri=edition_url(self.env.docname, notebook))
        para = nodes.paragraph(classes=["usrok-exercise"])
        para += [nodes.strong(text=f"Graded exercise {name}: "), download, nodes.Text(", "), binder,
                 nodes.Text(" or "), lite, nodes.Text(" (no install; check each answer with "),
                 nodes.literal(text='grader.check("q1")'), nodes.Text(").")]
        return [para]


class DataCatalogue(SphinxDirective):
    """``{data-catalogue}``: the Data sources page's tables, from ``data/datapackage.json``.

    A summary whose table names link to one section per table (real sections, so the
    page's "Contents" lists them), each with its CSV, sources (web addresses as links,
    raw files of the repository as downloads and repository links) and columns; see
    ``usrok.data_catalogue.catalogue_markdown``. The page is read again when the data change.
    """

    def run(self):
        from docutils.statemachine import StringList

        from usrok.data_catalogue import catalogue_markdown

        data_dir = Path(self.env.srcdir) / "data"
        docdir = Path(self.env.doc2path(self.env.docname)).parent
        prefix = Path(os.path.relpath(data_dir, docdir)).as_posix() + "/"
        for path in [data_dir / "datapackage.json", *sorted(data_dir.glob("*.csv")), *sorted(data_dir.glob("*.geojson"))]:
            self.env.note_dependency(str(path))
        text = catalogue_markdown(link_prefix=prefix, data_dir=data_dir,
                                  repository_url=self.config.html_theme_options.get("repository_url"))
        # The summary, then the sections (parsed with titles allowed: a nested parse that
        # allows titles keeps nothing before the first one).
        lines = text.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("(data-"))
        source = str(data_dir / "datapackage.json")
        summary, sections = nodes.Element(), nodes.Element()
        self.state.nested_parse(StringList(lines[:first], source=source), self.content_offset, summary)
        self.state.nested_parse(StringList(lines[first:], source=source), self.content_offset, sections,
                                match_titles=True)
        return summary.children + sections.children
