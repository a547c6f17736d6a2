"""Where the course's data live and what ``datapackage.json`` says about each table.

``DATA_DIR`` is the folder holding ``datapackage.json``. It is found from any working
directory: the ``USROK_DATA`` environment variable wins (a data folder or a folder
containing ``data/``); otherwise we search upward from the current working directory, then
upward from this file, for ``data/datapackage.json``. The descriptor is parsed once per
modification of the file. Loading a table is :func:`usrok.data.load`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENV_VAR = "USROK_DATA"
PACKAGE_FILE = "datapackage.json"


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
