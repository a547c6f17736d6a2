"""The lock files pin every package, agree with the .in files, and are what is installed.

Offline and fast: the lock files are read as text and compared with the running environment
(``importlib.metadata``); nothing is resolved or downloaded.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# Packages the issue asks to pin because the course patches or depends on their behaviour.
MUST_BE_PINNED = ["sphinx", "myst-nb", "sphinx-book-theme", "pydata-sphinx-theme", "pybtex",
                  "nbconvert", "nbclient", "jupyter-book", "otter-grader"]


def lock(name: str) -> dict[str, dict]:
    """{package: {"version", "marker", "via"}} of a compiled lock file."""
    entries: dict[str, dict] = {}
    current = None
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("-e "):
            current = {"version": "editable", "marker": None, "via": []}
            entries["usrok"] = current
        elif line and not line.startswith((" ", "#")):
            m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^ ;]+)(?:\s*;\s*(.+))?", line)
            assert m, f"{name}: not an exact pin: {line!r}"
            current = {"version": m.group(2), "marker": m.group(3), "via": []}
            entries[canonicalize_name(m.group(1))] = current
        elif current is not None and line.strip().startswith("#") and "via" not in line:
            current["via"].append(line.strip("# ").strip())
        elif current is not None and re.match(r"\s+# via \S", line):
            current["via"].append(line.split("# via", 1)[1].strip())
    return entries


def top_level(name: str) -> dict[str, str]:
    """{package: version} of the requirements listed in a .in file."""
    out = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
        assert m, f"{name}: pin top-level packages exactly: {line!r}"
        out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def pdf_export_only() -> list[str]:
    m = re.search(r"^PDF_EXPORT_ONLY\s*:=\s*(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert m, "the Makefile names the packages it leaves out (PDF_EXPORT_ONLY)"
    return m.group(1).split()


@pytest.mark.parametrize("source,compiled", [("requirements.in", "requirements.txt"),
                                             ("requirements-test.in", "requirements-test.txt")])
def test_lock_agrees_with_its_in_file(source, compiled):
    """Every package of the .in file is pinned at the same version in the lock, and the lock names
    no top-level package the .in file lacks: an edited .in file was followed by `make lock`."""
    wanted = top_level(source)
    pinned = lock(compiled)
    stale = {p: (v, pinned.get(p, {}).get("version")) for p, v in wanted.items()
             if pinned.get(p, {}).get("version") != v}
    assert not stale, f"{compiled} is out of date with {source} (run `make lock`): {stale}"
    direct = {p for p, e in pinned.items() if f"-r {source}" in " ".join(e["via"]) and p != "usrok"}
    assert direct <= set(wanted), f"{compiled} lists packages no longer in {source}: {direct - set(wanted)}"


def test_the_course_lock_pins_what_the_book_patches():
    pinned = lock("requirements.txt")
    assert not [p for p in MUST_BE_PINNED if p not in pinned]
    assert pinned["usrok"]["version"] == "editable", "the course package is installed from the repository"


def test_test_lock_includes_the_course_lock_unchanged():
    course, test = lock("requirements.txt"), lock("requirements-test.txt")
    changed = {p: (e["version"], test.get(p, {}).get("version")) for p, e in course.items()
               if test.get(p, {}).get("version") != e["version"]}
    assert not changed, changed


def test_left_out_packages_serve_only_the_pdf_export():
    """What `make book` leaves out is needed by nothing but nbconvert's webpdf extra."""
    pinned = lock("requirements.txt")
    left_out = pdf_export_only()
    assert "playwright" in left_out
    for name in left_out:
        parents = {canonicalize_name(v) for v in pinned[name]["via"]}
        assert parents <= set(left_out) | {"nbconvert"}, f"{name} is also needed by {parents}"


def _applies(marker: str | None) -> bool:
    return marker is None or Marker(marker).evaluate()


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="not running in a virtual environment")
def test_the_environment_is_the_lock():
    """The running environment holds exactly the packages of the test lock, at their versions
    (a stale package left by an older lock, or a hand-installed one, fails this)."""
    if not (Path(sys.prefix) / ".test-env").exists():
        pytest.skip("not the environment `make test` builds")
    expected = {p: e["version"] for p, e in lock("requirements-test.txt").items() if _applies(e["marker"])}
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in importlib.metadata.distributions()}
    installed.pop("pip", None)  # the installer itself comes with the venv
    assert installed.pop("usrok", None) is not None and expected.pop("usrok")
    extra = sorted(set(installed) - set(expected))
    missing = sorted(set(expected) - set(installed))
    wrong = {p: (installed[p], v) for p, v in expected.items() if p in installed and installed[p] != v}
    assert not (extra or missing or wrong), (
        f"extra: {extra}; missing: {missing}; version differs (installed, locked): {wrong}. "
        "Recreate it: rm -rf .venv && make test")
