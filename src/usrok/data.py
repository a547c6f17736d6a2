"""Find the course's ``data/`` folder and load its tables, validated and typed.

    >>> from usrok import data
    >>> troops = data.load("us_troops_by_host")        # a pandas DataFrame
    >>> data.resource_info("us_troops_by_host")["sources"]

Where the data live
    ``DATA_DIR`` is the folder holding ``datapackage.json``. It is found from any
    working directory: the ``USROK_DATA`` environment variable wins (a data folder
    or a folder containing ``data/``); otherwise we search upward from the current
    working directory, then upward from this file, for ``data/datapackage.json``.

Validation
    Every table is checked against its Frictionless Table Schema on load. A
    problem raises :class:`DataValidationError`, whose message names the file,
    the row (as in the CSV: header = row 1), the column and the rule broken.
    Cheap checks (empty file, encoding, header) run first in pure Python; the
    rest is Frictionless. Results are cached in memory per file (path,
    modification time, size) and a successful Frictionless validation is also
    remembered on disk by the SHA-256 of the file and of its schema (in
    ``$USROK_CACHE_DIR`` or ``~/.cache/usrok``), so a fresh kernel does not pay
    for importing Frictionless to re-check a file it has already seen. Any change
    to the bytes of a file or to its schema triggers a full validation again.

Types
    integer -> ``int64`` when the field is required, else pandas ``Int64``;
    number -> ``float64``; boolean -> ``bool`` when required, else ``boolean``;
    string (including imprecise dates such as ``"late 1960s"`` or ``"1990"``)
    -> pandas string values with missing values as NA.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["DATA_DIR", "DataValidationError", "find_data_dir", "load", "resource_info",
           "resource_names", "resource_path", "package"]

ENV_VAR = "USROK_DATA"
CACHE_ENV_VAR = "USROK_CACHE_DIR"
PACKAGE_FILE = "datapackage.json"


class DataValidationError(ValueError):
    """A data file breaks its schema. ``str(err)`` names file, row, column and rule.

    Attributes: ``file`` (display path), ``row`` (CSV row number, header = 1),
    ``column`` (column name), ``rule`` (what was broken), ``errors`` (all messages).
    """

    def __init__(self, file: str, row: int | None, column: str | None, rule: str,
                 more: list[str] | None = None):
        self.file, self.row, self.column, self.rule = file, row, column, rule
        parts = [file]
        if row is not None:
            parts.append(f"row {row}")
        if isinstance(column, (list, tuple)):
            parts.append("columns " + ", ".join(f"'{c}'" for c in column))
        elif column is not None:
            parts.append(f"column '{column}'")
        message = ", ".join(parts) + f": {rule}"
        self.errors = [message] + list(more or [])
        if more:
            message += f" (and {len(more)} more problem{'s' if len(more) > 1 else ''}: " \
                       + "; ".join(more[:3]) + ("; ..." if len(more) > 3 else "") + ")"
        super().__init__(message)


# ---------------------------------------------------------------------------
# Finding the data folder
# ---------------------------------------------------------------------------

def _as_data_dir(p: Path) -> Path | None:
    if (p / PACKAGE_FILE).is_file():
        return p.resolve()
    if (p / "data" / PACKAGE_FILE).is_file():
        return (p / "data").resolve()
    return None


def find_data_dir(start: str | os.PathLike | None = None) -> Path:
    """Return the folder that holds ``datapackage.json`` (see the module docstring)."""
    env = os.environ.get(ENV_VAR)
    if env:
        found = _as_data_dir(Path(env).expanduser())
        if found is None:
            raise FileNotFoundError(f"{ENV_VAR}={env!r}: no {PACKAGE_FILE} there or in its "
                                    "data/ subfolder")
        return found
    bases = []
    if start is not None:
        bases.append(Path(start))
    try:
        bases.append(Path.cwd())
    except OSError:  # the working directory was deleted
        pass
    bases.append(Path(__file__).resolve().parent)
    for base in bases:
        base = base.resolve()
        for d in (base, *base.parents):
            if (d / "data" / PACKAGE_FILE).is_file():
                return (d / "data").resolve()
    raise FileNotFoundError(
        f"could not find data/{PACKAGE_FILE} above {', '.join(map(str, bases))}; "
        f"set {ENV_VAR} to the course's data folder")


try:
    DATA_DIR: Path | None = find_data_dir()
except FileNotFoundError:  # pragma: no cover - only outside a course checkout
    DATA_DIR = None


def _resolve_dir(data_dir) -> Path:
    if data_dir is None:
        return find_data_dir()
    found = _as_data_dir(Path(data_dir))
    if found is None:
        raise FileNotFoundError(f"no {PACKAGE_FILE} in {data_dir} or {data_dir}/data")
    return found


# ---------------------------------------------------------------------------
# The package descriptor
# ---------------------------------------------------------------------------
_PKG_CACHE: dict[tuple, dict] = {}


def package(data_dir=None) -> dict:
    """The parsed ``datapackage.json`` (cached per file modification time)."""
    d = _resolve_dir(data_dir)
    p = d / PACKAGE_FILE
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    if key not in _PKG_CACHE:
        _PKG_CACHE.clear()
        _PKG_CACHE[key] = json.loads(p.read_text(encoding="utf-8"))
    return _PKG_CACHE[key]


def resource_names(data_dir=None) -> list[str]:
    return [r["name"] for r in package(data_dir)["resources"]]


def _resource(name: str, data_dir) -> dict:
    for r in package(data_dir)["resources"]:
        if r["name"] == name:
            return r
    raise KeyError(f"no table named {name!r}; available: {', '.join(resource_names(data_dir))}")


def resource_path(name: str, data_dir=None) -> Path:
    """Absolute path of a resource's file."""
    return _resolve_dir(data_dir) / _resource(name, data_dir)["path"]


def resource_info(name: str, data_dir=None) -> dict[str, Any]:
    """Title, description (caveats), coverage, sources, licences and schema of a table."""
    r = _resource(name, data_dir)
    schema = r.get("schema", {})
    return {
        "name": r["name"],
        "title": r.get("title", r["name"]),
        "description": r.get("description", ""),
        "coverage": r.get("coverage", ""),
        "sources": r.get("sources", []),
        "licenses": r.get("licenses", []),
        "license": "; ".join(l.get("title") or l.get("name", "") for l in r.get("licenses", [])),
        "path": str(resource_path(name, data_dir)),
        "format": r.get("format", ""),
        "fields": schema.get("fields", []),
        "primary_key": schema.get("primaryKey", []),
    }


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

def _display(d: Path, rel: str) -> str:
    return f"data/{rel}" if d.name == "data" else str(d / rel)


def _precheck(raw: bytes, fields: list[dict], shown: str) -> str:
    """Empty file, encoding and header checks. Returns the decoded text."""
    names = [f["name"] for f in fields]
    if not raw.strip():
        raise DataValidationError(shown, 1, names[0] if names else None,
                                  "the file is empty: expected a header row with the columns "
                                  + ", ".join(names))
    if raw.startswith(b"\xef\xbb\xbf"):
        raise DataValidationError(shown, 1, names[0], "the file starts with a byte-order mark "
                                  "(BOM); save it as UTF-8 without BOM")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        start = raw.rfind(b"\n", 0, e.start) + 1
        before = raw[:start].decode("utf-8")
        row = sum(1 for _ in csv.reader(io.StringIO(before, newline=""))) + 1
        records = list(csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"),
                                              newline="")))
        header = records[0] if records else []
        column = None
        if len(records) >= row:
            for i, cell in enumerate(records[row - 1]):
                if "\ufffd" in cell:
                    column = header[i] if i < len(header) and row > 1 else cell
                    break
        raise DataValidationError(
            shown, row, column,
            f"byte 0x{raw[e.start]:02x} at offset {e.start} is not valid UTF-8 (wrong encoding: "
            "the file must be saved as UTF-8, not Latin-1/Windows-1252)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    missing = [n for n in names if n not in header]
    extra = [h for h in header if h not in names]
    if missing:
        raise DataValidationError(
            shown, 1, missing[0], "required column is missing from the header"
            + (f" (header has {', '.join(header)})" if len(header) < 30 else ""),
            [f"row 1, column '{m}': required column is missing" for m in missing[1:]])
    if extra:
        raise DataValidationError(shown, 1, extra[0], "unexpected column not in the schema")
    if header != names:
        for i, (h, n) in enumerate(zip(header, names)):
            if h != n:
                raise DataValidationError(shown, 1, h, f"column is at position {i + 1}, but the "
                                          f"schema expects '{n}' there")
    if next(reader, None) is None:
        raise DataValidationError(shown, 2, names[0], "the file has a header but no data rows")
    return text


_CONSTRAINT_RE = re.compile(r'constraint "(\w+)" is "(.*)"', re.S)


def _explain(err: dict, fields: dict, schema: dict, shown: str) -> tuple:
    """Turn one Frictionless error (as a dict) into (row, column, rule)."""
    etype = err.get("type", "")
    row = err.get("rowNumber")
    col = err.get("fieldName")
    cell = err.get("cell")
    note = err.get("note", "")
    if etype == "type-error":
        ftype = fields.get(col, {}).get("type", "?")
        return row, col, f"value '{cell}' is not of type {ftype}"
    if etype == "constraint-error":
        m = _CONSTRAINT_RE.search(note)
        if m and m.group(1) == "required":
            return row, col, "value is empty but the column is required"
        if m:
            return row, col, f"value '{cell}' breaks constraint {m.group(1)} = {m.group(2)}"
        return row, col, f"value '{cell}' breaks a constraint ({note})"
    if etype in ("primary-key", "unique-error"):
        pk = schema.get("primaryKey") or ([col] if col else [])
        pk = [pk] if isinstance(pk, str) else pk
        cells = err.get("cells") or []
        names = list(fields)
        vals = [cells[names.index(k)] if k in names and names.index(k) < len(cells) else "?"
                for k in pk]
        m = re.search(r'position "?(\d+)"?', note)
        where = f" already used in row {m.group(1)}" if m else ""
        label = "primary key" if etype == "primary-key" else "unique value"
        return row, pk if len(pk) > 1 else pk[0], (f"duplicate {label} "
                                    + ", ".join(f"{k}={v!r}" for k, v in zip(pk, vals)) + where)
    if etype == "missing-cell":
        return row, col, "the row has too few cells (value missing)"
    if etype == "extra-cell":
        return row, col or f"(extra cell at position {err.get('fieldNumber')})", \
            "the row has more cells than the header"
    if etype == "blank-row":
        return row, "(all columns)", "blank row"
    if etype in ("missing-label", "blank-label", "duplicate-label", "incorrect-label",
                 "extra-label"):
        return 1, col or err.get("label"), f"{err.get('title', etype)}: {note}"
    if etype == "foreign-key":
        return row, col, f"foreign key not found ({note})"
    return row, col, f"{err.get('title', etype)}: {note or err.get('message', '')}"


def _cache_file() -> Path:
    base = os.environ.get(CACHE_ENV_VAR) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "usrok")
    return Path(base) / "validated-v1.json"


def _known_valid() -> set[str]:
    try:
        return set(json.loads(_cache_file().read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return set()


def _remember_valid(token: str) -> None:
    try:
        path = _cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        known = sorted((_known_valid() | {token}))[-2000:]
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(known, fh)
        os.replace(tmp, path)
    except OSError:  # a read-only home directory must not stop a notebook
        pass


def _frictionless_validate(d: Path, res: dict, shown: str) -> None:
    from frictionless import Resource, system

    descriptor = {k: v for k, v in res.items() if k not in ("sources", "licenses")}
    schema = dict(descriptor.get("schema", {}))
    schema.pop("foreignKeys", None)  # checked at package level (tests), not per table
    descriptor["schema"] = schema
    with system.use_context(trusted=True):
        resource = Resource.from_descriptor(descriptor, basepath=str(d))
        report = resource.validate()
    if report.valid:
        return
    fields = {f["name"]: f for f in schema.get("fields", [])}
    errors = []
    for task in report.tasks:
        errors += [e.to_dict() for e in task.errors]
    errors += [e.to_dict() for e in report.errors]
    if not errors:  # pragma: no cover
        raise DataValidationError(shown, None, None, "invalid (no details from Frictionless)")
    explained = [_explain(e, fields, schema, shown) for e in errors]
    explained.sort(key=lambda t: (t[0] is None, t[0] or 0))
    row, col, rule = explained[0]
    more = [f"row {r}, column {c!r}: {x}" for r, c, x in explained[1:]]
    raise DataValidationError(shown, row, col, rule, more)


_FL_VERSION: list[str] = []


def _frictionless_missing() -> bool:
    """True (with a one-time notice) where Frictionless is not installed, e.g. in the in-browser
    edition: the encoding, header and column-type checks still run; the other schema rules were
    checked when the book was built from the same files."""
    import importlib.util

    if importlib.util.find_spec("frictionless") is not None:
        return False
    if not _SKIPPED_NOTICE:
        _SKIPPED_NOTICE.append("shown")
        print("Note: Frictionless is not available here, so the tables are checked for encoding, "
              "header and column types only (the book's build runs the full schema checks).")
    return True


def _frictionless_version() -> str:
    if not _FL_VERSION:
        import importlib.metadata as md
        try:
            _FL_VERSION.append(md.version("frictionless"))
        except md.PackageNotFoundError:  # pragma: no cover
            _FL_VERSION.append("?")
    return _FL_VERSION[0]


_SKIPPED_NOTICE: list[str] = []


def _validate(d: Path, res: dict, raw: bytes, shown: str, use_disk_cache: bool) -> None:
    if _frictionless_missing():
        return
    version = _frictionless_version()
    token = hashlib.sha256(
        raw + json.dumps(res.get("schema", {}), sort_keys=True).encode() + version.encode()
    ).hexdigest()
    if use_disk_cache and token in _known_valid():
        return
    _frictionless_validate(d, res, shown)
    if use_disk_cache:
        _remember_valid(token)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
_FRAME_CACHE: dict[tuple, pd.DataFrame] = {}


def _typed_frame(text: str, fields: list[dict]) -> pd.DataFrame:
    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    for f in fields:
        name, typ = f["name"], f.get("type", "string")
        required = f.get("constraints", {}).get("required", False)
        col = df[name]
        if typ == "integer":
            s = pd.to_numeric(col, errors="raise")
            df[name] = s.astype("int64") if required else s.astype("Int64")
        elif typ == "number":
            df[name] = pd.to_numeric(col, errors="raise").astype("float64")
        elif typ == "boolean":
            trues = set(f.get("trueValues", ["true", "True", "TRUE", "1"]))
            s = col.map(lambda v: pd.NA if pd.isna(v) else v in trues)
            df[name] = s.astype(bool) if required else s.astype("boolean")
        # strings stay as read (pandas string values, NA where empty)
    return df


def load(name: str, data_dir: str | os.PathLike | None = None, *, validate: bool = True,
         disk_cache: bool = True):
    """Load table ``name`` as a typed :class:`pandas.DataFrame` (a dict for GeoJSON).

    ``data_dir`` overrides where the data are found (default: :func:`find_data_dir`).
    The table is validated against its schema first; a problem raises
    :class:`DataValidationError`. ``validate=False`` skips the check (not recommended);
    ``disk_cache=False`` forces Frictionless to run even for a file seen before.
    """
    d = _resolve_dir(data_dir)
    res = _resource(name, d)
    path = d / res["path"]
    shown = _display(d, res["path"])
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataValidationError(shown, None, None, "file not found") from None
    key = (str(path), st.st_mtime_ns, st.st_size,
           json.dumps(res.get("schema", {}), sort_keys=True), validate)
    hit = _FRAME_CACHE.get(key)
    if hit is not None:
        return hit.copy(deep=True) if isinstance(hit, pd.DataFrame) else json.loads(hit)
    raw = path.read_bytes()
    if res.get("format") in ("geojson", "json") or "schema" not in res:
        try:
            text = raw.decode("utf-8")
            obj = json.loads(text)
        except (UnicodeDecodeError, ValueError) as e:
            raise DataValidationError(shown, None, None, f"not valid UTF-8 JSON: {e}") from None
        _FRAME_CACHE[key] = text
        return obj
    fields = res["schema"]["fields"]
    text = _precheck(raw, fields, shown)
    if validate:
        _validate(d, res, raw, shown, disk_cache)
    df = _typed_frame(text, fields)
    for k in [k for k in _FRAME_CACHE if k[0] == str(path)]:
        del _FRAME_CACHE[k]
    _FRAME_CACHE[key] = df
    return df.copy(deep=True)


# ---------------------------------------------------------------------------
# The "Data sources" page
# ---------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>{}$|#~.])")


def _md(text: str) -> str:
    """Escape text for MyST Markdown: no accidental math ($), HTML (<TAB>), roles,
    table cells (|) or auto-links (linkify would turn 'README.md' into a link to a
    Moldovan domain; an escaped dot stops it)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def _source_md(s: dict) -> str:
    title = _md(s.get("title", ""))
    path = s.get("path", "")
    if re.match(r"^https?://", path):
        out = f"[{title}]({path})"
    elif path:
        out = f"{title} (`{path}`)"
    else:
        out = title
    if s.get("citation"):
        out += f". *Cite as:* {_md(s['citation'])}"
    return out


def catalogue_markdown(link_prefix: str = "../data/", data_dir=None) -> str:
    """MyST Markdown describing every resource of datapackage.json.

    Used by ``chapters/data_sources.md``; ``link_prefix`` is the path from the page to
    ``data/`` (download links use the Sphinx ``{download}`` role, so the files are
    copied into the built site).
    """
    pkg = package(data_dir)
    lines = ["| Table | What it holds | Rows | Coverage | Download |",
             "| --- | --- | --- | --- | --- |"]
    blocks = []
    for r in pkg["resources"]:
        name, title = r["name"], r.get("title", r["name"])
        link = f"{{download}}`{r.get('format', 'file').upper()} <{link_prefix}{r['path']}>`"
        if "schema" in r:
            rows = str(len(load(name, data_dir)))
        else:
            rows = "–"
        lines.append(f"| `{name}` | {_md(title)} | {rows} | {_md(r.get('coverage', ''))} "
                     f"| {link} |")
        b = [f"**{_md(title)}** -- `load(\"{name}\")` -- {link}", ""]
        b += [_md(r.get("description", "")), ""]
        b += [f"- **Coverage:** {_md(r.get('coverage', ''))}"]
        b += ["- **Sources:**"] + [f"  - {_source_md(s)}" for s in r.get("sources", [])]
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
    return "\n".join(lines) + "\n\n" + "\n\n---\n\n".join(blocks) + "\n"
