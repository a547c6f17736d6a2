"""Build the in-browser edition of the course: a JupyterLite site with a Pyodide kernel.

    python lite/build.py [--out _build/html/lite]      (the book's build runs it: usrok.edition)

The edition is a static folder inside the built book. It holds every chapter as a notebook,
every student exercise notebook, the course data and the course package, and every byte the
browser needs to run them: the JupyterLab application (jupyterlite-core), the Pyodide runtime
and the wheels. Nothing is loaded from a CDN.

Where each part comes from
  - JupyterLab application: ``jupyter lite build`` (jupyterlite-core, jupyterlite-pyodide-kernel,
    pinned in requirements.txt), without source maps, with the Pyodide kernel's extension (and
    jupyterlab-myst when the environment has it) and no other.
  - Pyodide 0.27.7 runtime (``pyodide.js``, the WebAssembly interpreter, the standard library):
    the npm package ``pyodide@0.27.7`` (package.json/package-lock.json, integrity-checked by npm).
    Its ``pyodide-lock.json`` carries the sha256 of every package of the official distribution.
  - Pyodide-built binaries that PyPI does not publish (numpy 2.0.2, openssl, ssl, sqlite3):
    kept in ``lite/pyodide/`` (see its README for where they came from) and checked against
    that ``pyodide-lock.json`` on every build: a missing or different file stops the build with
    a message naming the package and the checksum.
  - Everything else: wheels from PyPI pinned with their sha256 in
    ``lite/requirements-browser.txt`` (pure Python, plus pandas' official WebAssembly wheel),
    downloaded once by pip into a cache and checked again here. markupsafe and pyyaml publish
    no pure wheel: their pure-Python modules are repacked from the pinned wheel (both fall back
    to pure Python without their C speed-ups).
  - The course package ``usrok`` and a stand-in for ``myst_nb.glue``: wheels written here.
  - The PyPI wheels are byte-compiled for Python 3.12 and stripped of their tests by
    ``lite/compile_wheels.py``, run in Pyodide itself under Node.js (the browser then imports
    pandas, Altair and IPython in about half the time); cached beside the downloads.

The site gets its own ``pyodide-lock.json`` listing exactly the files it ships, with the
dependencies the browser needs (``NOT_IN_BROWSER`` says which declared ones are left out
and why); a declared dependency that is neither shipped nor explained stops the build.

Incremental (state in ``_build/lite-build/``): the application is rebuilt only when its
settings or versions change, the runtime only when a wheel, the course package or the binaries
change; otherwise only the notebooks and data files whose source changed are rewritten, and
nothing at all when nothing changed. ``--force`` rebuilds everything.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LITE = ROOT / "lite"
PYODIDE_VERSION = "0.27.7"
# Where the runtime goes in the edition. Named after the version, and the course's own wheels are
# named after their contents, so every file there but pyodide-lock.json keeps its name only as long
# as its bytes: a host may cache them for a year (README, deployment notes).
RUNTIME_DIR = f"static/pyodide-{PYODIDE_VERSION}"
NPM_PYODIDE = ROOT / "node_modules" / "pyodide"
BINARIES = LITE / "pyodide"
REQUIREMENTS = LITE / "requirements-browser.txt"
STANDINS = LITE / "standins"
STATE = ROOT / "_build" / "lite-build"
DEFAULT_OUT = ROOT / "_build" / "html" / "lite"
EXECUTED = ROOT / "_build" / "jupyter_execute"  # the pages myst-nb executed for the book
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "usrok" / "lite-wheels"

# The files of the npm package that make up the runtime (no source maps, no type stubs).
RUNTIME_FILES = ["pyodide.js", "pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip"]
# What the Pyodide kernel installs when it starts (jupyterlite-pyodide-kernel 0.6.1), one after
# the other unless Pyodide has loaded them already: the site lists them (and the kernel's own
# wheels) for Pyodide to load at once, in parallel, when it starts (loadPyodideOptions.packages).
KERNEL_PACKAGES = ["micropip", "piplite", "ssl", "sqlite3", "ipykernel", "comm", "pyodide_kernel", "jedi",
                   "ipython", "widgetsnbextension"]
# Loaded with the kernel too: every notebook of the edition starts by importing the course package.
PRELOAD = KERNEL_PACKAGES + ["usrok"]
# The course package's modules that need Sphinx: not shipped to the browser.
BUILD_ONLY_MODULES = {"book.py", "book_charts.py", "book_csp.py", "book_directives.py", "book_fixes.py", "edition.py"}
# What the course package needs in the browser (Pyodide loads a package's dependencies with it:
# otter-grader is listed so that `from usrok.grading import grader_for` finds it).
COURSE_DEPENDS = ["pandas", "altair", "ipython", "otter-grader"]
# Declared dependencies the browser does not need, and why (never imported on the paths
# the notebooks use). A dependency that is not shipped and not listed here stops the build.
NOT_IN_BROWSER = {
    "otter-grader": {"click": "command line only", "jupytext": "otter assign/export only",
                     "python-on-whales": "Docker, for grading only", "requests": "grading services only"},
    "fica": {"docutils": "documentation helpers only", "sphinx": "documentation helpers only"},
    "ipywidgets": {"jupyterlab-widgets": "JupyterLab front-end files, not Python",
                   "widgetsnbextension": "the kernel brings its own stub"},
}
# Packages repacked as pure Python from a platform wheel (they fall back to pure Python).
REPACK_PURE = {"markupsafe", "pyyaml"}
# Marker environment of Pyodide 0.27 (Python 3.12, Emscripten).
MARKER_ENV = {"sys_platform": "emscripten", "platform_system": "Emscripten", "os_name": "posix",
              "python_version": "3.12", "python_full_version": "3.12.7", "platform_machine": "wasm32",
              "implementation_name": "cpython", "platform_python_implementation": "CPython",
              "platform_release": "3.1.58", "platform_version": "", "implementation_version": "3.12.7"}
# Pages of the book that are not in the edition, and why.
NOT_IN_EDITION = {"chapters/instructor_guide": "for teachers; builds tables from the answer keys "
                                               "and uses the book's Sphinx helpers"}
EPOCH = (1980, 1, 1, 0, 0, 0)


class EditionError(Exception):
    """The edition cannot be built; the message says why and what to do."""


def log(message: str) -> None:
    print(f"[edition] {message}", flush=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for f in files:
                h.update(str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f).encode())
                h.update(f.read_bytes() if f.exists() else b"(missing)")
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------ runtime
def npm_pyodide() -> dict:
    """The npm package pyodide@0.27.7 (installed by `npm ci`); returns its pyodide-lock.json."""
    def version():
        try:
            return json.loads((NPM_PYODIDE / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return None

    if version() != PYODIDE_VERSION:
        log(f"node_modules/pyodide is not {PYODIDE_VERSION}: running npm ci")
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0 or version() != PYODIDE_VERSION:
            raise EditionError(f"could not install the npm package pyodide@{PYODIDE_VERSION} "
                               f"(`npm ci` in {ROOT}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    lock = json.loads((NPM_PYODIDE / "pyodide-lock.json").read_text())
    if lock["info"]["version"] != PYODIDE_VERSION:
        raise EditionError(f"node_modules/pyodide/pyodide-lock.json is for Pyodide {lock['info']['version']}, "
                           f"not {PYODIDE_VERSION}")
    return lock


def verified_binaries(npm_lock: dict, needed: set[str]) -> dict[str, tuple[dict, Path]]:
    """The Pyodide-built packages in lite/pyodide/, each checked against the official lock.

    Every file there must be a package of the lock with the lock's sha256, and every
    package in ``needed`` must be there. Returns {name: (lock entry, path)}.
    """
    by_file = {p["file_name"]: p for p in npm_lock["packages"].values()}
    found = {}
    problems = []
    for path in sorted(BINARIES.glob("*")):
        if path.suffix not in (".whl", ".zip"):
            continue
        entry = by_file.get(path.name)
        if entry is None:
            problems.append(f"{path.relative_to(ROOT)} is not a package of Pyodide {PYODIDE_VERSION} "
                            "(no file of that name in pyodide-lock.json)")
            continue
        actual = sha256(path.read_bytes())
        if actual != entry["sha256"]:
            problems.append(f"package {entry['name']} {entry['version']}: {path.relative_to(ROOT)} has "
                            f"sha256 {actual}, but Pyodide {PYODIDE_VERSION}'s pyodide-lock.json says "
                            f"{entry['sha256']}")
            continue
        found[entry["name"]] = (entry, path)
    for name in sorted(needed - set(found)):
        entry = npm_lock["packages"].get(name)
        if entry is None:
            problems.append(f"package {name} is needed but is neither in {REQUIREMENTS.relative_to(ROOT)} "
                            f"nor a package of Pyodide {PYODIDE_VERSION}")
        else:
            problems.append(f"package {name} {entry['version']}: {BINARIES.relative_to(ROOT)}/"
                            f"{entry['file_name']} is missing (expected sha256 {entry['sha256']}; "
                            f"see {BINARIES.relative_to(ROOT)}/README.md)")
    if problems:
        raise EditionError("the Pyodide-built binaries do not match the official lock:\n  "
                           + "\n  ".join(problems))
    return found


def pinned_requirements() -> dict[str, tuple[str, set[str]]]:
    """{canonical name: (version, allowed sha256s)} from lite/requirements-browser.txt."""
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)$", line)
        if not match:
            raise EditionError(f"{REQUIREMENTS.relative_to(ROOT)}: cannot read {line!r} "
                               "(expected name==version --hash=sha256:...)")
        hashes = set(re.findall(r"sha256:([0-9a-f]{64})", match.group(3)))
        pins[canonical(match.group(1))] = (match.group(2), hashes)
    return pins


def wheel_name(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return canonical(name), version


def downloaded_wheels(pins: dict) -> dict[str, Path]:
    """Every pinned wheel, from the cache or downloaded by pip (hash-checked), checked again."""
    CACHE.mkdir(parents=True, exist_ok=True)

    def cached() -> dict[str, Path]:
        out = {}
        for path in CACHE.glob("*.whl"):
            name, version = wheel_name(path)
            if name in pins and pins[name][0] == version and sha256(path.read_bytes()) in pins[name][1]:
                out[name] = path
        return out

    have = cached()
    missing = sorted(set(pins) - set(have))
    if missing:
        log(f"downloading {len(missing)} wheels from PyPI into {CACHE}")
        with tempfile.TemporaryDirectory() as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text("\n".join(f"{n}=={pins[n][0]} " + " ".join(f"--hash=sha256:{h}" for h in pins[n][1])
                                     for n in missing) + "\n")
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                   "--no-deps", "--only-binary=:all:", "--require-hashes", "--implementation", "cp",
                   "--python-version", "3.12", "--abi", "cp312", "--abi", "none", "--platform", "any",
                   "--platform", "pyemscripten_2024_0_wasm32", "--platform", "manylinux_2_17_x86_64",
                   "-d", str(CACHE), "-r", str(req)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise EditionError("pip could not download the browser wheels:\n"
                                   + "\n".join(l for l in done.stderr.splitlines()
                                               if not l.startswith("WARNING: Location"))[-3000:])
        have = cached()
    for name in sorted(set(pins) - set(have)):
        version, hashes = pins[name]
        raise EditionError(f"package {name} {version}: no downloaded wheel has the pinned sha256 "
                           f"{' or '.join(sorted(hashes))} ({REQUIREMENTS.relative_to(ROOT)})")
    return have


def write_wheel(name: str, version: str, files: dict[str, bytes], requires=(), summary="",
                content_version: bool = False) -> tuple[str, bytes]:
    """A py3-none-any wheel with fixed dates (the same input gives the same bytes).

    ``content_version`` adds a digest of the files as a local version (``0.1.0+c1a2b3c4d``),
    so that the wheel's name changes whenever its contents do (safe to cache for long).
    """
    if content_version:
        version += "+c" + digest({path: sha256(data) for path, data in files.items()})[:9]
    dist = f"{name.replace('-', '_')}-{version}"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Summary: {summary}"] if summary else []
    meta += [f"Requires-Dist: {r}" for r in requires]
    files = dict(files)
    files[f"{dist}.dist-info/METADATA"] = ("\n".join(meta) + "\n").encode()
    files[f"{dist}.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: usrok lite/build.py\n"
                                        b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
              for p, d in sorted(files.items())]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record + [f"{dist}.dist-info/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in sorted(files.items()):
            info = zipfile.ZipInfo(path, EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return f"{dist}-py3-none-any.whl", buffer.getvalue()


def repacked_pure(path: Path) -> tuple[str, bytes]:
    """A platform wheel's pure-Python files as a py3-none-any wheel (no compiled extensions)."""
    name, version = wheel_name(path)
    files, requires = {}, []
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            if ".dist-info/" in member:
                if member.endswith("/METADATA"):
                    requires = [l.split(":", 1)[1].strip() for l in zf.read(member).decode().splitlines()
                                if l.startswith("Requires-Dist:")]
                continue
            if member.endswith((".py", ".pyi", "py.typed")):
                files[member] = zf.read(member)
    return write_wheel(name, version, files, requires, f"{name} {version}, pure-Python modules only")


def course_wheel() -> tuple[str, bytes]:
    """The course package ``usrok`` (its Sphinx-only modules left out)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M).group(1)
    src = ROOT / "src" / "usrok"
    files = {f"usrok/{p.name}": p.read_bytes() for p in sorted(src.glob("*.py")) if p.name not in BUILD_ONLY_MODULES}
    return write_wheel("usrok", version, files, COURSE_DEPENDS, "The US-ROK alliance course's helpers",
                       content_version=True)


def standin_wheels() -> list[tuple[str, str, bytes]]:
    """Stand-ins for build-only modules the notebooks import: [(lock name, file name, bytes)]."""
    out = []
    for folder in sorted(p for p in STANDINS.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        files = {f"{folder.name}/{p.relative_to(folder)}": p.read_bytes()
                 for p in sorted(folder.rglob("*.py"))}
        lock_name = f"{canonical(folder.name)}-standin"
        filename, data = write_wheel(lock_name, "1.0.0", files, ["ipython"],
                                     f"In-browser stand-in for {folder.name} (usrok course)", content_version=True)
        out.append((lock_name, filename, data))
    return out


COMPILE_SCRIPT = LITE / "compile_wheels.py"


def byte_compiled(wheels: dict[str, bytes]) -> dict[str, bytes]:
    """The wheels with Python 3.12 bytecode in place of their sources and without their tests
    (lite/compile_wheels.py, run in Pyodide under Node.js: the browser's own interpreter).

    Importing pandas, Altair and IPython in the browser then takes about half as long. The
    results are cached beside the downloads, by the input wheel and the compile script."""
    cache = CACHE / "compiled"
    cache.mkdir(parents=True, exist_ok=True)
    script = COMPILE_SCRIPT.read_bytes()
    cached = {name: cache / f"{sha256(data + script)[:32]}-{name}" for name, data in wheels.items()}
    todo = {name: data for name, data in wheels.items() if not cached[name].is_file()}
    if todo:
        log(f"byte-compiling {len(todo)} wheels for Python 3.12 (Pyodide under Node.js)")
        with tempfile.TemporaryDirectory() as tmp:
            inputs, outputs = Path(tmp) / "in", Path(tmp) / "out"
            inputs.mkdir()
            outputs.mkdir()
            for name, data in todo.items():
                (inputs / name).write_bytes(data)
            driver = ("const [pyodideJs, indexURL, inputs, outputs, script] = process.argv.slice(1);"
                      "require(pyodideJs).loadPyodide({indexURL}).then(py => {"
                      " for (const [dir, at] of [[inputs, '/in'], [outputs, '/out']]) {"
                      "  py.FS.mkdirTree(at); py.FS.mount(py.FS.filesystems.NODEFS, {root: dir}, at); }"
                      " py.runPython(require('fs').readFileSync(script, 'utf8'));"
                      " py.runPython(\"main('/in', '/out')\"); })"
                      ".catch(e => { console.error(String(e)); process.exit(1); });")
            done = subprocess.run(["node", "-e", driver, str(NPM_PYODIDE / "pyodide.js"), f"{NPM_PYODIDE}/",
                                   str(inputs), str(outputs), str(COMPILE_SCRIPT)], capture_output=True, text=True)
            missing = [name for name in todo if not (outputs / name).is_file()]
            if done.returncode != 0 or missing:
                raise EditionError(f"byte-compiling the wheels failed ({', '.join(missing) or 'node'}):\n"
                                   f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
            for name in todo:
                shutil.copyfile(outputs / name, cached[name])
    return {name: cached[name].read_bytes() for name in wheels}


def wheel_facts(data: bytes) -> tuple[list[str], list[str]]:
    """(top-level import names, Requires-Dist lines) of a wheel."""
    imports, requires = set(), []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for member in zf.namelist():
            top = member.split("/", 1)[0]
            if top.endswith((".dist-info", ".data")):
                if member.endswith(".dist-info/METADATA"):
                    requires = [l.split(":", 1)[1].strip() for l in zf.read(member).decode().splitlines()
                                if l.startswith("Requires-Dist:")]
                continue
            if "/" in member and member.endswith(".py"):
                imports.add(top)
            elif "/" not in member and member.endswith(".py"):
                imports.add(member[:-3])
    imports -= {"tests", "test", "docs", "_distutils_hack", "conftest"}
    return sorted(imports), requires


def browser_depends(name: str, requires: list[str], shipped: set[str], pyodide_names: set[str]) -> list[str]:
    from packaging.requirements import Requirement

    out = []
    for line in requires:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({**MARKER_ENV, "extra": ""}):
            continue
        dep = canonical(req.name)
        if dep in NOT_IN_BROWSER.get(name, {}):
            continue
        if dep not in shipped and dep not in pyodide_names:
            raise EditionError(f"package {name} requires {dep}, which the edition does not ship: add it to "
                               f"{REQUIREMENTS.relative_to(ROOT)}, or to NOT_IN_BROWSER in lite/build.py with "
                               "the reason the browser does not need it")
        out.append(dep)
    return sorted(set(out))


def build_runtime(dest: Path) -> dict:
    """RUNTIME_DIR: the runtime, every wheel, and a pyodide-lock.json listing exactly those."""
    npm_lock = npm_pyodide()
    pins = pinned_requirements()
    wheels = downloaded_wheels(pins)
    packages: dict[str, dict] = {}
    files: dict[str, bytes | Path] = {}

    def add(name, version, filename, data, imports, requires, depends=None):
        files[filename] = data
        packages[name] = {"name": name, "version": version, "file_name": filename, "install_dir": "site",
                          "sha256": sha256(data), "package_type": "package", "imports": imports,
                          "depends": depends, "requires": requires, "unvendored_tests": False,
                          "shared_library": False}

    third_party = {}  # name -> (version, file name, bytes): byte-compiled below
    for name, path in sorted(wheels.items()):
        if name in REPACK_PURE:
            filename, data = repacked_pure(path)
        elif path.name.endswith("-none-any.whl") or "pyemscripten" in path.name:
            filename, data = path.name, path.read_bytes()
        else:
            raise EditionError(f"package {name}: {path.name} is a platform wheel; pin its pure "
                               "(py3-none-any) wheel or add it to REPACK_PURE")
        third_party[name] = (pins[name][0], filename, data)
    for path in sorted((kernel_extension() / "static" / "pypi").glob("*.whl")):  # the kernel's own
        name, version = wheel_name(path)
        if name == "widgetsnbextension" and not version.startswith("4."):
            continue  # the stub for ipywidgets 7; the edition has ipywidgets 8
        third_party[name] = (version, path.name, path.read_bytes())
    compiled = byte_compiled({filename: data for _, filename, data in third_party.values()})
    for name, (version, filename, data) in sorted(third_party.items()):
        imports, requires = wheel_facts(data)  # from the sources: the compiled wheel has none
        add(name, version, filename, compiled[filename], imports, requires)
    filename, data = course_wheel()
    add("usrok", filename.split("-")[1], filename, data, ["usrok"], [f"{d}" for d in COURSE_DEPENDS])
    for lock_name, filename, data in standin_wheels():
        imports, requires = wheel_facts(data)
        add(lock_name, filename.split("-")[1], filename, data, imports, requires)

    # Dependencies as the browser needs them; the rest must come from Pyodide's own build.
    pyodide_names = set(npm_lock["packages"]) - set(packages)
    for name, entry in packages.items():
        entry["depends"] = browser_depends(name, entry.pop("requires"), set(packages), pyodide_names)
    needed = {d for e in packages.values() for d in e["depends"]} | {canonical(n) for n in KERNEL_PACKAGES}
    needed = {n for n in needed if n not in packages}
    todo = list(needed)
    while todo:  # Pyodide's own dependencies (ssl -> openssl) come from its build too
        for dep in npm_lock["packages"].get(todo.pop(), {}).get("depends", []):
            if dep not in needed and dep not in packages:
                needed.add(dep)
                todo.append(dep)
    binaries = verified_binaries(npm_lock, needed)
    for name, (entry, path) in binaries.items():
        packages[name] = {**entry, "unvendored_tests": False}
        files[entry["file_name"]] = path

    # Ship only what some notebook or the kernel can reach.
    reach, todo = set(), {canonical(n) for n in PRELOAD} | {n for n in packages if n.endswith("-standin")}
    while todo:
        name = todo.pop()
        if name in reach:
            continue
        if name not in packages:
            raise EditionError(f"package {name} is needed (by the kernel or a dependency) but not shipped")
        reach.add(name)
        todo |= set(packages[name]["depends"])
    unused = sorted(set(packages) - reach)
    if unused:
        raise EditionError(f"{REQUIREMENTS.relative_to(ROOT)} pins packages nothing needs: {unused}")

    dest.mkdir(parents=True)
    for name in RUNTIME_FILES:
        shutil.copyfile(NPM_PYODIDE / name, dest / name)
    for filename, data in files.items():
        if isinstance(data, Path):
            shutil.copyfile(data, dest / filename)
        else:
            (dest / filename).write_bytes(data)
    lock = {"info": npm_lock["info"], "packages": dict(sorted(packages.items()))}
    (dest / "pyodide-lock.json").write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    return lock


# ------------------------------------------------------------------------------ application
# JupyterLab extensions of the course environment that the edition takes too when installed:
# jupyterlab-myst renders MyST (admonitions, roles, {eval}) in the notebooks, as on Binder.
OPTIONAL_EXTENSIONS = ["jupyterlab-myst"]


def lab_extensions() -> list[Path]:
    """The extensions the edition's JupyterLab loads: the Pyodide kernel's, and the optional ones
    installed here (every other extension of the environment is left out)."""
    root = Path(sys.prefix) / "share" / "jupyter" / "labextensions"
    return [kernel_extension()] + [root / name for name in OPTIONAL_EXTENSIONS if (root / name / "package.json").exists()]


def kernel_extension() -> Path:
    import jupyterlite_pyodide_kernel  # noqa: F401  (fails clearly if not installed)

    path = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyterlite" / "pyodide-kernel-extension"
    if not (path / "package.json").exists():
        raise EditionError(f"the Pyodide kernel's JupyterLab extension is not at {path}: "
                           "reinstall jupyterlite-pyodide-kernel (requirements.txt)")
    return path


def build_application(dest: Path, work: Path) -> None:
    """The JupyterLab application (jupyter lite build), without contents or runtime."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copyfile(LITE / "overrides.json", work / "overrides.json")
    config = {"LiteBuildConfig": {"apps": ["lab"], "no_sourcemaps": True, "no_unused_shared_packages": True,
                                  "ignore_sys_prefix": True, "federated_extensions": [str(p) for p in lab_extensions()],
                                  "output_dir": str(dest), "contents": []}}
    (work / "jupyter_lite_config.json").write_text(json.dumps(config, indent=1))
    # A stale doit database can skip steps silently (e.g. the one that points the kernel at
    # the local runtime): each application build starts from an empty one.
    cmd = [str(Path(sys.executable).parent / "jupyter-lite"), "build", "--lite-dir", str(work)]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        raise EditionError(f"`jupyter lite build` failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    for sourcemap in dest.rglob("*.map"):  # none should be left; make sure
        sourcemap.unlink()


def site_config(app_dir: Path) -> dict:
    """jupyter-lite.json: the application's, with the course's runtime settings on top."""
    config = json.loads((app_dir / "jupyter-lite.json").read_text())
    ours = json.loads((LITE / "jupyter-lite.json").read_text())
    kernel = ours["jupyter-config-data"]["litePluginSettings"]["@jupyterlite/pyodide-kernel-extension:kernel"]
    kernel["pyodideUrl"] = f"./{RUNTIME_DIR}/pyodide.js"
    kernel["loadPyodideOptions"] = {"packages": PRELOAD}
    data = config["jupyter-config-data"]
    for key, value in ours["jupyter-config-data"].items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            for plugin, settings in value.items():
                data[key].setdefault(plugin, {}).update(settings)
        else:
            data[key] = value
    return config


# ------------------------------------------------------------------------------ contents
def edition_pages() -> list[str]:
    """The book's notebook pages (MyST notebooks listed in _toc.yml) that the edition holds."""
    import yaml

    def files(entries):
        for entry in entries or []:
            if "file" in entry:
                yield entry["file"]
            yield from files(entry.get("sections"))

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [f for part in toc.get("parts", []) for f in files(part["chapters"])]
    return [p for p in pages if p not in NOT_IN_EDITION
            and (ROOT / f"{p}.md").read_text(encoding="utf-8").startswith("---\njupytext")]


def student_notebooks() -> list[Path]:
    return sorted(ROOT.glob("exercises/*/student/*.ipynb"))


def data_files() -> list[Path]:
    """datapackage.json and the files it describes (not the build scripts or raw sources)."""
    package = json.loads((ROOT / "data" / "datapackage.json").read_text())
    files = [ROOT / "data" / "datapackage.json"]
    files += [ROOT / "data" / r["path"] for r in package["resources"]]
    if (ROOT / "data" / "README.md").exists():
        files.append(ROOT / "data" / "README.md")
    return files


def exercise_examples() -> list[Path]:
    """Example data the chapters read beside an exercise (e.g. an invented learner's matrix)."""
    return sorted(ROOT.glob("exercises/*/*.csv"))


def contents_sources() -> dict[str, Path]:
    """{path in the edition: source}: chapter notebooks (from their MyST sources), the student
    notebooks, the data and the exercises' example data."""
    out = {f"{page}.ipynb": ROOT / f"{page}.md" for page in edition_pages()}
    for path in student_notebooks() + data_files() + exercise_examples():
        out[path.relative_to(ROOT).as_posix()] = path
    return out


def write_content(rel: str, source: Path, files_dir: Path, executed: Path = EXECUTED) -> None:
    target = files_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix != ".md":
        shutil.copyfile(source, target)  # student notebooks byte for byte: the leakage tests compare
        return
    import jupytext
    import nbformat

    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)
    nb.metadata["language_info"] = {"name": "python"}
    glued = glued_values(executed, rel.removesuffix(".ipynb"))
    missing = []
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        if cell.cell_type == "markdown" and glued is not None:
            missing += stored_expression_results(cell, glued)
    if glued is None and any("{eval}" in c.source for c in nb.cells if c.cell_type == "markdown"):
        log(f"{rel}: no executed book in {executed}: its prose shows its numbers only once the "
            "student runs the cells")
    elif missing:
        log(f"{rel}: nothing glued as {', '.join(sorted(set(missing)))} in {executed}: those numbers "
            "appear once the student runs the cells")
    target.write_text(nbformat.writes(nb), encoding="utf-8")


# ------------------------------------------------------------------------------ numbers in the prose
# A chapter quotes a number it computes with {eval}`glued("key:fmt")` (usrok.page). In JupyterLab,
# jupyterlab-myst shows the results it keeps in the Markdown cell's metadata ("user_expressions":
# [{"expression": ..., "result": <an execute reply's user_expressions entry>}]) and replaces them
# when the cell is run (the kernel evaluates the expressions: usrok.browser.answer_user_expressions).
# The edition stores the book's own results, so the prose reads like the book's before anything
# runs. They come from the glue data myst-nb wrote when it executed the page for the book
# (<_build>/jupyter_execute/<page>.glue.json), formatted as the book formats them.
EVAL_ROLE = re.compile(r"\{eval\}`([^`]+)`")


def glued_values(executed: Path, page: str) -> dict[str, dict] | None:
    """{key: glued output} that myst-nb recorded for ``page`` (None when the book has no record)."""
    path = executed / f"{page}.glue.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def expression_text(expression: str, glued: dict[str, dict]) -> str | None:
    """What ``{eval}`expression``` shows in the book, or None when it cannot be told here."""
    from ast import literal_eval

    from usrok.page import GLUED_CALL, format_text

    match = GLUED_CALL.match(expression)
    if not match:
        return None
    spec = match["spec"]
    key, _, fmt = spec.rpartition(":") if ":" in spec else (spec, "", "s")
    plain = glued.get(key, {}).get("data", {}).get("text/plain")
    if plain is None:
        return None
    try:
        value = literal_eval(plain)
    except (SyntaxError, ValueError):
        value = plain
    if ":" not in spec and not isinstance(value, (str, int, float)):
        return None  # glued() hands the object itself to the kernel: shown once run
    return format_text(value, fmt)


def stored_expression_results(cell, glued: dict[str, dict]) -> list[str]:
    """Store the book's result of each {eval} of a Markdown cell in its metadata, as
    jupyterlab-myst does after running it; returns the expressions it could not tell."""
    results, missing = [], []
    for expression in dict.fromkeys(EVAL_ROLE.findall(cell.source)):
        text = expression_text(expression, glued)
        if text is None:
            missing.append(expression)
            continue
        results.append({"expression": expression,
                        "result": {"status": "ok", "data": {"text/plain": text}, "metadata": {}}})
    if results:
        cell.metadata["user_expressions"] = results
    return missing


def content_digest(rel: str, source: Path, executed: Path = EXECUTED) -> str:
    """What a file of the edition is made from: its source and, for a chapter, the book's
    glue data (its numbers)."""
    parts = [sha256(source.read_bytes())]
    if source.suffix == ".md":
        glue = executed / f"{rel.removesuffix('.ipynb')}.glue.json"
        parts.append(sha256(glue.read_bytes()) if glue.is_file() else "(no glue data)")
    return parts[0] if len(parts) == 1 else sha256(" ".join(parts).encode())


MIMETYPES = {".ipynb": "application/x-ipynb+json", ".csv": "text/csv", ".json": "application/json",
             ".geojson": "application/geo+json", ".md": "text/markdown"}


def write_listings(files_dir: Path, api_dir: Path) -> None:
    """api/contents/<folder>/all.json: the Jupyter Contents API listing of every folder."""
    import datetime as dt

    def model(path: Path) -> dict:
        rel = path.relative_to(files_dir).as_posix()
        rel = "" if rel == "." else rel
        stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        common = {"name": path.name if rel else "", "path": rel, "created": stamp, "last_modified": stamp,
                  "writable": True, "hash": None, "hash_algorithm": None}
        if path.is_dir():
            return {**common, "type": "directory", "mimetype": None, "format": None, "content": None, "size": None}
        kind = "notebook" if path.suffix == ".ipynb" else "file"
        return {**common, "type": kind, "mimetype": None if kind == "notebook" else MIMETYPES.get(path.suffix, "text/plain"),
                "format": None, "content": None, "size": path.stat().st_size}

    for folder in [files_dir, *sorted(p for p in files_dir.rglob("*") if p.is_dir())]:
        listing = model(folder)
        listing["format"] = "json"
        listing["content"] = [model(child) for child in sorted(folder.iterdir())]
        target = api_dir / folder.relative_to(files_dir) / "all.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(listing, indent=1, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------ assembly
def link_tree(src: Path, dest: Path) -> None:
    """Hard-link (or copy) every file of src into dest."""
    for path in src.rglob("*"):
        target = dest / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def application_inputs() -> str:
    from importlib.metadata import version

    return digest(version("jupyterlite-core"), version("jupyterlite-pyodide-kernel"),
                  *[p / "package.json" for p in lab_extensions()],
                  LITE / "overrides.json", LITE / "jupyter-lite.json", Path(__file__))


def runtime_inputs() -> str:
    from importlib.metadata import version

    src = ROOT / "src" / "usrok"
    return digest(PYODIDE_VERSION, version("jupyterlite-pyodide-kernel"), NPM_PYODIDE / "package.json", REQUIREMENTS,
                  BINARIES, STANDINS, COMPILE_SCRIPT,
                  sorted(p.name for p in src.glob("*.py")), *sorted(src.glob("*.py")),
                  ROOT / "pyproject.toml", Path(__file__))


def build(out: Path = DEFAULT_OUT, force: bool = False, executed: Path = EXECUTED) -> Path:
    """Build or update the edition in ``out``; returns ``out``. ``executed`` is where myst-nb
    wrote the pages it executed for the book (their numbers go into the chapters' prose)."""
    started = time.perf_counter()
    STATE.mkdir(parents=True, exist_ok=True)
    keys = {"application": application_inputs(), "runtime": runtime_inputs()}
    for part, key in keys.items():
        stamp, ready = STATE / f"{part}.stamp", STATE / part
        if force or not ready.exists() or not stamp.exists() or stamp.read_text() != key:
            stamp.unlink(missing_ok=True)
            if ready.exists():
                shutil.rmtree(ready)
            t0 = time.perf_counter()
            if part == "application":
                build_application(ready, STATE / "application-src")
            else:
                build_runtime(ready)
            stamp.write_text(key)
            log(f"{part} built in {time.perf_counter() - t0:.1f} s")

    state_file = STATE / "edition.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    sources = contents_sources()
    digests = {rel: content_digest(rel, path, executed) for rel, path in sources.items()}
    in_place = (not force and out.is_dir() and state.get("out") == str(out) and state.get("parts") == keys
                and (out / "files").is_dir())
    if in_place:  # same application and runtime: update the notebooks and data that changed
        known = state.get("contents", {})
        changed = [rel for rel in sources if known.get(rel) != digests[rel] or not (out / "files" / rel).is_file()]
        removed = [rel for rel in known if rel not in sources]
        if not changed and not removed:
            return out
        for rel in removed:
            (out / "files" / rel).unlink(missing_ok=True)
        for rel in changed:
            write_content(rel, sources[rel], out / "files", executed)
        shutil.rmtree(out / "api" / "contents", ignore_errors=True)
        write_listings(out / "files", out / "api" / "contents")
        log(f"updated {len(changed) + len(removed)} notebook(s) and data file(s) in {out} "
            f"({time.perf_counter() - started:.1f} s)")
    else:
        fresh = out.with_name(out.name + ".new")
        if fresh.exists():
            shutil.rmtree(fresh)
        link_tree(STATE / "application", fresh)
        link_tree(STATE / "runtime", fresh / RUNTIME_DIR)
        (fresh / "jupyter-lite.json").write_text(json.dumps(site_config(STATE / "application"), indent=1) + "\n")
        for rel, source in sources.items():
            write_content(rel, source, fresh / "files", executed)
        write_listings(fresh / "files", fresh / "api" / "contents")
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if out.exists():
            out.rename(old)
        fresh.rename(out)
        shutil.rmtree(old, ignore_errors=True)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        log(f"{len(sources)} notebooks and data files, {size / 1e6:.1f} MB in all, in {out} "
            f"({time.perf_counter() - started:.1f} s)")
    state_file.write_text(json.dumps({"out": str(out), "parts": keys, "contents": digests}, indent=1))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the edition")
    parser.add_argument("--force", action="store_true", help="rebuild the application and runtime too")
    args = parser.parse_args(argv)
    try:
        build(args.out.resolve(), args.force)
    except EditionError as error:
        print(f"[edition] FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
