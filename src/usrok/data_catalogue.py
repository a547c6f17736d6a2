"""The Data sources page: every table of ``datapackage.json`` described in MyST Markdown.

Rendered by the ``{data-catalogue}`` directive (:mod:`usrok.book_directives`).
"""

from __future__ import annotations

import re
from pathlib import Path

from usrok.data import load
from usrok.data_package import _resolve_dir, package

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>{}$|#~.])")


def _md(text: str) -> str:
    """Escape text for MyST Markdown: no accidental math ($), HTML (<TAB>), roles,
    table cells (|) or auto-links (linkify would turn 'README.md' into a link to a
    Moldovan domain; an escaped dot stops it)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def _label(name: str) -> str:
    """The cross-reference label of a table's section on the Data sources page."""
    return "data-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _file_in_repository(path: str, d: Path) -> str | None:
    """A source ``path`` as a repository path, when the file is in the repository (paths
    are relative to ``data/``, as in Frictionless, or to the repository root)."""
    root = d.parent.resolve()
    for base in (d, d.parent):
        candidate = (base / path).resolve()
        if candidate.is_file() and candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix()
    return None


def _source_md(s: dict, d: Path, link_prefix: str, repository_url: str | None) -> str:
    """One source: a link when its path is a web address (http(s) only: a data file could
    hold ``javascript:``); a download and a repository link when it is a file of the
    repository (e.g. a raw extract in ``data/raw/``); otherwise its name as text."""
    from usrok.safe import http_url

    title = _md(s.get("title", ""))
    path = s.get("path", "") or ""
    local = _file_in_repository(path, d) if path and not re.match(r"^[a-z][a-z0-9+.-]*:", path, re.I) else None
    if http_url(path):
        out = f"[{title}](<{http_url(path)}>)"
    elif local:
        rel = link_prefix + local.removeprefix("data/") if local.startswith("data/") else link_prefix + "../" + local
        shown = re.sub(r"[`<>]", "", local)  # role text is not Markdown: no escapes, no backticks
        out = f"{title}: {{download}}`{shown} <{rel}>`"
        if repository_url and http_url(repository_url):
            out += f" ([in the repository](<{http_url(repository_url).rstrip('/')}/blob/main/{local}>))"
    elif path:
        out = f"{title} (`{path.replace('`', '')}`, not in this repository)"
    else:
        out = title
    if s.get("citation"):
        out += f". *Cite as:* {_md(s['citation'])}"
    return out


def catalogue_markdown(link_prefix: str = "../data/", data_dir=None,
                       repository_url: str | None = None) -> str:
    """MyST Markdown describing every resource of datapackage.json.

    Used by the ``{data-catalogue}`` directive (``usrok.book``) on the Data sources page:
    a summary table whose table names link to one
    section per table (heading, labelled ``data-<name>``, so the page's contents list
    them), with a CSV download, description, coverage, sources, licence and columns.
    ``link_prefix`` is the path from the page to ``data/`` (download links use the
    Sphinx ``{download}`` role, so the files are copied into the built site);
    ``repository_url`` adds links to source files in the repository on GitHub.
    """
    d = _resolve_dir(data_dir)
    pkg = package(data_dir)
    lines = ["| Table | What it holds | Rows | Coverage | Download |",
             "| --- | --- | --- | --- | --- |"]
    blocks = []
    for r in pkg["resources"]:
        name, title = r["name"], r.get("title", r["name"])
        link = f"{{download}}`{r.get('format', 'file').upper()} <{link_prefix}{r['path']}>`"
        rows = f"{len(load(name, data_dir)):,}" if "schema" in r else "–"
        lines.append(f"| {{ref}}`{name} <{_label(name)}>` | {_md(title)} | {rows} "
                     f"| {_md(r.get('coverage', ''))} | {link} |")
        b = [f"({_label(name)})=", f"## {_md(title)}", "",
             f"Table `{name}`: `data.load(\"{name}\")` -- {link}", ""]
        b += [_md(r.get("description", "")), ""]
        b += [f"- **Coverage:** {_md(r.get('coverage', ''))}"]
        b += ["- **Sources:**"] + [f"  - {_source_md(s, d, link_prefix, repository_url)}"
                                   for s in r.get("sources", [])]
        lic = "; ".join(_md(l.get("title") or l.get("name", "")) for l in r.get("licenses", []))
        b += [f"- **Licence:** {lic}"]
        fields = r.get("schema", {}).get("fields", [])
        if fields:
            pk = r["schema"].get("primaryKey", [])
            b += [f"- **Primary key:** {', '.join(f'`{k}`' for k in pk) or 'none'}", "",
                  "| Column | Type | Meaning and unit |", "| --- | --- | --- |"]
            for f in fields:
                req = " (required)" if f.get("constraints", {}).get("required") else ""
                b.append(f"| `{f['name']}` | {f.get('type', '')}{req} | "
                         f"{_md(f.get('description', ''))} |")
        blocks.append("\n".join(b))
    return "\n".join(lines) + "\n\n" + "\n\n".join(blocks) + "\n"
