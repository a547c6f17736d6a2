"""The lock files pin every package, agree with the .in files, and are what is installed.

Offline and fast: the lock files are read as text and compared with the running environment
(``importlib.metadata``); nothing is resolved or downloaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
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


INSTALLER = ROOT / "tools" / "install_lock.sh"


def left_out(group: str = "PDF_EXPORT_ONLY") -> set[str]:
    """A group of packages the installer leaves out: PDF_EXPORT_ONLY (always), SITE_BUILD_ONLY (Binder)."""
    from usrok.bundle import installer_group

    return {canonicalize_name(n) for n in installer_group(ROOT, group)}


def pdf_export_only() -> set[str]:
    return left_out("PDF_EXPORT_ONLY")


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


@pytest.mark.parametrize("group,allowed", [("PDF_EXPORT_ONLY", {"nbconvert"}),
                                           ("SITE_BUILD_ONLY", {"-r requirements.in"})])
def test_left_out_packages_serve_only_what_they_are_left_out_with(group, allowed):
    """What the installer leaves out is needed by nothing it installs: PDF_EXPORT_ONLY only by
    nbconvert's webpdf extra, SITE_BUILD_ONLY only by the course's own site build (requirements.in)
    and by each other. A kept package that needs one of them would fail `pip check`."""
    pinned = lock("requirements.txt")
    names = left_out(group)
    assert names and names <= set(pinned), names - set(pinned)
    for name in names:
        parents = {v if v.startswith("-r") else canonicalize_name(v) for v in pinned[name]["via"]}
        assert parents <= names | allowed, f"{name} is also needed by {parents - names - allowed}"


def test_student_notebooks_import_without_the_site_build_packages(tmp_path):
    """Every usrok module a chapter or an exercise imports loads with the site-build packages
    made unimportable, as on Binder (an import of one of them at module level would fail here)."""
    imported = set()
    for path in [*ROOT.glob("chapters/*.md"), ROOT / "intro.md", *ROOT.glob("exercises/*/*.ipynb")]:
        imported |= set(re.findall(r"^\s*(?:from|import) (usrok[\w.]*)", path.read_text(encoding="utf-8"), re.M))
        imported |= set(re.findall(r'"\s*(?:from|import) (usrok[\w.]*)', path.read_text(encoding="utf-8")))
    assert {"usrok", "usrok.page", "usrok.assignments"} <= imported, imported
    modules = {"fonttools": "fontTools", "rjsmin": "rjsmin", "rcssmin": "rcssmin", "jupyterlite-core": "jupyterlite_core",
               "jupyterlite-pyodide-kernel": "jupyterlite_pyodide_kernel", "doit": "doit", "pkginfo": "pkginfo"}
    assert set(modules) == left_out("SITE_BUILD_ONLY"), "name the import of each site-build package here"
    script = ("import sys\n"
              f"for name in {sorted(modules.values())!r}: sys.modules[name] = None\n"
              f"for name in {sorted(imported)!r}: __import__(name)\n"
              "print('ok')")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert run.stdout.strip() == "ok", run.stderr[-2000:]


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


# --------------------------------------------------------------------------- the installer
def _fake_python(folder: Path) -> Path:
    """A `python` that records how pip was called and the requirements it was given."""
    fake = folder / "python"
    fake.write_text('#!/bin/bash\necho "$@" >> "$FAKE_LOG"\n'
                    'for a in "$@"; do [ "$prev" = "-r" ] && cat "$a" > "$FAKE_LOG.requirements"; prev="$a"; done\n'
                    'exit 0\n')
    fake.chmod(0o755)
    return fake


def _installed_by(log: Path) -> tuple[str, set[str]]:
    calls = log.read_text()
    names = {canonicalize_name(re.split(r"[=; ]", line, maxsplit=1)[0])
             for line in (log.parent / f"{log.name}.requirements").read_text().splitlines()
             if line and not line.startswith((" ", "#", "-e"))}
    return calls, names


def _course_packages(without: set[str] = frozenset()) -> set[str]:
    return {p for p in lock("requirements.txt") if p != "usrok"} - pdf_export_only() - without


def test_the_installer_installs_the_lock_without_resolving(tmp_path):
    """tools/install_lock.sh: `pip install --no-deps` of every pin of the lock but the PDF extra."""
    log = tmp_path / "log"
    subprocess.run(["bash", str(INSTALLER), str(_fake_python(tmp_path))], check=True,
                   env={**os.environ, "FAKE_LOG": str(log)})
    calls, names = _installed_by(log)
    assert "-m pip install" in calls and "--no-deps" in calls, calls
    assert names == _course_packages(), names ^ _course_packages()
    assert "-e ." in (tmp_path / "log.requirements").read_text().splitlines()


def test_binder_installs_what_make_book_installs(tmp_path):
    """Binder reads binder/ only (so not the root requirements.txt, which pip would resolve with
    the PDF extra); its postBuild runs the same installer as `make book`, then the settings."""
    binder = ROOT / "binder"
    assert sorted(p.name for p in binder.iterdir()) == ["postBuild", "runtime.txt"], \
        "another repo2docker file in binder/ would install packages outside the lock"
    assert re.search(r"^\s+tools/install_lock\.sh \$\(BIN\)/python$", (ROOT / "Makefile").read_text(), re.M)
    home, log = tmp_path / "home", tmp_path / "log"
    home.mkdir()
    _fake_python(tmp_path)
    env = {**os.environ, "HOME": str(home), "FAKE_LOG": str(log), "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", str(binder / "postBuild")], check=True, env=env, capture_output=True)
    calls, names = _installed_by(log)
    binder_set = _course_packages(without=left_out("SITE_BUILD_ONLY"))
    assert "--no-deps" in calls and names == binder_set, names ^ binder_set
    assert "-m pip check" in calls
    settings = json.loads((home / ".jupyter" / "labconfig" / "default_setting_overrides.json").read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["myst"] == "Jupytext Notebook"


ENVIRONMENT_BUDGET_MB = 750


def installed_size(packages: set[str]) -> int:
    """Disk space of the given installed distributions, as `du` counts it (blocks): their files and
    their bytecode (pip lists what it compiled in RECORD; what an import compiled later, once)."""
    files: set[Path] = set()
    for dist in importlib.metadata.distributions():
        if canonicalize_name(dist.metadata["Name"]) not in packages:
            continue
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            files.add(path)
            if path.suffix == ".py":
                files.update(path.parent.glob(f"__pycache__/{path.stem}.*.pyc"))
    return sum(path.stat().st_blocks * 512 for path in files if path.is_file())


def test_the_course_environment_stays_under_its_budget():
    """What Binder installs (the lock minus the PDF extra and the site build) stays under 750 MB
    on disk, measured on the same packages installed here (a new venv adds pip and its scripts:
    641 MB here was 647 MB by `du` of a new venv installed as binder/postBuild installs it)."""
    if not (Path(sys.prefix) / ".book-env").exists():
        pytest.skip("not the environment `make book` builds")
    course = {p for p, e in lock("requirements.txt").items() if _applies(e["marker"]) and p != "usrok"}
    binder = course - pdf_export_only() - left_out("SITE_BUILD_ONLY")
    size = installed_size(binder)
    assert size > 300e6, "the measure missed the installed packages"  # pandas, numpy, vl-convert alone
    site_build = installed_size(left_out("SITE_BUILD_ONLY"))
    print(f"Binder's environment: {size / 1e6:.0f} MB; make book adds {site_build / 1e6:.0f} MB")
    assert size <= ENVIRONMENT_BUDGET_MB * 1e6, (
        f"Binder's environment is {size / 1e6:.0f} MB (budget {ENVIRONMENT_BUDGET_MB} MB)")
