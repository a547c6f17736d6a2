"""Find the course's ``data/`` folder and load its tables, validated and typed.

    >>> from usrok import data
    >>> troops = data.load("us_troops_by_host")        # a pandas DataFrame
    >>> data.resource_info("us_troops_by_host")["sources"]

Where the data live (:mod:`usrok.data_package`)
    ``DATA_DIR`` is the folder holding ``datapackage.json``. It is found from any
    working directory: the ``USROK_DATA`` environment variable wins (a data folder
    or a folder containing ``data/``); otherwise we search upward from the current
    working directory, then upward from this file, for ``data/datapackage.json``.

Validation (:mod:`usrok.data_validation`)
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

import io
import json
import os

import pandas as pd

from usrok.data_package import (DATA_DIR, _resolve_dir, _resource, find_data_dir, package,
                                resource_info, resource_names, resource_path)
from usrok.data_validation import DataValidationError, _check_cells, _display, _precheck, _validate

__all__ = ["DATA_DIR", "DataValidationError", "find_data_dir", "load", "resource_info",
           "resource_names", "resource_path", "package"]


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
