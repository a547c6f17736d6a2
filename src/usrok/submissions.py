"""What a submission file holds, read without running anything of it.

A submission is a notebook (``.ipynb``; nbformat 3 is upgraded to 4) or a ``.zip`` holding
exactly one notebook, which is read from the archive and never extracted (its member names
are never used as paths). Anything else, or anything larger than :data:`MAX_NOTEBOOK`,
nested too deeply, not UTF-8 or not valid nbformat, raises :class:`Invalid` with a reason
for the grades CSV.
"""

from __future__ import annotations

import ast
import hashlib
import json
import zipfile
from pathlib import Path

__all__ = ["Invalid", "MAX_NOTEBOOK", "sha256", "read", "assigned_names", "missing_answers", "find"]

MAX_NOTEBOOK = 50 * 1024**2  # bytes of notebook JSON read (a zip's notebook included)


class Invalid(Exception):
    """The file is not a gradable notebook (the message says why)."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _notebook_bytes(path: Path) -> bytes:
    """The notebook's bytes: the file, or the one notebook inside a zip (read, never extracted)."""
    if path.suffix.lower() != ".zip":
        if path.stat().st_size > MAX_NOTEBOOK:
            raise Invalid(f"larger than {MAX_NOTEBOOK // 1024**2} MB")
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(".ipynb")
                       and "__MACOSX" not in i.filename and ".ipynb_checkpoints" not in i.filename
                       and not Path(i.filename).name.startswith("._")]
            if len(members) != 1:
                raise Invalid(f"the zip file holds {len(members)} notebooks (expected 1)")
            with zf.open(members[0]) as fh:  # the member's name is never used as a path
                data = fh.read(MAX_NOTEBOOK + 1)
            if len(data) > MAX_NOTEBOOK:
                raise Invalid(f"the notebook in the zip is larger than {MAX_NOTEBOOK // 1024**2} MB")
            return data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
        raise Invalid(f"not a valid zip file: {e}") from None


def read(path: Path):
    """The submission as an nbformat v4 notebook, without running it (v3 is upgraded).

    Raises :class:`Invalid` with a reason for anything that is not a gradable notebook.
    """
    import nbformat

    try:
        text = _notebook_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise Invalid(f"cannot read the file: {e.strerror or e}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise Invalid(f"not valid notebook JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except RecursionError:
        raise Invalid("not a notebook: its JSON is nested too deeply") from None
    if not isinstance(raw, dict) or not ("cells" in raw or "worksheets" in raw):
        raise Invalid("valid JSON but not a Jupyter notebook (no 'cells')")
    try:
        nb = nbformat.reads(text, as_version=4)  # upgrades nbformat 3
        nbformat.validator.normalize(nb)
        nbformat.validate(nb)
    except RecursionError:
        raise Invalid("not a notebook: it is nested too deeply") from None
    except Exception as e:  # nbformat.ValidationError and friends
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Invalid(f"not a valid notebook: {first[:200]}") from None
    return nb


def assigned_names(nb) -> tuple[set[str], set[str]]:
    """Top-level names a notebook assigns, and those it leaves as ``...`` (unanswered)."""
    assigned, ellipsis = set(), set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", ""))
        src = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assigned.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                assigned.update((a.asname or a.name).split(".")[0] for a in node.names)
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        if isinstance(node, ast.Assign) and _holds_ellipsis(node.value):
                            ellipsis.add(n.id)
                        else:
                            assigned.add(n.id)
    return assigned, ellipsis - assigned


def _holds_ellipsis(value: ast.AST) -> bool:
    """``...`` itself, or a literal list, tuple, set or dict with a ``...`` still in it."""
    if isinstance(value, ast.Constant):
        return value.value is Ellipsis
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return any(_holds_ellipsis(v) for v in value.elts)
    if isinstance(value, ast.Dict):
        return any(v is not None and _holds_ellipsis(v) for v in value.values)
    return False


def missing_answers(nb, variables: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per question, the answer variables the notebook never assigns (or leaves as ``...``)."""
    assigned, blank = assigned_names(nb)
    lacking = {}
    for q, names in variables.items():
        gone = [n for n in names if n not in assigned]
        if gone:
            lacking[q] = [f"{n} (still has ...)" if n in blank else f"{n} (never assigned)" for n in gone]
    return lacking


def find(folder: Path) -> list[Path]:
    """Every ``.ipynb`` and ``.zip`` under ``folder`` (checkpoints skipped), sorted."""
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".ipynb", ".zip")
             and ".ipynb_checkpoints" not in p.parts]
    return sorted(found)
