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
    Every table is checked against its Table Schema on load. A problem raises
    :class:`DataValidationError`, whose message names the file, the row (the line
    of the CSV where the record starts, header = line 1; a quoted cell spanning
    lines counts every line), the column and the rule broken. Two passes:

    1. pure Python, always: empty file, encoding, header, then every cell against
       the rules the schemas use (type -- numbers must be finite --, required,
       minimum, maximum, enum, pattern) and the primary key;
    2. Frictionless, for a file whose bytes differ from the ones recorded in
       ``datapackage.json`` (``hash``, written by ``data/build_tables.py``, whose
       output the tests validate with Frictionless): a copied or hand-edited table
       gets both passes, the committed ones load fast. Without Frictionless (the
       in-browser edition) this pass is skipped, with a notice.

    Nothing is cached on disk (a cache there could be forged to skip validation);
    tables are kept in memory per file (path, modification time, size).

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
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["DATA_DIR", "DataValidationError", "find_data_dir", "load", "resource_info",
           "resource_names", "resource_path", "package"]

ENV_VAR = "USROK_DATA"
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


def _records(text: str) -> list[tuple[int, list[str]]]:
    """Every record of a CSV (header first) with the line of the file where it starts.

    A quoted cell may span lines, so a record's line is not its position: the numbers are the
    ones an editor shows.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    out, line = [], 1
    for cells in reader:
        out.append((line, cells))
        line = reader.line_num + 1
    return out


def _precheck(raw: bytes, fields: list[dict], shown: str) -> tuple[str, list]:
    """Empty file, encoding and header checks. Returns the decoded text and its records."""
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
        bad_line = raw[:e.start].count(b"\n") + 1
        records = _records(raw.decode("utf-8", errors="replace"))
        header = records[0][1] if records else []
        row, column = bad_line, None
        for i, (line, cells) in enumerate(records):
            if line > bad_line:
                break
            row = line
            column = next(((header[k] if i and k < len(header) else cell)
                           for k, cell in enumerate(cells) if "\ufffd" in cell), column)
        raise DataValidationError(
            shown, row, column,
            f"byte 0x{raw[e.start]:02x} at offset {e.start} is not valid UTF-8 (wrong encoding: "
            "the file must be saved as UTF-8, not Latin-1/Windows-1252)") from None
    records = _records(text)
    header = records[0][1]
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
    if len(records) < 2:
        raise DataValidationError(shown, 2, names[0], "the file has a header but no data rows")
    return text, records


# The first pass, in pure Python, checks every cell against the rules the package's schemas use
# (type, required, minimum, maximum, enum, pattern) and the primary key. It always runs, also
# where Frictionless is not installed (the in-browser edition).
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")  # no inf, no nan


def _cell_problem(value: str, field: dict, types_only: bool = False) -> str | None:
    typ = field.get("type", "string")
    rules = {} if types_only else field.get("constraints", {})
    if value == "":  # the package's only missing value
        return "value is empty but the column is required" if rules.get("required") else None
    typed: Any = value
    if typ == "integer":
        if not _INTEGER.fullmatch(value):
            return f"value '{value}' is not of type integer"
        typed = int(value)
    elif typ == "number":
        typed = float(value) if _NUMBER.fullmatch(value) else None
        if typed is None or not math.isfinite(typed):
            return f"value '{value}' is not of type number (a finite number is expected)"
    elif typ == "boolean":
        allowed = field.get("trueValues", ["true", "True", "TRUE", "1"]) + \
            field.get("falseValues", ["false", "False", "FALSE", "0"])
        if value not in allowed:
            return f"value '{value}' is not of type boolean ({', '.join(allowed)})"
    if "enum" in rules and typed not in rules["enum"]:
        return f"value '{value}' breaks constraint enum = {rules['enum']}"
    for rule, broken in (("minimum", lambda x, m: x < m), ("maximum", lambda x, m: x > m)):
        if rule in rules and typ in ("integer", "number") and broken(typed, rules[rule]):
            return f"value '{value}' breaks constraint {rule} = {rules[rule]}"
    if "pattern" in rules and not re.fullmatch(rules["pattern"], value):
        return f"value '{value}' breaks constraint pattern = {rules['pattern']}"
    return None


def _check_cells(records: list, schema: dict, shown: str, types_only: bool = False) -> None:
    """Raise DataValidationError naming line, column and rule of every bad cell (first one first)."""
    fields = schema["fields"]
    names = [f["name"] for f in fields]
    key = schema.get("primaryKey") or []
    key = [key] if isinstance(key, str) else key
    seen: dict[tuple, int] = {}
    problems: list[tuple] = []
    for line, cells in records[1:]:
        if not any(cells):
            problems.append((line, "(all columns)", "blank row"))
            continue
        if len(cells) != len(names):
            short = len(cells) < len(names)
            column = names[len(cells)] if short else f"(extra cell at position {len(names) + 1})"
            problems.append((line, column, "the row has too few cells (value missing)" if short
                             else "the row has more cells than the header"))
            continue
        for field, value in zip(fields, cells):
            problem = _cell_problem(value, field, types_only)
            if problem:
                problems.append((line, field["name"], problem))
        if key and not types_only:
            values = tuple(cells[names.index(k)] for k in key)
            if values in seen:
                label = "primary key " + ", ".join(f"{k}={v!r}" for k, v in zip(key, values))
                problems.append((line, key if len(key) > 1 else key[0],
                                 f"duplicate {label} already used in row {seen[values]}"))
            else:
                seen[values] = line
    if problems:
        (line, column, rule), more = problems[0], problems[1:]
        raise DataValidationError(shown, line, column, rule,
                                  [f"row {r}, column {c!r}: {x}" for r, c, x in more])


_CONSTRAINT_RE = re.compile(r'constraint "(\w+)" is "(.*)"', re.S)


def _explain(err: dict, fields: dict, schema: dict, line_of) -> tuple:
    """Turn one Frictionless error (as a dict) into (line, column, rule)."""
    etype = err.get("type", "")
    row = line_of(err.get("rowNumber"))
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
        where = f" already used in row {line_of(int(m.group(1)))}" if m else ""
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


def _frictionless_validate(d: Path, res: dict, shown: str, records: list) -> None:
    """The second pass: Frictionless's own validation of the table against its schema."""
    from frictionless import Resource, system

    descriptor = {k: v for k, v in res.items() if k not in ("sources", "licenses", "hash")}
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

    def line_of(row_number):  # Frictionless counts records; we report lines
        if isinstance(row_number, int) and 0 < row_number <= len(records):
            return records[row_number - 1][0]
        return row_number

    explained = [_explain(e, fields, schema, line_of) for e in errors]
    explained.sort(key=lambda t: (t[0] is None, t[0] or 0))
    row, col, rule = explained[0]
    more = [f"row {r}, column {c!r}: {x}" for r, c, x in explained[1:]]
    raise DataValidationError(shown, row, col, rule, more)


_NOTICE_GIVEN: list[bool] = []


def _validate(d: Path, res: dict, raw: bytes, records: list, shown: str) -> None:
    """Both passes. Frictionless checks a file unless its bytes are the ones datapackage.json
    records (``hash``, written by build_tables.py, whose output the tests validate with
    Frictionless): the committed tables load fast, a copied or edited file gets both passes."""
    _check_cells(records, res["schema"], shown)
    if res.get("hash") == "sha256:" + hashlib.sha256(raw).hexdigest():
        return
    try:
        import frictionless  # noqa: F401
    except ImportError:
        if not _NOTICE_GIVEN:
            _NOTICE_GIVEN.append(True)
            warnings.warn("usrok.data: Frictionless is not installed, so tables are checked by the "
                          "course's own rules only (types, required values, ranges, allowed values, "
                          "patterns, primary keys)", stacklevel=3)
        return
    _frictionless_validate(d, res, shown, records)


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
            s = col.map(lambda v, trues=trues: pd.NA if pd.isna(v) else v in trues)
            df[name] = s.astype(bool) if required else s.astype("boolean")
        # strings stay as read (pandas string values, NA where empty)
    return df


def load(name: str, data_dir: str | os.PathLike | None = None, *, validate: bool = True):
    """Load table ``name`` as a typed :class:`pandas.DataFrame` (a dict for GeoJSON).

    ``data_dir`` overrides where the data are found (default: :func:`find_data_dir`).
    The table is validated against its schema first; a problem raises
    :class:`DataValidationError`. ``validate=False`` skips the schema rules (not
    recommended); a value that cannot be read as its column's type still raises
    :class:`DataValidationError` naming file, row and column.
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
    text, records = _precheck(raw, fields, shown)
    if validate:
        _validate(d, res, raw, records, shown)
    try:
        df = _typed_frame(text, fields)
    except (ValueError, TypeError):  # only without validation: say where, as validation would
        _check_cells(records, res["schema"], shown, types_only=True)
        raise
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
