"""Checking a table against its Table Schema before it loads (see :mod:`usrok.data`).

A problem raises :class:`DataValidationError`, whose message names the file, the row (the
line of the CSV where the record starts, header = line 1; a quoted cell spanning lines
counts every line), the column and the rule broken. Two passes:

1. pure Python, always: empty file, encoding, header (:func:`_precheck`), then every cell
   against the rules the schemas use (type -- numbers must be finite --, required, minimum,
   maximum, enum, pattern) and the primary key (:func:`_check_cells`);
2. Frictionless, for a file whose bytes differ from the ones recorded in
   ``datapackage.json`` (``hash``): a copied or hand-edited table gets both passes, the
   committed ones load fast. Without Frictionless (the in-browser edition) this pass is
   skipped, with a notice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import warnings
from pathlib import Path
from typing import Any


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
